"""hamn.replica_configured through Salt, on the session lab's running pair."""

import os

import pytest

from saltext_hamn.utils.pg import conf

pytestmark = [pytest.mark.root, pytest.mark.postgres]


def state_ret(ret):
    assert ret.data, ret
    return next(iter(ret.data.values()))


def test_configured_pair_reports_no_changes(salt_cli):
    for node, role in (("mn1", "primary"), ("mn2", "standby")):
        ret = salt_cli.run("state.apply", "hamn.replication", minion_tgt=node)
        assert ret.returncode == 0, ret
        result = state_ret(ret)
        assert result["result"] is True and result["changes"] == {}
        assert result["comment"].startswith(f"{role}: replication is configured")


def test_test_mode_shows_would_be_changes_and_touches_nothing(salt_cli, lab):
    hamn_conf = os.path.join(lab.cluster("mn1").data_dir, conf.SETTINGS_FILE)
    before = open(hamn_conf, encoding="utf-8").read()
    ret = salt_cli.run("state.apply", "hamn.replication", test=True, minion_tgt="mn1",
                       pillar={"hamn": {"postgres": {"wal": {"keep_size": "2GB"}}}})
    result = state_ret(ret)
    assert result["result"] is None, result
    assert result["changes"] == {"primary": {"files": ["hamn.conf"], "server": "reload"}}
    assert open(hamn_conf, encoding="utf-8").read() == before


def test_invalid_pillar_fails_the_state_with_the_key_path(salt_cli):
    ret = salt_cli.run("state.apply", "hamn.replication", minion_tgt="mn2",
                       pillar={"hamn": {"postgres": {"replication": {"mode": "semi-sync"}}}})
    assert ret.returncode != 0
    result = state_ret(ret)
    assert result["result"] is False
    assert "hamn:postgres:replication:mode" in result["comment"]
