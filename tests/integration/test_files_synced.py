"""hamn.files_synced in the lab: real master (file_recv + hamn_files ext_pillar), two
minions, real PostgreSQL roles; the direction flips after a switchover.

Each node's listed paths live under its own ``hamn:files:root_dir``
(``<lab>/<node>/root``) because the lab's nodes share one filesystem.
"""

import functools
import os
import pwd
import shutil
import stat
import time

import pytest

from tests import filesync_support

pytestmark = [pytest.mark.root, pytest.mark.postgres]

KEY_OWNER = next((p for p in pwd.getpwall() if p.pw_name == "postgres"), pwd.getpwuid(os.getuid()))
MTIME = 1_650_000_000_987_654_321
put = functools.partial(filesync_support.put, mtime=MTIME)
snapshot = filesync_support.snapshot


def root_of(lab, node):
    return lab.spec.node_dir(node) / "root"


def apply(salt_cli, node, **kwargs):
    """state.apply hamn.files on one node: (its single state result, seconds)."""
    started = time.monotonic()
    ret = salt_cli.run("state.apply", "hamn.files", minion_tgt=node, **kwargs)
    seconds = time.monotonic() - started
    assert isinstance(ret.data, dict) and len(ret.data) == 1, ret
    (result,) = ret.data.values()
    return result, seconds


def roles(salt_cli):
    ret = salt_cli.run("hamn.status", minion_tgt="*")
    assert ret.returncode == 0, ret
    return {node: info["role"] for node, info in ret.data.items()}, ret.data


def switch(salt_cli, old, new):
    """Planned switchover through the exec functions: clean stop, catch up, promote, rewind."""
    stop = salt_cli.run("hamn.stop_db", minion_tgt=old)
    assert stop.returncode == 0, stop
    lsn = stop.data["lsn"]
    waited = salt_cli.run("hamn.wait_for_lsn", lsn, timeout=30, minion_tgt=new)
    assert waited.returncode == 0, waited
    promoted = salt_cli.run("hamn.promote", primary_lsn=lsn, minion_tgt=new)
    assert promoted.returncode == 0, promoted
    rewound = salt_cli.run("hamn.rewind", minion_tgt=old)
    assert rewound.returncode == 0, rewound
    assert roles(salt_cli)[0] == {new: "primary", old: "standby"}


@pytest.fixture
def trees(lab):
    mn1, mn2 = root_of(lab, "mn1"), root_of(lab, "mn2")
    for root in (mn1, mn2):
        shutil.rmtree(root, ignore_errors=True)
    put(mn1, "/etc/xcat/cert", mode=0o755)
    put(mn1, "/etc/xcat/cert/ca.pem", "CA CERT\n", 0o644)
    put(mn1, "/etc/xcat/cert/server-cert.pem", "SERVER CERT\n", 0o644)
    put(mn1, "/etc/xcat/cert/server-key.pem", "SERVER KEY\n", 0o600, owner=KEY_OWNER)
    put(mn1, "/etc/xcat/cert/current", link="server-cert.pem")  # inside the tree
    put(mn1, "/etc/xcat/cert/system-ca", link="/etc/ssl/certs")  # points outside: copied as a link
    put(mn1, "/etc/xcat/ca", mode=0o700)
    put(mn1, "/etc/xcat/ca/ca-key.pem", "CA KEY\n", 0o600)
    put(mn1, "/root/.ssh", mode=0o700)
    put(mn1, "/root/.ssh/id_rsa", "ROOT PRIVATE KEY\n", 0o600)
    put(mn1, "/root/.ssh/id_rsa.pub", "ROOT PUBLIC KEY\n", 0o644)
    put(mn1, "/root/.ssh/authorized_keys", "MN1 TRUST\n", 0o600)
    put(mn1, "/root/.ssh/known_hosts", "MN1 HOSTS\n", 0o644)
    put(mn1, "/etc/hosts", "198.51.100.11 mn1\n198.51.100.12 mn2\n", 0o644)
    put(mn2, "/root/.ssh", mode=0o700)
    put(mn2, "/root/.ssh/authorized_keys", "MN2 TRUST - different\n", 0o600)
    yield mn1, mn2
    for root in (mn1, mn2):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mn1_primary_again(salt_cli):
    """Whatever happens, the session lab ends as it began: mn1 primary, mn2 streaming standby."""
    assert roles(salt_cli)[0] == {"mn1": "primary", "mn2": "standby"}
    yield
    now, _ = roles(salt_cli)
    if now != {"mn1": "primary", "mn2": "standby"}:
        switch(salt_cli, "mn2", "mn1")
    _, status = roles(salt_cli)
    assert status["mn2"]["wal_receiver"]["status"] == "streaming"


def test_files_follow_the_primary_across_a_switchover(salt_cli, lab, trees, mn1_primary_again):
    mn1, mn2 = trees
    times = {}

    # The primary pushes; its own files are not touched.
    before = snapshot(mn1)
    pushed, times["push"] = apply(salt_cli, "mn1")
    times["push_state_ms"] = pushed["duration"]
    assert pushed["result"] is True, pushed
    assert "/root/.ssh/id_rsa" in pushed["changes"]["pushed"]["added"]
    assert "/root/.ssh/authorized_keys" not in str(pushed["changes"])
    assert snapshot(mn1) == before

    # Drift report on the standby: what differs, nothing written.
    report, times["drift_report"] = apply(salt_cli, "mn2", test=True)
    assert report["result"] is None, report
    assert {"/etc/xcat/cert/server-key.pem", "/etc/hosts", "/root/.ssh/id_rsa"} <= set(report["changes"]["added"])
    assert not (mn2 / "etc").exists()

    # Apply: identical content, mode, owner, group, mtime and link targets.
    applied, times["apply"] = apply(salt_cli, "mn2")
    times["apply_state_ms"] = applied["duration"]
    assert applied["result"] is True, applied
    assert snapshot(mn2) == snapshot(mn1)
    assert (mn2 / "root/.ssh/authorized_keys").read_text() == "MN2 TRUST - different\n"
    assert not (mn2 / "root/.ssh/known_hosts").exists()
    key = os.lstat(mn2 / "etc/xcat/cert/server-key.pem")
    assert (stat.S_IMODE(key.st_mode), key.st_uid) == (0o600, KEY_OWNER.pw_uid)
    assert os.readlink(mn2 / "etc/xcat/cert/system-ca") == "/etc/ssl/certs"

    # Idempotent on both nodes.
    again, times["apply_again"] = apply(salt_cli, "mn2")
    assert again["result"] is True and again["changes"] == {}, again
    assert apply(salt_cli, "mn1")[0]["changes"] == {}

    # Switchover: mn2 becomes primary, mn1 standby (new timeline).
    switch(salt_cli, "mn1", "mn2")
    put(mn1, "/etc/hosts", "STALE EDIT ON THE OLD PRIMARY\n", 0o644, mtime=MTIME + 10)
    put(mn2, "/etc/xcat/cert/ca.pem", "ROTATED CA ON THE NEW PRIMARY\n", 0o644, mtime=MTIME + 20)
    mn2_hosts = (mn2 / "etc/hosts").read_text()

    # Before the new primary pushes, the old primary's copies never flow anywhere.
    waiting, _ = apply(salt_cli, "mn1")
    assert waiting["result"] is True and waiting["changes"] == {}, waiting
    assert (mn1 / "etc/hosts").read_text() == "STALE EDIT ON THE OLD PRIMARY\n"

    flipped, _ = apply(salt_cli, "mn2")  # now the source
    assert flipped["result"] is True, flipped
    # mn2's first push: everything is new to the master under mn2's id, on the new timeline
    assert "/etc/xcat/cert/ca.pem" in flipped["changes"]["pushed"]["added"]
    assert "timeline" in flipped["changes"]["pushed"]
    assert (mn2 / "etc/hosts").read_text() == mn2_hosts  # the new primary keeps its own

    followed, _ = apply(salt_cli, "mn1")
    assert followed["result"] is True, followed
    assert set(followed["changes"]["updated"]) == {"/etc/hosts", "/etc/xcat/cert/ca.pem"}
    assert (mn1 / "etc/xcat/cert/ca.pem").read_text() == "ROTATED CA ON THE NEW PRIMARY\n"
    assert (mn1 / "etc/hosts").read_text() == mn2_hosts
    assert snapshot(mn1) == snapshot(mn2)
    assert (mn1 / "root/.ssh/authorized_keys").read_text() == "MN1 TRUST\n"
    assert (mn2 / "root/.ssh/authorized_keys").read_text() == "MN2 TRUST - different\n"
    assert apply(salt_cli, "mn2")[0]["changes"] == {}
    assert apply(salt_cli, "mn1")[0]["changes"] == {}
    print("hamn.files timings (CLI round trip s, state ms):", {k: round(v, 2) for k, v in times.items()})
