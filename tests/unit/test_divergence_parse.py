"""Parsing pg_waldump output and timeline history files, and the fork-point logic
of utils.pg.divergence. The fixtures are real output of PostgreSQL 15's tools
(LC_ALL=C TZ=UTC), captured once from a split brain made by hand."""

import os

import pytest

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import divergence, lsn

# pg_waldump -t 1 -s 0/30020C8 -r Transaction on the old primary after the fork:
# 7 single-row autocommit INSERTs, then one rolled back.
TRANSACTIONS = """\
rmgr: Transaction len (rec/tot):     34/    34, tx:        726, lsn: 0/03002108, prev 0/030020C8, desc: COMMIT 2026-11-25 20:47:30.737220 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        727, lsn: 0/03002170, prev 0/03002130, desc: COMMIT 2026-11-25 20:47:30.752856 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        728, lsn: 0/030021D8, prev 0/03002198, desc: COMMIT 2026-11-25 20:47:30.768839 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        729, lsn: 0/03002240, prev 0/03002200, desc: COMMIT 2026-11-25 20:47:30.784473 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        730, lsn: 0/030022A8, prev 0/03002268, desc: COMMIT 2026-11-25 20:47:30.797160 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        731, lsn: 0/03002310, prev 0/030022D0, desc: COMMIT 2026-11-25 20:47:30.814799 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        732, lsn: 0/03002378, prev 0/03002338, desc: COMMIT 2026-11-25 20:47:30.831222 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        733, lsn: 0/030023E0, prev 0/030023A0, desc: ABORT 2026-11-25 20:47:30.846497 UTC
"""

# Two-phase commit, a rolled back prepared transaction, a commit with a subtransaction;
# the first line is pg_waldump's note on stderr, merged here (2>&1).
PREPARED = """\
first record is after 0/3004000, at 0/3004188, skipping over 392 bytes
rmgr: Transaction len (rec/tot):    242/   242, tx:        734, lsn: 0/03004340, prev 0/03004188, desc: PREPARE gid gid:one: 2026-11-25 20:51:05.023720 UTC
rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/03004438, prev 0/03004340, desc: COMMIT_PREPARED 734: 2026-11-25 20:51:05.024062 UTC
rmgr: Transaction len (rec/tot):    242/   242, tx:        735, lsn: 0/030044A8, prev 0/03004468, desc: PREPARE gid two: 2026-11-25 20:51:05.038777 UTC
rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/030045A0, prev 0/030044A8, desc: ABORT_PREPARED 735: 2026-11-25 20:51:05.039323 UTC
rmgr: Transaction len (rec/tot):     46/    46, tx:        736, lsn: 0/03004650, prev 0/03004610, desc: COMMIT 2026-11-25 20:51:05.054630 UTC; subxacts: 737
"""

# pg_waldump -z from the fork (rows with no records left out); the end of WAL is an error.
STATS = """\
WAL statistics between 0/30020C8 and 0/3002480:
Type                                           N      (%)          Record size      (%)             FPI size      (%)        Combined size      (%)
----                                           -      ---          -----------      ---             --------      ---        -------------      ---
XLOG                                           1 (  5.88)                  114 ( 13.29)                    0 (  0.00)                  114 ( 13.29)
Transaction                                    8 ( 47.06)                  272 ( 31.70)                    0 (  0.00)                  272 ( 31.70)
Heap                                           8 ( 47.06)                  472 ( 55.01)                    0 (  0.00)                  472 ( 55.01)
                                        --------                      --------                      --------                      --------
Total                                         17                           858 [100.00%]                   0 [0.00%]                   858 [100%]
"""
END_OF_WAL = "pg_waldump: error: error in WAL record at 0/3002408: invalid record length at 0/3002480: wanted 24, got 0\n"
NO_RECORD = "pg_waldump: error: could not find a valid record after 0/3002480\n"
NO_FILE = 'pg_waldump: error: could not find file "000000010000000000000005": No such file or directory\n'

# 00000003.history of a node promoted twice (the blank line is PostgreSQL's).
HISTORY_3 = "1\t0/30020C8\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n"
FORK = lsn.parse("0/30020C8")


def test_transactions_count_commits_not_aborts():
    found = divergence.parse_transactions(TRANSACTIONS)
    assert found == {"commits": 7, "aborts": 1, "first_commit": "2026-11-25T20:47:30.737220+00:00",
                     "last_commit": "2026-11-25T20:47:30.831222+00:00"}


def test_two_phase_commit_counts_at_commit_prepared_only():
    found = divergence.parse_transactions(PREPARED)
    assert (found["commits"], found["aborts"]) == (2, 1)  # PREPARE is no commit yet
    assert found["first_commit"] == "2026-11-25T20:51:05.024062+00:00"
    assert found["last_commit"] == "2026-11-25T20:51:05.054630+00:00"


def test_no_transaction_records():
    assert divergence.parse_transactions("") == {"commits": 0, "aborts": 0, "first_commit": None,
                                                 "last_commit": None}


def test_stats_give_the_end_of_wal_and_the_record_count():
    assert divergence.parse_stats(STATS, END_OF_WAL, FORK) == {
        "end": lsn.parse("0/3002480"), "records": 17, "missing": None}


def test_nothing_after_the_start_or_no_segment_there():
    start = lsn.parse("0/3002480")
    assert divergence.parse_stats("", NO_RECORD, start) == {"end": start, "records": 0, "missing": None}
    assert divergence.parse_stats("", NO_FILE, start) == {
        "end": start, "records": 0, "missing": "000000010000000000000005"}


def test_other_waldump_errors_are_not_taken_for_the_end():
    with pytest.raises(HamnError, match="pg_waldump from 0/30020C8: .*permission denied"):
        divergence.parse_stats("", 'pg_waldump: error: could not open directory "x": permission denied', FORK)


def test_history_file():
    assert divergence.parse_history(HISTORY_3) == [(1, FORK), (2, 0x5000000)]
    assert divergence.parse_history("") == []
    with pytest.raises(HamnError, match="unreadable timeline history"):
        divergence.parse_history("x\t0/1\n")
    assert divergence.lineage(divergence.parse_history(HISTORY_3), 3) == [
        (1, 0, FORK), (2, FORK, 0x5000000), (3, 0x5000000, None)]


def lineage_of(history_text, tli):
    return divergence.lineage(divergence.parse_history(history_text), tli)


def test_fork_of_an_old_primary_left_on_timeline_1():
    local, remote = lineage_of("", 1), lineage_of(HISTORY_3.split("\n\n")[0], 2)
    shared, fork = divergence.fork_point(local, remote)
    assert (shared, fork) == (0, FORK)
    assert divergence.divergent_spans(local, shared, fork) == [(1, FORK, None)]


def test_no_fork_on_the_same_history():
    local = lineage_of("1\t0/30020C8\tx\n", 2)
    assert divergence.fork_point(local, local)[1] is None
    # A standby still on timeline 1 behind a primary on 2: the fork is where 1 ends.
    assert divergence.fork_point(lineage_of("", 1), local) == (0, FORK)


def test_two_nodes_promoted_to_the_same_timeline_number_differ():
    local = lineage_of("1\t0/3000100\tx\n", 2)
    remote = lineage_of("1\t0/30020C8\tx\n", 2)
    shared, fork = divergence.fork_point(local, remote)
    assert (shared, fork) == (0, 0x3000100)
    assert divergence.divergent_spans(local, shared, fork) == [(2, 0x3000100, None)]


def test_local_only_timelines_after_the_fork_are_all_divergent():
    local = lineage_of(HISTORY_3, 3)  # promoted again at 0/5000000 on its own
    remote = lineage_of("1\t0/30020C8\tx\n\n2\t0/4000000\tx\n", 3)
    shared, fork = divergence.fork_point(local, remote)
    assert (shared, fork) == (1, 0x4000000)
    assert divergence.divergent_spans(local, shared, fork) == [(2, 0x4000000, 0x5000000), (3, 0x5000000, None)]


def test_unrelated_histories():
    with pytest.raises(HamnError, match="share no timeline"):
        divergence.fork_point([(2, 5, None)], [(1, 0, None)])


def test_segment_names():
    assert divergence.segment_name(1, FORK, 16 * 1024**2) == "000000010000000000000003"
    assert divergence.segment_name(2, lsn.parse("1/FF000000"), 16 * 1024**2) == "0000000200000001000000FF"
    assert divergence.segment_name(1, lsn.parse("0/40000000"), 1024**3) == "000000010000000000000001"


def report(**changes):
    base = {"diverged": True, "commits": 7, "first_commit": "2026-11-25T20:47:30.737220+00:00",
            "last_commit": "2026-11-25T20:47:30.831222+00:00", "fork_lsn": "0/30020C8", "fork_timeline": 1,
            "keep_dir": "/var/lib/postgresql/15/hamn-diverged/x", "data_dir": "/var/lib/postgresql/15/main"}
    return {**base, **changes}


def test_summary_line():
    assert divergence.summary(report()) == (
        "kept 7 diverged commits (2026-11-25 20:47:30–20:47:30 UTC, fork 0/30020C8, timeline 1) "
        "in /var/lib/postgresql/15/hamn-diverged/x")
    assert divergence.summary(report(diverged=False, commits=0)) is None
    assert divergence.summary(report(commits=0)) is None  # diverged WAL, but no commit in it
    assert "lost commits unknown" in divergence.summary(report(commits=None))
    assert "2026-11-26 01:00:00" in divergence.summary(report(last_commit="2026-11-26T01:00:00+00:00"))


def test_files_to_keep_stop_at_the_end_of_wal(tmp_path):
    names = ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
             "000000010000000000000005", "000000020000000000000003", "00000002.history", "archive_status"]
    for name in names:
        (tmp_path / name).write_text("")
    span = {"timeline": 1, "start": "0/30020C8", "end": "0/4000010", "missing_segment": None}
    kept = divergence.files_to_keep(str(tmp_path), {"spans": [span]}, 16 * 1024**2)
    assert kept == ["00000002.history", "000000010000000000000003", "000000010000000000000004"]
    # WAL that could not be read: every later segment of the timeline is kept.
    span.update(end="0/30020C8", missing_segment="000000010000000000000003")
    os.remove(tmp_path / "000000010000000000000003")
    kept = divergence.files_to_keep(str(tmp_path), {"spans": [span]}, 16 * 1024**2)
    assert kept == ["00000002.history", "000000010000000000000004", "000000010000000000000005"]
