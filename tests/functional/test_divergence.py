"""Nothing discarded silently: what a former primary committed after the fork is
counted, its WAL kept with a report.json, before pg_rewind or a base backup makes
it a copy of the new primary — on a real PostgreSQL pair in two network
namespaces. The tests run in order on one pair and move the roles around.
"""

import datetime
import json
import os
import pwd
import stat

import pytest

from saltext_hamn.utils.pg import connection, divergence, lsn, postmaster, promote, rewind, standby
from tests.functional import pair

pytestmark = [pytest.mark.root, pytest.mark.postgres]


class Node(pair.Node):
    def lsn(self):
        return self.sql("SELECT pg_current_wal_lsn()::text")[0][0]

    def kept(self):
        root = divergence.keep_root(self.cluster)
        return sorted(os.listdir(root)) if os.path.isdir(root) else []


lab, mn1, mn2 = pair.fixtures("d", "func-diverge", Node)


def rows(node):
    return node.sql("SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM diverge_t")[0][0]


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def split_brain(old, new, commits, tag):
    """Promote ``new`` while ``old`` keeps running as primary, then commit ``commits``
    single-row transactions (and one rolled back) on ``old``. Returns the time window."""
    new.call(promote.wait_for_lsn, old.lsn(), timeout=10, replayed=True)
    new.call(promote.promote, new.cfg, new.name)
    new.sql("INSERT INTO diverge_t VALUES (%s)", (f"{tag}-on-the-new-primary",))
    started = now()
    for n in range(commits):
        old.sql("INSERT INTO diverge_t VALUES (%s)", (f"{tag}-lost-{n}",))
    with connection.session(old.cluster) as conn:
        conn.autocommit = False
        connection.query(conn, "INSERT INTO diverge_t VALUES ('never-committed')")
        conn.rollback()
    return started, now()


def assert_private(path, mode):
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == mode and info.st_uid == pwd.getpwnam("postgres").pw_uid, path


def assert_lost_commits(report, commits, window, old_tl, new_tl, aborts=(1,)):
    assert report["diverged"] is True and report["wal_complete"] is True
    assert report["commits"] == commits and report["aborts"] in aborts
    first, last = (datetime.datetime.fromisoformat(report[k]) for k in ("first_commit", "last_commit"))
    assert window[0] <= first <= last <= window[1], (window, first, last)
    assert (report["old_timeline"], report["fork_timeline"], report["new_timeline"]) == (old_tl, old_tl, new_tl)
    assert report["wal_bytes"] == lsn.lag(report["local_end_lsn"], report["fork_lsn"]) > 0


def assert_fork_is_the_new_primarys_switchpoint(node, report):
    history = node.cluster.data_dir + f"/pg_wal/{report['new_timeline']:08X}.history"
    with open(history, encoding="utf-8") as handle:
        entries = divergence.parse_history(handle.read())
    assert (report["old_timeline"], lsn.parse(report["fork_lsn"])) == entries[-1]


def test_split_brain_rewind_keeps_and_reports_the_lost_commits(mn1, mn2):
    mn1.sql("CREATE TABLE diverge_t (v text PRIMARY KEY)")
    mn1.sql("INSERT INTO diverge_t VALUES ('before-the-fork')")
    window = split_brain(mn1, mn2, 7, "split1")
    mn1.call(promote.stop, mode="fast")

    joined = mn1.call(rewind.rewind, mn1.cfg, "mn1", mn1.major)
    assert joined["method"] == "pg_rewind", joined
    report = joined["divergence"]
    assert_lost_commits(report, 7, window, old_tl=1, new_tl=2)
    assert_fork_is_the_new_primarys_switchpoint(mn2, report)
    assert any(f"diverged at WAL location {report['fork_lsn']} on timeline 1" in line for line in joined["output"])
    keep_dir = report["keep_dir"]
    assert joined["comment"] == (
        f"kept 7 diverged commits ({report['first_commit'][:10]} {report['first_commit'][11:19]}–"
        f"{report['last_commit'][11:19]} UTC, fork {report['fork_lsn']}, timeline 1) in {keep_dir}")
    assert os.path.dirname(keep_dir) == os.path.join(os.path.dirname(mn1.cluster.data_dir), "hamn-diverged")
    assert os.path.basename(keep_dir).endswith(f"-tl1-from-{report['fork_lsn'].replace('/', '-')}")
    assert_private(keep_dir, 0o700)

    # The keep dir holds the WAL itself: the lost commits can be read from it alone.
    names = sorted(os.listdir(keep_dir))
    assert names == sorted([os.path.basename(f) for f in report["files"]] + ["report.json"])
    assert any(n.startswith("00000001") and len(n) == 24 for n in names)
    for name in names:
        assert_private(os.path.join(keep_dir, name), 0o600)
    again = mn1.call(divergence.scan_span, keep_dir, (1, lsn.parse(report["fork_lsn"]), None))
    assert (again["commits"], again["first_commit"], again["last_commit"]) == (
        7, report["first_commit"], report["last_commit"])
    with open(os.path.join(keep_dir, "report.json"), encoding="utf-8") as handle:
        assert json.load(handle) == report

    mn1.call(promote.wait_for_lsn, mn2.lsn(), timeout=10, replayed=True)
    assert rows(mn1) == rows(mn2)
    assert "split1-on-the-new-primary" in rows(mn1) and not any("lost" in v for v in rows(mn1))


def test_clean_switchover_reports_no_divergence(mn1, mn2):
    kept_before = mn2.kept()
    stopped = mn2.call(promote.stop, mode="fast")
    mn1.call(promote.wait_for_lsn, stopped["lsn"], timeout=10)
    mn1.call(promote.promote, mn1.cfg, "mn1")

    joined = mn2.call(rewind.rewind, mn2.cfg, "mn2", mn2.major)
    report = joined["divergence"]
    assert report["diverged"] is False and report["commits"] == 0 and report["wal_bytes"] == 0, report
    assert report["fork_lsn"] == report["local_end_lsn"]  # the shutdown checkpoint ends at the fork
    assert_fork_is_the_new_primarys_switchpoint(mn1, report)
    assert any(f"diverged at WAL location {report['fork_lsn']} on timeline 2" in line for line in joined["output"])
    assert "comment" not in joined and report["keep_dir"] is None and mn2.kept() == kept_before
    assert joined["streaming"]["status"] == "streaming"


def test_basebackup_rebuild_reports_the_same_numbers(mn1, mn2):
    window = split_brain(mn1, mn2, 5, "split2")
    mn1.call(promote.stop, mode="immediate")  # a crash, as when fenced: no shutdown checkpoint

    rebuilt = mn1.call(standby.rebuild, mn1.cfg, "mn1", mn1.major, force=True)
    report = rebuilt["divergence"]
    # An abort is not flushed at once: after a crash its record may be missing.
    assert_lost_commits(report, 5, window, old_tl=3, new_tl=4, aborts=(0, 1))
    assert_fork_is_the_new_primarys_switchpoint(mn2, report)
    moved = rebuilt["moved_aside"]
    assert report["data_dir_moved_to"] == moved and report["wal_dir"] == os.path.join(moved, "pg_wal")
    assert rebuilt["comment"].startswith("kept 5 diverged commits (") and rebuilt["comment"].endswith(
        f"fork {report['fork_lsn']}, timeline 3) in {report['keep_dir']}")
    # The WAL stays in the moved-aside data dir; the keep dir holds the report pointing at it.
    assert report["files"] and all(f.startswith(moved + "/pg_wal/") and os.path.isfile(f) for f in report["files"])
    assert os.listdir(report["keep_dir"]) == ["report.json"]
    again = mn1.call(divergence.scan_span, report["wal_dir"], (3, lsn.parse(report["fork_lsn"]), None))
    assert again["commits"] == 5

    mn1.call(promote.wait_for_lsn, mn2.lsn(), timeout=10, replayed=True)
    assert rows(mn1) == rows(mn2)
    assert not any("lost" in v for v in rows(mn1))


def test_failover_after_a_crash_keeps_the_commits_the_standby_never_received(mn1, mn2):
    # Async replication: commits the standby never got are lost by the failover.
    mn1.call(promote.wait_for_lsn, mn2.lsn(), timeout=10, replayed=True)
    postmaster.stop(mn1.cluster, mode="fast")
    started = now()
    for n in range(4):
        mn2.sql("INSERT INTO diverge_t VALUES (%s)", (f"unreplicated-{n}",))
    window = (started, now())
    postmaster.stop(mn2.cluster, mode="immediate")
    postmaster.start(mn1.cluster)
    mn1.call(promote.promote, mn1.cfg, "mn1")

    joined = mn2.call(rewind.rewind, mn2.cfg, "mn2", mn2.major)
    assert joined["method"] == "pg_rewind", joined
    report = joined["divergence"]
    assert_lost_commits(report, 4, window, old_tl=4, new_tl=5, aborts=(0,))
    assert_fork_is_the_new_primarys_switchpoint(mn1, report)
    assert joined["comment"].startswith("kept 4 diverged commits (")
    again = mn2.call(divergence.scan_span, report["keep_dir"], (4, lsn.parse(report["fork_lsn"]), None))
    assert again["commits"] == 4
    mn2.call(promote.wait_for_lsn, mn1.lsn(), timeout=10, replayed=True)
    assert rows(mn1) == rows(mn2) and not any(v.startswith("unreplicated") for v in rows(mn2))
