"""The hamn execution module through a real master and the two lab minions."""

import pytest

pytestmark = [pytest.mark.root, pytest.mark.postgres]


def test_status_shows_one_primary_and_one_streaming_standby(salt_cli):
    ret = salt_cli.run("hamn.status", minion_tgt="*")
    assert ret.returncode == 0, ret
    roles = {node: info["role"] for node, info in ret.data.items()}
    assert roles == {"mn1": "primary", "mn2": "standby"}
    standby = ret.data["mn2"]
    assert standby["wal_receiver"]["status"] == "streaming"
    assert isinstance(standby["lag_bytes"], int)
    assert ret.data["mn1"]["standbys"][0]["name"] == "mn2"
    assert ret.data["mn1"]["peer"] == "mn2" and ret.data["mn2"]["maintenance"] is False
    assert all(info["seconds"] < 0.5 for info in ret.data.values())


def test_verify_replication_through_salt(salt_cli):
    ret = salt_cli.run("hamn.verify_replication", minion_tgt="mn1")
    assert ret.returncode == 0, ret
    assert ret.data["standby"] == "198.51.100.12"


def test_runtime_failure_is_a_nonzero_retcode(salt_cli):
    """On the standby, verify_replication raises CommandExecutionError: retcode != 0."""
    ret = salt_cli.run("hamn.verify_replication", minion_tgt="mn2")
    assert ret.returncode != 0
    assert "run verify_replication on the primary" in ret.stdout


def test_bad_argument_is_an_invocation_error(salt_cli):
    ret = salt_cli.run("hamn.wait_for_lsn", "not-an-lsn", minion_tgt="mn2")
    assert ret.returncode != 0
    assert "expected an LSN" in ret.stdout
    ret = salt_cli.run("hamn.stop_db", mode="sideways", minion_tgt="mn2")
    assert ret.returncode != 0 and "expected smart, fast or immediate" in ret.stdout


def test_vip_moves_only_when_free(salt_cli):
    up = salt_cli.run("hamn.vip_up", minion_tgt="mn1")
    assert up.returncode == 0, up
    assert salt_cli.run("hamn.vip_status", minion_tgt="mn1").data["held"] is True
    refused = salt_cli.run("hamn.vip_up", minion_tgt="mn2")
    assert refused.returncode != 0
    assert "198.51.100.10 is in use" in refused.stdout
    assert salt_cli.run("hamn.vip_status", minion_tgt="mn2").data["held"] is False
    assert salt_cli.run("hamn.vip_down", minion_tgt="mn1").data["changed"] is True
    moved = salt_cli.run("hamn.vip_up", minion_tgt="mn2")
    assert moved.returncode == 0 and moved.data["changed"] is True, moved
    status = salt_cli.run("hamn.status", minion_tgt="*").data
    assert (status["mn1"]["vip"], status["mn2"]["vip"]) == (False, True)
    assert salt_cli.run("hamn.vip_down", minion_tgt="mn2").returncode == 0
    assert salt_cli.run("hamn.vip_down", minion_tgt="mn2").data["changed"] is False


def test_services_and_hooks_run_in_order_and_fail_clearly(salt_cli, lab):
    from saltext_hamn.lab import recorders

    node_dir = lab.spec.node_dir("mn2")
    before = len(recorders.calls(node_dir))
    assert salt_cli.run("hamn.services_stop", minion_tgt="mn2").returncode == 0
    assert salt_cli.run("hamn.services_start", minion_tgt="mn2").returncode == 0
    states = salt_cli.run("hamn.services_status", minion_tgt="mn2").data
    assert set(states.values()) == {"active"}
    ok = salt_cli.run("hamn.run_hooks", minion_tgt="mn2")
    assert ok.returncode == 0, ok
    assert [s["name"] for s in ok.data] == ["makedns", "makedhcp", "makeconservercf"]
    calls = [c for c in recorders.calls(node_dir)[before:] if c[0] != "systemctl" or "is-active" not in c[1]]
    assert calls == [
        ("systemctl", "stop xcatd"), ("systemctl", "stop dhcpd"), ("systemctl", "stop named"),
        ("systemctl", "stop conserver"),
        ("systemctl", "start conserver"), ("systemctl", "start named"), ("systemctl", "start dhcpd"),
        ("systemctl", "start xcatd"),
        ("makedns", "-n"), ("makedhcp", "-a"), ("makeconservercf", ""),
    ]
    recorders.set_failure(node_dir, "makedhcp", 2)
    try:
        failed = salt_cli.run("hamn.run_hooks", minion_tgt="mn2")
    finally:
        recorders.set_failure(node_dir, "makedhcp", None)
    assert failed.returncode != 0
    assert "makedhcp failed (exit 2)" in failed.stdout
    assert recorders.calls(node_dir)[-1] == ("makedhcp", "-a")  # makeconservercf never ran


def test_preflight_on_both_nodes_and_compare(salt_cli):
    import time

    from saltext_hamn.utils import preflight

    import re

    sent = time.time()
    ret = salt_cli.run("hamn.preflight", reference_time=sent, minion_tgt="*")
    round_trip = time.time() - sent
    assert ret.returncode == 0, ret
    for node, report in ret.data.items():
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["subnet"]["ok"], checks["subnet"]
        # The reference time is taken before the salt CLI starts (~1 s, more on a busy
        # machine): the minions' clocks read later, never earlier nor after the return.
        offset = float(re.search(r"offset ([+-]?[0-9.]+)s", checks["clock"]["reason"]).group(1))
        assert checks["clock"]["ok"] or 0 <= offset <= round_trip, (checks["clock"], round_trip)
        assert checks["rewind_ready"]["ok"], checks["rewind_ready"]
        assert report["versions"]["xcat"] == "2.16.5"
    compared = {c["name"]: c["ok"] for c in preflight.compare(ret.data)}
    assert compared == {"same_postgres_version": True, "same_os_version": True, "same_xcat_version": True}
