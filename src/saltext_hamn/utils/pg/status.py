"""What this node's PostgreSQL is doing right now: role, timeline, LSNs, lag, peers.

Cheap enough to call every second: one connection, a handful of catalog reads;
``pg_ctl status`` only when the server does not answer.
"""

import psycopg2

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import connection, lsn, postmaster

_COMMON = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp()),
       (SELECT timeline_id FROM pg_control_checkpoint()),
       current_setting('server_version')
"""
_RECEIVER = """
SELECT status, received_tli, sender_host, slot_name,
       extract(epoch FROM now() - last_msg_receipt_time)
FROM pg_stat_wal_receiver
"""
_SENDERS = """
SELECT application_name, client_addr::text, state, sync_state,
       replay_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),
       extract(epoch FROM replay_lag)
FROM pg_stat_replication ORDER BY application_name
"""
_SLOTS = "SELECT slot_name, active, restart_lsn::text FROM pg_replication_slots ORDER BY slot_name"


def primary_timeline(conn):
    # pg_control's timeline lags behind a fresh promotion until the next checkpoint;
    # the current WAL file name does not.
    name = connection.scalar(conn, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    return int(name[:8], 16)


def collect(cluster, timeout=2, statement_timeout_ms=None):
    """Role and replication facts of the local cluster (never raises for a stopped server).

    ``timeout`` (connect, seconds) and ``statement_timeout_ms`` bound the wait on a
    hung server: the heartbeat beacon runs on the minion's event loop and must not
    block it for long.
    """
    info = {
        "role": "unknown", "running": False, "in_recovery": None, "timeline": None,
        "current_lsn": None, "received_lsn": None, "replayed_lsn": None,
        "lag_bytes": None, "lag_seconds": None, "wal_receiver": None,
        "standbys": [], "slots": [], "version": None,
    }
    try:
        conn = connection.connect(cluster, timeout=timeout, statement_timeout_ms=statement_timeout_ms)
    except HamnError as exc:
        if not postmaster.has_data(cluster):
            info.update(role="stopped", error="no data directory")
        elif postmaster.is_running(cluster):
            info.update(running=True, error=str(exc))  # up but not answering: unknown
        else:
            info.update(role="stopped")
            info["timeline"] = postmaster.timeline(cluster)
        return info
    try:
        in_recovery, current, received, replayed, replay_age, cp_tli, version = connection.query(conn, _COMMON)[0]
        info.update(running=True, in_recovery=in_recovery, current_lsn=current, received_lsn=received,
                    replayed_lsn=replayed, version=version)
        info["slots"] = [{"name": n, "active": a, "restart_lsn": r} for n, a, r in connection.query(conn, _SLOTS)]
        if in_recovery:
            info["role"] = "standby"
            rows = connection.query(conn, _RECEIVER)
            if rows:
                status, tli, host, slot, msg_age = rows[0]
                info["wal_receiver"] = {"status": status, "sender_host": host, "slot": slot,
                                        "last_msg_seconds": _num(msg_age)}
                info["timeline"] = tli
            else:
                info["timeline"] = cp_tli
            # Received but not yet replayed WAL; promotion replays it, so it is delay, not loss.
            info["lag_bytes"] = lsn.lag(received, replayed)
            info["lag_seconds"] = 0.0 if info["lag_bytes"] == 0 else _num(replay_age)
        else:
            # A promoted primary keeps its last receive/replay positions: not meaningful.
            info.update(role="primary", received_lsn=None, replayed_lsn=None)
            info["timeline"] = primary_timeline(conn)
            info["standbys"] = [
                {"name": n, "address": addr, "state": st, "sync_state": sync, "replay_lsn": rl,
                 "lag_bytes": int(lag_b) if lag_b is not None else None, "lag_seconds": _num(lag_s)}
                for n, addr, st, sync, rl, lag_b, lag_s in connection.query(conn, _SENDERS)
            ]
            lags = [s["lag_bytes"] for s in info["standbys"] if s["lag_bytes"] is not None]
            info["lag_bytes"] = max(lags) if lags else None
            secs = [s["lag_seconds"] or 0.0 for s in info["standbys"]]
            info["lag_seconds"] = max(secs) if secs else None
    except psycopg2.Error as exc:
        info["error"] = str(exc).strip()
    finally:
        conn.close()
    return info


def _num(value):
    return None if value is None else round(float(value), 3)
