"""Automatic failover, in a lab of its own armed like `hamn-lab up`: heartbeat beacon
on both minions, heartbeat reactor on the master, lease watchdogs on both nodes.

Nobody types a failover here: a fault is made, and the test waits for what the
pair does by itself. The sampler (every 200 ms: writable primaries, VIP holders)
runs through every case; any sample with two writers or two VIP holders fails it.
Each case runs HAMN_FAULT_TRIALS times (default 3; `make faults TRIALS=N`).
"""

import json
import math
import os
import shutil
import subprocess
import time

import pytest
import yaml

from saltext_hamn.lab import drill, netns, saltd
from saltext_hamn.lab.client import VipWriter
from saltext_hamn.lab.spec import NODE_ADDRESSES, WITNESS_ADDRESS
from saltext_hamn.utils import proc
from saltext_hamn.utils.auto import witness
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import connection
from tests.support import own_lab

pytestmark = [pytest.mark.root, pytest.mark.postgres]
TRIALS = range(int(os.environ.get("HAMN_FAULT_TRIALS", "3")))
COOLDOWN = 4  # seconds; short so that trials can follow each other (the shipped default is 300)


@pytest.fixture(scope="module")
def lab(lab_spec):
    with own_lab(lab_spec, "a", "auto", automation=True) as lab:
        lab.prepare()
        path = lab.spec.lab_dir / "pillar" / "hamn.sls"
        data = yaml.safe_load(path.read_text())
        data["hamn"]["heartbeat"] = {"cooldown": COOLDOWN}
        # No fence command: the cut-off primary must fence itself through its lease
        # (the lab's "power off" fence would kill it, proving nothing about the lease).
        data["hamn"]["fence"]["cmd"] = None
        path.write_text(yaml.safe_dump(data))
        lab.up_salt()
        ok, steps = drill.orchestrate(lab.spec, "setup")
        assert ok, steps
        lab.xcat_database(lab.current_primary())
        wait_armed(lab)
        try:
            yield lab
        finally:
            keep_logs(lab)


def keep_logs(lab):
    """HAMN_KEEP_LOGS=DIR: copy the daemons' and watchdogs' logs there before the teardown."""
    target = os.environ.get("HAMN_KEEP_LOGS")
    if not target:
        return
    for pattern in ("salt/*/var/log/salt/*", "*/lease/lease.log", "*/postgresql.log",
                    "salt/master/var/cache/salt/master/hamn/*.json",  # the automation's state and decisions
                    "salt/master/var/cache/salt/master/hamn/runs/*.json"):
        for path in lab.spec.lab_dir.glob(pattern):
            dest = os.path.join(target, str(path.relative_to(lab.spec.lab_dir)).replace("/", "_"))
            os.makedirs(target, exist_ok=True)
            shutil.copyfile(path, dest)


@pytest.fixture(autouse=True)
def healthy_pair(lab):
    """After each case, whatever it left: links up, minions and master running, the pair
    healthy and armed; so that one failing case does not fail the ones after it."""
    yield
    for node in lab.spec.nodes:
        netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(node), "up", check=False)
        for address in (*NODE_ADDRESSES.values(), WITNESS_ADDRESS):
            netns.ip("-n", lab.spec.node_ns(node), "route", "del", "blackhole", f"{address}/32", check=False)
        netns.ip("-n", lab.spec.witness_ns, "route", "del", "blackhole", f"{NODE_ADDRESSES[node]}/32", check=False)
        (lab.spec.node_dir(node) / "fail" / "systemctl").unlink(missing_ok=True)
    saltd.start_master(lab.spec)
    for node in lab.spec.nodes:
        if saltd.start_minion(lab.spec, node):
            saltd.wait_minion_ready(lab.spec, node)
    if salt_run(lab, "hamn.check").returncode != 0:
        for name in ("recover", "rejoin"):
            orchestrate_when_free(lab, name)
    salt_run(lab, "hamn.resume")
    wait_armed(lab, timeout=120)


# --------------------------------------------------------------------------- helpers


def other(node):
    return "mn2" if node == "mn1" else "mn1"


def salt_run(lab, *args, timeout=60):
    return proc.run(saltd.salt_cmd(lab.spec, *args, runner=True), check=False, timeout=timeout)


class _MasterFiles:  # what witness.summary reads: the master's hamn cache directory
    def __init__(self, lab):
        self.dir = str(lab.spec.lab_dir / "salt" / "master" / "var" / "cache" / "salt" / "master" / "hamn")


def automation(lab):
    """What ``salt-run hamn.automation`` returns, read from the master's files: the runner
    is a thin wrapper around the same call, and a salt-run process costs ~1 s of
    CPU, polled every half second by every case. test_a_salt_run_sees_what_the_tests_read
    checks the two agree."""
    return witness.automation(_MasterFiles(lab))


def automation_via_salt(lab):
    result = salt_run(lab, "hamn.automation", "--out=json")
    return json.loads(result.stdout)


def wait_for(predicate, timeout, what, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # pylint: disable=broad-except
            value = False  # e.g. PostgreSQL refusing connections while it restarts
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def wait_armed(lab, timeout=60):
    """Both heartbeats fresh, the automation armed and the primary's lease enforced."""
    primary = lab.current_primary()

    def armed():
        auto = automation(lab)
        nodes = auto.get("nodes") or {}
        fresh = all((nodes.get(n) or {}).get("heartbeat_age") is not None
                    and nodes[n]["heartbeat_age"] < 3 for n in lab.spec.nodes)
        lease = str((nodes.get(primary) or {}).get("lease"))
        # The master renews now (a restarted master's reactor takes seconds to start).
        renewed = (nodes.get(primary) or {}).get("renewed_ago")
        return (auto.get("state") == "armed" and fresh and lease.startswith("enforced")
                and renewed is not None and renewed < 2)

    wait_for(armed, timeout, "the automation to be armed", every=0.5)


def lost_commits(lab, node, writer, table):
    """The writer's acknowledged ids that ``node`` (the primary now) does not have."""
    with connection.session(lab.cluster(node), "xcatdb") as conn:
        stored = {row[0] for row in connection.query(conn, f"SELECT id FROM {table}")}
    return sorted(set(writer.acked) - stored)


def in_recovery(lab, node):
    with connection.session(lab.cluster(node)) as conn:
        return connection.scalar(conn, "SELECT pg_is_in_recovery()")


def pg_running(lab, node):
    from saltext_hamn.utils.pg import postmaster  # pylint: disable=import-outside-toplevel

    cluster = lab.cluster(node)
    return postmaster.is_running(cluster)


def standby_signal(lab, node):
    return os.path.exists(os.path.join(lab.cluster(node).data_dir, "standby.signal"))


def start_by_hand(lab, node):
    """What systemd or an admin does at boot: pg_ctl start, nothing else (once the killed
    postmaster is reaped, as it would be after a reboot: PostgreSQL refuses to start
    while the pid in postmaster.pid exists, even as a zombie)."""
    from saltext_hamn.utils.pg import postmaster  # pylint: disable=import-outside-toplevel

    cluster = lab.cluster(node)
    postmaster._wait_reaped(cluster, 30)  # pylint: disable=protected-access
    cluster.run("pg_ctl", "start", "-D", cluster.data_dir, "-w", "-l", cluster.server_log, timeout=70)


def restart_minion(lab, node):
    saltd.start_minion(lab.spec, node)
    saltd.wait_minion_ready(lab.spec, node)


def orchestrate_when_free(lab, name, timeout=60):
    """Run an orchestration once the automatic run that holds the lock (its services and hooks
    run on after the VIP is up) has ended."""
    deadline = time.monotonic() + timeout
    while True:
        ok, steps = drill.orchestrate(lab.spec, name)
        busy = any("another hamn orchestration is running" in str(step[3]) for step in steps)
        if ok or not busy or time.monotonic() > deadline:
            return ok, steps
        time.sleep(1)


def rejoin(lab, old, new):
    """After a failover: the old node back as the new primary's standby, automation armed again."""
    ok, steps = orchestrate_when_free(lab, "rejoin")
    assert ok, [s for s in steps if not s[1]] or steps
    assert lab.current_primary() == new and in_recovery(lab, old)
    wait_armed(lab)


def wait_takeover(lab, new, timeout):
    """drill.wait_primary; when it times out, the failure says what the automation decided
    meanwhile, its last actions, the leases and the last failover run's steps."""
    seen, started = [], time.monotonic()

    def watch():
        decision = automation(lab).get("decision") or {}
        key = (decision.get("code"), decision.get("reason"))
        if not seen or seen[-1][1:] != key:
            seen.append((round(time.monotonic() - started, 1), *key))

    try:
        return drill.wait_primary(lab, new, timeout=timeout, watch=watch)
    except HamnError as exc:
        auto = automation(lab)
        run_id = (auto.get("last_failover") or {}).get("run")
        steps = None
        if run_id:
            path = os.path.join(_MasterFiles(lab).dir, "runs", f"{run_id}.json")
            with open(path, encoding="utf-8") as handle:
                steps = {k: (v.get("state"), v.get("comment")) for k, v in json.load(handle)["steps"].items()}
        raise AssertionError(f"{exc}\ndecisions seen: {seen}\nlast actions: {auto.get('history', [])[-3:]}\n"
                             f"nodes: {auto.get('nodes')}\nlast failover: {auto.get('last_failover')}, "
                             f"steps: {steps}") from exc


def history(lab):
    """The automation's recent actions (auto-restart, auto-failover, auto-rejoin)."""
    return automation(lab).get("history") or []


def last_failover_run(lab):
    return (automation(lab).get("last_failover") or {}).get("run")


def auto_failovers(lab):
    return [e for e in history(lab) if e.get("name") == "auto-failover"]


def blackhole(lab, node, address, on=True):
    """Drop this node's traffic to ``address`` (inside the node's namespace only)."""
    netns.ip("-n", lab.spec.node_ns(node), "route", "add" if on else "del", "blackhole", f"{address}/32",
             check=on)


def blackhole_witness(lab, address, on=True):
    netns.ip("-n", lab.spec.witness_ns, "route", "add" if on else "del", "blackhole", f"{address}/32",
             check=on)


def still_primary_throughout(lab, sampler, primary, since):
    samples = [s for s in sampler.samples if s[0] >= since]
    assert samples, "no samples"
    down = [s for s in samples if not s[1][primary]]
    assert not down, f"{primary} stopped being writable at {len(down)} of {len(samples)} samples"


# --------------------------------------------------------------------------- faults that must heal


def test_a_salt_run_sees_what_the_tests_read(lab):
    """The tests read the automation's state from the master's files; the runner agrees."""
    via_salt, direct = automation_via_salt(lab), automation(lab)
    for key in ("state", "paused_by", "rejoin_failed", "last_failover", "history", "alarms"):
        assert via_salt.get(key) == direct.get(key), key
    assert (via_salt["decision"] or {}).get("code") and sorted(via_salt["nodes"]) == sorted(direct["nodes"])



@pytest.mark.parametrize("trial", TRIALS)
def test_postgres_killed_on_the_primary_is_restarted_in_place(lab, sampler, trial):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    standby = other(primary)
    before = last_failover_run(lab)
    killed = time.monotonic()
    drill.kill_node_services(lab.spec, primary, names=("postgres",))
    wait_for(lambda: pg_running(lab, primary) and in_recovery(lab, primary) is False, 20,
             f"{primary}'s PostgreSQL restarted in place")
    print(f"[auto] restart in place: writable again {time.monotonic() - killed:.2f} s after the kill")
    assert sampler.writers()[standby] == 0, "the standby was promoted"
    assert last_failover_run(lab) == before, "an automatic failover happened"
    # Recorded once the master's own probe saw the port open again: a moment later.
    wait_for(lambda: any(e.get("name") == "auto-restart" and e.get("result") == "done" for e in history(lab)),
             10, "the restart's record")
    wait_armed(lab)


@pytest.mark.parametrize("trial", TRIALS)
def test_primary_killed_fails_over_by_itself(lab, sampler, trial):  # pylint: disable=unused-argument
    old = lab.current_primary()
    new = other(old)
    before = last_failover_run(lab)
    drill.kill_node_services(lab.spec, old)
    took = wait_takeover(lab, new, timeout=30)
    print(f"[auto] PostgreSQL + minion killed: {new} primary with the VIP {took:.2f} s after the kill")
    assert standby_signal(lab, old), "the old primary was not left boot-safe"
    start_by_hand(lab, old)
    assert in_recovery(lab, old) is True
    # The run ends after the services and hooks, a moment after the VIP is up.
    run = wait_for(lambda: last_failover_run(lab) != before and last_failover_run(lab), 30,
                   "the automatic failover's record", every=0.5)
    # The run ends after the services and hooks, a moment after the VIP is up.
    ended = wait_for(lambda: [e for e in auto_failovers(lab) if e.get("run") == run[:8]], 30,
                     "the automatic failover's run to end", every=0.5)
    assert ended[-1]["result"] == "done", ended
    restart_minion(lab, old)
    rejoin(lab, old, new)


@pytest.mark.parametrize("trial", TRIALS)
def test_primary_link_down_fails_over_and_the_old_primary_fences_itself(lab, sampler, trial):  # pylint: disable=unused-argument
    old = lab.current_primary()
    new = other(old)
    netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(old), "down")
    try:
        took = wait_takeover(lab, new, timeout=40)
        print(f"[auto] link down: {new} primary with the VIP {took:.2f} s after the cut")
        # The cut-off node fenced itself: stopped, boot-safe (it can't be asked; look at its files).
        wait_for(lambda: not pg_running(lab, old), 5, f"{old} to have fenced itself")
        assert standby_signal(lab, old)
    finally:
        netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(old), "up")
    start_by_hand(lab, old)
    assert in_recovery(lab, old) is True  # read-only when the link comes back
    rejoin(lab, old, new)


@pytest.mark.parametrize("trial", TRIALS)
def test_primary_minion_killed_then_link_cut_fails_over_only_after_the_old_stopped(lab, sampler, trial):  # pylint: disable=unused-argument
    old = lab.current_primary()
    new = other(old)
    drill.kill_node_services(lab.spec, old, names=("salt-minion",))
    time.sleep(2)
    assert lab.current_primary() == old, "failed over on a dead minion alone"
    netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(old), "down")
    try:
        wait_takeover(lab, new, timeout=40)
        assert not pg_running(lab, old) and standby_signal(lab, old)
    finally:
        netns.ip("-n", lab.spec.witness_ns, "link", "set", lab.spec.veth(old), "up")
    # The sampler proves there was no instant with two writers; the order, too:
    last_old = max(t for t, w, _ in sampler.samples if w[old])
    first_new = min(t for t, w, _ in sampler.samples if w[new])
    assert last_old < first_new
    restart_minion(lab, old)
    rejoin(lab, old, new)


# --------------------------------------------------------------------------- faults that must change nothing


def _no_failover_for(lab, sampler, seconds):
    primary = lab.current_primary()
    before = last_failover_run(lab)
    since = time.time()
    time.sleep(seconds)
    assert lab.current_primary() == primary
    assert last_failover_run(lab) == before, "an automatic failover happened"
    still_primary_throughout(lab, sampler, primary, since)
    return primary


@pytest.mark.parametrize("trial", TRIALS)
def test_link_between_the_nodes_cut_changes_nothing(lab, sampler, trial):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    standby = other(primary)
    blackhole(lab, primary, NODE_ADDRESSES[standby])
    blackhole(lab, standby, NODE_ADDRESSES[primary])
    try:
        _no_failover_for(lab, sampler, 6)
    finally:
        blackhole(lab, primary, NODE_ADDRESSES[standby], on=False)
        blackhole(lab, standby, NODE_ADDRESSES[primary], on=False)
    wait_armed(lab)


@pytest.mark.parametrize("trial", TRIALS)
def test_master_to_primary_cut_changes_nothing(lab, sampler, trial):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    blackhole(lab, primary, WITNESS_ADDRESS)
    blackhole_witness(lab, NODE_ADDRESSES[primary])
    try:
        _no_failover_for(lab, sampler, 6)
    finally:
        blackhole(lab, primary, WITNESS_ADDRESS, on=False)
        blackhole_witness(lab, NODE_ADDRESSES[primary], on=False)
    wait_armed(lab, timeout=90)


@pytest.mark.parametrize("trial", TRIALS)
def test_master_stopped_changes_nothing_and_writes_continue(lab, sampler, trial):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    writer = VipWriter(lab, table=f"auto_writer_{trial}_{int(time.time())}")  # its ids start at 1 again
    writer.start()
    try:
        time.sleep(1)
        pid = saltd.read_pid(saltd.pidfile(lab.spec, "master"))
        saltd.terminate([pid])
        stopped = time.monotonic()
        since = time.time()
        time.sleep(6)
        gap = writer.longest_gap(stopped, time.monotonic())
        still_primary_throughout(lab, sampler, primary, since)
    finally:
        writer.finish()
        saltd.start_master(lab.spec)
    assert gap < 1.0, f"writes stopped for {gap:.2f} s while the master was down"
    assert lab.current_primary() == primary
    wait_armed(lab, timeout=90)


@pytest.mark.parametrize("trial", TRIALS)
def test_primary_fenced_while_both_renewers_were_gone_resumes_and_loses_nothing(lab, sampler, trial):  # pylint: disable=unused-argument
    """Master stopped, then the nodes' link cut: nobody renews the primary's lease, so it
    fences itself (right: it cannot know that nobody will take over). The standby is
    not promoted (no master). When the master is back it brings the fenced primary
    back as primary: no writer is lost for good, no commit is lost, no rejoin."""
    primary = lab.current_primary()
    standby = other(primary)
    table = f"unfence_writer_{trial}_{int(time.time())}"
    writer = VipWriter(lab, table=table)
    writer.start()
    try:
        time.sleep(1)
        saltd.terminate([saltd.read_pid(saltd.pidfile(lab.spec, "master"))])
        blackhole(lab, primary, NODE_ADDRESSES[standby])
        blackhole(lab, standby, NODE_ADDRESSES[primary])
        wait_for(lambda: not pg_running(lab, primary), 15, f"{primary} to fence itself (no renewer)")
        assert standby_signal(lab, primary)
        fenced = time.monotonic()
        saltd.start_master(lab.spec)
        wait_for(lambda: pg_running(lab, primary) and in_recovery(lab, primary) is False, 60,
                 f"{primary} back as primary")
        print(f"[auto] fenced with no renewer: {primary} writable again {time.monotonic() - fenced:.2f} s "
              "after the fence (master restart included)")
        wait_for(lambda: not math.isnan(writer.first_ack_after(fenced)), 30, "writes through the VIP again")
    finally:
        blackhole(lab, primary, NODE_ADDRESSES[standby], on=False)
        blackhole(lab, standby, NODE_ADDRESSES[primary], on=False)
        writer.finish()
    assert sampler.writers()[standby] == 0, "the standby was promoted"
    wait_for(lambda: any(e.get("name") == "auto-unfence" and e.get("result") == "done" for e in history(lab)),
             10, "the unfence's record")
    lost = lost_commits(lab, primary, writer, table)
    assert writer.acked and not lost, f"{len(lost)} acknowledged commits lost"
    assert in_recovery(lab, standby) is True
    # Armed again means the standby streams from the unfenced primary (its new timeline) by itself.
    wait_armed(lab, timeout=90)


@pytest.mark.parametrize("trial", TRIALS)
def test_forged_heartbeats_do_not_fail_over(lab, sampler, trial):  # pylint: disable=unused-argument
    primary = lab.current_primary()
    standby = other(primary)
    lost = {"v": 1, "node": standby, "role": "standby", "pg_up": True, "streaming": False,
            "reaches_peer_pg": False, "lsn": "0/0", "vip": False}
    dead_primary = {"v": 1, "node": primary, "role": "stopped", "pg_up": False}
    call = ["ip", "netns", "exec", lab.spec.node_ns(standby), saltd.salt_bin("salt-call"),
            "-c", str(saltd.minion_conf_dir(lab.spec, standby)), "event.send"]
    before = last_failover_run(lab)
    since = time.time()
    for _ in range(3):
        subprocess.run([*call, f"salt/beacon/{standby}/hamn/", json.dumps(lost)], check=True, timeout=60,
                       capture_output=True)
        # The standby pretending to be the primary: the master stamps the real sender.
        subprocess.run([*call, f"salt/beacon/{primary}/hamn/", json.dumps(dead_primary)], check=True,
                       timeout=60, capture_output=True)
    # A forged heartbeat that passes the sender check (as a hacked minion's beacon could):
    # the master's own probe of the primary still says it is healthy.
    forged = {**lost, "id": standby}
    for _ in range(3):
        result = salt_run(lab, "hamn.heartbeat", "data=" + json.dumps(forged), "--out=json")
        decision = json.loads(result.stdout)
        # standby-only; or healthy when the standby's real heartbeat landed in between.
        assert decision.get("action") == "none" and decision.get("code") in ("standby-only", "healthy"), decision
    time.sleep(3)
    assert lab.current_primary() == primary
    assert last_failover_run(lab) == before, "an automatic failover happened"
    still_primary_throughout(lab, sampler, primary, since)


# --------------------------------------------------------------------------- automatic rejoin


def set_heartbeat(lab, **values):
    path = lab.spec.lab_dir / "pillar" / "hamn.sls"
    data = yaml.safe_load(path.read_text())
    data["hamn"]["heartbeat"].update(values)
    path.write_text(yaml.safe_dump(data))
    proc.run(saltd.salt_cmd(lab.spec, "*", "saltutil.refresh_pillar", "wait=True", "-t", "20"), check=False,
             timeout=60)
    time.sleep(6)  # the master's compiled pillar lives 5 s in the reactor (witness.CONFIG_TTL)


@pytest.mark.parametrize("trial", TRIALS)
def test_a_failure_during_automatic_rejoin_leaves_the_primary_alone(lab, sampler, trial):  # pylint: disable=unused-argument
    if trial == 0:
        set_heartbeat(lab, auto_rejoin=True)
    old = lab.current_primary()
    new = other(old)
    drill.kill_node_services(lab.spec, old)
    wait_takeover(lab, new, timeout=30)
    failing = lab.spec.node_dir(old) / "fail" / "systemctl"  # the rejoin's first step stops services there
    failing.write_text("3")
    try:
        restart_minion(lab, old)
        wait_for(lambda: any(a["code"] == "auto-rejoin-failed" for a in automation(lab)["alarms"]),
                 60, "the automatic rejoin to fail and say so", every=0.5)
        tries = len([e for e in history(lab) if e.get("name") == "auto-rejoin"])
        time.sleep(4)  # four more heartbeats: not retried at every one
        assert len([e for e in history(lab) if e.get("name") == "auto-rejoin"]) == tries
        assert lab.current_primary() == new and in_recovery(lab, new) is False
    finally:
        failing.unlink()
    rejoin(lab, old, new)  # by hand, as the alarm says; then resume
    salt_run(lab, "hamn.resume")
    result = salt_run(lab, "hamn.check")
    assert result.returncode == 0, result.stdout


# --------------------------------------------------------------------------- replication modes


def set_mode(lab, mode):
    """Switch postgres:replication:mode (the watchdogs pick it up through the beacon's ensure)."""
    path = lab.spec.lab_dir / "pillar" / "hamn.sls"
    data = yaml.safe_load(path.read_text())
    if data["hamn"]["postgres"]["replication"].get("mode") == mode:
        return
    data["hamn"]["postgres"]["replication"]["mode"] = mode
    data["hamn"]["heartbeat"]["auto_rejoin"] = False
    path.write_text(yaml.safe_dump(data))
    proc.run(saltd.salt_cmd(lab.spec, "*", "saltutil.refresh_pillar", "wait=True", "-t", "20"), check=False,
             timeout=60)
    time.sleep(6)  # the master's compiled pillar lives 5 s in the reactor (witness.CONFIG_TTL)


def strict_pair_writing(lab, label):
    """sync_strict mode, the pair loss-free, a writer through the VIP on a table of its own
    for a second already: (old primary, standby, table, writer)."""
    set_mode(lab, "sync_strict")
    old = lab.current_primary()
    wait_for(lambda: loss_free(lab, old) is True, 60, f"{old} loss-free in sync_strict mode", every=0.5)
    table = f"{label}_{int(time.time())}"
    writer = VipWriter(lab, table=table)
    writer.start()
    time.sleep(1)
    return old, other(old), table, writer


def loss_free(lab, node):
    return ((automation(lab).get("nodes") or {}).get(node) or {}).get("loss_free")


def start_db(lab, node):
    result = proc.run(saltd.salt_cmd(lab.spec, node, "hamn.start_db", "--out=json", "-t", "60"), check=False,
                      timeout=90)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("trial", TRIALS)
def test_standby_killed_in_sync_mode_writes_go_on_and_automation_is_blocked(lab, sampler, trial):  # pylint: disable=unused-argument
    set_mode(lab, "sync")
    primary = lab.current_primary()
    standby = other(primary)
    wait_for(lambda: loss_free(lab, primary) is True, 60, f"{primary} loss-free in sync mode", every=0.5)
    writer = VipWriter(lab, table=f"sync_writer_{trial}_{int(time.time())}")
    writer.start()
    try:
        time.sleep(1)
        drill.kill_node_services(lab.spec, standby, names=("postgres",))
        killed = time.monotonic()
        wait_for(lambda: loss_free(lab, primary) is False, 20, "the pair marked not loss-free", every=0.5)
        time.sleep(2)
        now = time.monotonic()
        gap = writer.longest_gap(killed, now)
        print(f"[auto] sync, standby killed: writes waited {gap:.2f} s, then went on")
        assert writer.first_ack_after(killed + gap) < now, "writes did not go on without the standby"
        # Automation is blocked: were the primary to die now, its loss would not be proven zero.
        assert automation(lab)["nodes"][primary]["loss_free"] is False
        start_db(lab, standby)
        wait_for(lambda: loss_free(lab, primary) is True, 60, "loss-free again once the standby caught up",
                 every=0.5)
    finally:
        writer.finish()


@pytest.mark.parametrize("trial", TRIALS)
def test_standby_killed_in_sync_strict_mode_writes_wait_and_nothing_acknowledged_is_lost(lab, sampler, trial):  # pylint: disable=unused-argument
    old, new, table, writer = strict_pair_writing(lab, f"strict_writer_{trial}")
    try:
        drill.kill_node_services(lab.spec, new, names=("postgres",))
        killed = time.monotonic()
        time.sleep(3)
        waited = [t for t in writer.ack_times if killed + 0.5 < t < killed + 3]
        assert not waited, f"{len(waited)} commits acknowledged without the standby in sync_strict"
        start_db(lab, new)
        wait_for(lambda: not math.isnan(writer.first_ack_after(killed + 3)), 30,
                 "writes to go on once the standby is back", every=0.5)
        wait_for(lambda: loss_free(lab, old) is True, 60, "loss-free again", every=0.5)
        drill.kill_node_services(lab.spec, old)
        wait_takeover(lab, new, timeout=30)
        time.sleep(1)
    finally:
        writer.finish()
    lost = lost_commits(lab, new, writer, table)
    print(f"[auto] sync_strict: {len(writer.acked)} acknowledged, {len(lost)} lost across the failover")
    assert writer.acked and not lost
    restart_minion(lab, old)
    rejoin(lab, old, new)


def test_switchover_in_sync_strict_mode_starts_the_old_primary_as_standby_before_services_and_hooks(lab, sampler):
    """The new primary names the old one as its synchronous standby: in sync_strict a hook or
    service writing through the VIP would wait for it until the end of the run. So the old
    primary starts as standby the moment it handed the VIP over, and no acknowledged commit is lost."""
    old, new, table, writer = strict_pair_writing(lab, "strict_switchover")
    try:
        ok, steps = orchestrate_when_free(lab, "switchover")
        time.sleep(1)
    finally:
        writer.finish()
    assert ok, [s for s in steps if not s[1]] or steps
    ran = [(name, comment) for name, result, _, comment in steps if result]
    # The steps by their descriptions (states/hamn/_switchover.jinja): the old primary starts as
    # standby inside the switch, before the settle step starts services and runs the hooks.
    switch = next(i for i, (name, _) in enumerate(ran) if name.startswith("promote the new primary and hand"))
    settle = next(i for i, (name, _) in enumerate(ran) if name.startswith("new primary: checkpoint, xCAT services"))
    assert switch < settle and f"{old} started as standby" in ran[switch][1], ran
    assert lab.current_primary() == new and in_recovery(lab, old) is True
    lost = lost_commits(lab, new, writer, table)
    print(f"[auto] sync_strict switchover: {len(writer.acked)} acknowledged, {len(lost)} lost, "
          f"longest write gap {writer.longest_gap(0, time.monotonic()):.2f} s")
    assert writer.acked and not lost
    wait_armed(lab, timeout=90)
