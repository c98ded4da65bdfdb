"""The desired replication state of one node, as ``hamn.replica_configured`` enforces it.

The role comes from runtime facts (is PostgreSQL here in recovery? is the peer a
primary? who holds the VIP?), never blindly from pillar: after a failover a run of
the state must not turn the new primary back into a standby. The pillar's
``initial_primary`` only decides a first setup, when neither node has data.

``converge(..., dry_run=True)`` lists what would change and touches nothing; the
same walk with ``dry_run=False`` applies it. The state runs it dry once more after
applying: anything still listed is drift, and the state fails.
"""

import os
import time

from saltext_hamn.utils import config
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import arp
from saltext_hamn.utils.pg import bootstrap, conf, connection, postmaster, replication, rewind, standby, status
from saltext_hamn.utils.pg import peer as pg_peer


def _peer(cluster, cfg, me):
    host, port, user = standby.peer_endpoint(cfg, me)
    try:
        return standby.peer_facts(cluster, host, port, user, password=cfg["postgres"]["replication"]["password"])
    except HamnError:
        return None


def discover_role(cluster, cfg, me):
    """(role, reason): 'primary' or 'standby' for this node, from what runs where."""
    local = status.collect(cluster)
    peer_id = config.peer_of(cfg, me)
    if local["role"] == "primary":
        # Not in recovery is not enough: an old primary started by hand after a
        # failover is not in recovery either. Ask the peer (unreachable: as before).
        clash = pg_peer.split_brain(cluster, cfg, me, local["timeline"])
        if clash:
            raise HamnError(clash)
        return "primary", "PostgreSQL runs here as primary"
    if local["role"] == "standby":
        return "standby", "PostgreSQL runs here in recovery"
    peer = _peer(cluster, cfg, me)
    has_data = postmaster.has_data(cluster)
    if peer and not peer["in_recovery"]:
        return "standby", f"the peer {peer_id} runs as primary"
    if peer and peer["in_recovery"]:
        if not has_data:
            raise HamnError(f"the peer {peer_id} is a standby and this node has no data: no primary to follow or start")
        return "primary", f"the peer {peer_id} runs as standby"
    if has_data:
        if os.path.exists(os.path.join(cluster.data_dir, "standby.signal")):
            return "standby", "stopped standby (standby.signal present)"
        raise HamnError(
            f"PostgreSQL is stopped here and the peer {peer_id} cannot be reached, so it is unknown whether "
            f"the peer was promoted meanwhile. Start it only if this node is the primary (hamn.start_db), "
            f"or rejoin it to the peer (hamn.rewind)."
        )
    if me != cfg["initial_primary"]:
        raise HamnError(
            f"no data here and the primary ({cfg['initial_primary']}) is not reachable yet: configure it first"
        )
    vip = cfg["vip"]
    answers = arp.probe(vip["address"], vip["interface"], vip["probe"]["timeout"], vip["probe"]["attempts"])
    if answers:
        raise HamnError(f"first setup refused: the VIP {vip['address']} answers from {answers[0][0]}, "
                        "so a primary already exists somewhere")
    return "primary", "first setup: neither node has data and the pillar's initial_primary is this node"


def _pgpass_file(cluster, cfg):
    pg = cfg["postgres"]
    return {cluster.pgpass: (conf.pgpass_line("*", pg["port"], pg["replication"]["user"],
                                              pg["replication"]["password"]), 0o600)}


def _standby_files(cluster, cfg, me, major):
    host, port, user = standby.peer_endpoint(cfg, me)
    files = conf.standby_files(cluster, major, primary_host=host, primary_port=port, user=user,
                               slot=config.slot_name(cfg, me), application_name=me)
    return {path: (text, 0o600) for path, text in files.items()}


def _settings(text):
    """``key = value`` lines of a hamn.conf text as a dict."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _restart_params(cluster, files):
    """Changed hamn.conf parameters that need a restart (context 'postmaster')."""
    path = os.path.join(cluster.conf_dir, conf.SETTINGS_FILE)
    old, new = _settings(bootstrap.current_text(path) or ""), _settings(files[path][0])
    changed = sorted(k for k in new if old.get(k) != new[k])
    if not changed:
        return []
    with connection.session(cluster) as conn:
        rows = connection.query(conn, "SELECT name FROM pg_settings WHERE context = 'postmaster' AND name = ANY(%s)",
                                (changed,))
    return sorted(r[0] for r in rows)


def _reload_or_restart(cluster):
    """Reload; restart when a changed parameter needs it. Returns what was done."""
    with connection.session(cluster) as conn:
        before = connection.scalar(conn, "SELECT pg_conf_load_time()")
        connection.query(conn, "SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while True:
        with connection.session(cluster) as conn:
            if connection.scalar(conn, "SELECT pg_conf_load_time()") != before or time.monotonic() > deadline:
                pending = sorted(r[0] for r in connection.query(conn, "SELECT name FROM pg_settings WHERE pending_restart"))
                break
        time.sleep(0.05)
    if pending:
        postmaster.restart(cluster)
        return f"restarted (needed for {', '.join(pending)})"
    return "reloaded"


def _files_step(cluster, files, changes, dry_run):
    diff = bootstrap.pending(files)
    if diff:
        changes["files"] = sorted(os.path.basename(p) for p in diff)
        if not dry_run:
            bootstrap.write({p: files[p] for p in diff}, cluster.os_user)
    return diff


def _server_step(cluster, files, diff, changes, dry_run):
    """Start the server, or reload/restart it for changed files."""
    if not postmaster.is_running(cluster):
        changes["server"] = "start"
        if not dry_run:
            postmaster.start(cluster)
        return False
    if diff:
        if dry_run:
            needs = _restart_params(cluster, files) if any(p.endswith(conf.SETTINGS_FILE) for p in diff) else []
            changes["server"] = f"restart (needed for {', '.join(needs)})" if needs else "reload"
        else:
            changes["server"] = _reload_or_restart(cluster)
    return True


def converge_primary(cluster, cfg, me, major, dry_run):
    changes = {}
    if not postmaster.has_data(cluster):
        changes["initdb"] = cluster.data_dir
        if dry_run:
            changes["then"] = "write server files, start, create the replication role and slot"
            return changes
        bootstrap.initdb(cluster, major, cfg["postgres"]["data_checksums"])
    files = {**bootstrap.desired_server_files(cluster, cfg, major), **_pgpass_file(cluster, cfg)}
    diff = _files_step(cluster, files, changes, dry_run)
    if not _server_step(cluster, files, diff, changes, dry_run) and dry_run:
        changes["then"] = "check the replication role, rewind grants and slot"
        return changes
    pg = cfg["postgres"]
    user, password = pg["replication"]["user"], pg["replication"]["password"]
    slot = config.slot_name(cfg, config.peer_of(cfg, me))
    with connection.session(cluster) as conn:
        state = replication.role_state(conn, user, password)
        if state != "ok":
            changes["replication_role"] = {"missing": f"create {user}", "password": f"set {user}'s password",
                                           "attributes": f"give {user} LOGIN REPLICATION"}[state]
            if not dry_run:
                replication.ensure_role(conn, user, password, replication=True)
        missing = replication.rewind_grants_missing(conn, user)
        if missing:
            changes["rewind_grants"] = f"grant {len(missing)} pg_rewind functions to {user}"
            if not dry_run:
                replication.grant_rewind(conn, user)
        if not replication.slot_exists(conn, slot):
            changes["slot"] = f"create {slot}"
            if not dry_run:
                replication.ensure_slot(conn, slot)
    return changes


def _rebuild_reason(cluster, peer):
    if not postmaster.has_data(cluster):
        return "this node has no data"
    local_id = postmaster.controldata(cluster).get("Database system identifier")
    if local_id != peer["system_id"]:
        return f"its data belongs to another system ({local_id}, the primary's is {peer['system_id']})"
    return None


def _blocked_by_maintenance(changes, reason, dry_run):
    """Maintenance stops the automatic rejoin (it would replace this node's data):
    a dry run lists it as blocked, a real run refuses."""
    method = "pg_rewind, base backup as fallback" if "pg_rewind" in reason else "base backup"
    blocked = (f"{reason}: would rejoin by {method}, but maintenance is on (hamn:maintenance): "
               "no automatic rebuild or rewind")
    if not dry_run:
        raise HamnError(f"{blocked}. Turn maintenance off, or run hamn.rewind / hamn.basebackup by hand.")
    changes["rebuild"] = blocked
    return changes


def converge_standby(cluster, cfg, me, major, dry_run, timeout=120):
    changes = {}
    peer_id = config.peer_of(cfg, me)
    peer = _peer(cluster, cfg, me)
    if not peer or peer["in_recovery"]:
        raise HamnError(f"the peer {peer_id} is not reachable as a primary: this standby has nothing to follow")
    auto = cfg["postgres"]["auto_rebuild"]
    reason = _rebuild_reason(cluster, peer)
    info = status.collect(cluster)
    signal = os.path.join(cluster.data_dir, "standby.signal")
    if not reason and info["role"] != "standby" and not os.path.exists(signal):
        reason = "it was a primary and must be rejoined (pg_rewind)"
    if reason:
        if not auto:
            raise HamnError(
                f"this node cannot follow {peer_id} as it is: {reason}. Run `salt {me} hamn.rewind fallback=True` "
                f"(or `hamn.basebackup`), or set hamn:postgres:auto_rebuild: true to let the state do it."
            )
        if cfg["maintenance"]:
            return _blocked_by_maintenance(changes, reason, dry_run)
        changes["rebuild"] = reason
        if dry_run:
            return changes
        if "pg_rewind" in reason:
            done = rewind.rewind(cluster, cfg, me, major, fallback=True)
        else:
            done = standby.rebuild(cluster, cfg, me, major, force=True)
        changes["rebuild"] = f"{reason}: {done.get('method')}" + (
            f", old data moved to {done['moved_aside']}" if done.get("moved_aside") else "")
        if done.get("comment"):  # diverged commits kept: say where
            changes["divergence"] = done["comment"]
    files = {**bootstrap.desired_server_files(cluster, cfg, major), **_pgpass_file(cluster, cfg),
             **_standby_files(cluster, cfg, me, major)}
    diff = _files_step(cluster, files, changes, dry_run)
    _server_step(cluster, files, diff, changes, dry_run)
    if dry_run:
        receiver = status.collect(cluster).get("wal_receiver") or {}
        if postmaster.is_running(cluster) and receiver.get("status") != "streaming" and "server" not in changes:
            changes["streaming"] = f"not streaming ({receiver.get('status', 'no WAL receiver')})"
    else:
        replication.wait_streaming(cluster, timeout=timeout)
    return changes


def converge(cluster, cfg, me, role, dry_run=True):
    major = cfg["postgres"]["version"]
    if role == "primary":
        return converge_primary(cluster, cfg, me, major, dry_run)
    return converge_standby(cluster, cfg, me, major, dry_run)
