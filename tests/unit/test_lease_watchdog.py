"""The watchdog's decisions over a table of states, with fake PostgreSQL, fence, peer and clock."""

import json
import socket
import threading

import pytest

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import ledger, protocol
from saltext_hamn.utils.lease.watchdog import FENCE_RETRY, Watchdog
from saltext_hamn.utils.lease import watchdog as watchdog_module
from tests import support

LEASE = 3.0
PEER = "198.51.100.12"


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class Observer:
    def __init__(self, role="primary", **facts):
        self.facts = {"role": role, "pg_up": role in ("primary", "standby"), "receiver_status": None,
                      "sender_host": None, "standby_signal": role == "standby", **facts}

    def current(self):
        return dict(self.facts)


def streaming(sender=PEER):
    return Observer("standby", receiver_status="streaming", sender_host=sender)


class Peer:
    """A fake client exchange: runs on_challenge like the real one, then records the request."""

    def __init__(self, fail=None, before_challenge=None):
        self.sent, self.fail, self.before_challenge = [], fail, before_challenge

    def __call__(self, host, port, key, op, sender, args=None, timeout=0.5, on_challenge=None):
        if self.before_challenge:
            self.before_challenge()
        if self.fail:
            raise HamnError(self.fail)
        on_challenge({"v": 1, "node": "mn2", "nonce": "0" * 32})
        self.sent.append((host, port, op, sender, args))
        return {}


@pytest.fixture
def env(tmp_path):
    cfg = support.load(heartbeat={"state_dir": str(tmp_path), "lease": LEASE})
    clock, boot, fences = Clock(), {"id": "boot-a"}, []

    def make(observer=None, peer=None):
        def fencer(reason, keep_vip=False):
            fences.append((reason, "keep_vip") if keep_vip else reason)
            return {"fenced": True, "steps": {}, "ms": 1}

        return Watchdog(cfg, "mn1", clock=clock, observer=observer or Observer(), fencer=fencer,
                        exchange=peer or Peer(),
                        read_boot_id=lambda: boot["id"], wall=lambda: 1.7e9)

    class Env:
        pass

    e = Env()
    e.cfg, e.clock, e.boot, e.fences, e.make, e.dir = cfg, clock, boot, fences, make, tmp_path
    e.book = ledger.Ledger(str(tmp_path), lambda: boot["id"])
    return e


def arm(env, enforcing=True, expiry_in=-0.1):
    with env.book.update() as data:
        data.update(enforcing=enforcing, expiry=env.clock.now + expiry_in)


@pytest.mark.parametrize("observer, enforcing, expiry_in, fenced", [
    (Observer("primary"), True, -0.01, True),
    (Observer("primary"), True, 0.0, True),  # now == expiry: over
    (Observer("primary"), True, 0.5, False),
    (Observer("primary"), False, -10, False),  # not armed: a lone primary keeps writing
    (Observer("standby"), True, -10, False),
    (Observer("stopped", standby_signal=False), True, -1, True),  # would start writable
    (Observer("stopped", standby_signal=True), True, -1, False),
    (Observer("unknown", standby_signal=False), True, -1, True),  # hung or starting primary
    (Observer("unknown", standby_signal=True), True, -1, False),
])
def test_fence_decision_table(env, observer, enforcing, expiry_in, fenced):
    arm(env, enforcing, expiry_in)
    env.make(observer).tick()
    assert bool(env.fences) is fenced


def test_no_ledger_means_not_enforcing(env):
    env.make(Observer("primary")).tick()
    assert env.fences == []


def test_fences_once_then_again_only_if_still_writable_after_the_retry_delay(env):
    arm(env)
    observer = Observer("primary")
    wd = env.make(observer)
    wd.tick()
    env.clock.now += FENCE_RETRY / 2
    wd.tick()
    assert len(env.fences) == 1
    env.clock.now += FENCE_RETRY
    wd.tick()  # the stop failed: still a primary
    assert len(env.fences) == 2
    observer.facts.update(role="stopped", standby_signal=True)
    wd.tick()
    observer.facts.update(role="primary")  # someone started it again as a primary
    wd.tick()
    assert len(env.fences) == 3


def test_restart_keeps_the_old_expiry_and_fences_at_once(env):
    first = env.make(Observer("primary"))
    first.handle("renew", "master", {"enforce": True}, env.clock.now)
    expiry = env.book.read()["expiry"]
    assert expiry == env.clock.now + LEASE
    env.clock.now += LEASE - 0.5
    first.tick()
    assert env.fences == []
    # The watchdog is killed and restarted after its lease ran out: no fresh grace.
    env.clock.now += 1.0
    restarted = env.make(Observer("primary"))
    restarted.tick()
    assert env.book.read()["expiry"] == expiry
    assert len(env.fences) == 1


def test_another_boot_voids_the_ledger(env):
    arm(env)
    env.boot["id"] = "boot-b"
    status = env.make(Observer("primary")).tick()
    assert env.fences == [] and status["enforcing"] is False and status["lease_left"] is None


def test_standby_streaming_from_the_peer_renews_it_every_third_of_the_lease(env):
    peer = Peer()
    wd = env.make(streaming(), peer)
    status = wd.tick()
    assert peer.sent == [(PEER, 7390, "renew", "mn1", {})]
    assert env.book.read()["peer_renew_sent"] == env.clock.now
    assert status["peer_renewing"] is True and status["last_peer_renew_age"] == 0.0
    env.clock.now += LEASE / 3 - 0.01
    wd.tick()
    assert len(peer.sent) == 1
    env.clock.now += 0.02
    wd.tick()
    assert len(peer.sent) == 2


@pytest.mark.parametrize("observer", [
    streaming(sender="198.51.100.99"),  # streaming, but from someone else
    Observer("standby", receiver_status="waiting", sender_host=PEER),
    Observer("primary"),
    Observer("stopped"),
])
def test_no_renewal_unless_streaming_from_the_peer(env, observer):
    peer = Peer()
    env.make(observer, peer).tick()
    assert peer.sent == [] and env.book.read()["peer_renew_sent"] is None


def test_held_peer_is_not_renewed(env):
    peer = Peer()
    assert ledger.hold_peer(str(env.dir), clock=env.clock, read_boot_id=lambda: "boot-a") is None
    status = env.make(streaming(), peer).tick()
    assert peer.sent == [] and status["hold_peer"] is True and status["peer_renewing"] is False


def test_hold_taken_during_an_exchange_stops_the_request_before_it_is_sent(env):
    ages = []
    peer = Peer(before_challenge=lambda: ages.append(
        ledger.hold_peer(str(env.dir), clock=env.clock, read_boot_id=lambda: "boot-a")))
    status = env.make(streaming(), peer).tick()
    assert ages == [None] and peer.sent == [] and env.book.read()["peer_renew_sent"] is None
    assert status["peer_renewing"] is False


def test_failed_renewal_is_reported(env):
    status = env.make(streaming(), Peer(fail="lease watchdog at x: no answer within 0.5s")).tick()
    assert status["peer_renewing"] is False and status["peer_error"].endswith("no answer within 0.5s")


def test_renew_extends_never_shortens_and_only_the_master_arms(env):
    wd = env.make(Observer("primary"))
    wd.handle("renew", "mn2", {}, 1000.0)
    data = env.book.read()
    assert data["expiry"] == 1003.0 and data["enforcing"] is False and data["renewals"] == {"mn2": 1000.0}
    wd.handle("renew", "master", {"enforce": True}, 1001.0)
    wd.handle("renew", "mn2", {}, 999.0)  # an older challenge: no shortening
    data = env.book.read()
    assert data["expiry"] == 1004.0 and data["enforcing"] is True
    wd.handle("renew", "master", {"enforce": False}, 1002.0)
    assert env.book.read()["enforcing"] is False


def test_status_file_is_written_each_tick(env):
    arm(env, True, 2.0)
    wd = env.make(Observer("primary"))
    wd.handle("renew", "master", {"enforce": True}, env.clock.now - 0.5)
    env.clock.now += 0.25
    wd.tick()
    written = json.loads((env.dir / "lease-status.json").read_text())
    assert written["role"] == "primary" and written["enforcing"] is True and written["lease_left"] == 2.25
    assert written["renewals"] == {"master": 0.75} and written["fenced"] is False
    assert set(written) >= {"pg_up", "hold_peer", "peer_renewing", "last_peer_renew_age", "pid", "updated"}


# ---- refusals through the real server code path: nothing changes ---------------------------------
def serve_raw(wd, make_request):
    """Run protocol.serve for ``wd`` on one side of a socketpair; return the answer."""
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=protocol.serve, args=(theirs, wd.key, wd.me, wd.senders(), wd.handle, wd.clock))
    thread.start()
    reader = ours.makefile("rb")
    hello = json.loads(reader.readline())
    ours.sendall(protocol.canonical(make_request(hello)) + b"\n")
    answer = json.loads(reader.readline())
    thread.join(2)
    ours.close()
    theirs.close()
    return answer


@pytest.mark.parametrize("request_for", [
    lambda key, h: protocol.signed("wrong" * 8, {"op": "renew", "from": "master", "nonce": h["nonce"],
                                                  "args": {"enforce": True}}),
    lambda key, h: protocol.signed(key, {"op": "renew", "from": "master", "nonce": "f" * 32,
                                         "args": {"enforce": True}}),
    lambda key, h: protocol.signed(key, {"op": "fence", "from": "mn2", "nonce": h["nonce"], "args": {}}),
    lambda key, h: protocol.signed(key, {"op": "renew", "from": "mn1", "nonce": h["nonce"], "args": {}}),
], ids=["bad-mac", "foreign-nonce", "fence-from-a-node", "self-renewal"])
def test_refused_requests_change_nothing(env, request_for):
    arm(env, True, 0.5)
    before = env.book.read()
    wd = env.make(Observer("primary"))
    answer = serve_raw(wd, lambda hello: request_for(wd.key, hello))
    assert answer["ok"] is False and protocol.verified(wd.key, answer)
    assert env.book.read() == before and env.fences == []


def test_fence_from_the_master_fences_and_answers(env):
    wd = env.make(Observer("standby"))
    answer = serve_raw(wd, lambda h: protocol.signed(wd.key, {"op": "fence", "from": "master",
                                                              "nonce": h["nonce"], "args": {}}))
    assert answer["ok"] is True and env.fences == ["fence requested by the master"]


def test_the_master_may_ask_a_fence_that_keeps_the_vip_for_the_takeover(env):
    wd = env.make(Observer("standby"))
    answer = serve_raw(wd, lambda h: protocol.signed(wd.key, {"op": "fence", "from": "master",
                                                              "nonce": h["nonce"], "args": {"keep_vip": True}}))
    assert answer["ok"] is True and env.fences == [("fence requested by the master", "keep_vip")]


class FakeRelease:
    dropped = []

    def __init__(self, cfg, netns=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def mac(self):
        return "0a:1b:2c:3d:4e:5f"

    def drop(self):
        self.dropped.append(True)
        return True


def test_the_peer_gets_the_vip_released_only_from_a_fenced_node(env, monkeypatch):
    monkeypatch.setattr(watchdog_module.handover, "Release", FakeRelease)
    FakeRelease.dropped = []
    wd = env.make(Observer("primary"))

    def release(hello):
        return protocol.signed(wd.key, {"op": "release-vip", "from": "mn2", "nonce": hello["nonce"], "args": {}})

    refused = serve_raw(wd, release)
    assert refused["ok"] is False and "not fenced" in refused["error"] and FakeRelease.dropped == []
    with env.book.update() as data:
        data.update(fenced=True, fenced_at=env.clock(), fence_reason="fence requested by the master")
    answer = serve_raw(wd, release)
    assert answer["ok"] is True and FakeRelease.dropped == [True]
    assert answer["status"]["vip_released"] is True and answer["status"]["mac"] == "0a:1b:2c:3d:4e:5f"
