"""Status alarms over a table of pair states: each names its fix."""

import pytest

from saltext_hamn.utils.orch import alarms
from saltext_hamn.utils.orch.observation import UnfinishedRun
from tests.unit.test_decide import SILENT, obs, primary, standby, stopped


def codes(observation):
    found = alarms.alarms(observation)
    assert all(a["action"] for a in found)
    return [a["code"] for a in found]


@pytest.mark.parametrize("observation, expected", [
    (obs(primary(), standby()), []),
    (obs(primary(timeline=2), primary(timeline=3, vip=False)), ["split-brain"]),
    (obs(stopped(), standby(streaming=False)), ["no-primary"]),
    (obs(primary(vip=False), standby()), ["vip-nowhere"]),
    (obs(primary(vip=False), standby(vip=True)), ["vip-on-standby"]),
    (obs(primary(), standby(vip=True)), ["vip-twice", "vip-on-standby"]),
    (obs(primary(), standby(streaming=False)), ["standby-not-streaming"]),
    (obs(primary(), stopped()), ["standby-not-streaming"]),
    (obs(primary(), SILENT), ["node-silent"]),
    (obs(primary(), ("error", "hamn:vip: bad")), ["node-error"]),
    (obs(primary(services={"xcatd": "active"}), standby(services={"xcatd": "active"})), ["services-on-both"]),
    (obs(primary(maintenance=True), standby()), ["maintenance"]),
])
def test_alarm_table(observation, expected):
    assert sorted(codes(observation)) == sorted(expected)


def test_split_brain_names_the_node_to_demote_and_an_unfinished_run_its_fix():
    found = alarms.alarms(obs(primary(timeline=2), primary(timeline=3, vip=False)))
    assert "salt-run hamn.demote mn1" in found[0]["action"]
    unfinished = obs(stopped(), standby(streaming=False),
                     unfinished=UnfinishedRun("switchover", "0123456789abcdef", "mn1", "mn2", "handover"))
    run_alarm = next(a for a in alarms.alarms(unfinished) if a["code"] == "unfinished-run")
    assert "stopped after step handover" in run_alarm["message"] and "hamn.recover" in run_alarm["action"]


def test_a_deposed_node_running_writable_again():
    record = {"primary": "mn2", "deposed": {"mn1": {}}}
    found = codes(obs(primary(timeline=2), primary(timeline=3, vip=False), record=record))
    assert found[0] == "split-brain"
    demote = alarms.alarms(obs(primary(timeline=2), primary(timeline=3, vip=False), record=record))[0]["action"]
    assert "hamn.demote mn1" in demote


def test_automation_alarms_name_what_keeps_it_from_acting():
    from saltext_hamn.utils.orch.alarms import automation_alarms

    auto = {"state": "paused: automatic failover mn1 -> mn2 failed (by hamn)", "paused_by": "hamn",
            "rejoin_failed": {"error": "pg_rewind failed"},
            "nodes": {"mn1": {"heartbeat_age": 0.5, "lease_unreachable": True},
                      "mn2": {"heartbeat_age": 40.0, "lease_unreachable": True}}}
    codes = [a["code"] for a in automation_alarms(auto)]
    assert codes == ["auto-paused", "auto-rejoin-failed", "lease-unreachable"]
    assert "mn1" in automation_alarms(auto)[2]["message"]  # mn2 is silent: node-silent says it, not this
    assert automation_alarms({"state": "paused: by admin (by admin)", "paused_by": "admin", "nodes": {}}) == []
