"""Pre-flight checks (saltext_hamn.utils.preflight) with fake tools and injected values."""

import os
import pwd
import socket
import time
from types import SimpleNamespace

import pytest

from saltext_hamn.utils import preflight
from saltext_hamn.utils.pg.cluster import Cluster
from tests import support

ME = pwd.getpwuid(os.geteuid()).pw_name
CONTROLDATA = """pg_control version number:            1300
Database cluster state:               shut down
wal_log_hints setting:                {hints}
Data page checksum version:           {checksums}
"""


def script(path, body, mode=0o755):
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    os.chmod(path, mode)
    return path


def fake_bindir(tmp_path, hints="off", checksums="0", controldata_rc=0):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script(bindir / "postgres", 'echo "postgres (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)"')
    for name in ("pg_ctl", "pg_basebackup", "pg_rewind"):
        script(bindir / name, "exit 0")
    out = CONTROLDATA.format(hints=hints, checksums=checksums)
    script(bindir / "pg_controldata", f"cat <<'EOF'\n{out}EOF\nexit {controldata_rc}")
    return bindir


def fake_cluster(tmp_path, with_data=True, **kwargs):
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    if with_data:
        (data / "PG_VERSION").write_text("15\n")
    return Cluster(bindir=str(fake_bindir(tmp_path, **kwargs)), data_dir=str(data), os_user=ME)


def load(**extra):
    return support.load(**{"preflight": {"check_install": False}, **extra})


def root_stat(uid=0, gid=0):
    return lambda path: SimpleNamespace(st_uid=uid, st_gid=gid)


@pytest.fixture
def no_xcat(tmp_path, monkeypatch):
    """A PATH with the usual tools but no lsxcatd."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")


# --------------------------------------------------------------------------- versions


def test_postgres_version(tmp_path):
    assert preflight.read_postgres_version(str(fake_bindir(tmp_path))) == "15.10"


def test_os_version(tmp_path):
    pretty = tmp_path / "os-release"
    pretty.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert preflight.read_os_version(str(pretty)) == "Debian GNU/Linux 12 (bookworm)"
    plain = tmp_path / "os-release2"
    plain.write_text("# comment\nID=rhel\nVERSION_ID='8.6'\n")
    assert preflight.read_os_version(str(plain)) == "rhel 8.6"


def test_xcat_version(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert preflight.read_xcat_version() is None
    script(tmp_path / "lsxcatd", 'echo "Version 2.16.5 (git commit 1234abcd, built Tue Mar  7 2023)"')
    assert preflight.read_xcat_version() == "2.16.5"


def test_xcat_failing_lsxcatd_is_unknown_and_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    script(tmp_path / "lsxcatd", 'echo "Unable to open socket connection to xcatd daemon" >&2; exit 1')
    version, check = preflight._version_check("xcat_version", preflight.read_xcat_version)
    assert version == preflight.UNKNOWN
    assert check["ok"] is False and "xcatd daemon" in check["reason"]
    script(tmp_path / "lsxcatd", "exit 0")  # the lab recorder prints nothing
    version, check = preflight._version_check("xcat_version", preflight.read_xcat_version)
    assert version == preflight.UNKNOWN and check["ok"] is False and "no version" in check["reason"]


# --------------------------------------------------------------------------- checks


def test_postgres_bin(tmp_path):
    bindir = fake_bindir(tmp_path)
    assert preflight.check_postgres_bin(str(bindir))["ok"] is True
    (bindir / "pg_rewind").unlink()
    os.chmod(bindir / "pg_ctl", 0o644)
    check = preflight.check_postgres_bin(str(bindir))
    assert check["ok"] is False and "pg_ctl, pg_rewind" in check["reason"]


def test_subnet():
    ok = preflight.check_subnet("198.51.100.11", "198.51.100.10", 24, "198.51.100.12")
    assert ok == {"name": "subnet", "ok": True,
                  "reason": "this node 198.51.100.11 and peer 198.51.100.12 in the VIP's network 198.51.100.0/24"}
    node = preflight.check_subnet("198.51.101.11", "198.51.100.10", 24, "198.51.100.12")
    assert node["ok"] is False and "this node 198.51.101.11" in node["reason"]
    assert "peer" not in node["reason"].split(":")[-1]
    peer = preflight.check_subnet("198.51.100.11", "198.51.100.10", 25, "198.51.100.200")
    assert peer["ok"] is False and "peer 198.51.100.200" in peer["reason"] and "198.51.100.0/25" in peer["reason"]


def test_peer_resolves_localhost():
    check = preflight.check_peer_resolves("localhost", "127.0.0.1")
    assert check["ok"] is True
    assert "127.0.0.1" in check["reason"] and "includes the configured address" in check["reason"]


def test_peer_resolves_other_address_is_noted():
    def resolver(host, *args):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]

    check = preflight.check_peer_resolves("mn2", "198.51.100.12", resolver=resolver)
    assert check["ok"] is True
    assert check["reason"] == "mn2 resolves to 192.0.2.7 (not the configured address 198.51.100.12)"


def test_peer_unresolvable():
    def resolver(host, *args):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    check = preflight.check_peer_resolves("mn2.invalid", "198.51.100.12", resolver=resolver)
    assert check["ok"] is False and "mn2.invalid does not resolve" in check["reason"]


def test_clock_with_reference():
    assert preflight.check_clock(1.0, reference_time=1000.0, now=1000.4)["ok"] is True
    late = preflight.check_clock(1.0, reference_time=1000.0, now=1002.5)
    assert late["ok"] is False and "+2.500s" in late["reason"]
    early = preflight.check_clock(1.0, reference_time="1000", now=998.0)  # CLI passes strings
    assert early["ok"] is False and "-2.000s" in early["reason"]
    assert preflight.check_clock(1.0, reference_time=time.time())["ok"] is True


def test_clock_without_reference():
    assert preflight.check_clock(1.0, ntp=lambda: True)["ok"] is True
    unsynced = preflight.check_clock(1.0, ntp=lambda: False)
    assert unsynced["ok"] is False and "NOT NTP-synchronized" in unsynced["reason"]
    unknown = preflight.check_clock(1.0, ntp=lambda: None)
    assert unknown["ok"] is True and "not checked" in unknown["reason"]


def test_ntp_synchronized_reads_timedatectl(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert preflight.ntp_synchronized() is None  # no timedatectl
    tool = script(tmp_path / "timedatectl", "echo yes")
    assert preflight.ntp_synchronized() is True
    script(tool, "echo no")
    assert preflight.ntp_synchronized() is False
    script(tool, "echo 'Failed to connect to bus' >&2; exit 1")
    assert preflight.ntp_synchronized() is None


def test_install_dir_ok(tmp_path):
    check = preflight.check_install_dir(str(tmp_path), ismount=lambda p: True, stat=root_stat())
    assert check["ok"] is True, check
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_install_dir_not_root_owned(tmp_path):
    check = preflight.check_install_dir(str(tmp_path), ismount=lambda p: True, stat=root_stat(65534, 65534))
    assert check["ok"] is False and "owned by 65534:65534, not root:root" in check["reason"]


def test_install_dir_not_a_mount(tmp_path):
    check = preflight.check_install_dir(str(tmp_path), stat=root_stat())
    assert check["ok"] is False and check["reason"] == f"{tmp_path}: not a mount point"


def test_install_dir_not_writable(tmp_path):
    if os.geteuid() == 0:
        path = "/proc"  # even root cannot create files there
    else:
        path = tmp_path / "ro"
        path.mkdir()
        path.chmod(0o555)
    check = preflight.check_install_dir(str(path), ismount=lambda p: True, stat=root_stat())
    assert check["ok"] is False and "not writable" in check["reason"]


def test_install_dir_missing_or_disabled(tmp_path):
    missing = preflight.check_install_dir(str(tmp_path / "install"))
    assert missing["ok"] is False and "does not exist" in missing["reason"]
    skipped = preflight.check_install_dir(str(tmp_path / "install"), enabled=False)
    assert skipped["ok"] is True and "not checked" in skipped["reason"]


@pytest.mark.parametrize("hints, checksums, ok", [
    ("off", "0", False), ("on", "0", True), ("off", "1", True), ("on", "1", True),
])
def test_rewind_from_controldata(hints, checksums, ok):
    values = preflight.parse_controldata(CONTROLDATA.format(hints=hints, checksums=checksums))
    assert values["wal_log_hints setting"] == hints
    assert preflight.rewind_check_from_controldata(values)["ok"] is ok


def test_rewind_off_mentions_hamn_setting():
    values = {"wal_log_hints setting": "off", "Data page checksum version": "0"}
    check = preflight.rewind_check_from_controldata(values, log_hints_configured=True)
    assert check["ok"] is False and "restart PostgreSQL" in check["reason"]
    assert preflight.rewind_check_from_controldata({})["ok"] is False


def test_rewind_ready_runs_pg_controldata(tmp_path):
    assert preflight.check_rewind_ready(fake_cluster(tmp_path / "a", hints="on"))["ok"] is True
    off = preflight.check_rewind_ready(fake_cluster(tmp_path / "b"))
    assert off["ok"] is False and "wal_log_hints off" in off["reason"]
    broken = preflight.check_rewind_ready(fake_cluster(tmp_path / "c", controldata_rc=1))
    assert broken["ok"] is False and "pg_controldata failed" in broken["reason"]
    fresh = preflight.check_rewind_ready(fake_cluster(tmp_path / "d", with_data=False))
    assert fresh == {"name": "rewind_ready", "ok": True,
                     "reason": "no cluster yet; hamn's settings enable wal_log_hints"}


# --------------------------------------------------------------------------- run


def test_run_all_ok(tmp_path, no_xcat):
    cluster = fake_cluster(tmp_path / "x", hints="on")
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    report = preflight.run(load(), "mn1", cluster, reference_time=time.time(), os_release=str(os_release))
    assert report["node"] == "mn1"
    assert report["versions"] == {"postgres": "15.10", "os": "Debian GNU/Linux 12 (bookworm)", "xcat": None}
    names = [check["name"] for check in report["checks"]]
    assert names == ["postgres_version", "os_version", "xcat_version", "postgres_bin", "postgres_major",
                     "subnet", "peer_resolves", "clock", "install_dir", "rewind_ready"]
    assert report["ok"] is True, [c for c in report["checks"] if not c["ok"]]
    xcat = report["checks"][2]
    assert xcat["ok"] is True and "xCAT not installed" in xcat["reason"]
    assert all(set(check) == {"name", "ok", "reason"} for check in report["checks"])


def test_run_reports_failures_without_raising(tmp_path, no_xcat, monkeypatch):
    cluster = fake_cluster(tmp_path / "x")  # wal_log_hints off, checksums off
    cfg = load(vip={"address": "198.51.101.10"},
               preflight={"check_install": True, "install_dir": str(tmp_path / "missing")})

    def boom(*args):
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr(preflight, "check_peer_resolves", boom)
    report = preflight.run(cfg, "mn2", cluster, reference_time=time.time() - 60,
                           os_release=str(tmp_path / "no-os-release"))
    failed = {check["name"]: check["reason"] for check in report["checks"] if not check["ok"]}
    assert report["ok"] is False
    assert set(failed) == {"os_version", "subnet", "peer_resolves", "clock", "install_dir", "rewind_ready"}
    assert report["versions"]["os"] == preflight.UNKNOWN
    assert "resolver exploded" in failed["peer_resolves"]
    assert "this node 198.51.100.12" in failed["subnet"]


def test_run_refuses_unknown_node(tmp_path):
    from salt.exceptions import SaltInvocationError

    with pytest.raises(SaltInvocationError):
        preflight.run(load(), "mn3", fake_cluster(tmp_path))


# --------------------------------------------------------------------------- compare


def report(node, postgres="15.10", os_="Debian GNU/Linux 12 (bookworm)", xcat=None):
    return {"node": node, "versions": {"postgres": postgres, "os": os_, "xcat": xcat}, "checks": [], "ok": True}


def by_name(checks):
    return {check["name"]: check for check in checks}


def test_compare_identical():
    checks = preflight.compare([report("mn1"), report("mn2")])
    assert [c["name"] for c in checks] == ["same_postgres_version", "same_os_version", "same_xcat_version"]
    assert all(c["ok"] for c in checks)
    assert "mn1: not installed, mn2: not installed" in checks[2]["reason"]


def test_compare_mismatch():
    checks = by_name(preflight.compare({"mn2": report("mn2", postgres="15.9", xcat="2.16.5"),
                                        "mn1": report("mn1", xcat="2.16.4")}))
    assert checks["same_postgres_version"]["ok"] is False
    assert checks["same_postgres_version"]["reason"] == "postgres versions differ (mn1: 15.10, mn2: 15.9)"
    assert checks["same_os_version"]["ok"] is True
    assert checks["same_xcat_version"]["ok"] is False
    only_one = by_name(preflight.compare([report("mn1", xcat="2.16.5"), report("mn2")]))
    assert only_one["same_xcat_version"]["ok"] is False


def test_compare_unknown_or_missing_reports_fail():
    unknown = by_name(preflight.compare([report("mn1", os_="unknown"), report("mn2", os_="unknown")]))
    assert unknown["same_os_version"]["ok"] is False and "unknown on mn1, mn2" in unknown["same_os_version"]["reason"]
    broken = preflight.compare({"mn1": report("mn1"), "mn2": "ERROR: minion did not return"})
    assert all(not c["ok"] and "mn2" in c["reason"] for c in broken)
    single = preflight.compare([report("mn1")])
    assert all(not c["ok"] for c in single)


@pytest.mark.parametrize("installed, configured, on_disk, ok, words", [
    ("15.10", 15, None, True, "PostgreSQL 15 as configured"),
    ("18.6", 18, "18", True, "as is"),
    ("18.6", 15, None, False, "the pillar's hamn:postgres:version is 15"),
    ("18.6", 18, "15", False, "was made by PostgreSQL 15 (PG_VERSION)"),
    ("unknown", 15, None, False, "cannot tell the major"),
])
def test_postgres_major_is_pillar_and_data_dir(tmp_path, installed, configured, on_disk, ok, words):
    if on_disk:
        (tmp_path / "PG_VERSION").write_text(on_disk + "\n")
    check = preflight.check_postgres_major(installed, configured, str(tmp_path))
    assert check["ok"] is ok and words in check["reason"], check


@pytest.mark.parametrize("mn2, ok, words", [
    ("15.10", True, "identical"),
    ("15.9", False, "postgres versions differ (mn1: 15.10, mn2: 15.9)"),
    ("18.6", False, "PostgreSQL majors differ (mn1: 15.10, mn2: 18.6)"),
])
def test_compare_refuses_other_major_with_its_own_reason(mn2, ok, words):
    reports = {n: {"node": n, "versions": {"postgres": v, "os": "Debian 12", "xcat": None}}
               for n, v in (("mn1", "15.10"), ("mn2", mn2))}
    check = {c["name"]: c for c in preflight.compare(reports)}["same_postgres_version"]
    assert check["ok"] is ok and words in check["reason"], check
