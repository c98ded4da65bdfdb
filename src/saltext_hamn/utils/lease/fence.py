"""The self-fence: after it, this node neither holds the VIP nor can write, now or after any start.

(One exception, asked by the master for a takeover it is about to start: the VIP
stays, with nothing behind it, until the standby asks for it: ``keep_vip``.)

Order (docs/auto-failover.md): VIP down, ``standby.signal`` + standby settings, then
``pg_ctl stop -m immediate``, then the ledger.  Every step is attempted even when an
earlier one failed: each one alone already takes something away.  An immediate stop
is safe here: the server is about to lose its role, crash recovery replays the WAL.
"""

import logging
import os
import signal
import time

from saltext_hamn.utils import fileops, proc
from saltext_hamn.utils.lease import ledger as lease_ledger
from saltext_hamn.utils.net import vip
from saltext_hamn.utils.pg import demote, postmaster

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5  # seconds pg_ctl waits for the postmaster to exit after SIGQUIT


def _step(steps, name, action):
    started = time.monotonic()
    try:
        detail = action()
        steps[name] = {"ok": True, "detail": detail}
    except Exception as exc:  # pylint: disable=broad-except  # the next steps must still run
        steps[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    steps[name]["ms"] = round((time.monotonic() - started) * 1000, 1)


def _standby_config(cluster, cfg, me):
    major = cfg["postgres"]["version"]
    # The signal before anything else (even before the password file that
    # write_standby_config starts with): on its own it makes any start read-only.
    fileops.write_atomic(demote.signal_path(cluster, major), "", owner=cluster.os_user, mode=0o600)
    demote.write_standby_config(cluster, cfg, me, major)
    return demote.signal_path(cluster, major)


def _cluster_processes(cluster):
    """Live processes working in this data directory: every PostgreSQL process chdirs there."""
    target = os.path.realpath(cluster.data_dir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") == target and proc.alive(int(entry)):
                found.append(int(entry))
        except OSError:
            continue
    return found


def _stop_immediate(cluster):
    pid = postmaster.lock_pid(cluster)
    if pid is not None and not proc.alive(pid):
        # A killed postmaster (a zombie until reaped: pg_ctl would wait for it in vain).
        # Its children notice its death at their next wait; don't leave them the chance.
        leftovers = _cluster_processes(cluster)
        for child in leftovers:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return f"postmaster {pid} was already dead; {len(leftovers)} leftover process(es) killed"
    result = cluster.run("pg_ctl", "stop", "-D", cluster.data_dir, "-m", "immediate", "-w",
                         "-t", str(STOP_TIMEOUT), check=False, timeout=STOP_TIMEOUT + 2)
    if result.returncode == 0:
        return "stopped"
    if not os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
        return "was not running"
    raise RuntimeError((result.stderr or result.stdout or "pg_ctl stop failed").strip().splitlines()[-1])


def self_fence(cfg, me, cluster, reason, netns=None, clock=lease_ledger.now, keep_vip=False):
    """Fence this node; returns ``{fenced, reason, steps: {vip, standby_config, stop, ledger}, ms}``.

    ``fenced`` is True when PostgreSQL is down with the standby signal in place.
    ``keep_vip`` (only when the master asks, with the standby about to take over):
    the VIP stays until the standby asks for it (``release-vip``), so that clients
    meanwhile get "connection refused" at once instead of losing their connection
    attempts to an address nobody holds (a lost SYN costs a client 1 s).
    """
    started = time.monotonic()
    steps = {}
    if keep_vip:
        steps["vip"] = {"ok": True, "detail": "kept until the standby takes it over", "ms": 0.0}
    else:
        _step(steps, "vip", lambda: vip.down(cfg, netns=netns)["changed"] and "removed" or "not held")
    _step(steps, "standby_config", lambda: _standby_config(cluster, cfg, me))
    _step(steps, "stop", lambda: _stop_immediate(cluster))

    def note():
        with lease_ledger.Ledger(cfg["heartbeat"]["state_dir"]).update() as data:
            data.update(fenced=True, fenced_at=clock(), fence_reason=reason)

    _step(steps, "ledger", note)
    fenced = steps["standby_config"]["ok"] and steps["stop"]["ok"]
    return {"fenced": fenced, "reason": reason, "steps": steps,
            "ms": round((time.monotonic() - started) * 1000, 1)}
