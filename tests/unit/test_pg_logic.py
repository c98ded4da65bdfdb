"""LSN math, the promotion lag guard and the rewind guard (no server needed)."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_hamn.utils.errors import CommandFailed, HamnError
from saltext_hamn.utils.pg import lsn, promote, replica, rewind, standby
from tests import support

CFG = support.load(lag_limit={"bytes": "1MB", "seconds": 30})


def test_lsn_parse_format_and_lag():
    assert lsn.parse("0/3000060") == 0x3000060
    assert lsn.parse("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert lsn.lag("0/3000100", "0/3000000") == 0x100
    assert lsn.lag("0/3000000", "0/3000100") == 0
    assert lsn.lag(None, "0/1") is None
    assert lsn.at_least("1/0", "0/FFFFFFFF") and not lsn.at_least("0/1", "0/2")
    for bad in ("", "0/", "x/1", "1/2/3", "123456789/0"):
        with pytest.raises(SaltInvocationError, match="expected an LSN"):
            lsn.parse(bad)


def standby_info(received="0/5000000", replayed="0/5000000", msg_age=0.2, receiver=True):
    return {
        "role": "standby", "received_lsn": received, "replayed_lsn": replayed,
        "lag_bytes": lsn.lag(received, replayed), "lag_seconds": 0.0,
        "wal_receiver": {"status": "streaming", "last_msg_seconds": msg_age} if receiver else None,
    }


def test_lag_without_primary_lsn_is_local_backlog_and_stream_age():
    assert promote.measure_lag(standby_info(replayed="0/4F00000")) == (0x100000, 0.2)
    assert promote.measure_lag(standby_info(receiver=False)) == (0, None)


def test_lag_against_the_primarys_last_position():
    info = standby_info(received="0/5000000", msg_age=99)
    assert promote.measure_lag(info, primary_lsn="0/5000000") == (0, 0.0)
    assert promote.measure_lag(info, primary_lsn="0/5000400") == (0x400, 99)


@pytest.mark.parametrize("info, primary_lsn, reason", [
    (standby_info(replayed="0/4000000"), None, "bytes behind"),
    (standby_info(msg_age=45), None, "since the primary last sent WAL"),
    (standby_info(), "0/7000000", "bytes behind"),
])
def test_check_lag_refuses_without_force(info, primary_lsn, reason):
    with pytest.raises(HamnError, match=reason):
        promote.check_lag(CFG, info, primary_lsn)
    assert promote.check_lag(CFG, info, primary_lsn, force=True)["forced"] is True


def test_check_lag_accepts_unknown_seconds_and_small_lag():
    result = promote.check_lag(CFG, standby_info(receiver=False))
    assert result == {"lag_bytes": 0, "lag_seconds": None, "forced": False}


def stopped_node_with_peer(monkeypatch, timeline, control_timeline):
    """A stopped former primary with data, whose peer runs as primary on ``timeline``."""
    monkeypatch.setattr(standby, "prepare_access", lambda cluster, cfg: None)
    monkeypatch.setattr(standby, "require_peer_primary", lambda cluster, cfg, me, major=None: {
        "in_recovery": False, "timeline": timeline, "control_timeline": control_timeline, "lsn": "0/9000000"})
    monkeypatch.setattr(rewind.status, "collect", lambda cluster: {"role": "stopped", "running": False})
    monkeypatch.setattr(rewind.postmaster, "has_data", lambda cluster: True)


def test_rewind_refuses_a_primary_whose_promotion_is_not_checkpointed(monkeypatch):
    stopped_node_with_peer(monkeypatch, timeline=3, control_timeline=2)
    monkeypatch.setattr(rewind, "rewind_capable", lambda cluster: (True, "wal_log_hints on"))
    ran = []
    monkeypatch.setattr(rewind.replication, "ensure_peer_slot", lambda *a: ran.append("slot"))
    with pytest.raises(HamnError, match="not checkpointed.*no rewind required"):
        rewind.rewind(object(), CFG, "mn1", 15)
    assert ran == []  # stopped before touching anything


def test_rewind_without_hints_or_checksums_needs_fallback(monkeypatch):
    stopped_node_with_peer(monkeypatch, timeline=2, control_timeline=2)
    monkeypatch.setattr(rewind.postmaster, "controldata", lambda cluster: {
        "wal_log_hints setting": "off", "Data page checksum version": "0"})
    with pytest.raises(HamnError, match="fallback=True"):
        rewind.rewind(object(), CFG, "mn1", 15)
    rebuilt = []
    monkeypatch.setattr(standby, "rebuild", lambda *a, **k: rebuilt.append(k) or {"method": "pg_basebackup"})
    result = rewind.rewind(object(), CFG, "mn1", 15, fallback=True)
    assert result["method"] == "pg_basebackup" and "wal_log_hints" in result["rewind_skipped"]
    assert rebuilt == [{"force": True, "timeout": 3600}]


def test_lag_after_a_standby_restart_counts_what_was_replayed():
    # After a restart pg_last_wal_receive_lsn() reads as the start of the segment,
    # below the replayed position: the node still holds everything it replayed.
    info = standby_info(received="0/5000000", replayed="0/50001A0")
    assert promote.measure_lag(info, primary_lsn="0/50001A0") == (0, 0.0)
    assert promote.measure_lag(info, primary_lsn="0/50002A0") == (0x100, 0.2)
    assert promote.measure_lag(standby_info(received=None, replayed="0/5000000"), primary_lsn="0/5000000")[0] == 0
    strict = support.load(lag_limit={"bytes": 8192, "seconds": 30})
    assert promote.check_lag(strict, info, primary_lsn="0/50001A0")["forced"] is False


def former_primary_to_rejoin(monkeypatch, maintenance):
    """converge_standby's view of a stopped former primary whose peer is the primary now."""
    cfg = support.load(maintenance=maintenance, postgres={"auto_rebuild": True})
    monkeypatch.setattr(replica, "_peer", lambda cluster, cfg, me: {"in_recovery": False, "system_id": "1"})
    monkeypatch.setattr(replica, "_rebuild_reason", lambda cluster, peer: None)
    monkeypatch.setattr(replica.status, "collect", lambda cluster: {"role": "stopped", "running": False})
    ran = []
    monkeypatch.setattr(replica.rewind, "rewind", lambda *a, **k: ran.append("rewind") or {"method": "pg_rewind"})
    monkeypatch.setattr(replica.standby, "rebuild", lambda *a, **k: ran.append("rebuild") or {})

    class Stopped:
        data_dir = "/nonexistent/hamn-unit"

    return Stopped(), cfg, ran


def test_maintenance_blocks_the_automatic_rejoin(monkeypatch):
    cluster, cfg, ran = former_primary_to_rejoin(monkeypatch, maintenance=True)
    planned = replica.converge_standby(cluster, cfg, "mn1", 15, dry_run=True)
    assert "would rejoin by pg_rewind" in planned["rebuild"] and "maintenance is on" in planned["rebuild"]
    with pytest.raises(HamnError, match="was a primary.*maintenance is on.*hamn.rewind"):
        replica.converge_standby(cluster, cfg, "mn1", 15, dry_run=False)
    assert ran == []


def test_without_maintenance_the_rejoin_is_planned(monkeypatch):
    cluster, cfg, ran = former_primary_to_rejoin(monkeypatch, maintenance=False)
    planned = replica.converge_standby(cluster, cfg, "mn1", 15, dry_run=True)
    assert planned == {"rebuild": "it was a primary and must be rejoined (pg_rewind)"} and ran == []


def diverged_report(**changes):
    return {"diverged": True, "commits": 7, "reason": "7 commits after the fork", **changes}


@pytest.mark.parametrize("report, local_tli, blocked", [
    (diverged_report(), 1, None),
    (diverged_report(diverged=False, commits=0), 2, None),
    (diverged_report(diverged=None, commits=None, reason="another system"), 1, "divergence from the primary unknown"),
    (diverged_report(commits=None, reason="that WAL is no longer here"), 1, "no longer here"),
    (diverged_report(), 2, "both on timeline 2 with different histories"),
])
def test_rewind_blocker(report, local_tli, blocked):
    found = rewind.rewind_blocker(report, local_tli, 2)
    assert found is None if blocked is None else blocked in found


def test_a_failed_pg_rewind_hands_the_report_made_before_it_to_the_rebuild(monkeypatch, tmp_path):
    stopped_node_with_peer(monkeypatch, timeline=2, control_timeline=2)
    monkeypatch.setattr(rewind, "rewind_capable", lambda cluster: (True, "wal_log_hints on"))
    monkeypatch.setattr(rewind.postmaster, "timeline", lambda cluster: 1)
    report = diverged_report(keep_dir="/kept")
    monkeypatch.setattr(rewind.divergence, "assess_or_unknown", lambda *a, **k: report)
    steps = []
    monkeypatch.setattr(rewind.divergence, "keep", lambda cluster, r: steps.append(("keep", r)))
    monkeypatch.setattr(rewind.replication, "ensure_peer_slot", lambda *a: None)

    class Cluster:
        data_dir, pgpass = str(tmp_path), str(tmp_path / "pgpass")

        def run(self, name, *args, **kwargs):
            steps.append(name)
            raise CommandFailed([name], 1, "could not open file")

    monkeypatch.setattr(standby, "rebuild", lambda *a, **k: steps.append(("rebuild", k)) or {})
    result = rewind.rewind(Cluster(), CFG, "mn1", 15, fallback=True)
    assert steps == [("keep", report), "pg_rewind", ("rebuild", {"force": True, "timeout": 3600,
                                                                  "divergence_report": report})]
    assert result["rewind_skipped"].startswith("pg_rewind failed")


def test_a_rewound_standby_is_given_time_to_switch_to_the_primarys_timeline(monkeypatch):
    seen = iter([{"timeline": 3}, {"timeline": 3}, {"timeline": 4}])
    monkeypatch.setattr(rewind.status, "collect", lambda cluster: next(seen))
    monkeypatch.setattr(rewind.time, "sleep", lambda seconds: None)
    assert rewind._wait_timeline(object(), 4)["timeline"] == 4  # pylint: disable=protected-access


def test_a_rewound_standby_that_stays_on_the_old_timeline_is_reported_as_it_is(monkeypatch):
    monkeypatch.setattr(rewind.status, "collect", lambda cluster: {"timeline": 3})
    assert rewind._wait_timeline(object(), 4, seconds=0.05)["timeline"] == 3  # pylint: disable=protected-access
