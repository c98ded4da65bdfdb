"""What a former primary wrote after the fork from the new primary, kept before a rejoin.

pg_rewind and a base backup both make this node a copy of the new primary; every
transaction it committed after the standby's promotion (a split brain, or async
commits that never reached the standby) disappears from the database. This module
finds the fork point from both nodes' timeline histories, reads the local WAL from
there with pg_waldump, counts the commits that would be lost, and copies that WAL
into a keep directory with a ``report.json`` before anything runs. Nothing is
deleted here, ever.

Timeline histories as pg_rewind compares them: a "lineage" is the list of
``(timeline, begin, end)`` a node's WAL went through, ``end`` None for the one it
is on now. Both lineages agree up to one timeline; the fork is where the first of
the two left it.
"""

import datetime
import json
import logging
import os
import pwd
import re
import shutil
import time

from psycopg2 import Error as PsycopgError
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils import fileops
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import connection, lsn, postmaster

log = logging.getLogger(__name__)

KEEP_DIR_NAME = "hamn-diverged"
REPORT_FILE = "report.json"
COMMIT_KINDS = ("COMMIT", "COMMIT_PREPARED")
ABORT_KINDS = ("ABORT", "ABORT_PREPARED")
# pg_waldump prints times in its own TZ; TZ=UTC makes them unambiguous.
WALDUMP_ENV = {"LC_ALL": "C", "TZ": "UTC"}

_SEGMENT_FILE = re.compile(r"^[0-9A-F]{24}$")
_HISTORY_FILE = re.compile(r"^[0-9A-F]{8}\.history$")
_RECORD = re.compile(r"^rmgr: Transaction\s.*?, lsn: (\S+), prev \S+, desc: (\w+) (.*)$")
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
_STATS = re.compile(r"^WAL statistics between (\S+) and (\S+):", re.M)
_TOTAL = re.compile(r"^Total\s+(\d+)\s", re.M)
_NO_RECORD = re.compile(r"could not find a valid record after (\S+)")
_NO_FILE = re.compile(r'could not find file "([0-9A-F]{24})"')


# ------------------------------------------------------------------ parsing


def parse_history(text):
    """A timeline history file as ``[(parent_timeline, switchpoint_lsn_int), ...]``.

    Each line is ``<tli>\\t<switchpoint>\\t<reason>``; blank lines and comments are
    skipped, as PostgreSQL does.
    """
    entries = []
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[0].isdigit():
            raise HamnError(f"unreadable timeline history line: {line!r}")
        entries.append((int(fields[0]), lsn.parse(fields[1])))
    return entries


def lineage(history, current_tli):
    """``[(timeline, begin, end), ...]`` from parsed history entries; ``end`` None for the current one."""
    spans, begin = [], 0
    for tli, switchpoint in history:
        spans.append((tli, begin, switchpoint))
        begin = switchpoint
    spans.append((current_tli, begin, None))
    return spans


def fork_point(local, remote):
    """(index into ``local``, fork LSN int) where the two lineages part; fork None when they do not.

    A timeline counts as shared only when both began it at the same point: two
    nodes promoted separately can carry the same timeline number.
    """
    shared = None
    for index, (mine, theirs) in enumerate(zip(local, remote)):
        if mine[:2] != theirs[:2]:
            break
        shared = index
    if shared is None:
        raise HamnError("the timeline histories of this node and the primary share no timeline")
    ends = [end for end in (local[shared][2], remote[shared][2]) if end is not None]
    return shared, min(ends) if ends else None


def divergent_spans(local, shared, fork):
    """``[(timeline, start, end), ...]`` of local WAL at or after ``fork``: the shared
    timeline from the fork on, then every local-only timeline."""
    tli, _, end = local[shared]
    spans = [(tli, fork, end)] if end is None or end > fork else []
    spans += [(t, max(begin, fork), e) for t, begin, e in local[shared + 1:]]
    return spans


def _utc(stamp):
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S"
    return datetime.datetime.strptime(stamp, fmt).replace(tzinfo=datetime.timezone.utc)


def parse_transactions(text):
    """Commit/abort counts and first/last commit time from ``pg_waldump -r Transaction`` output."""
    commits, aborts, times = 0, 0, []
    for line in (text or "").splitlines():
        match = _RECORD.match(line)
        if not match:
            continue
        kind, desc = match.group(2), match.group(3)
        if kind in COMMIT_KINDS:
            commits += 1
            stamp = _TIMESTAMP.search(desc)
            if stamp:
                times.append(_utc(stamp.group(1)))
        elif kind in ABORT_KINDS:
            aborts += 1
    return {"commits": commits, "aborts": aborts,
            "first_commit": min(times).isoformat() if times else None,
            "last_commit": max(times).isoformat() if times else None}


def parse_stats(stdout, stderr, start):
    """Where the WAL read with ``pg_waldump -z`` from ``start`` ended.

    ``{"end": lsn_int, "records": n, "missing": segment_name_or_None}``; ``missing``
    names the starting segment when it is not on disk (nothing could be read).
    pg_waldump always stops with an error at the end of the WAL: that is normal.
    """
    stats = _STATS.search(stdout or "")
    if stats:
        total = _TOTAL.search(stdout)
        return {"end": lsn.parse(stats.group(2)), "records": int(total.group(1)) if total else 0,
                "missing": None}
    if _NO_RECORD.search(stderr or ""):
        return {"end": start, "records": 0, "missing": None}
    no_file = _NO_FILE.search(stderr or "")
    if no_file:
        return {"end": start, "records": 0, "missing": no_file.group(1)}
    raise HamnError(f"pg_waldump from {fmt_lsn(start)}: {(stderr or '').strip() or 'no output'}")


def fmt_lsn(value):
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# ------------------------------------------------------------------ WAL files


def segment_name(tli, position, segment_size):
    segno = position // segment_size
    per_id = 0x100000000 // segment_size
    return f"{tli:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segment_files(wal_dir):
    """{name: timeline} of the WAL segment files in ``wal_dir``."""
    return {name: int(name[:8], 16) for name in os.listdir(wal_dir) if _SEGMENT_FILE.match(name)}


def local_timeline(control, wal_dir):
    """The newest timeline this node wrote or received WAL on.

    pg_control only moves to a new timeline at a checkpoint; the segment file names
    show it at once (recycled segments take the current timeline too).
    """
    timelines = [int(control.get("Latest checkpoint's TimeLineID") or 0)]
    timelines += segment_files(wal_dir).values()
    return max(timelines)


def read_history(wal_dir, tli):
    if tli == 1:
        return ""
    path = os.path.join(wal_dir, f"{tli:08X}.history")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise HamnError(f"{path} is missing: this node's timeline history is unknown") from exc


def peer_history(host, port, user, passfile, tli):
    """The primary's history file for ``tli``, over the replication protocol."""
    if tli == 1:
        return ""
    conn = connection.connect_peer(host, port, user, passfile, physical=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"TIMELINE_HISTORY {int(tli)}")
            _name, content = cur.fetchone()
    except PsycopgError as exc:
        raise HamnError(f"cannot read timeline {tli}'s history from {host}: {str(exc).strip()}") from exc
    finally:
        conn.close()
    return content.decode() if isinstance(content, (bytes, memoryview)) else content


# ------------------------------------------------------------------ reading the local WAL


def _waldump(cluster, wal_dir, tli, start, end, *args):
    bounds = ["-e", fmt_lsn(end)] if end is not None else []
    return cluster.run("pg_waldump", "-p", wal_dir, "-t", str(tli), "-s", fmt_lsn(start), *bounds, *args,
                       env=WALDUMP_ENV, check=False, timeout=1800)


def scan_span(cluster, wal_dir, span):
    """What the local WAL holds on one divergent span: end, record count, commits."""
    tli, start, end = span
    stats = _waldump(cluster, wal_dir, tli, start, end, "-z")
    found = parse_stats(stats.stdout, stats.stderr, start)
    found.update(timeline=tli, start=start)
    if found["records"]:
        found.update(parse_transactions(_waldump(cluster, wal_dir, tli, start, end, "-r", "Transaction").stdout))
    else:
        found.update(commits=0, aborts=0, first_commit=None, last_commit=None)
    return found


def _unread_checkpoint(control, scans):
    """True when pg_control's latest checkpoint lies past the WAL pg_waldump could read.

    Then WAL after the fork existed but is gone (recycled, or a segment is
    missing): the node diverged, and what it committed cannot be counted.
    """
    location = control.get("Latest checkpoint location")
    tli = int(control.get("Latest checkpoint's TimeLineID") or 0)
    return bool(location) and any(s["timeline"] == tli and lsn.parse(location) >= s["end"] for s in scans)


# ------------------------------------------------------------------ the report


def _base_report(cluster, wal_dir, local_tli, peer_tli, segment_size=None):
    return {"diverged": False, "fork_lsn": None, "fork_timeline": None, "old_timeline": local_tli,
            "new_timeline": peer_tli, "local_end_lsn": None, "wal_bytes": 0, "records": 0, "commits": 0,
            "aborts": 0, "first_commit": None, "last_commit": None, "wal_complete": True,
            "data_dir": cluster.data_dir, "wal_dir": wal_dir, "segment_size": segment_size, "spans": [],
            "keep_dir": None, "files": [],
            "assessed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def unknown(cluster, reason):
    """The report when the comparison is impossible (no data, another system)."""
    report = _base_report(cluster, os.path.join(cluster.data_dir, "pg_wal"), None, None)
    report.update(diverged=None, commits=None, wal_complete=None, reason=reason)
    return report


def assess(cluster, peer, *, host, port, user):
    """The divergence report of this stopped node against the primary ``peer`` (standby.peer_facts).

    Reads only: pg_controldata, the local WAL (pg_waldump) and the primary's
    timeline history over a replication connection.
    """
    if not postmaster.has_data(cluster):
        return unknown(cluster, "no data directory")
    control = postmaster.controldata(cluster)
    system_id = control.get("Database system identifier")
    if system_id != peer["system_id"]:
        return unknown(cluster, f"the local data belongs to another system ({system_id}, the primary's is "
                                f"{peer['system_id']}): no common history")
    wal_dir = os.path.join(cluster.data_dir, "pg_wal")
    local_tli = local_timeline(control, wal_dir)
    local = lineage(parse_history(read_history(wal_dir, local_tli)), local_tli)
    remote = lineage(parse_history(peer_history(host, port, user, cluster.pgpass, peer["timeline"])),
                     peer["timeline"])
    shared, fork = fork_point(local, remote)
    report = _base_report(cluster, wal_dir, local_tli, peer["timeline"], int(control["Bytes per WAL segment"]))
    if fork is None:
        report["reason"] = f"same timeline history as the primary (timeline {local_tli}): nothing to fork from"
        return report
    report.update(fork_lsn=fmt_lsn(fork), fork_timeline=local[shared][0])
    scans = [scan_span(cluster, wal_dir, span) for span in divergent_spans(local, shared, fork)]
    _summarize_scans(report, scans, fork)
    if _unread_checkpoint(control, scans):
        report.update(diverged=True, wal_complete=False, commits=None)
    report["reason"] = _reason(report)
    return report


def assess_or_unknown(cluster, peer, *, host, port, user):
    """``assess``, with a failure to compare turned into an "unknown" report (callers then keep everything)."""
    try:
        return assess(cluster, peer, host=host, port=port, user=user)
    except (CommandExecutionError, SaltInvocationError, OSError, KeyError, ValueError) as exc:
        return unknown(cluster, f"cannot compare with the primary's history: {exc}")


def _summarize_scans(report, scans, fork):
    commit_times = [t for s in scans for t in (s["first_commit"], s["last_commit"]) if t]
    report.update(
        diverged=any(s["records"] for s in scans),
        local_end_lsn=fmt_lsn(max([fork] + [s["end"] for s in scans])),
        wal_bytes=sum(s["end"] - s["start"] for s in scans),
        records=sum(s["records"] or 0 for s in scans),
        commits=sum(s["commits"] for s in scans),
        aborts=sum(s["aborts"] for s in scans),
        first_commit=min(commit_times) if commit_times else None,
        last_commit=max(commit_times) if commit_times else None,
        spans=[{"timeline": s["timeline"], "start": fmt_lsn(s["start"]), "end": fmt_lsn(s["end"]),
                "records": s["records"], "missing_segment": s["missing"]} for s in scans],
    )


def _reason(report):
    fork = f"the fork at {report['fork_lsn']} on timeline {report['fork_timeline']}"
    if report["diverged"] and report["commits"] is None:
        return f"this node wrote WAL after {fork}, but that WAL is no longer here: lost commits unknown"
    if report["diverged"]:
        return (f"this node's WAL goes on to {report['local_end_lsn']} after {fork}: "
                f"{report['records']} records, {report['commits']} commits")
    return f"this node's WAL ends at or before {fork}"


def summary(report):
    """The one-line comment for a rejoin result; None when no commit was (or may have been) lost."""
    if not report:
        return None
    where = report.get("keep_dir") or report.get("data_dir_moved_to") or report["data_dir"]
    if report["diverged"] is None and report.get("data_dir_moved_to"):
        return f"divergence not assessed ({report['reason']}); the old data dir is kept in {where}"
    if not report["diverged"] or report["commits"] == 0:
        return None
    tl = f"fork {report['fork_lsn']}, timeline {report['fork_timeline']}"
    if report["commits"] is None:
        return f"diverged after {tl}; the WAL is gone, lost commits unknown; old data kept in {where}"
    return (f"kept {report['commits']} diverged commit{'s' if report['commits'] != 1 else ''} "
            f"({_time_range(report['first_commit'], report['last_commit'])}, {tl}) in {where}")


def _time_range(first, last):
    if not first:
        return "commit times unknown"
    a, b = datetime.datetime.fromisoformat(first), datetime.datetime.fromisoformat(last)
    end = b.strftime("%H:%M:%S") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M:%S")
    return f"{a.strftime('%Y-%m-%d %H:%M:%S')}–{end} UTC"


# ------------------------------------------------------------------ keeping


def keep_root(cluster):
    return os.path.join(os.path.dirname(cluster.data_dir.rstrip("/")), KEEP_DIR_NAME)


def _new_keep_dir(cluster, report):
    root = keep_root(cluster)
    fileops.ensure_private_dir(root, cluster.os_user)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(root, f"{stamp}-tl{report['old_timeline']}-from-{report['fork_lsn'].replace('/', '-')}")
    path, suffix = base, 1
    while os.path.exists(path):
        path, suffix = f"{base}-{suffix}", suffix + 1
    fileops.ensure_private_dir(path, cluster.os_user)
    return path


def files_to_keep(wal_dir, report, segment_size):
    """Names in ``wal_dir``: every timeline history, and the segments holding WAL from the fork on.

    Segments past the end of the WAL are recycled ones (old or empty): not kept,
    unless the WAL could not be read, then every later segment of those timelines is.
    """
    present = segment_files(wal_dir)
    names = sorted(n for n in os.listdir(wal_dir) if _HISTORY_FILE.match(n))
    for span in report["spans"]:
        tli, start, end = span["timeline"], lsn.parse(span["start"]), lsn.parse(span["end"])
        first = segment_name(tli, start, segment_size)
        last = segment_name(tli, max(start, end - 1), segment_size)
        names += sorted(n for n, t in present.items()
                        if t == tli and n >= first and (n <= last or span["missing_segment"]))
    return names


def keep(cluster, report, *, copy_wal=True, moved_to=None):
    """Write the keep dir for a diverged ``report``: copies of its WAL, or with ``copy_wal=False``
    only pointers to it in ``moved_to`` (the whole old data dir, moved aside); report.json.

    Returns the report, completed. A report without divergence gets nothing kept.
    """
    if moved_to:
        report.update(data_dir_moved_to=moved_to, wal_dir=os.path.join(moved_to, "pg_wal"))
    if not report.get("diverged"):
        _log(report)
        return report
    source = report["wal_dir"]
    path = report.get("keep_dir") or _new_keep_dir(cluster, report)
    if copy_wal:
        report["files"] = [_copy_private(os.path.join(source, name), os.path.join(path, name), cluster.os_user)
                           for name in files_to_keep(source, report, report["segment_size"])]
    elif not report["files"]:  # else: copies made before pg_rewind ran, which now failed
        report["files"] = [os.path.join(source, name)
                           for name in files_to_keep(source, report, report["segment_size"])]
    report["keep_dir"] = path
    fileops.write_atomic(os.path.join(path, REPORT_FILE), json.dumps(report, indent=2, sort_keys=True) + "\n",
                         owner=cluster.os_user, mode=0o600)
    _log(report)
    return report


def _copy_private(source, target, owner):
    """Copy (never link: pg_rewind rewrites WAL files in place) as ``owner``, mode 0600."""
    shutil.copy2(source, target)
    entry = pwd.getpwnam(owner)
    os.chown(target, entry.pw_uid, entry.pw_gid)
    os.chmod(target, 0o600)
    return target


def _log(report):
    line = summary(report)
    if line:
        log.warning("hamn: %s", line)
    elif report.get("diverged"):
        log.info("hamn: diverged WAL without lost commits kept in %s (%s)", report["keep_dir"], report["reason"])
