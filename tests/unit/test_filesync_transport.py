"""rsync argument lists (never a shell) and parsing of its itemized changes."""

import pytest

from saltext_hamn.utils.filesync import transport

EXCLUDES = ["*.swp", "/etc/xcat/cert/tmp*", "/var/other/*", "authorized_keys", "authorized_keys2", "known_hosts"]


def test_rsync_argv_over_ssh_without_delete():
    argv = transport.rsync_argv("/etc/xcat/cert", src_root="/", dst_root="/", excludes=EXCLUDES, delete=False,
                                backup_dir="/var/lib/hamn/file-backups/20260101T000000", host="198.51.100.11")
    assert argv[0] == "rsync"
    assert {"--recursive", "--links", "--perms", "--times", "--owner", "--group"} <= set(argv)
    # Links as links: never followed, never dropped.
    assert not {"-L", "--copy-links", "--copy-unsafe-links", "--safe-links", "-a", "-z"} & set(argv)
    assert not any(a.startswith(("--delete", "--backup")) for a in argv)
    assert "--exclude=*.swp" in argv and "--exclude=authorized_keys" in argv and "--exclude=known_hosts" in argv
    assert "--exclude=/cert/tmp*" in argv  # anchored to the transfer root /etc/xcat
    assert not any("/var/other" in a for a in argv)
    assert argv[argv.index("-e") + 1] == "ssh -o BatchMode=yes -l root"
    assert argv[-3:] == ["--", "198.51.100.11:/etc/xcat/cert", "/etc/xcat/"]


def test_rsync_argv_with_delete_backs_up_and_uses_key():
    argv = transport.rsync_argv("/root/.ssh/id*", src_root="/", dst_root="/srv/mn2", excludes=[], delete=True,
                                backup_dir="/srv/mn2/var/lib/hamn/file-backups/T", host="198.51.100.11",
                                ssh_user="hamnsync", ssh_key="/root/.ssh/hamn_sync")
    i = argv.index("--delete")
    assert argv[i:i + 3] == ["--delete", "--backup", "--backup-dir=/srv/mn2/var/lib/hamn/file-backups/T/root/.ssh"]
    assert argv[argv.index("-e") + 1] == "ssh -o BatchMode=yes -l hamnsync -i /root/.ssh/hamn_sync"
    assert argv[-2:] == ["198.51.100.11:/root/.ssh/id*", "/srv/mn2/root/.ssh/"]


def test_rsync_argv_dry_run_and_local_source():
    argv = transport.rsync_argv("/etc/hosts", src_root="/tmp/p", dst_root="/tmp/s", excludes=[], delete=False,
                                dry_run=True)
    assert "--dry-run" in argv and "-e" not in argv
    assert argv[-2:] == ["/tmp/p/etc/hosts", "/tmp/s/etc/"]
    with pytest.raises(ValueError):
        transport.rsync_argv("/root/.ssh/id*", src_root="/tmp/p", dst_root="/tmp/s", excludes=[], delete=False)
    with pytest.raises(ValueError):
        transport.rsync_argv("/etc/hosts", src_root="/", dst_root="/", excludes=[], delete=True, backup_dir=None)


def test_parse_itemized():
    out = "\n".join([
        "cd+++++++++ cert/",
        ">f+++++++++ cert/ca.pem",
        "cL+++++++++ cert/link -> ca.pem",
        ".f...p..... cert/key.pem",
        ">f.st...... hosts",
        ".d..t...... cert/sub/",
        "*deleting   cert/old.pem",
        ".d          cert/",  # unchanged directory (-ii style): not a change
        "some warning line",
    ])
    added, updated, removed = transport.parse_itemized(out, "/etc/xcat/cert")
    assert added == ["/etc/xcat/cert", "/etc/xcat/cert/ca.pem", "/etc/xcat/cert/link"]
    assert updated == ["/etc/xcat/cert/key.pem", "/etc/xcat/hosts", "/etc/xcat/cert/sub"]
    assert removed == ["/etc/xcat/cert/old.pem"]


def test_upload_paths_are_content_addressed():
    sha = "a" * 64
    assert transport.object_upload_path(sha) == f"/hamn-files/objects/{sha}"
    assert transport.manifest_upload_path() == "/hamn-files/manifest.json"
