"""Path rules of the file sync: globs per component, excludes, validation, root_dir."""

import os

import pytest

from saltext_hamn.utils.filesync import paths


def test_physical_prefixes_root_dir():
    assert paths.physical("/", "/etc/hosts") == "/etc/hosts"
    assert paths.physical("/var/tmp/lab/mn1/root/", "/etc/hosts") == "/var/tmp/lab/mn1/root/etc/hosts"


@pytest.mark.parametrize("bad", ["etc/hosts", "/", "/etc/../shadow", "/etc/./hosts", "/etc//hosts",
                                 "/etc/hosts/", "/etc/ho\nsts", None, 5])
def test_validate_refuses_non_canonical_paths(bad):
    with pytest.raises(paths.BadPath):
        paths.validate(bad)


def test_validate_accepts_canonical_paths():
    assert paths.validate("/root/.ssh/id_rsa") == "/root/.ssh/id_rsa"


def test_match_top_is_per_component():
    assert paths.match_top("/root/.ssh/id_rsa", "/root/.ssh/id*") == "/root/.ssh/id_rsa"
    assert paths.match_top("/etc/xcat/cert/a/b", "/etc/xcat/cert") == "/etc/xcat/cert"
    assert paths.match_top("/etc/xcat/certs", "/etc/xcat/cert") is None
    # '*' never crosses '/': /root/* does not reach into /root/.ssh/x as a top of its own
    assert paths.match_top("/root/.ssh/x", "/root/*") == "/root/.ssh"
    assert paths.match_top("/etc", "/etc/hosts") is None


def test_expand_globs_include_hidden_and_keep_links(tmp_path):
    ssh = tmp_path / "root" / ".ssh"
    ssh.mkdir(parents=True)
    for name in ("id_rsa", "id_rsa.pub", ".id_hidden", "authorized_keys"):
        (ssh / name).write_text(name)
    os.symlink("/nonexistent", ssh / "id_dangling")
    assert paths.expand("/root/.ssh/id*", str(tmp_path)) == [
        "/root/.ssh/id_dangling", "/root/.ssh/id_rsa", "/root/.ssh/id_rsa.pub"]
    assert paths.expand("/root/.ssh/.id*", str(tmp_path)) == ["/root/.ssh/.id_hidden"]
    assert paths.expand("/etc/hosts", str(tmp_path)) == []
    assert paths.expand("/root/.ssh", str(tmp_path)) == ["/root/.ssh"]


def test_excluder_mandatory_user_and_internal():
    excl = paths.Excluder(["*.swp", "/etc/xcat/cert/tmp*"], prefixes=["/var/lib/hamn/file-backups"])
    assert excl("/root/.ssh/authorized_keys")
    assert excl("/root/.ssh/authorized_keys2")
    assert excl("/root/.ssh/known_hosts")
    assert excl("/etc/xcat/cert/.x.swp")
    assert excl("/etc/xcat/cert/tmp1")
    assert not excl("/etc/xcat/cert/ca.pem")
    assert excl("/var/lib/hamn/sync/manifest.json")
    assert excl("/var/lib/hamn/file-backups/20260101T000000/etc/hosts")
    assert excl("/etc/xcat/cert/.hamn-sync.abc.tmp")
    assert excl.within("/etc/xcat/cert/tmpdir/file", "/etc/xcat/cert")
    assert not excl.within("/etc/xcat/cert/sub/file", "/etc/xcat/cert")
    both = excl.union(["*.pem"])
    assert both("/etc/xcat/cert/ca.pem") and not excl("/etc/xcat/cert/ca.pem")


def test_configured_roots_normalized_and_deduplicated():
    files = {"paths": ["/etc/hosts", "/etc/xcat/ca/"], "extra_paths": ["/etc//hosts", "/etc/motd"]}
    assert paths.configured_roots(files) == ["/etc/hosts", "/etc/xcat/ca", "/etc/motd"]


def test_ancestors():
    assert paths.ancestors("/root/.ssh/id_rsa") == ["/root", "/root/.ssh"]
    assert paths.ancestors("/etc") == []
