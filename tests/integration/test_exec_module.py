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
