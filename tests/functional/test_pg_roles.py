"""Promote, stop/wait_for_lsn, rewind (also after divergent writes), base backup,
verify_replication and the lag guard — on a real PostgreSQL pair living in two
network namespaces (the lab's building blocks), talking over real TCP.

The tests run in order on one pair and move the roles around like an admin would.
"""

import copy

import psycopg2
import pytest

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import canary, lsn, postmaster, promote, rewind, standby
from tests.functional import pair


pytestmark = [pytest.mark.root, pytest.mark.postgres]


lab, mn1, mn2 = pair.fixtures("f", "func-roles")


def rows(node):
    return node.sql("SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM hamn_t")[0][0]


def test_status_shows_primary_and_streaming_standby(mn1, mn2):
    p, s = mn1.status(), mn2.status()
    assert p["role"] == "primary" and p["in_recovery"] is False and p["timeline"] == 1
    assert [(x["name"], x["state"]) for x in p["standbys"]] == [("mn2", "streaming")]
    assert {"name": "hamn_mn2", "active": True} == {k: p["slots"][0][k] for k in ("name", "active")}
    assert s["role"] == "standby" and s["wal_receiver"]["status"] == "streaming"
    assert s["wal_receiver"]["sender_host"] == "198.51.100.11"
    assert isinstance(s["lag_bytes"], int) and s["lag_bytes"] >= 0
    assert lsn.parse(s["received_lsn"]) <= lsn.parse(p["current_lsn"])


def test_verify_replication_round_trip(mn1, mn2):
    mn1.sql("CREATE TABLE hamn_t (v text PRIMARY KEY)")
    result = mn1.call(canary.verify, mn1.cfg, "mn1", timeout=10)
    assert result["standby"] == "198.51.100.12"
    assert result["visible_after_ms"] < 10000
    assert mn1.sql(f"SELECT count(*) FROM {canary.TABLE}")[0][0] == 0
    with pytest.raises(HamnError, match="run verify_replication on the primary"):
        mn2.call(canary.verify, mn2.cfg, "mn2", timeout=2)


def test_promote_refuses_past_the_lag_limit(mn1, mn2):
    strict = copy.deepcopy(mn2.cfg)
    strict["lag_limit"]["bytes"] = 8192
    mn2.sql("SELECT pg_wal_replay_pause()")
    try:
        mn1.sql("INSERT INTO hamn_t SELECT 'bulk-' || g FROM generate_series(1, 3000) g")
        target = mn1.status()["current_lsn"]
        mn2.call(promote.wait_for_lsn, target, timeout=10)  # received, not replayed
        with pytest.raises(HamnError, match="refusing to promote.*force=True"):
            mn2.call(promote.promote, strict, "mn2")
        assert mn2.status()["role"] == "standby"
        # Against the primary's position nothing is missing: the backlog is local.
        assert promote.measure_lag(mn2.status(), primary_lsn=target)[0] == 0
        with pytest.raises(HamnError, match="refusing to promote"):
            mn2.call(promote.promote, strict, "mn2", primary_lsn="FF/0")
    finally:
        mn2.sql("SELECT pg_wal_replay_resume()")
    with pytest.raises(HamnError, match="has not reached"):
        mn2.call(promote.wait_for_lsn, "FF/0", timeout=0.3)


def test_switchover_loses_nothing_and_old_primary_rejoins(mn1, mn2):
    mn1.sql("INSERT INTO hamn_t VALUES ('before-switchover')")
    stopped = mn1.call(promote.stop, mode="fast")
    assert stopped["state"] == "shut down" and stopped["lsn"]
    mn2.call(promote.wait_for_lsn, stopped["lsn"], timeout=10)
    promoted = mn2.call(promote.promote, mn2.cfg, "mn2")
    assert promoted["changed"] and promoted["timeline"] == promoted["previous_timeline"] + 1
    assert postmaster.timeline(mn2.cluster) == promoted["timeline"]  # checkpointed into pg_control
    assert mn2.call(promote.promote, mn2.cfg, "mn2")["changed"] is False  # idempotent

    joined = mn1.call(rewind.rewind, mn1.cfg, "mn1", mn1.major)
    assert joined["changed"] and joined["timeline"] == promoted["timeline"]
    s = mn1.status()
    assert s["role"] == "standby" and s["wal_receiver"]["sender_host"] == "198.51.100.12"
    assert mn1.call(rewind.rewind, mn1.cfg, "mn1", mn1.major)["changed"] is False
    assert "before-switchover" in rows(mn2)
    mn2.call(canary.verify, mn2.cfg, "mn2", timeout=10)
    assert rows(mn1) == rows(mn2)


def test_rewind_after_divergent_writes_leaves_equal_data(mn1, mn2):
    # Split brain on purpose: mn1 is promoted while mn2 still runs as primary.
    mn1.call(promote.promote, mn1.cfg, "mn1")
    mn1.sql("INSERT INTO hamn_t SELECT 'only-on-mn1-' || g FROM generate_series(1, 500) g")
    mn2.sql("INSERT INTO hamn_t SELECT 'only-on-mn2-' || g FROM generate_series(1, 50) g")
    assert rows(mn1) != rows(mn2)
    own_conf = f"{mn1.cluster.data_dir}/postgresql.conf"
    with open(own_conf, "a", encoding="utf-8") as handle:
        handle.write("work_mem = '7MB'  # mn1's own setting\n")

    joined = mn1.call(rewind.rewind, mn1.cfg, "mn1", mn1.major)
    assert joined["method"] == "pg_rewind", joined
    assert any("diverged" in line for line in joined["output"]), joined["output"]
    mn2.sql("INSERT INTO hamn_t VALUES ('after-rejoin')")
    mn1.call(promote.wait_for_lsn, mn2.status()["current_lsn"], timeout=10, replayed=True)
    assert rows(mn1) == rows(mn2)
    assert not any(v.startswith("only-on-mn1") for v in rows(mn1))
    assert "after-rejoin" in rows(mn1)
    # pg_rewind copied mn2's files; mn1 keeps its own configuration.
    assert mn1.sql("SHOW work_mem")[0][0] == "7MB"
    assert mn1.sql("SHOW unix_socket_directories")[0][0] == mn1.cluster.socket_dir
    mn2.call(canary.verify, mn2.cfg, "mn2", timeout=10)


def test_basebackup_moves_old_data_aside_and_streams(mn1, mn2):
    with pytest.raises(HamnError, match="runs as a primary"):
        mn2.call(standby.rebuild, mn2.cfg, "mn2", mn2.major)
    result = mn1.call(standby.rebuild, mn1.cfg, "mn1", mn1.major)
    assert result["moved_aside"].startswith(mn1.cluster.data_dir + ".hamn-")
    with open(f"{result['moved_aside']}/PG_VERSION", encoding="utf-8") as handle:
        assert handle.read().strip() == str(mn1.major)
    assert result["streaming"]["status"] == "streaming"
    assert rows(mn1) == rows(mn2)


def test_following_a_primary_of_another_major_is_refused_before_anything_moves(mn1, mn2):
    """mn1 (standby) told it is another major: rebuild, rewind and follow refuse while it still streams."""
    import glob

    from saltext_hamn.utils import handoff

    other = mn1.major + 1
    aside = set(glob.glob(mn1.cluster.data_dir + ".hamn-*"))
    for fn in (standby.rebuild, rewind.rewind, handoff.follow):
        with pytest.raises(HamnError, match=f"runs PostgreSQL {mn2.major}, this node PostgreSQL {other} .*"
                                            "nothing was changed here"):
            mn1.call(fn, mn1.cfg, "mn1", other)
    assert set(glob.glob(mn1.cluster.data_dir + ".hamn-*")) == aside
    assert mn1.status()["wal_receiver"]["status"] == "streaming"


def test_standby_is_read_only(mn1):
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        mn1.sql("INSERT INTO hamn_t VALUES ('nope')")
