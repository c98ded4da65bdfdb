"""The decisions of hamn.files_synced: role, maintenance, pillar errors, staleness, test mode.

The master is a stand-in (tests/filesync_support.py); files are the test user's own.
"""

import os

import pytest
from salt.exceptions import CommandExecutionError

from saltext_hamn.utils.filesync import state, store
from tests.filesync_support import FakeMaster


@pytest.fixture
def master(tmp_path):
    m = FakeMaster(tmp_path)
    cert = m.root("mn1") / "etc" / "xcat" / "cert"
    cert.mkdir(parents=True)
    (cert / "ca.pem").write_text("CA\n")
    (m.root("mn1") / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    return m


def test_primary_pushes_once_then_reports_nothing(master):
    first = master.apply("mn1", "primary")
    assert first["result"] is True, first
    pushed = first["changes"]["pushed"]
    assert pushed["added"] == ["/etc/hosts", "/etc/xcat/cert", "/etc/xcat/cert/ca.pem"]
    assert pushed["objects"] == 2 and pushed["timeline"] == "None -> 1"
    assert master.pushes[-1] == ("mn1", "/hamn-files/manifest.json")
    again = master.apply("mn1", "primary")
    assert again["changes"] == {} and again["result"] is True
    assert "nothing to push" in again["comment"]


def test_primary_test_mode_pushes_nothing(master):
    ret = master.apply("mn1", "primary", test=True)
    assert ret["result"] is None and ret["changes"]["pushed"]["objects"] == 2
    assert master.pushes == []


def test_primary_pushes_only_what_changed(master):
    master.apply("mn1", "primary")
    count = len(master.pushes)
    (master.root("mn1") / "etc" / "hosts").write_text("10.0.0.1 mn1\n")
    ret = master.apply("mn1", "primary")
    assert ret["changes"]["pushed"] == {"updated": {"/etc/hosts": "content, mtime"}, "objects": 1}
    assert len(master.pushes) == count + 2  # one object, the manifest


def test_refused_upload_fails_clearly(master):
    master.refuse = True
    ret = master.apply("mn1", "primary")
    assert ret["result"] is False
    assert "file_recv: True" in ret["comment"]


def test_standby_waits_for_a_first_push_and_for_the_current_timeline(master):
    ret = master.apply("mn2", "standby")
    assert ret["result"] is True and ret["changes"] == {}
    assert "has not pushed a manifest yet" in ret["comment"]
    master.apply("mn1", "primary", timeline=1)
    stale = master.apply("mn2", "standby", timeline=2)
    assert stale["result"] is True and stale["changes"] == {}
    assert "older primary's copy is never applied" in stale["comment"]
    assert not (master.root("mn2") / "etc").exists()


def test_standby_drift_report_then_apply_then_idempotent(master):
    master.apply("mn1", "primary")
    report = master.apply("mn2", "standby", test=True)
    assert report["result"] is None
    assert report["changes"]["added"] == ["/etc/hosts", "/etc/xcat/cert", "/etc/xcat/cert/ca.pem"]
    assert not (master.root("mn2") / "etc").exists()
    done = master.apply("mn2", "standby")
    assert done["result"] is True and done["changes"] == report["changes"], done
    assert (master.root("mn2") / "etc" / "xcat" / "cert" / "ca.pem").read_text() == "CA\n"
    again = master.apply("mn2", "standby")
    assert again["changes"] == {} and again["result"] is True and "identical" in again["comment"]
    clean = master.apply("mn2", "standby", test=True)
    assert clean["result"] is True and clean["changes"] == {}


@pytest.mark.parametrize("role", ["stopped", "unknown"])
def test_unclear_role_touches_nothing(master, role):
    master.apply("mn1", "primary")
    ret = master.apply("mn2", role)
    assert ret["result"] is True and ret["changes"] == {}
    assert f"role '{role}'" in ret["comment"]
    assert not (master.root("mn2") / "etc").exists()


def test_maintenance_touches_nothing(master):
    master.pillars["mn1"]["maintenance"] = True
    ret = master.apply("mn1", "primary")
    assert ret["result"] is True and "maintenance" in ret["comment"] and master.pushes == []


def test_bad_pillar_and_status_failure_are_clear(master):
    master.pillars["mn1"]["files"]["root_dir"] = "relative"
    ret = master.apply("mn1", "primary")
    assert ret["result"] is False
    assert ret["comment"].startswith("invalid hamn pillar: hamn:files:root_dir: expected an absolute path")
    master.pillars["mn1"]["files"]["root_dir"] = str(master.root("mn1"))
    ret = master.apply("mn1", "primary", status_error=CommandExecutionError("boom"))
    assert ret["result"] is False and "hamn.status failed: boom" in ret["comment"]


def test_missing_ext_pillar_is_named(master, monkeypatch):
    monkeypatch.setattr(store, "pillar_for", lambda *a, **k: {})
    for node, role in (("mn1", "primary"), ("mn2", "standby")):
        ret = master.apply(node, role)
        assert ret["result"] is False and "ext_pillar: [{hamn_files: {}}]" in ret["comment"]


def test_rsync_transport_primary_does_nothing(master):
    master.pillars["mn1"]["files"]["transport"] = "rsync"
    ret = master.apply("mn1", "primary")
    assert ret["result"] is True and "standby mn2 pulls" in ret["comment"] and master.pushes == []


def test_ext_pillar_hands_out_only_verified_content(master):
    master.apply("mn1", "primary")
    objects = os.path.join(store.upload_dir(master.cachedir, "mn1"), "objects")
    victim = sorted(os.listdir(objects))[0]
    with open(os.path.join(objects, victim), "w", encoding="utf-8") as handle:
        handle.write("tampered")
    hf = master.pillar("mn2")["hamn_files"]
    assert victim in hf["missing"] and victim not in hf["contents"]
    ret = master.apply("mn2", "standby")
    assert ret["result"] is False and "no verified copy" in ret["comment"]
    # the primary sees the master lost it and pushes it again
    assert master.apply("mn1", "primary")["changes"]["pushed"] == {"objects": 1}


def test_ext_pillar_ignores_non_hamn_minions_and_bad_pillar(tmp_path):
    assert store.pillar_for("web1", {"other": 1}, str(tmp_path)) == {}
    assert store.pillar_for("mn1", {"hamn": {"vip": "x"}}, str(tmp_path)) == {}
    with pytest.raises(ValueError):
        store.upload_dir(str(tmp_path), "../etc")


def test_ext_pillar_keeps_uploads_private_and_limits_size(master):
    master.apply("mn1", "primary")
    files = os.path.dirname(store.upload_dir(master.cachedir, "mn1"))
    os.chmod(files, 0o755)
    hf = store.pillar_for("mn2", {"hamn": master.pillars["mn2"]}, master.cachedir, max_bytes=4)["hamn_files"]
    assert os.stat(files).st_mode & 0o777 == 0o700
    assert hf["contents"] == {} and "use hamn:files:transport: rsync" in " ".join(hf["errors"])


def test_ext_pillar_collects_unreferenced_objects(master, monkeypatch):
    master.apply("mn1", "primary")
    objects = os.path.join(store.upload_dir(master.cachedir, "mn1"), "objects")
    orphan = os.path.join(objects, "f" * 64)
    with open(orphan, "w", encoding="utf-8") as handle:
        handle.write("old")
    os.utime(orphan, (0, 0))
    master.pillar("mn1")
    assert not os.path.exists(orphan) and len(os.listdir(objects)) == 2


# --------------------------------------------------------------------------- rsync transport, standby


def _rsync_standby(master, monkeypatch, passes):
    """hamn.files_synced on the standby with the rsync transport; ``passes`` are the
    (changes, errors) each rsync_pull call returns, in order. Returns (ret, calls)."""
    master.pillars["mn2"]["files"]["transport"] = "rsync"
    calls = []

    def fake_pull(files, *, host, test, **_kwargs):
        calls.append({"host": host, "test": test})
        return passes[len(calls) - 1]

    monkeypatch.setattr(state, "rsync_pull", fake_pull)
    return master.apply("mn2", "standby"), calls


def test_rsync_no_op_pull_is_not_checked_again(master, monkeypatch):
    ret, calls = _rsync_standby(master, monkeypatch, [({}, [])])
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "mn2 is the standby: identical to mn1 (198.51.100.11) over rsync"
    assert calls == [{"host": "198.51.100.11", "test": False}]  # one pass, no dry-run repeat


def test_rsync_pull_that_changed_something_is_still_checked(master, monkeypatch):
    changed = {"updated": ["/etc/hosts"]}
    ret, calls = _rsync_standby(master, monkeypatch, [(changed, []), ({}, [])])
    assert ret["result"] is True and ret["changes"] == changed, ret
    assert [c["test"] for c in calls] == [False, True]
    ret, calls = _rsync_standby(master, monkeypatch, [(changed, []), ({"updated": ["/etc/hosts"]}, [])])
    assert ret["result"] is False and "still differs from mn1 after rsync: /etc/hosts" in ret["comment"], ret


def test_rsync_failed_pull_fails_without_a_check(master, monkeypatch):
    ret, calls = _rsync_standby(master, monkeypatch, [({}, [("/etc/hosts", "rsync exit 255: ssh refused")])])
    assert ret["result"] is False and "rsync from mn1 (198.51.100.11) failed" in ret["comment"], ret
    assert len(calls) == 1
