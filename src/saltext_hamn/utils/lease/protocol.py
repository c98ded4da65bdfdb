"""The lease wire protocol: one JSON line each way, authenticated with HMAC-SHA256.

::

    watchdog -> {"v": 1, "node": "mn1", "nonce": "<32 hex>"}
    client   -> {"op": ..., "from": ..., "nonce": ..., "args": {...}, "mac": ...}
    watchdog -> {"ok": true, "nonce": ..., "status": {...}, "mac": ...}
             or {"ok": false, "nonce": ..., "error": "...", "mac": ...}

``mac`` is HMAC-SHA256 with ``heartbeat:lease_key`` over the canonical JSON of the
object without ``mac``.  The nonce is fresh per connection, so a request cannot be
replayed on another connection and an answer cannot be passed off for another
request.  The key is never logged, returned or put into an error message.
"""

import hashlib
import hmac
import json
import re
import secrets
import socket
import time

from saltext_hamn.utils.errors import HamnError

VERSION = 1
OPS = ("renew", "status", "fence", "release-vip")
MASTER = "master"
MAX_LINE = 4096  # a request or answer is a few hundred bytes; refuse anything larger
_NONCE_RE = re.compile(r"[0-9a-f]{32}")


# --------------------------------------------------------------------------- signing
def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def mac_of(key, obj):
    body = {k: v for k, v in obj.items() if k != "mac"}
    return hmac.new(key.encode("utf-8"), canonical(body), hashlib.sha256).hexdigest()


def signed(key, obj):
    return {**obj, "mac": mac_of(key, obj)}


def verified(key, obj):
    mac = obj.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, mac_of(key, obj))


def new_nonce():
    return secrets.token_hex(16)


# --------------------------------------------------------------------------- framing
class Line:
    """One JSON object per line on a socket, every read bounded by a deadline."""

    def __init__(self, sock, deadline):
        self.sock, self.deadline, self.buffer = sock, deadline, b""

    def _remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        return left

    def send(self, obj):
        self.sock.settimeout(self._remaining())
        self.sock.sendall(canonical(obj) + b"\n")

    def receive(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise ValueError(f"line longer than {MAX_LINE} bytes")
            self.sock.settimeout(self._remaining())
            chunk = self.sock.recv(MAX_LINE + 1)
            if not chunk:
                raise ConnectionError("connection closed before a full line")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        if len(line) > MAX_LINE:
            raise ValueError(f"line longer than {MAX_LINE} bytes")
        obj = json.loads(line.decode("utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj


# --------------------------------------------------------------------------- client
def exchange(host, port, key, op, sender, args=None, timeout=0.5, on_challenge=None):
    """One authenticated exchange with the watchdog at ``host:port``; its ``status`` dict.

    ``on_challenge(challenge)`` runs after the nonce arrived and before the request
    is sent: a renewer notes its time ``t_r`` there, which is then later than the
    holder's ``t_c``.  If it raises, nothing is sent.  ``timeout`` bounds the whole
    exchange.  Raises HamnError (one line) on timeout, refusal or a bad answer.
    """
    where = f"lease watchdog at {host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            line = Line(sock, deadline)
            challenge = line.receive()
            nonce = challenge.get("nonce")
            if challenge.get("v") != VERSION or not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
                raise HamnError(f"{where}: unexpected challenge")
            if on_challenge is not None:
                on_challenge(challenge)
            line.send(signed(key, {"op": op, "from": sender, "nonce": nonce, "args": args or {}}))
            answer = line.receive()
    except HamnError:
        raise
    except (socket.timeout, TimeoutError) as exc:
        raise HamnError(f"{where}: no answer within {timeout:g}s") from exc
    except (OSError, ValueError) as exc:  # refused, reset, bad JSON, oversized line
        raise HamnError(f"{where}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from exc
    if not verified(key, answer) or answer.get("nonce") != nonce:
        raise HamnError(f"{where}: answer not authentic (bad MAC or nonce; check heartbeat:lease_key)")
    if answer.get("ok") is not True:
        raise HamnError(f"{where} refused {op}: {answer.get('error') or 'no reason given'}")
    status = answer.get("status")
    if not isinstance(status, dict):
        raise HamnError(f"{where}: answer without status")
    return status


# --------------------------------------------------------------------------- server side
class Refused(Exception):
    """A request the watchdog answers with ok:false and without any state change."""


def challenge(node):
    return {"v": VERSION, "node": node, "nonce": new_nonce()}


def check_request(key, request, nonce, senders):
    """``(op, sender, args)`` of an authentic request; raises Refused otherwise.

    ``senders`` are who may speak: "master" and the peer's node id.
    """
    if not verified(key, request):
        raise Refused("bad MAC")
    got = request.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise Refused("nonce is not the one of this connection (replayed?)")
    op, sender, args = request.get("op"), request.get("from"), request.get("args", {})
    if op not in OPS:
        raise Refused(f"unknown op {str(op)[:40]!r}")
    if sender not in senders:
        raise Refused(f"unknown sender {str(sender)[:40]!r}")
    if not isinstance(args, dict):
        raise Refused("args must be an object")
    if op == "fence" and sender != MASTER:
        raise Refused("fence is accepted from the master only")
    if op == "fence" and not isinstance(args.get("keep_vip", False), bool):
        raise Refused("args.keep_vip must be true or false")
    if op == "release-vip" and sender == MASTER:
        raise Refused("release-vip is accepted from the peer only (the node taking the VIP over)")
    if op == "renew":
        if sender == MASTER and not isinstance(args.get("enforce"), bool):
            raise Refused("a renew from the master needs args.enforce true or false")
        if sender != MASTER and "enforce" in args:
            raise Refused("only the master sets enforce")
        if sender != MASTER and "allow_async" in args:
            raise Refused("only the master allows async")
        if "allow_async" in args and not isinstance(args["allow_async"], bool):
            raise Refused("args.allow_async must be true or false")
    return op, sender, args


def answer(key, nonce, status=None, error=None):
    if error is not None:
        return signed(key, {"ok": False, "nonce": nonce, "error": error})
    return signed(key, {"ok": True, "nonce": nonce, "status": status})


def serve(sock, key, node, senders, handle, clock, timeout=1.0):
    """Answer one connection: challenge, check, ``handle(op, sender, args, t_c)``, answer.

    ``t_c`` is taken *before* the nonce goes out: the holder counts its lease from
    a moment earlier than anything the renewer can note.  Returns ``(op, sender,
    error)`` for the caller's log (error None when answered ok).
    """
    t_c = clock()
    line = Line(sock, time.monotonic() + timeout)
    hello = challenge(node)
    op = sender = None
    try:
        line.send(hello)
        request = line.receive()
    except (OSError, ValueError) as exc:
        return op, sender, f"no request: {exc}"
    op, sender = str(request.get("op"))[:40], str(request.get("from"))[:40]  # for the log, even when refused
    try:
        op, sender, args = check_request(key, request, hello["nonce"], senders)
        reply = answer(key, hello["nonce"], status=handle(op, sender, args, t_c))
        error = None
    except Refused as exc:
        error = str(exc)
        reply = answer(key, hello["nonce"], error=error)
    except Exception as exc:  # pylint: disable=broad-except  # the daemon must keep serving
        error = f"internal error: {type(exc).__name__}: {exc}"
        reply = answer(key, hello["nonce"], error=error)
    try:
        line.deadline = time.monotonic() + timeout  # a fence may take longer than the request did
        line.send(reply)
    except OSError:
        pass  # the client gave up; what was done stays done
    return op, sender, error
