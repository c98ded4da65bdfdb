"""The orchestrations end to end in their own lab (plain salt-master and minions in
the namespaces, driven with salt-run as an admin would): setup from empty data
dirs, switchover under continuous writes, failover after SIGKILL and after a
network cut, rejoin, dry runs, the lock, a failing hook, the audit events.

The tests run in order and hand the pair from one to the next."""

import json
import os
import re
import subprocess
import time

import pytest

from saltext_hamn.lab import drill, fence, netns, recorders, saltd
from saltext_hamn.lab.client import VipWriter
from saltext_hamn.lab.spec import VIP_ADDRESS
from saltext_hamn.utils.orch import lock
from saltext_hamn.utils.pg import connection, postmaster, status
from tests.support import own_lab

pytestmark = [pytest.mark.root, pytest.mark.postgres]
BEGIN = "begin the {}: lock, observe both nodes, decide"
FENCE = "fence the old primary if it does not answer"
SETTLE = "new primary: checkpoint, xCAT services, post-promotion commands; old primary streams from it"
SWITCH = "promote the new primary and hand the VIP over node to node; the old primary restarts as standby"


@pytest.fixture(scope="module")
def lab(lab_spec):
    with own_lab(lab_spec, "o", "orch") as lab:
        lab.prepare()
        lab.up_salt()
        yield lab


def run(lab, name, **kwargs):
    ok, steps = drill.orchestrate(lab.spec, name, **kwargs)
    return ok, {ident: (result, comment) for ident, result, _, comment in steps}


def roles(lab):
    out = subprocess.run(saltd.salt_cmd(lab.spec, "hamn.roles", "--out=json", runner=True),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def rows(lab, node):
    with connection.session(lab.cluster(node), "xcatdb") as conn:
        return {r[0] for r in connection.query(conn, "SELECT id FROM hamn_writer")}


def other_major(lab):
    """A PostgreSQL of another major than the lab's (Debian's 15 beside the wheel's 18), or None."""
    from saltext_hamn.lab import pgbin

    mine = lab.postgres["major"]
    for bindir, _ in pgbin.candidates():
        major, _ = pgbin.read_version(bindir)
        if major != mine:
            return major, bindir
    return None


def test_setup_refuses_a_pair_with_different_majors(lab):
    """mn2 pointed at another major: setup stops at preflight, and no data dir is made."""
    import yaml

    other = other_major(lab)
    if other is None:
        pytest.skip("needs two PostgreSQL majors installed (make deps + the pg18 extra)")
    major, bindir = other
    path = lab.spec.lab_dir / "pillar" / "hamn_mn2.sls"
    saved = path.read_text()
    try:
        data = yaml.safe_load(saved)
        data["hamn"]["postgres"].update(version=major, bindir=bindir)
        path.write_text(yaml.safe_dump(data))
        subprocess.run(saltd.salt_cmd(lab.spec, "*", "saltutil.refresh_pillar", "wait=True"), check=True,
                       capture_output=True)
        ok, steps = run(lab, "setup")
    finally:
        path.write_text(saved)
        subprocess.run(saltd.salt_cmd(lab.spec, "*", "saltutil.refresh_pillar", "wait=True"), check=True,
                       capture_output=True)
    assert not ok
    failed = steps["preflight on both nodes, versions compared"]
    mine = lab.postgres["version"]
    assert failed[0] is False and "PostgreSQL majors differ" in failed[1], failed
    assert f"mn1: {mine}" in failed[1] and f"mn2: {major}." in failed[1], failed
    assert not postmaster.has_data(lab.cluster("mn1")) and not postmaster.has_data(lab.cluster("mn2"))


def test_setup_dry_run_changes_nothing_then_builds_the_pair(lab):
    ok, steps = run(lab, "setup", test=True)
    assert ok and all(ident.startswith("would ") for ident in steps)
    assert "would configure replication on the primary mn1" in steps
    assert not postmaster.has_data(lab.cluster("mn1")) and not postmaster.has_data(lab.cluster("mn2"))

    ok, steps = run(lab, "setup")
    assert ok, steps
    pair = roles(lab)
    assert (pair["primary"], pair["standby"], pair["vip_holder"]) == ("mn1", "mn2", "mn1")
    assert pair["answers"]["mn2"]["wal_receiver"]["status"] == "streaming"
    for node in ("mn1", "mn2"):
        etc = lab.spec.node_dir(node) / "root" / "etc"
        assert (etc / "resolv.conf").read_text().startswith(f"nameserver {VIP_ADDRESS}\n")
        assert "hosts:          files dns" in (etc / "nsswitch.conf").read_text()
    calls = recorders.calls(lab.spec.node_dir("mn1"))
    assert ("chdef", f"-t site master={VIP_ADDRESS}") in calls
    assert ("chdef", f"-t site nameservers={VIP_ADDRESS}") in calls
    lab.xcat_database("mn1")  # xCAT's own DB setup, simulated


def lock_path(lab):
    return os.path.join(str(lab.spec.lab_dir), "salt", "master", "var", "cache", "salt", "master", "hamn",
                        "orchestration.lock")


def status_table(lab):
    return subprocess.run(saltd.salt_cmd(lab.spec, "hamn.status", runner=True), capture_output=True, text=True,
                          check=True).stdout


def test_second_orchestration_is_refused_while_one_runs(lab):
    path = lock_path(lab)
    running = subprocess.Popen(["sleep", "60"])
    try:
        lock.acquire(path, "switchover", pid=running.pid)
        ok, steps = run(lab, "failover")
        assert not ok
        assert "another hamn orchestration is running: switchover" in steps[BEGIN.format("failover")][1]
        assert lock.read(path)["pid"] == running.pid  # the refused run's finish left the holder's lock alone
        assert roles(lab)["primary"] == "mn1"  # nothing happened
    finally:
        running.kill()
        running.wait()
    ok, steps = run(lab, "switchover", test=True)  # a dead holder's lock is no obstacle
    assert ok


def test_switchover_under_writes_loses_no_acknowledged_row(lab):
    writer = VipWriter(lab)
    writer.start()
    time.sleep(1)
    ok, steps = run(lab, "switchover")
    time.sleep(1.5)
    writer.finish()
    assert ok, steps
    pair = roles(lab)
    assert (pair["primary"], pair["vip_holder"]) == ("mn2", "mn2")
    assert pair["answers"]["mn1"]["wal_receiver"]["sender_host"] == "198.51.100.12"
    acked_before_and_after = set(writer.acked)
    assert len(acked_before_and_after) > 50
    assert acked_before_and_after <= rows(lab, "mn2"), "an acknowledged row is missing on the new primary"
    assert max(writer.acked) in rows(lab, "mn2")  # writes resumed through the VIP
    # The VIP moved node to node on the old node's word, and the old primary came back
    # as a standby without pg_rewind (it stopped cleanly).
    assert re.search(r"the VIP was on no node for [0-9.]+ ms; mn1 started as standby", steps[SWITCH][1]), steps[SWITCH]
    assert "restart as standby (clean handover, no rewind)" in steps[SETTLE][1]
    ok, _ = run(lab, "switchover")  # and back
    assert ok and roles(lab)["primary"] == "mn1"


def test_events_follow_each_step(lab):
    listener = subprocess.Popen(saltd.salt_cmd(lab.spec, "state.event", "tagmatch=hamn/switchover/*", "count=-1",
                                               runner=True), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        ok, _ = run(lab, "switchover")
        time.sleep(1)
    finally:
        listener.terminate()
        out = listener.communicate(timeout=20)[0]
    assert ok
    tags = [line.split()[0] for line in out.splitlines() if line.startswith("hamn/")]
    for tag in ("begin", "release-old", "switch", "settle", "verify", "finished"):
        assert f"hamn/switchover/{tag}" in tags, tags
    assert roles(lab)["primary"] == "mn2"


def test_failing_hook_stops_the_run_with_a_clear_error(lab):
    node_dir = lab.spec.node_dir("mn1")  # the node about to become primary
    recorders.set_failure(node_dir, "makedhcp", 2)
    try:
        ok, steps = run(lab, "switchover")
    finally:
        recorders.set_failure(node_dir, "makedhcp", None)
    assert not ok
    result, comment = steps[SETTLE]
    assert result is False and "makedhcp failed (exit 2)" in comment
    assert steps["verify replication from the new primary"][0] is False  # its requisite failed
    assert recorders.calls(node_dir)[-1] == ("makedhcp", "-a")  # makeconservercf never ran
    assert not os.path.exists(lock_path(lab))  # released, not left for a takeover
    assert re.search(r"^last orchestration: switchover failed at ", status_table(lab), re.M)
    ok, _ = run(lab, "rejoin")  # the admin fixes the hook, then rejoins mn2
    assert ok
    pair = roles(lab)
    assert (pair["primary"], pair["standby"]) == ("mn1", "mn2")


def test_failover_when_only_postgres_died_stops_the_old_primary_first(lab):
    old, new = "mn1", "mn2"
    drill.kill_node_services(lab.spec, old, names=("postgres",))  # its minion still answers
    ok, steps = run(lab, "failover")
    assert ok, steps
    assert steps["stop xCAT services on the old primary"][0] is True
    assert steps["drop the VIP on the old primary"][0] is True
    assert steps[FENCE][1].startswith("skipped")  # it answered: stopped boot-safe, not fenced
    pair = roles(lab)
    assert (pair["primary"], pair["vip_holder"]) == (new, new)
    ok, steps = run(lab, "rejoin")
    assert ok, steps
    assert roles(lab)["standby"] == old


def test_failover_after_the_primary_is_killed_then_rejoin(lab):
    old, new = "mn2", "mn1"
    before = rows(lab, old)
    drill.kill_node_services(lab.spec, old)  # PostgreSQL and the salt-minion
    ok, steps = run(lab, "failover")
    assert ok, steps
    assert f"{old} fenced: fence command exit 0" in steps[FENCE][1]
    assert fence.fenced(lab.spec)[-1] == old
    pair = roles(lab)
    assert (pair["primary"], pair["vip_holder"]) == (new, new)
    assert ("makeconservercf", "") in recorders.calls(lab.spec.node_dir(new))
    assert before <= rows(lab, new)

    saltd.start_minion(lab.spec, old)  # the failed node is back up
    saltd.wait_minion_ready(lab.spec, old)
    ok, steps = run(lab, "rejoin")
    assert ok, steps
    assert status.collect(lab.cluster(old))["wal_receiver"]["sender_host"] == lab.node_cfg(new)["nodes"][new]["address"]
    assert rows(lab, old) == rows(lab, new)


def test_failover_when_the_primary_is_cut_off_the_network(lab):
    old, new = "mn1", "mn2"
    w = lab.spec.witness_ns
    netns.ip("-n", w, "link", "set", lab.spec.veth(old), "down")  # the primary is cut off
    try:
        ok, steps = run(lab, "failover")
    finally:
        netns.ip("-n", w, "link", "set", lab.spec.veth(old), "up")
    assert ok, steps
    assert fence.fenced(lab.spec)[-1] == old
    pair = roles(lab)
    assert (pair["primary"], pair["vip_holder"]) == (new, new)
    saltd.start_minion(lab.spec, old)
    saltd.wait_minion_ready(lab.spec, old)
    ok, steps = run(lab, "rejoin")
    assert ok, steps
    pair = roles(lab)
    assert (pair["primary"], pair["standby"], pair["split_brain"]) == (new, old, False)
    assert rows(lab, old) == rows(lab, new)


def test_status_runner_shows_both_nodes_and_the_last_run(lab):
    out = status_table(lab)
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert out.splitlines()[0].split() == ["mn1", "mn2"]
    assert sorted(lines["role"]) == ["primary", "standby"]
    primary_column = lines["role"].index("primary")
    assert lines["VIP"][primary_column] == "held" and lines["VIP"][1 - primary_column] == "-"
    assert re.search(r"^last orchestration: \w+ done at ", out, re.M)


def test_diskless_reset_is_an_optional_pillar_enabled_step(lab):
    import yaml

    pair = roles(lab)
    old, new = pair["primary"], pair["standby"]
    pillar_files = [lab.spec.lab_dir / "pillar" / f"hamn_{n}.sls" for n in ("mn1", "mn2")]
    saved = [p.read_text() for p in pillar_files]
    try:
        for path in pillar_files:
            data = yaml.safe_load(path.read_text())
            data["hamn"]["hooks"] = {"diskless_reset": {"enabled": True, "noderange": "compute"}}
            path.write_text(yaml.safe_dump(data))
        subprocess.run(saltd.salt_cmd(lab.spec, "*", "saltutil.refresh_pillar", "wait=True"), check=True,
                       capture_output=True)
        ok, steps = run(lab, "switchover")
        assert ok, steps
        assert "diskless nodes reset" in steps[SETTLE][1]
        assert recorders.calls(lab.spec.node_dir(new))[-1] == ("rpower", "compute reset")
    finally:
        for path, text in zip(pillar_files, saved):
            path.write_text(text)
        subprocess.run(saltd.salt_cmd(lab.spec, "*", "saltutil.refresh_pillar", "wait=True"), check=True,
                       capture_output=True)
    ok, steps = run(lab, "switchover", test=True)
    assert not any("diskless" in ident for ident in steps)
    assert roles(lab)["primary"] == new and old != new
