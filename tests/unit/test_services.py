"""Services and takeover hooks as ordered steps (saltext_hamn.utils.services)."""


import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.lab import recorders
from saltext_hamn.utils import services
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.services import StepFailed
from tests.support import load

STEP_KEYS = {"name", "argv", "retcode", "stdout", "stderr", "seconds", "optional"}


@pytest.fixture
def rec(recorder_dir):
    return recorder_dir


def test_stop_in_config_order_start_in_reverse(rec):
    cfg = load()
    stopped = services.stop_services(cfg)
    started = services.start_services(cfg)
    order = ["xcatd", "dhcpd", "named", "conserver"]
    assert recorders.calls(rec) == (
        [("systemctl", f"stop {name}") for name in order]
        + [("systemctl", f"start {name}") for name in reversed(order)]
    )
    assert [step["name"] for step in stopped] == [f"stop {name}" for name in order]
    assert [step["name"] for step in started] == [f"start {name}" for name in reversed(order)]
    for step in stopped + started:
        assert set(step) == STEP_KEYS
        assert step["retcode"] == 0 and step["optional"] is False
        assert isinstance(step["seconds"], float) and step["seconds"] >= 0
    assert stopped[0]["argv"] == ["systemctl", "stop", "xcatd"]


def test_stopping_a_stopped_service_is_fine(rec):
    cfg = load()
    services.stop_services(cfg)
    assert all(step["retcode"] == 0 for step in services.stop_services(cfg))


def test_subset_keeps_configured_order(rec):
    cfg = load()
    services.stop_services(cfg, names=["named", "xcatd"])
    services.start_services(cfg, names="named,xcatd")  # the salt CLI form
    assert recorders.calls(rec) == [
        ("systemctl", "stop xcatd"), ("systemctl", "stop named"),
        ("systemctl", "start named"), ("systemctl", "start xcatd"),
    ]


def test_unknown_service_name_is_an_invocation_error(rec):
    cfg = load()
    with pytest.raises(SaltInvocationError, match="bogus, nope"):
        services.stop_services(cfg, names=["xcatd", "bogus", "nope"])
    with pytest.raises(SaltInvocationError, match="bogus"):
        services.start_services(cfg, names=["bogus"])
    assert recorders.calls(rec) == []  # nothing ran


def test_custom_service_commands_fill_service_placeholder(rec):
    cfg = load(services={
        "names": ["a", "b"],
        "stop_cmd": ["chdef", "stop-{service}.unit"],
        "start_cmd": ["lsdef", "{service}"],
    })
    services.stop_services(cfg)
    services.start_services(cfg)
    assert recorders.calls(rec) == [
        ("chdef", "stop-a.unit"), ("chdef", "stop-b.unit"), ("lsdef", "b"), ("lsdef", "a"),
    ]


def test_failing_stop_raises_with_steps(rec):
    cfg = load()
    recorders.set_failure(rec, "systemctl", 5)
    with pytest.raises(StepFailed) as info:
        services.stop_services(cfg)
    assert len(info.value.steps) == 1
    assert info.value.steps[0]["retcode"] == 5
    assert "stop xcatd failed (exit 5)" in str(info.value)
    assert len(recorders.calls(rec)) == 1


def test_service_states(rec, tmp_path):
    cfg = load()
    services.start_services(cfg, names=["xcatd", "named"])
    assert services.service_states(cfg) == {
        "xcatd": "active", "dhcpd": "inactive", "named": "active", "conserver": "inactive",
    }
    missing = load(services={"status_cmd": [str(tmp_path / "no-such-tool"), "{service}"]})
    assert set(services.service_states(missing).values()) == {"unknown"}


def test_post_promotion_default_order(rec):
    steps = services.run_hooks(load(), node="mn2")
    assert [step["name"] for step in steps] == ["makedns", "makedhcp", "makeconservercf"]
    assert recorders.calls(rec) == [("makedns", "-n"), ("makedhcp", "-a"), ("makeconservercf", "")]


def test_hook_placeholders_vip_and_node(rec):
    cfg = load(hooks={"post_promotion": [
        {"name": "point", "cmd": ["chdef", "-t", "node", "{node}", "ip={vip}", "{{literal}}"]},
    ]})
    steps = services.run_hooks(cfg, node="mn2")
    assert steps[0]["argv"] == ["chdef", "-t", "node", "mn2", "ip=198.51.100.10", "{literal}"]
    assert recorders.calls(rec) == [("chdef", "-t node mn2 ip=198.51.100.10 {literal}")]


def test_node_placeholder_without_node_fails_before_running_anything(rec):
    cfg = load(hooks={"post_promotion": [
        {"name": "first", "cmd": ["makedns"]},
        {"name": "second", "cmd": ["chdef", "{node}"]},
    ]})
    with pytest.raises(SaltInvocationError, match="post_promotion:1:cmd.*node="):
        services.run_hooks(cfg)
    assert recorders.calls(rec) == []


def test_optional_failure_is_recorded_and_sequence_continues(rec):
    cfg = load(hooks={"post_promotion": [
        {"name": "makedns", "cmd": ["makedns", "-n"], "optional": True},
        {"name": "makedhcp", "cmd": ["makedhcp", "-a"]},
    ]})
    recorders.set_failure(rec, "makedns", 2)
    steps = services.run_hooks(cfg)
    assert [(s["name"], s["retcode"], s["optional"]) for s in steps] == [
        ("makedns", 2, True), ("makedhcp", 0, False),
    ]
    assert "simulated failure" in steps[0]["stderr"]


def test_mandatory_failure_stops_the_sequence(rec):
    recorders.set_failure(rec, "makedhcp", 3)
    with pytest.raises(StepFailed) as info:
        services.run_hooks(load())
    exc = info.value
    assert isinstance(exc, HamnError) and isinstance(exc, CommandExecutionError)
    assert str(exc) == "makedhcp failed (exit 3): makedhcp: simulated failure (lab)"
    assert [(s["name"], s["retcode"]) for s in exc.steps] == [("makedns", 0), ("makedhcp", 3)]
    assert exc.step is exc.steps[-1]
    assert [name for name, _ in recorders.calls(rec)] == ["makedns", "makedhcp"]


def test_timeout_counts_as_failure(rec):
    cfg = load(hooks={"post_promotion": [
        {"name": "slow", "cmd": ["sleep", "5"], "timeout": 0.3},
        {"name": "after", "cmd": ["makedns"]},
    ]})
    with pytest.raises(StepFailed, match=r"slow failed \(exit -1\): timed out") as info:
        services.run_hooks(cfg)
    assert info.value.steps[-1]["retcode"] == -1
    assert info.value.steps[-1]["seconds"] < 3
    assert recorders.calls(rec) == []

    cfg["hooks"]["post_promotion"][0]["optional"] = True
    steps = services.run_hooks(cfg)
    assert [s["retcode"] for s in steps] == [-1, 0]


def test_missing_command_is_a_failed_step(rec, tmp_path):
    cfg = load(hooks={"post_promotion": [
        {"name": "ghost", "cmd": [str(tmp_path / "no-such-command")], "optional": True},
    ]})
    steps = services.run_hooks(cfg)
    assert steps[0]["retcode"] == 127 and "command not found" in steps[0]["stderr"]


def test_long_output_is_trimmed(rec):
    cfg = load(hooks={"post_promotion": [
        {"name": "chatty", "cmd": ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done"]},
    ]})
    step = services.run_hooks(cfg)[0]
    assert len(step["stdout"]) <= services.OUTPUT_LIMIT + 20
    assert step["stdout"].rstrip().endswith("line2999")


def test_site_commands_and_network(rec):
    steps = services.run_hooks(load(), which="site")
    assert [s["argv"] for s in steps] == [
        ["chdef", "-t", "site", "master=198.51.100.10"],
        ["chdef", "-t", "site", "nameservers=198.51.100.10"],
    ]
    assert steps[0]["name"] == "chdef -t site master=198.51.100.10"
    cfg = load(xcat={"network": "10_1_0_0-255_255_255_0"})
    services.run_hooks(cfg, which="site")
    assert recorders.calls(rec)[-1] == ("chdef", "-t network 10_1_0_0-255_255_255_0 tftpserver=198.51.100.10")


def test_diskless_reset_disabled_and_enabled(rec):
    assert services.run_hooks(load(), which="diskless_reset") == []
    assert recorders.calls(rec) == []
    cfg = load(hooks={"diskless_reset": {"enabled": True, "noderange": "compute"}})
    steps = services.run_hooks(cfg, which="diskless_reset")
    assert [(s["name"], s["argv"]) for s in steps] == [("diskless_reset", ["rpower", "compute", "reset"])]
    assert recorders.calls(rec) == [("rpower", "compute reset")]
    recorders.set_failure(rec, "rpower", 1)
    with pytest.raises(StepFailed, match="diskless_reset failed"):
        services.run_hooks(cfg, which="diskless_reset")


def test_unknown_hook_kind(rec):
    with pytest.raises(SaltInvocationError, match="which: expected one of"):
        services.run_hooks(load(), which="pre_promotion")
