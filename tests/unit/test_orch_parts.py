"""Master-side pieces of the orchestrations: role discovery, report, history (the lock: test_lock.py)."""

import os

import pytest

from saltext_hamn.utils.orch import discovery, history, report


def status(role, vip=False):
    return {"role": role, "vip": vip}


@pytest.mark.parametrize("answers, expected", [
    ({"mn1": status("primary", True), "mn2": status("standby")},
     {"primary": "mn1", "standby": "mn2", "vip_holder": "mn1", "split_brain": False, "unreachable": []}),
    ({"mn2": status("standby")},
     {"primary": None, "standby": "mn2", "failed": "mn1", "unreachable": ["mn1"]}),
    ({"mn1": status("primary"), "mn2": status("stopped")},
     {"primary": "mn1", "standby": "mn2"}),
    ({"mn1": status("primary", True), "mn2": status("primary", True)},
     {"primary": None, "split_brain": True}),
    ({"mn1": "ERROR: not available", "mn2": status("standby")},
     {"unreachable": ["mn1"], "failed": "mn1"}),
])
def test_roles(answers, expected):
    found = discovery.roles(["mn2", "mn1"], answers)
    assert {k: found.get(k) for k in expected} == expected


def test_report_side_by_side_with_alarms_and_the_run():
    from saltext_hamn.utils.orch.observation import NodeView, Observation

    views = {"mn1": NodeView("mn1", pg_port_open=True),
             "mn2": NodeView("mn2", status={"role": "primary", "timeline": 3, "vip": True}, pg_port_open=True)}
    alarm = {"code": "node-silent", "message": "mn1 does not answer", "action": "check its salt-minion"}
    text = report.table(Observation(nodes=views), [alarm], "last orchestration: failover done at 2026-11-25T03:00:00")
    lines = text.splitlines()
    assert lines[0].split() == ["mn1", "mn2"]
    assert lines[1].split() == ["role", "(unreachable)", "primary"]
    assert "VIP" in text and "held" in text
    assert "ALARM node-silent: mn1 does not answer -> check its salt-minion" in lines
    assert lines[-1].startswith("last orchestration: failover done at 2026-11-25T03:00:00")


def test_history_keeps_statuses_and_runs(tmp_path):
    history.remember_statuses(str(tmp_path), {"mn1": {"role": "primary", "current_lsn": "0/5000000"}})
    history.remember_statuses(str(tmp_path), {"mn2": {"role": "standby"}})
    known = history.last_statuses(str(tmp_path))
    assert known["mn1"]["status"]["current_lsn"] == "0/5000000" and "seen" in known["mn2"]
    for i in range(history.KEEP + 3):
        history.append(str(tmp_path), "switchover", "done", f"run {i}")
    runs = history.load(str(tmp_path))
    assert len(runs) == history.KEEP and runs[-1]["summary"] == f"run {history.KEEP + 2}"
    assert not [p for p in os.listdir(tmp_path) if ".json." in p]  # no temp files left
