"""The foundation in the lab: a real master and two minions in the node namespaces."""

import pytest

from saltext_hamn.lab import recorders
from saltext_hamn.lab.spec import NODE_ADDRESSES

pytestmark = [pytest.mark.root, pytest.mark.postgres]


def test_minions_answer_from_their_namespaces(salt_cli, lab):
    for node, address in NODE_ADDRESSES.items():
        ret = salt_cli.run("network.ip_addrs", minion_tgt=node)
        assert ret.returncode == 0, ret
        assert address in ret.data
        # Each minion sees only its own node address, never the peer's.
        other = next(a for n, a in NODE_ADDRESSES.items() if n != node)
        assert other not in ret.data


def test_extension_is_loaded_on_both_minions(salt_cli):
    for node in NODE_ADDRESSES:
        ret = salt_cli.run("sys.list_functions", "hamn", minion_tgt=node)
        assert ret.returncode == 0, ret
        assert "hamn.config" in ret.data


def test_pillar_is_validated_and_password_redacted(salt_cli, lab):
    ret = salt_cli.run("hamn.config", minion_tgt="mn2")
    assert ret.returncode == 0, ret
    assert ret.data["postgres"]["data_dir"] == str(lab.spec.node_dir("mn2") / "pgdata")
    assert ret.data["postgres"]["replication"]["password"] == "**redacted**"
    assert lab._secrets()["replication_password"] not in ret.stdout


def test_bad_pillar_fails_the_state_with_the_key_path(salt_cli):
    ok = salt_cli.run("state.apply", "hamn", minion_tgt="mn1")
    assert ok.returncode == 0, ok
    bad = salt_cli.run("state.apply", "hamn", minion_tgt="mn1", pillar={"hamn": {"vip": {"prefix": "abc"}}})
    assert bad.returncode != 0
    assert "hamn:vip:prefix: expected an integer from 1 to 32, got 'abc'" in bad.stdout


def test_recorders_are_first_on_the_minion_path(salt_cli, lab):
    mn1, mn2 = lab.spec.node_dir("mn1"), lab.spec.node_dir("mn2")
    seen1, seen2 = len(recorders.calls(mn1)), len(recorders.calls(mn2))
    ret = salt_cli.run("cmd.run_all", "makedns -n", minion_tgt="mn1", python_shell=False)
    assert ret.returncode == 0, ret
    assert ret.data["retcode"] == 0
    assert recorders.calls(mn1)[seen1:] == [("makedns", "-n")]
    assert recorders.calls(mn2)[seen2:] == []  # each node has its own recorders
    recorders.set_failure(lab.spec.node_dir("mn1"), "makedhcp", 3)
    try:
        ret = salt_cli.run("cmd.run_all", "makedhcp -a", minion_tgt="mn1", python_shell=False)
        assert ret.data["retcode"] == 3
        assert "simulated failure" in ret.data["stderr"]
    finally:
        recorders.set_failure(lab.spec.node_dir("mn1"), "makedhcp", None)


def test_replication_streams_and_canary_passes_through_the_vip(lab):
    status = lab.status()
    assert status["nodes"]["mn1"]["postgres"] == "primary"
    assert status["nodes"]["mn2"]["postgres"] == "standby"
    assert status["nodes"]["mn2"]["wal_receiver"] == "streaming"
    token = lab.canary_through_vip(timeout=10)
    assert token.startswith("canary-")
    # The VIP answers from the primary's namespace only.
    assert lab.status()["nodes"]["mn1"]["vip"] is True
    assert lab.status()["nodes"]["mn2"]["vip"] is False
