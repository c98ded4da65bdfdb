"""Make this node a streaming standby of its peer: config, base backup, checks."""

import time

from saltext_hamn.utils import config
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import bootstrap, connection, divergence, postmaster, replication, status


def peer_endpoint(cfg, me):
    """(host, port, user) of the peer's PostgreSQL as seen from ``me``."""
    peer = config.peer_of(cfg, me)
    pg = cfg["postgres"]
    return cfg["nodes"][peer]["address"], pg["port"], pg["replication"]["user"]


def peer_facts(cluster, host, port, user, password=None):
    """Role, timeline and system id of the peer, over a plain connection as the replication role."""
    conn = connection.connect_peer(host, port, user, None if password else cluster.pgpass, password=password)
    try:
        in_recovery, control_tli, walfile, current, system_id, version_num = connection.query(
            conn,
            "SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint()),"
            " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END,"
            " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,"
            " (SELECT system_identifier FROM pg_control_system())::text,"
            " current_setting('server_version_num')::int",
        )[0]
    finally:
        conn.close()
    # The WAL file name carries the timeline the primary writes on now; pg_control's
    # copy only catches up at the next checkpoint.
    tli = int(walfile[:8], 16) if walfile else control_tli
    return {"in_recovery": in_recovery, "timeline": tli, "control_timeline": control_tli, "lsn": current,
            "system_id": system_id, "major": version_num // 10000}


def prepare_access(cluster, cfg):
    pg = cfg["postgres"]
    replication.write_pgpass(cluster, "*", pg["port"], pg["replication"]["user"], pg["replication"]["password"])


def configure_and_start(cluster, cfg, me, major, timeout=60):
    """This node's own server files + standby config pointing at the peer; start; wait."""
    host, port, user = peer_endpoint(cfg, me)
    bootstrap.write_server_files(cluster, cfg, major)
    replication.write_standby_config(
        cluster, major, primary_host=host, primary_port=port, user=user,
        slot=config.slot_name(cfg, me), application_name=me,
    )
    postmaster.start(cluster)
    return replication.wait_streaming(cluster, timeout=timeout)


def require_peer_primary(cluster, cfg, me, major=None):
    """The peer's facts, when it is a primary this node can follow (of ``major``, when given).

    Checked before anything is stopped or moved aside: pg_basebackup and pg_rewind
    refuse another major only after the data dir was already set aside.
    """
    host, port, user = peer_endpoint(cfg, me)
    facts = peer_facts(cluster, host, port, user)
    if facts["in_recovery"]:
        raise HamnError(f"the peer {config.peer_of(cfg, me)} ({host}) is not a primary; nothing to follow")
    if major is not None and facts["major"] != major:
        raise HamnError(f"the peer {config.peer_of(cfg, me)} ({host}) runs PostgreSQL {facts['major']}, this node "
                        f"PostgreSQL {major} (hamn:postgres:version/bindir): a standby must run its primary's "
                        "major; nothing was changed here")
    return facts


def rebuild(cluster, cfg, me, major, *, force=False, timeout=3600, divergence_report=None):
    """pg_basebackup from the peer; the old data dir is moved aside, never deleted.

    What the old data holds beyond the fork from the primary is reported (and a
    report.json kept next to it): ``divergence_report`` when the caller made one
    before touching the data (rewind's fallback), else assessed here.
    """
    started = time.monotonic()
    info = status.collect(cluster)
    if info["role"] == "primary" and not force:
        raise HamnError(
            "this node runs as a primary; refusing to replace its data with a base backup. "
            "Fence it first, or re-run with force=True (its data dir is moved aside, not deleted)."
        )
    prepare_access(cluster, cfg)
    peer = require_peer_primary(cluster, cfg, me, major)
    host, port, user = peer_endpoint(cfg, me)
    if info["running"]:
        postmaster.stop(cluster, mode="fast")
    report = divergence_report or divergence.assess_or_unknown(cluster, peer, host=host, port=port, user=user)
    replication.ensure_peer_slot(host, port, user, cluster.pgpass, config.slot_name(cfg, me))
    moved = replication.basebackup(
        cluster, host=host, port=port, user=user, slot=config.slot_name(cfg, me), timeout=timeout
    )
    divergence.keep(cluster, report, copy_wal=False, moved_to=moved)
    row = configure_and_start(cluster, cfg, me, major)
    result = {"changed": True, "method": "pg_basebackup", "moved_aside": moved, "streaming": row,
              "divergence": report, "seconds": round(time.monotonic() - started, 3)}
    line = divergence.summary(report)
    if line:
        result["comment"] = line
    return result

