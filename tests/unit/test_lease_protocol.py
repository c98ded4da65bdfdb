"""The lease wire protocol over real loopback sockets: authentication, nonces, refusals."""

import json
import socket
import threading
import time

import pytest

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import protocol

KEY = "k" * 64
OTHER_KEY = "x" * 64


class Server:
    """A one-thread protocol server on 127.0.0.1 recording what its handler saw."""

    def __init__(self, key=KEY, senders=("master", "mn2"), handler=None):
        self.key, self.senders = key, senders
        self.calls, self.results, self.events = [], [], []
        self.handler = handler or self._default
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _default(self, op, sender, args, t_c):
        self.events.append("handled")
        self.calls.append((op, sender, args, t_c))
        return {"served": op}

    def _clock(self):
        self.events.append("t_c")
        return time.monotonic()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.results.append(protocol.serve(conn, self.key, "mn1", self.senders, self.handler, self._clock))

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    made = Server()
    yield made
    made.close()


def raw_exchange(port, make_request):
    """Speak the protocol by hand: returns (challenge, answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        reader = sock.makefile("rb")
        hello = json.loads(reader.readline())
        sock.sendall(make_request(hello) + b"\n")
        return hello, json.loads(reader.readline())


def test_renew_round_trip_calls_on_challenge_between_t_c_and_the_request(server):
    seen = []

    def on_challenge(challenge):
        seen.append(challenge)
        server.events.append("t_r")

    status = protocol.exchange("127.0.0.1", server.port, KEY, "renew", "master", {"enforce": True},
                               timeout=2, on_challenge=on_challenge)
    assert status == {"served": "renew"}
    assert server.events == ["t_c", "t_r", "handled"]
    assert seen[0]["v"] == 1 and seen[0]["node"] == "mn1" and len(seen[0]["nonce"]) == 32
    assert server.calls[0][:3] == ("renew", "master", {"enforce": True})


def test_on_challenge_raising_sends_nothing(server):
    class Stop(Exception):
        pass

    def refuse(_challenge):
        raise Stop()

    with pytest.raises(Stop):
        protocol.exchange("127.0.0.1", server.port, KEY, "renew", "mn2", timeout=2, on_challenge=refuse)
    time.sleep(0.2)
    assert server.calls == []


@pytest.mark.parametrize("op, sender, args, error", [
    ("fence", "mn2", {}, "fence is accepted from the master only"),
    ("reboot", "master", {}, "unknown op 'reboot'"),
    ("renew", "mn3", {}, "unknown sender 'mn3'"),
    ("renew", "master", {}, "a renew from the master needs args.enforce true or false"),
    ("renew", "mn2", {"enforce": True}, "only the master sets enforce"),
    ("renew", "mn2", {"allow_async": True}, "only the master allows async"),
    ("renew", "master", {"enforce": True, "allow_async": "yes"}, "args.allow_async must be true or false"),
    ("fence", "master", {"keep_vip": "yes"}, "args.keep_vip must be true or false"),
    ("release-vip", "master", {}, "release-vip is accepted from the peer only (the node taking the VIP over)"),
])
def test_refusals_are_one_line_and_change_nothing(server, op, sender, args, error):
    with pytest.raises(HamnError) as info:
        protocol.exchange("127.0.0.1", server.port, KEY, op, sender, args, timeout=2)
    assert str(info.value) == f"lease watchdog at 127.0.0.1:{server.port} refused {op}: {error}"
    assert server.calls == []


def test_wrong_key_is_refused_without_calling_the_handler(server):
    with pytest.raises(HamnError, match="not authentic"):
        protocol.exchange("127.0.0.1", server.port, OTHER_KEY, "renew", "master", {"enforce": True}, timeout=2)
    time.sleep(0.1)
    assert server.calls == [] and server.results[-1][2] == "bad MAC"


def test_replayed_request_is_refused(server):
    captured = {}

    def first(hello):
        captured["request"] = protocol.signed(KEY, {"op": "renew", "from": "mn2", "nonce": hello["nonce"], "args": {}})
        return protocol.canonical(captured["request"])

    _, answer = raw_exchange(server.port, first)
    assert answer["ok"] is True and len(server.calls) == 1
    _, again = raw_exchange(server.port, lambda hello: protocol.canonical(captured["request"]))
    assert again["ok"] is False and "nonce" in again["error"]
    assert protocol.verified(KEY, again)
    assert len(server.calls) == 1


def test_tampered_request_is_refused(server):
    def tampered(hello):
        request = protocol.signed(KEY, {"op": "renew", "from": "master", "nonce": hello["nonce"],
                                        "args": {"enforce": False}})
        request["args"]["enforce"] = True  # changed after signing
        return protocol.canonical(request)

    _, answer = raw_exchange(server.port, tampered)
    assert answer == protocol.answer(KEY, answer["nonce"], error="bad MAC") and server.calls == []


def test_oversized_line_gets_no_service(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.makefile("rb").readline()
        try:
            sock.sendall(b"{" + b" " * (protocol.MAX_LINE + 10) + b"}\n")
        except OSError:
            pass
    time.sleep(0.2)
    assert server.calls == [] and "longer than" in server.results[-1][2]


def test_answer_from_another_key_or_nonce_is_not_believed():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def impostor():
        conn, _ = listener.accept()
        with conn:
            conn.sendall(protocol.canonical(protocol.challenge("mn1")) + b"\n")
            conn.makefile("rb").readline()
            # Signed with the right key but for an old nonce: a replayed answer.
            conn.sendall(protocol.canonical(protocol.answer(KEY, protocol.new_nonce(), status={})) + b"\n")

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    with pytest.raises(HamnError, match="not authentic"):
        protocol.exchange("127.0.0.1", port, KEY, "status", "master", timeout=2)
    thread.join(2)
    listener.close()


def test_silent_server_times_out_within_the_budget():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    started = time.monotonic()
    with pytest.raises(HamnError, match=r"no answer within 0.3s"):
        protocol.exchange("127.0.0.1", listener.getsockname()[1], KEY, "status", "master", timeout=0.3)
    assert time.monotonic() - started < 0.6
    listener.close()


def test_connection_refused_is_one_readable_line():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(HamnError) as info:
        protocol.exchange("127.0.0.1", port, KEY, "status", "master")
    assert str(info.value) == f"lease watchdog at 127.0.0.1:{port}: Connection refused"


def test_mac_is_over_canonical_json_without_the_mac():
    obj = {"b": 1, "a": [1, "é"]}
    assert protocol.canonical(obj) == '{"a":[1,"é"],"b":1}'.encode()
    signed = protocol.signed(KEY, obj)
    assert protocol.verified(KEY, signed) and not protocol.verified(OTHER_KEY, signed)
    assert not protocol.verified(KEY, {**signed, "b": 2}) and not protocol.verified(KEY, obj)
