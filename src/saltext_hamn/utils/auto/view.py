"""The master's memory for automatic failover: ``<cachedir>/hamn/auto.json``.

Heartbeats, the master's lease renewals, restarts tried, the pause flag, the
cooldown and the last decision. Runner calls run in parallel (the reactor's
thread pool), so every change is a read-modify-write under ``flock``.

Durations use ``CLOCK_MONOTONIC`` (shared by all processes of the host) with the
boot id beside it; after a reboot of the master host they are void, and a void
renewal time is unknown, and an unknown renewal never proves a lease expired.
"""

import contextlib
import fcntl
import json
import os
import time

FILE = "auto.json"


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def now():
    return time.monotonic()


def _path(directory):
    return os.path.join(directory, FILE)


def _empty():
    return {"boot": boot_id(), "heartbeats": {}, "renewals": {}, "restarts": {}, "paused": None, "loss_free": {},
            "cooldown_until": 0.0, "decision": None, "rejoin_failed": None, "failovers": []}


def _valid(data):
    if not isinstance(data, dict):
        return _empty()
    if data.get("boot") != boot_id():
        # Monotonic times from another boot mean nothing; keep the admin's pause.
        fresh = _empty()
        fresh["paused"] = data.get("paused")
        fresh["failovers"] = data.get("failovers") or []
        return fresh
    for key, value in _empty().items():
        data.setdefault(key, value)
    return data


def load(directory):
    try:
        with open(_path(directory), encoding="utf-8") as handle:
            return _valid(json.load(handle))
    except (OSError, ValueError):
        return _empty()


@contextlib.contextmanager
def changing(directory):
    """Yield the view for changes; written back atomically on exit, under an exclusive lock."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(os.path.join(directory, FILE + ".lock"), "a", encoding="utf-8") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        data = load(directory)
        yield data
        tmp = f"{_path(directory)}.{os.getpid()}.{id(data)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, _path(directory))


def note_heartbeat(directory, node, payload):
    with changing(directory) as data:
        data["heartbeats"][node] = {"payload": payload, "at": time.time(), "mono": now()}


def note_renewal_attempt(directory, node):
    """Written *before* the renewal is sent: the master's bound on the lease never lags."""
    with changing(directory) as data:
        entry = data["renewals"].setdefault(node, {})
        entry["sent"] = now()


def note_renewal_result(directory, node, status, error=None):
    with changing(directory) as data:
        entry = data["renewals"].setdefault(node, {})
        entry.update(at=time.time(), status=status, error=error)
        if status is not None:
            entry["enforcing"] = bool(status.get("enforcing"))
            sync = status.get("sync") if isinstance(status.get("sync"), dict) else None
            if sync is not None:
                # "Not loss-free" is written here, before the master's next renewal may
                # consent to letting writes through without the standby.
                if sync.get("wants_async") or sync.get("loss_free") is False:
                    data["loss_free"][node] = {"value": False, "at": time.time(),
                                               "wants_async": bool(sync.get("wants_async"))}
                elif sync.get("loss_free"):
                    data["loss_free"][node] = {"value": True, "at": time.time(), "wants_async": False}


def consents_to_async(data, node):
    """The master lets ``node`` (a primary in sync mode) write without its standby only
    once it has recorded the pair as not loss-free."""
    entry = data["loss_free"].get(node) or {}
    return entry.get("value") is False and bool(entry.get("wants_async"))


def loss_free(data, node):
    """What the master last recorded about ``node`` as primary: True, False, None (never told)."""
    return (data["loss_free"].get(node) or {}).get("value")


def heartbeat_age(data, node):
    entry = data["heartbeats"].get(node)
    return None if not entry else max(0.0, now() - entry["mono"])


def renewal_age(data, node):
    """Seconds since the master last tried to renew ``node`` (None: never in this boot, and
    then the lease is never counted as expired by the master's clock)."""
    sent = (data["renewals"].get(node) or {}).get("sent")
    return None if sent is None else max(0.0, now() - sent)
