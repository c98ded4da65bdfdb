"""File sync on real files as root: modes, owners, symlinks, excludes, delete+backup,
atomic writes, test mode, idempotence, role swap; and the rsync flags run locally.

The two nodes are directories (their ``root_dir``); the master is a stand-in
(cp.push copies into a cache dir, the real hamn_files ext_pillar code reads it).
"""

import os
import pwd
import stat

import pytest

from saltext_hamn.utils.filesync import apply as fapply
from saltext_hamn.utils.filesync import state
from tests.filesync_support import FakeMaster, put, snapshot

pytestmark = [pytest.mark.root]


def _user(*names):
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return pwd.getpwuid(os.getuid())


PG = _user("postgres", "daemon")  # two non-root owners (looked up without failing collection)
NOBODY = _user("nobody")


def primary_tree(root):
    put(root, "/etc/xcat/cert", mode=0o755)
    put(root, "/etc/xcat/cert/ca.pem", "CA\n", 0o644, mtime=1_600_000_000_123_456_789)
    put(root, "/etc/xcat/cert/server-key.pem", "SERVER KEY\n", 0o600, owner=PG)
    put(root, "/etc/xcat/cert/group-readable", "G\n", 0o640, owner=NOBODY)
    put(root, "/etc/xcat/cert/private", mode=0o700)
    put(root, "/etc/xcat/cert/private/deep.key", "DEEP\n", 0o400)
    put(root, "/etc/xcat/cert/empty", mode=0o2750, owner=PG)
    put(root, "/etc/xcat/cert/link-in", link="ca.pem")
    put(root, "/etc/xcat/cert/link-out", link="/etc/shadow")
    put(root, "/etc/xcat/cert/dangling", link="../nowhere")
    put(root, "/etc/xcat/cert/.edit.swp", "SWAP\n")
    put(root, "/etc/xcat/ca/ca-cert.pem", "CACERT\n", 0o644)
    put(root, "/etc/xcat/hostkeys/ssh_host_rsa_key", "HOSTKEY\n", 0o600)
    put(root, "/root/.xcat/client-key.pem", "XCATKEY\n", 0o600)
    put(root, "/root/.ssh", mode=0o700)
    put(root, "/root/.ssh/id_rsa", "PRIVATE\n", 0o600)
    put(root, "/root/.ssh/id_rsa.pub", "PUBLIC\n", 0o644)
    put(root, "/root/.ssh/authorized_keys", "PRIMARY TRUST\n", 0o600)
    put(root, "/root/.ssh/known_hosts", "PRIMARY HOSTS\n", 0o644)
    put(root, "/etc/hosts", "198.51.100.11 mn1\n", 0o644)


def full_state(root):
    """Including ctime and inode: proves nothing was even touched."""
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(directory, name))
            out[os.path.join(directory, name)] = (st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def master(tmp_path):
    m = FakeMaster(tmp_path, excludes=["*.swp"])
    primary_tree(m.root("mn1"))
    # The standby's own trust and an excluded file of its own: never touched.
    put(m.root("mn2"), "/root/.ssh", mode=0o700)
    put(m.root("mn2"), "/root/.ssh/authorized_keys", "STANDBY TRUST\n", 0o600)
    put(m.root("mn2"), "/root/.ssh/known_hosts", "STANDBY HOSTS\n", 0o644)
    put(m.root("mn2"), "/etc/xcat/cert/.mine.swp", "MINE\n", 0o600)
    return m


def test_standby_becomes_identical_and_keeps_its_own_trust(master):
    before_primary = full_state(master.root("mn1") / "etc") | full_state(master.root("mn1") / "root")
    push = master.apply("mn1", "primary")
    assert push["result"] is True, push
    assert full_state(master.root("mn1") / "etc") | full_state(master.root("mn1") / "root") == before_primary

    before = full_state(master.root("mn2"))
    report = master.apply("mn2", "standby", test=True)
    assert report["result"] is None, report
    assert "/etc/xcat/cert/server-key.pem" in report["changes"]["added"]
    assert full_state(master.root("mn2")) == before  # test mode: not even a chmod

    done = master.apply("mn2", "standby")
    assert done["result"] is True, done
    assert snapshot(master.root("mn2")) == snapshot(master.root("mn1"))
    ssh = master.root("mn2") / "root" / ".ssh"
    assert (ssh / "authorized_keys").read_text() == "STANDBY TRUST\n"
    assert (ssh / "known_hosts").read_text() == "STANDBY HOSTS\n"
    assert (master.root("mn2") / "etc/xcat/cert/.mine.swp").read_text() == "MINE\n"
    assert not (master.root("mn2") / "etc/xcat/cert/.edit.swp").exists()
    key = os.lstat(master.root("mn2") / "etc/xcat/cert/server-key.pem")
    assert (stat.S_IMODE(key.st_mode), key.st_uid) == (0o600, PG.pw_uid)
    assert os.readlink(master.root("mn2") / "etc/xcat/cert/link-out") == "/etc/shadow"
    assert not list(master.root("mn2").rglob(".hamn-sync.*"))

    again = master.apply("mn2", "standby")
    assert again["result"] is True and again["changes"] == {}, again
    assert master.apply("mn1", "primary")["changes"] == {}


def test_writes_are_atomic_renames_of_complete_files(master, monkeypatch):
    master.apply("mn1", "primary")
    master.apply("mn2", "standby")
    put(master.root("mn1"), "/etc/xcat/cert/server-key.pem", "NEW SERVER KEY\n", 0o600, owner=PG)
    master.apply("mn1", "primary")
    target = master.root("mn2") / "etc/xcat/cert/server-key.pem"
    old_inode = os.lstat(target).st_ino
    seen = []
    real_replace = os.replace

    def checking_replace(src, dst):
        if str(dst) == str(target):
            st = os.lstat(src)
            with open(src, encoding="utf-8") as handle:
                new = handle.read()
            with open(dst, encoding="utf-8") as handle:
                current = handle.read()
            seen.append((new, stat.S_IMODE(st.st_mode), st.st_uid, current, os.path.dirname(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(fapply.os, "replace", checking_replace)
    ret = master.apply("mn2", "standby")
    assert ret["changes"]["updated"]["/etc/xcat/cert/server-key.pem"].startswith("content")
    # The complete file with its final mode/owner replaced the old one in one rename.
    assert seen == [("NEW SERVER KEY\n", 0o600, PG.pw_uid, "SERVER KEY\n", str(target.parent))]
    assert os.lstat(target).st_ino != old_inode


def test_metadata_only_changes_keep_the_file(master):
    master.apply("mn1", "primary")
    master.apply("mn2", "standby")
    os.chmod(master.root("mn1") / "etc/hosts", 0o600)
    os.chown(master.root("mn1") / "etc/hosts", NOBODY.pw_uid, NOBODY.pw_gid)
    master.apply("mn1", "primary")
    inode = os.lstat(master.root("mn2") / "etc/hosts").st_ino
    ret = master.apply("mn2", "standby")
    assert ret["changes"] == {"updated": {"/etc/hosts": f"mode 0644 -> 0600, owner 0 -> {NOBODY.pw_uid}, "
                                                          f"group 0 -> {NOBODY.pw_gid}"}}, ret
    assert os.lstat(master.root("mn2") / "etc/hosts").st_ino == inode
    assert snapshot(master.root("mn2")) == snapshot(master.root("mn1"))


def test_delete_only_when_asked_and_into_the_backup_dir(master):
    master.apply("mn1", "primary")
    master.apply("mn2", "standby")
    os.unlink(master.root("mn1") / "etc/xcat/cert/group-readable")
    os.unlink(master.root("mn1") / "root/.ssh/id_rsa.pub")
    os.unlink(master.root("mn1") / "etc/xcat/cert/private/deep.key")
    os.rmdir(master.root("mn1") / "etc/xcat/cert/private")
    master.apply("mn1", "primary")
    kept = master.apply("mn2", "standby")
    assert kept["result"] is True and kept["changes"] == {}, kept
    assert "only here, kept" in kept["comment"]
    assert (master.root("mn2") / "etc/xcat/cert/group-readable").exists()

    master.pillars["mn2"]["files"]["delete"] = True
    report = master.apply("mn2", "standby", test=True)
    assert report["changes"] == {"removed": ["/etc/xcat/cert/group-readable", "/etc/xcat/cert/private",
                                             "/etc/xcat/cert/private/deep.key", "/root/.ssh/id_rsa.pub"]}
    assert (master.root("mn2") / "etc/xcat/cert/group-readable").exists()
    done = master.apply("mn2", "standby")
    assert done["changes"] == report["changes"] and done["result"] is True, done
    assert not (master.root("mn2") / "etc/xcat/cert/group-readable").exists()
    backups = master.root("mn2") / "var/lib/hamn/file-backups"
    (stamp,) = os.listdir(backups)
    moved = backups / stamp / "etc/xcat/cert/group-readable"
    assert moved.read_text() == "G\n" and os.lstat(moved).st_uid == NOBODY.pw_uid
    assert (backups / stamp / "root/.ssh/id_rsa.pub").read_text() == "PUBLIC\n"
    assert (backups / stamp / "etc/xcat/cert/private/deep.key").read_text() == "DEEP\n"
    assert not (master.root("mn2") / "etc/xcat/cert/private").exists()
    assert stat.S_IMODE(os.stat(backups).st_mode) == 0o700
    # authorized_keys was never a candidate
    assert (master.root("mn2") / "root/.ssh/authorized_keys").read_text() == "STANDBY TRUST\n"
    assert master.apply("mn2", "standby")["changes"] == {}


def test_never_writes_through_a_symlink_on_the_standby(master, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    put(master.root("mn2"), "/etc/xcat/ca", link=str(outside))  # the standby's ca is a link out
    put(master.root("mn2"), "/etc/xcat/hostkeys", text="a file where the primary has a dir\n")
    master.apply("mn1", "primary")
    ret = master.apply("mn2", "standby")
    assert ret["result"] is True, ret
    assert os.listdir(outside) == []
    ca = master.root("mn2") / "etc/xcat/ca"
    assert ca.is_dir() and not ca.is_symlink()
    assert (ca / "ca-cert.pem").read_text() == "CACERT\n"
    assert ret["changes"]["updated"]["/etc/xcat/ca"] == "type symlink -> dir"
    backups = master.root("mn2") / "var/lib/hamn/file-backups"
    (stamp,) = os.listdir(backups)
    assert os.readlink(backups / stamp / "etc/xcat/ca") == str(outside)
    assert (backups / stamp / "etc/xcat/hostkeys").read_text() == "a file where the primary has a dir\n"


def test_failover_flips_direction_and_stale_files_never_flow_back(master):
    master.apply("mn1", "primary", timeline=1)
    master.apply("mn2", "standby", timeline=1)
    # Failover: mn2 promoted (timeline 2), mn1 rejoins as standby with a stale edit.
    put(master.root("mn1"), "/etc/hosts", "STALE EDIT ON THE OLD PRIMARY\n")
    put(master.root("mn2"), "/etc/xcat/cert/ca.pem", "NEW CA ON THE NEW PRIMARY\n")
    waiting = master.apply("mn1", "standby", timeline=2)  # mn2 has not pushed yet
    assert waiting["result"] is True and waiting["changes"] == {}, waiting
    assert "has not pushed" in waiting["comment"]
    stale_push = master.apply("mn1", "standby", timeline=2)
    assert stale_push["changes"] == {}
    pushed = master.apply("mn2", "primary", timeline=2)
    assert pushed["result"] is True and "/etc/xcat/cert/ca.pem" in str(pushed["changes"]), pushed
    mn2_hosts = (master.root("mn2") / "etc/hosts").read_text()
    got = master.apply("mn1", "standby", timeline=2)
    assert got["result"] is True, got
    assert set(got["changes"]["updated"]) == {"/etc/hosts", "/etc/xcat/cert/ca.pem"}
    assert (master.root("mn1") / "etc/xcat/cert/ca.pem").read_text() == "NEW CA ON THE NEW PRIMARY\n"
    assert (master.root("mn1") / "etc/hosts").read_text() == mn2_hosts
    assert (master.root("mn2") / "etc/xcat/cert/ca.pem").read_text() == "NEW CA ON THE NEW PRIMARY\n"
    assert master.apply("mn2", "primary", timeline=2)["changes"] == {}
    # mn1's old pushes (timeline 1) are still in the master's cache but never reach mn2.
    hf = master.pillar("mn2")["hamn_files"]
    assert hf["contents"] == {} and hf.get("stale") is True
    assert master.apply("mn2", "standby", timeline=2)["changes"] == {}


# --------------------------------------------------------------------------- rsync


def rsync_files(master, **extra):
    files = {"paths": ["/etc/xcat/cert", "/etc/xcat/ca", "/root/.ssh/id*", "/etc/hosts"], "extra_paths": [],
             "excludes": ["*.swp", "authorized_keys", "authorized_keys2", "known_hosts"], "delete": False,
             "backup_dir": "/var/lib/hamn/file-backups", "transport": "rsync",
             "rsync": {"ssh_user": "root", "ssh_key": None}, "root_dir": str(master.root("mn2"))}
    files.update(extra)
    return files


def test_rsync_flags_preserve_metadata_and_links(master):
    src = str(master.root("mn1"))
    files = rsync_files(master)
    before = full_state(master.root("mn2"))
    drift, errors = state.rsync_pull(files, host=None, src_root=src, test=True)
    assert not errors, errors
    assert "/etc/xcat/cert/server-key.pem" in drift["added"] and "/root/.ssh/id_rsa" in drift["added"]
    assert full_state(master.root("mn2")) == before  # dry run
    changes, errors = state.rsync_pull(files, host=None, src_root=src, test=False)
    assert not errors, errors
    assert changes["added"] == drift["added"]
    mine = {k: v for k, v in snapshot(master.root("mn2")).items() if not k.startswith(("/etc/xcat/hostkeys", "/root/.xcat"))}
    theirs = {k: v for k, v in snapshot(master.root("mn1")).items() if not k.startswith(("/etc/xcat/hostkeys", "/root/.xcat"))}
    assert mine == theirs
    assert (master.root("mn2") / "root/.ssh/authorized_keys").read_text() == "STANDBY TRUST\n"
    assert (master.root("mn2") / "etc/xcat/cert/.mine.swp").read_text() == "MINE\n"
    assert os.readlink(master.root("mn2") / "etc/xcat/cert/link-out") == "/etc/shadow"
    assert state.rsync_pull(files, host=None, src_root=src, test=True) == ({}, [])


def test_rsync_delete_moves_into_the_backup_dir(master):
    src = str(master.root("mn1"))
    state.rsync_pull(rsync_files(master), host=None, src_root=src, test=False)
    os.unlink(master.root("mn1") / "etc/xcat/cert/group-readable")
    kept, _ = state.rsync_pull(rsync_files(master), host=None, src_root=src, test=False)
    assert "removed" not in kept
    assert (master.root("mn2") / "etc/xcat/cert/group-readable").exists()
    files = rsync_files(master, delete=True)
    removed, errors = state.rsync_pull(files, host=None, src_root=src, test=False, stamp="T1")
    assert not errors and removed == {"removed": ["/etc/xcat/cert/group-readable"]}
    backup = master.root("mn2") / "var/lib/hamn/file-backups/T1/etc/xcat/cert/group-readable"
    assert backup.read_text() == "G\n"
    assert (master.root("mn2") / "etc/xcat/cert/.mine.swp").exists()  # excluded: never deleted
