"""Take this node out of the primary role for good: any later start is a standby.

The standby configuration pointing at the peer is written *before* the server is
stopped. PostgreSQL reads standby.signal only at start, so writing it into a
running primary's data directory changes nothing until then; but from that moment
whoever starts the node next (hamn, an admin's ``pg_ctl start``, systemd at boot)
gets a read-only standby that follows the peer, never a second writable primary.
If the stop then fails or the node crashes, that still holds.
"""

import os

from saltext_hamn.utils import config, fileops
from saltext_hamn.utils.pg import conf, postmaster, promote, standby, status


def signal_path(cluster, major):
    """The file whose presence makes a start a standby (recovery.conf before PostgreSQL 12)."""
    return os.path.join(cluster.data_dir, "standby.signal" if int(major) >= 12 else "recovery.conf")


def write_standby_config(cluster, cfg, me, major):
    """The password file, then standby.signal + ``hamn.standby.conf`` pointing at the
    peer (primary_conninfo, this node's slot, recovery_target_timeline latest).

    Signal first: should the second write fail, the node still starts read-only.
    Returns True when a file changed.
    """
    pg = cfg["postgres"]
    host, port, user = standby.peer_endpoint(cfg, me)
    changed = fileops.write_atomic(
        cluster.pgpass, conf.pgpass_line("*", pg["port"], user, pg["replication"]["password"]),
        owner=cluster.os_user, mode=0o600,
    )
    files = conf.standby_files(cluster, major, primary_host=host, primary_port=port, user=user,
                               slot=config.slot_name(cfg, me), application_name=me)
    for path, text in files.items():
        changed = fileops.write_atomic(path, text, owner=cluster.os_user, mode=0o600) or changed
    return changed


def _no_cluster():
    return {"changed": False, "was_running": False, "was_role": "stopped", "lsn": None, "state": None,
            "boot_safe": True, "standby_signal": None, "comment": "no cluster in the data directory: nothing can start"}


def demote(cluster, cfg, me, major, timeout=60):
    """Make this node boot-safe read-only (standby config first), then stop it fast and clean.

    Idempotent: on a stopped node it only (re)writes the standby config. Always ends
    with the server stopped and standby.signal present. Returns ``changed``,
    ``was_running``, ``was_role``, ``lsn`` (the shutdown checkpoint; None when the
    server had crashed and was not shut down cleanly), ``state`` (pg_controldata's
    cluster state, e.g. "shut down", or "in production" after a crash),
    ``boot_safe`` and ``standby_signal``.
    """
    if not postmaster.has_data(cluster):
        return _no_cluster()
    was_role = status.collect(cluster)["role"]
    wrote = write_standby_config(cluster, cfg, me, major)
    stopped = promote.stop(cluster, mode="fast", timeout=timeout)
    signal = signal_path(cluster, major)
    return {**stopped, "changed": stopped["changed"] or wrote, "was_role": was_role,
            "boot_safe": os.path.exists(signal), "standby_signal": signal}


def stop(cluster, cfg, me, major, mode="fast", timeout=60):
    """``hamn.stop_db``: stop the server; never leave a node that would start writable.

    Unless PostgreSQL runs here as a standby (which has its standby config already
    and is only stopped), the standby config is written first, as by :func:`demote`:
    for a running primary, and also for a stopped or crashed one, which would
    otherwise come back writable at the next boot. Returns :func:`promote.stop`'s
    ``changed``, ``was_running``, ``lsn``, ``state``, plus ``boot_safe``.
    """
    if not postmaster.has_data(cluster):
        return {key: value for key, value in _no_cluster().items() if key not in ("was_role", "standby_signal")}
    wrote = False
    if status.collect(cluster)["role"] != "standby":
        wrote = write_standby_config(cluster, cfg, me, major)
    stopped = promote.stop(cluster, mode=mode, timeout=timeout)
    return {**stopped, "changed": stopped["changed"] or wrote, "boot_safe": os.path.exists(signal_path(cluster, major))}
