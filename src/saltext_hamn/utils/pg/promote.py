"""Promote the local standby: lag guard, pg_promote, checkpoint, new timeline."""

import time

from saltext_hamn.utils import config, fileops
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import sync as lease_sync
from saltext_hamn.utils.pg import conf, connection, lsn, postmaster, replication, status


def measure_lag(info, primary_lsn=None):
    """(lag_bytes, lag_seconds) a promotion would accept.

    With ``primary_lsn`` (the primary's last known position, e.g. from the master's
    last status) the bytes are WAL the primary had that this node never received,
    i.e. what a promotion would lose. Without it the node can only judge what it
    holds: received-but-unreplayed WAL, and how long ago the primary last spoke
    (None when no WAL receiver is running: unknown, reported, not refused).
    """
    receiver = info.get("wal_receiver") or {}
    if primary_lsn is not None:
        # After a restart the receive position restarts at a segment boundary, below
        # what was already replayed; the node holds the larger of the two.
        held = [lsn.parse(v) for v in (info.get("received_lsn"), info.get("replayed_lsn")) if v]
        lag_bytes = lsn.lag(primary_lsn, max(held, default=0))
        seconds = 0.0 if lag_bytes == 0 else receiver.get("last_msg_seconds", info.get("lag_seconds"))
        return lag_bytes, seconds
    return info.get("lag_bytes") or 0, receiver.get("last_msg_seconds")


def check_lag(cfg, info, primary_lsn=None, force=False):
    lag_bytes, lag_seconds = measure_lag(info, primary_lsn)
    limit = cfg["lag_limit"]
    too_far = []
    if lag_bytes > limit["bytes"]:
        too_far.append(f"{lag_bytes} bytes behind (limit {limit['bytes']})")
    if lag_seconds is not None and lag_seconds > limit["seconds"]:
        too_far.append(f"{lag_seconds:.1f}s since the primary last sent WAL (limit {limit['seconds']:g}s)")
    if too_far and not force:
        raise HamnError(
            "refusing to promote: this standby is " + " and ".join(too_far)
            + "; promoting could lose committed transactions. Re-run with force=True to accept that."
        )
    return {"lag_bytes": lag_bytes, "lag_seconds": lag_seconds, "forced": bool(too_far and force)}


def set_standby_names(cluster, names, wait=2.0):
    """ALTER SYSTEM synchronous_standby_names (when different) and reload; wait until a new
    session sees it. Returns the value before. Works on a standby too (it writes no WAL)."""
    with connection.session(cluster) as conn:
        before = connection.scalar(conn, "SELECT current_setting('synchronous_standby_names')")
        if before == names:
            return before
        connection.query(conn, "ALTER SYSTEM SET synchronous_standby_names = %s", (names,))
        connection.query(conn, "SELECT pg_reload_conf()")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with connection.session(cluster) as conn:
            if connection.scalar(conn, "SELECT current_setting('synchronous_standby_names')") == names:
                break
        time.sleep(0.02)
    return before


def promote(cluster, cfg, me, *, force=False, primary_lsn=None, timeout=60, checkpoint=True):
    """pg_promote after the lag guard; ``checkpoint=False`` leaves the checkpoint that
    records the new timeline in pg_control to :func:`checkpoint` (a switchover runs it
    after the VIP moved: it can take seconds and nothing before then needs it)."""
    started = time.monotonic()
    info = status.collect(cluster)
    if info["role"] == "primary":
        return {"changed": False, "comment": "already primary", "timeline": info["timeline"],
                "lsn": info["current_lsn"]}
    if not info["running"]:
        raise HamnError("PostgreSQL is not running here; start it (hamn.start_db) before promoting")
    lag = check_lag(cfg, info, primary_lsn, force)
    peer_slot = config.slot_name(cfg, config.peer_of(cfg, me))
    # Name the old primary as the synchronous standby before this node can acknowledge
    # anything (sync modes), or run without one (async); the watchdog keeps it so after.
    mode = cfg["postgres"]["replication"]["mode"]
    set_standby_names(cluster, lease_sync.standby_names(mode, config.peer_of(cfg, me)))
    with connection.session(cluster) as conn:
        old_tli = connection.scalar(conn, "SELECT timeline_id FROM pg_control_checkpoint()")
        if not connection.scalar(conn, "SELECT pg_promote(true, %s)", (int(timeout),)):
            raise HamnError(f"pg_promote did not finish within {timeout}s")
        new_tli = _checkpointed_timeline(conn, old_tli) if checkpoint else status.primary_timeline(conn)
        current = connection.scalar(conn, "SELECT pg_current_wal_lsn()::text")
        # Keep WAL for the old primary from now on, so it can rejoin as standby.
        replication.ensure_slot(conn, peer_slot)
    fileops.write_atomic(
        f"{cluster.conf_dir}/{conf.STANDBY_FILE}",
        conf.render_settings({}, header=f"primary since promotion at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"),
        owner=cluster.os_user, mode=0o600,
    )
    return {"changed": True, "timeline": new_tli, "previous_timeline": old_tli, "lsn": current,
            "peer_slot": peer_slot, "seconds": round(time.monotonic() - started, 3), **lag}


def _checkpointed_timeline(conn, old_tli):
    # pg_control keeps the old timeline until a checkpoint; pg_rewind against it
    # would wrongly conclude that no rewind is needed.
    connection.query(conn, "CHECKPOINT")
    new_tli = connection.scalar(conn, "SELECT timeline_id FROM pg_control_checkpoint()")
    if new_tli <= old_tli:
        raise HamnError(f"promotion finished but the timeline did not advance ({old_tli} -> {new_tli})")
    return new_tli


def checkpoint(cluster):
    """CHECKPOINT a fresh primary until pg_control shows the timeline it writes on.

    Returns ``{changed, timeline}``; ``changed`` False when pg_control had it already.
    """
    with connection.session(cluster) as conn:
        if connection.scalar(conn, "SELECT pg_is_in_recovery()"):
            raise HamnError("PostgreSQL runs here as a standby: nothing to checkpoint for a promotion")
        writing = status.primary_timeline(conn)
        control = connection.scalar(conn, "SELECT timeline_id FROM pg_control_checkpoint()")
        if control == writing:
            return {"changed": False, "timeline": writing}
        return {"changed": True, "timeline": _checkpointed_timeline(conn, control)}


CLEAN_STATES = ("shut down", "shut down in recovery")


def stop(cluster, mode="fast", timeout=60):
    """Stop; ``lsn`` is the shutdown checkpoint, None when pg_control shows no clean
    shutdown (e.g. "in production" after a crash): then the last checkpoint is not
    the end of the WAL and must not be waited for as a handover point."""
    was_running = postmaster.is_running(cluster)
    checkpoint = postmaster.stop(cluster, mode=mode, timeout=timeout)
    state = postmaster.controldata(cluster).get("Database cluster state")
    return {"changed": was_running, "was_running": was_running,
            "lsn": checkpoint if state in CLEAN_STATES else None, "state": state}


def wait_for_lsn(cluster, target, timeout=60, replayed=False):
    """Wait until this standby has received (or replayed) ``target``."""
    lsn.parse(target)
    key = "replayed_lsn" if replayed else "received_lsn"
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        info = status.collect(cluster)
        if info["role"] == "primary":
            raise HamnError("this node is a primary; wait_for_lsn is for a standby")
        have = held_lsn(info, replayed)
        if lsn.at_least(have, target):
            return {"reached": True, key: have, "target": target,
                    "seconds": round(time.monotonic() - started, 3)}
        if time.monotonic() >= deadline:
            raise HamnError(f"standby {key.split('_')[0]} {have} has not reached {target} after {timeout}s")
        time.sleep(0.01)


def held_lsn(info, replayed=False):
    """The WAL position this standby holds (received) or has applied (replayed).

    When the primary stops, the WAL receiver restarts and pg_last_wal_receive_lsn
    falls back to the start of its segment, below what was already replayed: what
    the node holds is the larger of the two.
    """
    if replayed:
        return info.get("replayed_lsn")
    held = [v for v in (info.get("received_lsn"), info.get("replayed_lsn")) if v]
    return max(held, key=lsn.parse, default=None)
