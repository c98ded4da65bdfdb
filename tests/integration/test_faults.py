"""The fault matrix, in a lab of its own, with a sampler running through every test.

Every 200 ms the sampler asks both nodes' PostgreSQL whether it is in recovery and
both namespaces whether they hold the VIP; a test fails on any sample with two
writable primaries or two VIP holders, not only on the end state. The tests hand
the pair on from one to the next (whichever node is primary)."""

import glob
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from saltext_hamn.lab import drill, fence, netns, recorders, saltd
from saltext_hamn.lab.lab import processes_under
from saltext_hamn.utils import proc
from saltext_hamn.utils.pg import connection
from tests.support import own_lab

pytestmark = [pytest.mark.root, pytest.mark.postgres]
BEGIN = "begin the {}: lock, observe both nodes, decide"


@pytest.fixture(scope="module")
def lab(lab_spec):
    with own_lab(lab_spec, "x", "faults") as lab:
        lab.prepare()
        lab.up_salt()
        ok, steps = drill.orchestrate(lab.spec, "setup")
        assert ok, steps
        lab.xcat_database(lab.current_primary())
        yield lab


def run(lab, name, **kwargs):
    ok, steps = drill.orchestrate(lab.spec, name, **kwargs)
    return ok, {ident: (result, comment) for ident, result, _, comment in steps}


def other(node):
    return "mn2" if node == "mn1" else "mn1"


def in_recovery(lab, node):
    with connection.session(lab.cluster(node)) as conn:
        return connection.scalar(conn, "SELECT pg_is_in_recovery()")


def salt_run(lab, *args, timeout=120):
    return proc.run(saltd.salt_cmd(lab.spec, *args, runner=True), check=False, timeout=timeout)


def assert_healthy(lab, primary):
    result = salt_run(lab, "hamn.check")
    assert result.returncode == 0, result.stdout
    assert f"{primary} primary" in result.stdout
    assert lab.current_primary() == primary


def restart_minion(lab, node):
    saltd.start_minion(lab.spec, node)
    saltd.wait_minion_ready(lab.spec, node)


def refresh_pillar(lab, *nodes):
    proc.run(saltd.salt_cmd(lab.spec, "-L", ",".join(nodes), "saltutil.refresh_pillar", "wait=True", "-t", "20"),
             check=False, timeout=60)


def set_fence_cmd(lab, cmd, nodes):
    path = lab.spec.lab_dir / "pillar" / "hamn.sls"
    data = yaml.safe_load(path.read_text())
    data["hamn"]["fence"]["cmd"] = cmd
    path.write_text(yaml.safe_dump(data))
    refresh_pillar(lab, *nodes)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def standby_signal(lab, node):
    return os.path.exists(os.path.join(lab.cluster(node).data_dir, "standby.signal"))


def start_by_hand(lab, node):
    """What systemd or an admin does at boot: pg_ctl start, nothing else."""
    cluster = lab.cluster(node)
    cluster.run("pg_ctl", "start", "-D", cluster.data_dir, "-w", "-l", cluster.server_log, timeout=70)


def test_failover_on_a_healthy_pair_is_refused(lab, sampler):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    before = recorders.calls(lab.spec.node_dir(primary))
    ok, steps = run(lab, "failover")
    assert not ok
    comment = steps[BEGIN.format("failover")][1]
    assert f"{primary} is a healthy primary" in comment and "hamn.switchover" in comment
    assert "\n" not in comment and "Traceback" not in comment
    assert recorders.calls(lab.spec.node_dir(primary)) == before  # nothing was stopped
    assert_healthy(lab, primary)


def test_a_runner_error_is_one_line_and_a_failure(lab):
    result = salt_run(lab, "hamn.demote", "mn9")
    assert result.returncode != 0
    assert "node: expected one of mn1, mn2, got 'mn9'" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    result = salt_run(lab, "hamn.demote", "node=[1, 2]")  # a TypeError inside the runner (unhashable list)
    assert result.returncode != 0, result.stdout
    assert "internal error (TypeError" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_standby_minion_dead_leaves_the_primary_alone(lab, sampler):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    standby = other(primary)
    before = recorders.calls(lab.spec.node_dir(primary))
    drill.kill_node_services(lab.spec, standby, names=("salt-minion",))
    try:
        ok, steps = run(lab, "failover")
        assert not ok
        assert f"{standby} (standby) does not answer: nothing to fail over" in steps[BEGIN.format("failover")][1]
        assert recorders.calls(lab.spec.node_dir(primary)) == before
        assert lab.current_primary() == primary and in_recovery(lab, standby)
    finally:
        restart_minion(lab, standby)
    assert_healthy(lab, primary)


def test_primary_minion_dead_with_postgres_alive_needs_a_fence(lab, sampler):
    old = lab.current_primary()
    new = other(old)
    fence_cmd = [str(lab.spec.lab_dir / "bin" / "fence"), "{node}"]
    drill.kill_node_services(lab.spec, old, names=("salt-minion",))
    set_fence_cmd(lab, None, [new])
    try:
        ok, steps = run(lab, "failover")
        assert not ok
        comment = steps[BEGIN.format("failover")][1]
        assert "its PostgreSQL port still answers" in comment and "no fence command" in comment
        assert lab.current_primary() == old and in_recovery(lab, new)  # no second writer was made
    finally:
        set_fence_cmd(lab, fence_cmd, [new])
    ok, steps = run(lab, "failover")
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    assert fence.fenced(lab.spec)[-1] == old
    assert lab.current_primary() == new
    # The fenced node boots: its first contact demotes it, so a start by hand is read-only.
    restart_minion(lab, old)
    wait_for(lambda: standby_signal(lab, old), 30, f"the first-contact demotion of {old}")
    start_by_hand(lab, old)
    assert in_recovery(lab, old) is True
    assert sampler.writers()[new] > 0
    ok, steps = run(lab, "rejoin")
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    assert_healthy(lab, new)


def test_primary_isolated_then_back_keeps_its_diverged_commits(lab, sampler):  # pylint: disable=unused-argument
    old = lab.current_primary()
    new = other(old)
    with connection.session(lab.cluster(old), "xcatdb") as conn:
        connection.query(conn, "CREATE TABLE IF NOT EXISTS fault_rows (id int)")
    time.sleep(1)  # replicated before the cut
    netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(old), "down")
    try:
        with connection.session(lab.cluster(old), "xcatdb") as conn:
            for i in range(3):  # acknowledged by the isolated primary, never seen by the standby
                connection.query(conn, "INSERT INTO fault_rows VALUES (%s)", (i,))
        ok, steps = run(lab, "failover")
        assert ok, steps
        assert fence.fenced(lab.spec)[-1] == old
    finally:
        netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(old), "up")
    restart_minion(lab, old)
    wait_for(lambda: standby_signal(lab, old), 30, f"the first-contact demotion of {old}")
    start_by_hand(lab, old)
    assert in_recovery(lab, old) is True
    ok, steps = run(lab, "rejoin")
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    reports = sorted(glob.glob(str(lab.spec.node_dir(old) / "hamn-diverged" / "*" / "report.json")))
    assert reports, "the diverged commits were not kept"
    report = json.loads(open(reports[-1], encoding="utf-8").read())
    assert report["commits"] == 3 and report["diverged"] is True
    assert "kept 3 diverged commits" in steps["rejoin the node as standby of the primary (diverged commits kept)"][1]
    assert_healthy(lab, new)


def test_old_primary_started_by_hand_after_failover_is_read_only(lab, sampler):  # pylint: disable=unused-argument
    old = lab.current_primary()
    new = other(old)
    drill.kill_node_services(lab.spec, old, names=("postgres",))  # its minion answers
    ok, steps = run(lab, "failover")
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    assert steps["stop PostgreSQL on the old primary, boot-safe (any later start is a standby)"][0] is True
    start_by_hand(lab, old)
    assert in_recovery(lab, old) is True
    ok, steps = run(lab, "rejoin")
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    assert_healthy(lab, new)


def test_two_orchestrations_at_once(lab, sampler):  # pylint: disable=unused-argument
    old = lab.current_primary()
    lock = lab.spec.lab_dir / "salt" / "master" / "var" / "cache" / "salt" / "master" / "hamn" / "orchestration.lock"
    # A switchover takes ~3.5 s, less than a second salt-run needs to start and decide:
    # a slow post-promotion hook keeps the first run alive while the second one tries.
    slow_node = lab.spec.node_dir(other(old))
    recorders.set_delay(slow_node, "makeconservercf", 10)
    first = subprocess.Popen(saltd.salt_cmd(lab.spec, "state.orchestrate", "hamn.switchover", "--out=json",
                                            runner=True), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lock.exists, 30, "the first run's lock")
        ok, steps = run(lab, "failover")
        assert not ok
        assert "another hamn orchestration is running: switchover" in steps[BEGIN.format("failover")][1]
    finally:
        out, _ = first.communicate(timeout=300)
        recorders.set_delay(slow_node, "makeconservercf", None)
    assert json.loads(out)["retcode"] == 0
    assert not lock.exists()
    assert_healthy(lab, other(old))


def _runs_dir(lab):
    return lab.spec.lab_dir / "salt" / "master" / "var" / "cache" / "salt" / "master" / "hamn" / "runs"


def _start_switchover_and_wait_for(lab, step):
    before = set(glob.glob(str(_runs_dir(lab) / "*.json")))
    process = subprocess.Popen(saltd.salt_cmd(lab.spec, "state.orchestrate", "hamn.switchover", "--out=json",
                                              runner=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)

    def started():
        for path in set(glob.glob(str(_runs_dir(lab) / "*.json"))) - before:
            try:
                run_record = json.loads(open(path, encoding="utf-8").read())
            except ValueError:
                return False
            return run_record["steps"].get(step, {}).get("state") in ("started", "done")
        return False

    wait_for(started, 90, f"step {step}")
    return process


SWITCHOVER_STEPS = ["release-old", "switch", "settle", "verify"]


@pytest.mark.parametrize("step", SWITCHOVER_STEPS)
def test_salt_run_killed_at_a_switchover_step_then_rerun(lab, sampler, step):  # pylint: disable=unused-argument
    old = lab.current_primary()
    process = _start_switchover_and_wait_for(lab, step)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    status = salt_run(lab, "hamn.status").stdout
    assert "UNFINISHED: switchover" in status and "hamn.recover" in status
    ok, steps = run(lab, "switchover")  # the same orchestration again: it resumes, never switches back
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    assert "resuming the interrupted switchover" in steps[BEGIN.format("switchover")][1]
    assert_healthy(lab, other(old))


@pytest.mark.parametrize("step", SWITCHOVER_STEPS)
def test_master_killed_at_a_switchover_step_then_rerun(lab, sampler, step):  # pylint: disable=unused-argument
    old = lab.current_primary()
    process = _start_switchover_and_wait_for(lab, step)
    masters = [pid for pid, cmd in processes_under(lab.spec.lab_dir) if "salt-master" in cmd]
    assert masters
    for pid in masters:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not any(saltd.alive(p) for p in masters), 10, "the master to die")
    saltd.start_master(lab.spec)
    process.wait(timeout=60)  # salt-run gives up quickly, it does not wait minutes
    assert time.monotonic() - killed < 60
    lab._wait_ping()  # pylint: disable=protected-access
    status = salt_run(lab, "hamn.status").stdout
    assert "UNFINISHED: switchover" in status
    ok, steps = run(lab, "switchover")  # resumes towards the interrupted run's goal
    assert ok, {k: v for k, v in steps.items() if v[0] is False} or steps
    assert "resuming the interrupted switchover" in steps[BEGIN.format("switchover")][1]
    assert_healthy(lab, other(old))
