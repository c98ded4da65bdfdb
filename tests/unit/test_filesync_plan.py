"""Manifest scanning and the standby's plan: what differs, what is refused, what is kept."""

import copy
import hashlib
import os

import pytest

from saltext_hamn.utils.filesync import manifest, paths
from saltext_hamn.utils.filesync import plan as fplan

ROOTS = ["/etc/xcat/cert", "/root/.ssh/id*", "/etc/hosts"]


def _tree(root, files=None, links=None):
    for rel, (text, mode) in (files or {}).items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
    for rel, target in (links or {}).items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)


@pytest.fixture
def primary(tmp_path):
    root = tmp_path / "p"
    _tree(root, {
        "/etc/xcat/cert/ca.pem": ("CA\n", 0o644),
        "/etc/xcat/cert/server-key.pem": ("KEY\n", 0o600),
        "/etc/xcat/cert/sub/x": ("X\n", 0o640),
        "/root/.ssh/id_rsa": ("PRIV\n", 0o600),
        "/root/.ssh/id_rsa.pub": ("PUB\n", 0o644),
        "/root/.ssh/authorized_keys": ("AK\n", 0o600),
        "/root/.ssh/known_hosts": ("KH\n", 0o644),
        "/etc/hosts": ("127.0.0.1 localhost\n", 0o644),
    }, {"/etc/xcat/cert/link": "ca.pem", "/etc/xcat/cert/out": "/etc/shadow"})
    return root


def _manifest(root, roots=ROOTS, excludes=()):
    excl = paths.Excluder(excludes)
    scan = manifest.scan(roots, str(root), excl)
    return manifest.build(scan, source="mn1", timeline=3, patterns=roots, excludes=excl.patterns)


def _plan(pm, root, delete=False, excludes=()):
    excl = paths.Excluder(excludes).union(pm["excludes"])
    roots = fplan.common_roots(ROOTS, pm["roots"])
    held = manifest.scan(roots, str(root), excl, hash_files=False)
    return fplan.make(pm, held, roots=roots, excluder=excl, delete=delete,
                      sha_of=lambda p: manifest.sha256_file(paths.physical(str(root), p))[0])


def test_scan_never_follows_links_and_skips_mandatory_excludes(primary):
    pm = _manifest(primary)
    by = {e["path"]: e for e in pm["entries"]}
    assert "/root/.ssh/authorized_keys" not in by and "/root/.ssh/known_hosts" not in by
    assert by["/etc/xcat/cert/out"] == {**by["/etc/xcat/cert/out"], "type": "symlink", "target": "/etc/shadow"}
    assert by["/etc/xcat/cert/server-key.pem"]["mode"] == 0o600
    assert by["/etc/xcat/cert/ca.pem"]["sha256"] == hashlib.sha256(b"CA\n").hexdigest()
    assert by["/etc/xcat/cert"]["type"] == "dir"
    assert set(by) >= {"/root/.ssh/id_rsa", "/root/.ssh/id_rsa.pub", "/etc/hosts", "/etc/xcat/cert/sub/x"}
    assert pm["timeline"] == 3 and pm["source"] == "mn1" and pm["role"] == "primary"
    assert "/root/.ssh" in pm["parents"] and pm["parents"]["/root/.ssh"]["mode"] == os.stat(primary / "root/.ssh").st_mode & 0o7777
    # parents before children
    order = [e["path"] for e in pm["entries"]]
    assert order.index("/etc/xcat/cert") < order.index("/etc/xcat/cert/ca.pem")


def test_plan_on_an_empty_standby_adds_everything(primary, tmp_path):
    pm = _manifest(primary)
    plan = _plan(pm, tmp_path / "s")
    assert sorted(e["path"] for e in plan.add) == sorted(e["path"] for e in pm["entries"])
    assert not plan.update and not plan.remove and not plan.refused


def test_plan_reports_precise_differences(primary, tmp_path):
    pm = _manifest(primary)
    standby = tmp_path / "s"
    _tree(standby, {"/etc/hosts": ("127.0.0.1 localhost\n", 0o600), "/etc/xcat/cert/ca.pem": ("OLD\n", 0o644),
                    "/etc/xcat/cert/extra": ("E\n", 0o644), "/root/.ssh/authorized_keys": ("MINE\n", 0o600),
                    "/root/.ssh/id_old": ("OLD\n", 0o600)},
          {"/etc/xcat/cert/link": "other.pem"})
    os.utime(standby / "etc/hosts", ns=(0, os.stat(primary / "etc/hosts").st_mtime_ns))
    plan = _plan(pm, standby)
    changes = plan.changes()
    assert changes["updated"]["/etc/hosts"] == "mode 0600 -> 0644"
    assert changes["updated"]["/etc/xcat/cert/ca.pem"].startswith("content")
    assert changes["updated"]["/etc/xcat/cert/link"] == "target 'other.pem' -> 'ca.pem'"
    assert "removed" not in changes  # delete: false
    assert sorted(plan.kept) == ["/etc/xcat/cert/extra", "/root/.ssh/id_old"]
    assert "/root/.ssh/authorized_keys" not in str(plan.changes()) + str(plan.kept)
    deleting = _plan(pm, standby, delete=True)
    assert [e["path"] for e in deleting.remove] == ["/etc/xcat/cert/extra", "/root/.ssh/id_old"]


def test_plan_refuses_untrusted_entries(primary, tmp_path):
    pm = _manifest(primary)
    bad = copy.deepcopy(pm)
    template = next(e for e in bad["entries"] if e["path"] == "/etc/hosts")
    bad["entries"] += [
        dict(template, path="/etc/shadow"),  # outside the listed trees
        dict(template, path="/etc/xcat/cert/../../shadow"),  # not canonical
        dict(template, path="/etc/xcat/cert/known_hosts"),  # excluded here: ignored
        dict(template, path="/root/.ssh/authorized_keys"),  # not matched by /root/.ssh/id*
        dict(template, path="/etc/xcat/cert/link/evil"),  # below a symlink
        dict(template, path="/etc/xcat/cert/modebad", mode=0o17777),
        dict(template, path="/etc/xcat/cert/shabad", sha256="nothex"),
        "not-a-mapping",
    ]
    plan = _plan(bad, tmp_path / "s")
    refused = {path: why for path, why in plan.refused}
    assert refused["/etc/shadow"] == "outside the paths this node lists"
    assert "not a canonical path" in refused["/etc/xcat/cert/../../shadow"]
    assert refused["/etc/xcat/cert/link/evil"] == "its parent is not a directory in the manifest"
    assert "bad mode" in refused["/etc/xcat/cert/modebad"]
    assert "bad sha256" in refused["/etc/xcat/cert/shabad"]
    assert None in refused
    assert refused["/root/.ssh/authorized_keys"] == "outside the paths this node lists"
    assert plan.ignored == 1
    assert {"/root/.ssh/authorized_keys", "/etc/xcat/cert/known_hosts"}.isdisjoint(e["path"] for e in plan.add)


def test_plan_uses_only_paths_both_nodes_list(primary, tmp_path):
    pm = _manifest(primary)
    pm["roots"] = ["/etc/hosts"]  # the primary listed less: nothing else may be written or removed
    plan = _plan(pm, tmp_path / "s", delete=True)
    refused = {path for path, _ in plan.refused}
    assert "/etc/xcat/cert/ca.pem" in refused
    assert [e["path"] for e in plan.add] == ["/etc/hosts"]


def test_plan_refuses_content_it_does_not_have(primary, tmp_path):
    pm = _manifest(primary)
    excl = paths.Excluder().union(pm["excludes"])
    held = manifest.scan(ROOTS, str(tmp_path / "s"), excl, hash_files=False)
    plan = fplan.make(pm, held, roots=ROOTS, excluder=excl, delete=False, sha_of=None,
                      has_content=lambda sha: sha != hashlib.sha256(b"CA\n").hexdigest())
    assert ("/etc/xcat/cert/ca.pem", "the master holds no verified copy of its content") in plan.refused


def test_directory_holding_excluded_files_is_kept(primary, tmp_path):
    pm = _manifest(primary, excludes=["*.swp"])
    standby = tmp_path / "s"
    _tree(standby, {"/etc/xcat/cert/gone/.a.swp": ("S\n", 0o644), "/etc/xcat/cert/gone/b": ("B\n", 0o644)})
    plan = _plan(pm, standby, delete=True, excludes=["*.swp"])
    assert [e["path"] for e in plan.remove] == ["/etc/xcat/cert/gone/b"]
    assert "/etc/xcat/cert/gone" in plan.kept


def test_compare_manifests_between_pushes(primary):
    first = _manifest(primary)
    os.chmod(primary / "etc/hosts", 0o600)
    (primary / "root/.ssh/id_ed25519").write_text("NEW\n")
    os.unlink(primary / "etc/xcat/cert/link")
    second = _manifest(primary)
    added, updated, removed = manifest.compare_manifests(first["entries"], second["entries"])
    assert added == ["/root/.ssh/id_ed25519"]
    assert updated == {"/etc/hosts": "mode 0644 -> 0600"}
    assert removed == ["/etc/xcat/cert/link"]
    assert manifest.compare_manifests(second["entries"], second["entries"]) == ([], {}, [])
