"""Rejoin a former primary as standby with pg_rewind (base backup as fallback).

The failure this guards against above all: a rejoin that reports success while the
node still holds diverged data. pg_rewind right after a promotion can say "no
rewind required" because the new primary's pg_control still shows the old
timeline; so the source's pg_control must show the timeline it writes on before we
run it, and the node must stream on that timeline afterwards.
"""

import os
import time

from saltext_hamn.utils import config, fileops
from saltext_hamn.utils.errors import CommandFailed, HamnError
from saltext_hamn.utils.pg import conf, divergence, postmaster, replication, standby, status

# Files pg_rewind would overwrite with the source's copies; this node keeps its own.
OWN_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf",
             conf.SETTINGS_FILE, conf.STANDBY_FILE)


TIMELINE_SETTLE_SECONDS = 15  # see _wait_timeline


def capability(values):
    """(bool, reason) from pg_controldata values: pg_rewind needs wal_log_hints or checksums."""
    hints = values.get("wal_log_hints setting")
    checksums = values.get("Data page checksum version")
    if hints is None and checksums is None:
        return False, "pg_controldata shows neither 'wal_log_hints setting' nor 'Data page checksum version'"
    on = [what for what, flag in (("wal_log_hints on", hints == "on"),
                                  ("data checksums on", checksums not in (None, "", "0"))) if flag]
    if on:
        return True, " and ".join(on)
    return False, "wal_log_hints off and data checksums off: pg_rewind cannot be used"


def rewind_capable(cluster):
    return capability(postmaster.controldata(cluster))


def already_following(info, host, peer_tli):
    receiver = info.get("wal_receiver") or {}
    return (info["role"] == "standby" and receiver.get("status") == "streaming"
            and receiver.get("sender_host") == host and info.get("timeline") == peer_tli)


def _save_own_files(cluster):
    saved = {}
    for name in OWN_FILES:
        path = os.path.join(cluster.data_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                saved[path] = (handle.read(), os.stat(path).st_mode & 0o777)
    return saved


def _restore_own_files(cluster, saved):
    for path, (text, mode) in saved.items():
        fileops.write_atomic(path, text, owner=cluster.os_user, mode=mode)


def rewind_blocker(report, local_tli, peer_tli):
    """Why pg_rewind must not run on this node given its divergence ``report``, or None.

    In each case a base backup (which moves the whole data dir aside) loses nothing.
    """
    if report["diverged"] is None:
        return f"divergence from the primary unknown ({report['reason']})"
    if report["diverged"] and report["commits"] is None:
        return report["reason"]
    if report["diverged"] and local_tli == peer_tli:
        return (f"this node and the primary are both on timeline {local_tli} with different histories: "
                "pg_rewind would find nothing to rewind")
    return None


def _with_divergence(result, report):
    """``result`` carrying the divergence report, and its one-line summary when commits were lost."""
    result["divergence"] = report
    line = divergence.summary(report)
    if line:
        result["comment"] = line
    return result


def rewind(cluster, cfg, me, major, *, fallback=False, timeout=3600):
    started = time.monotonic()
    host, port, user = standby.peer_endpoint(cfg, me)
    standby.prepare_access(cluster, cfg)
    peer = standby.require_peer_primary(cluster, cfg, me, major)
    info = status.collect(cluster)
    if already_following(info, host, peer["timeline"]):
        return {"changed": False, "comment": f"already streaming from {host} on timeline {peer['timeline']}"}
    if not postmaster.has_data(cluster):
        return _fallback(cluster, cfg, me, major, fallback, timeout, started, "no data directory to rewind")
    capable, why = rewind_capable(cluster)
    if not capable:
        return _fallback(cluster, cfg, me, major, fallback, timeout, started, why)
    if peer["control_timeline"] != peer["timeline"]:
        raise HamnError(
            f"the primary writes on timeline {peer['timeline']} but its pg_control still says "
            f"{peer['control_timeline']}: its promotion was not checkpointed. Refusing: pg_rewind would "
            "report 'no rewind required' and leave diverged data behind. Run CHECKPOINT on the primary."
        )
    if info["running"]:
        postmaster.stop(cluster, mode="fast")
    local_tli = postmaster.timeline(cluster)
    report = divergence.assess_or_unknown(cluster, peer, host=host, port=port, user=user)
    blocker = rewind_blocker(report, local_tli, peer["timeline"])
    if blocker:
        return _fallback(cluster, cfg, me, major, fallback, timeout, started, blocker, report)
    if local_tli == peer["timeline"]:
        # Same timeline as a primary that was promoted before us: nothing diverged,
        # the node is only behind; streaming catches it up.
        row = standby.configure_and_start(cluster, cfg, me, major)
        result = {"changed": True, "method": "restart as standby (same timeline, no rewind needed)",
                  "streaming": row, "timeline": local_tli, "seconds": round(time.monotonic() - started, 3)}
        return _with_divergence(result, report)
    # pg_rewind overwrites the WAL after the fork with the primary's: keep ours first.
    divergence.keep(cluster, report)
    replication.ensure_peer_slot(host, port, user, cluster.pgpass, config.slot_name(cfg, me))
    saved = _save_own_files(cluster)
    source = conf.conninfo(host=host, port=port, user=user, dbname="postgres", passfile=cluster.pgpass,
                           connect_timeout=10)
    try:
        result = cluster.run("pg_rewind", "-D", cluster.data_dir, f"--source-server={source}",
                             timeout=timeout)
    except CommandFailed as exc:
        _restore_own_files(cluster, saved)
        return _fallback(cluster, cfg, me, major, fallback, timeout, started, f"pg_rewind failed: {exc}", report)
    _restore_own_files(cluster, saved)
    row = standby.configure_and_start(cluster, cfg, me, major)
    after = _wait_timeline(cluster, peer["timeline"])
    if after.get("timeline") != peer["timeline"]:
        raise HamnError(
            f"after pg_rewind this node streams on timeline {after.get('timeline')}, not the primary's "
            f"{peer['timeline']}; it may hold diverged data. Rebuild it with hamn.basebackup."
        )
    return _with_divergence({
        "changed": True, "method": "pg_rewind", "streaming": row, "timeline": peer["timeline"],
        "previous_timeline": local_tli, "output": (result.stdout + result.stderr).strip().splitlines()[-4:],
        "seconds": round(time.monotonic() - started, 3)}, report)


def _wait_timeline(cluster, wanted, seconds=TIMELINE_SETTLE_SECONDS):
    """The status once this standby reports ``wanted``, or the last one after ``seconds``.

    A rewound node replays from a checkpoint before the fork: its WAL receiver may
    stream the old timeline's last segment first and switch a moment later (longer
    on a busy host), so one look right after "streaming" can show the old timeline.
    """
    deadline = time.monotonic() + seconds
    while True:
        info = status.collect(cluster)
        if info.get("timeline") == wanted or time.monotonic() >= deadline:
            return info
        time.sleep(0.1)


def _fallback(cluster, cfg, me, major, fallback, timeout, started, reason, report=None):
    if not fallback:
        raise HamnError(f"cannot rewind: {reason}. Use fallback=True to rebuild with a base backup instead.")
    # The rebuild reuses a report made before pg_rewind touched the WAL.
    known = {"divergence_report": report} if report else {}
    result = standby.rebuild(cluster, cfg, me, major, force=True, timeout=timeout, **known)
    result["rewind_skipped"] = reason
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
