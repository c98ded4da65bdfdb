"""Lab pieces that need no root: spec naming, recorders, file operations."""

import os
import subprocess

import pytest

from saltext_hamn.lab import recorders
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils import fileops


def test_spec_names_and_prefix_validation():
    spec = LabSpec(prefix="lab2", base_dir="/var/tmp/x")
    assert spec.namespaces == ["lab2-w", "lab2-mn1", "lab2-mn2"]
    assert str(spec.node_dir("mn1")) == "/var/tmp/x/lab2/mn1"
    for bad in ("", "Lab", "1lab", "a-b", "averyveryverylongprefix"):
        with pytest.raises(ValueError, match="lab prefix"):
            LabSpec(prefix=bad)


def test_a_lab_keeps_the_postgres_it_was_made_with(tmp_path, monkeypatch):
    import json

    from saltext_hamn.lab.lab import Lab
    from saltext_hamn.utils.errors import HamnError

    monkeypatch.delenv("HAMN_PG", raising=False)
    assert LabSpec.from_env("labx").pg is None
    monkeypatch.setenv("HAMN_PG", "18")
    assert LabSpec.from_env("labx").pg == "18" and LabSpec.from_env("labx", pg="15").pg == "15"
    made = {"major": 15, "bindir": "/usr/lib/postgresql/15/bin", "version": "15.18", "origin": "debian"}
    spec = LabSpec(prefix="labx", base_dir=str(tmp_path))
    spec.lab_dir.mkdir(parents=True)
    (spec.lab_dir / "lab.json").write_text(json.dumps({"replication_password": "x", "postgres": made}))
    for asked in (None, "15", "/usr/lib/postgresql/15/bin"):
        lab = Lab(LabSpec(prefix="labx", base_dir=str(tmp_path), pg=asked), out=lambda m: None)
        lab._check_same_postgres(lab.postgres)  # pylint: disable=protected-access
    lab = Lab(LabSpec(prefix="labx", base_dir=str(tmp_path), pg="18"), out=lambda m: None)
    with pytest.raises(HamnError, match=r"lab 'labx' runs PostgreSQL 15 .*asked for 18: take it down first"):
        lab._check_same_postgres(lab.postgres)  # pylint: disable=protected-access


def test_recorders_log_calls_in_order_and_fail_on_demand(tmp_path):
    bin_dir = recorders.install(tmp_path)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    for argv in (["makedns", "-n"], ["systemctl", "stop", "xcatd"], ["makedhcp", "-a"]):
        assert subprocess.run(argv, env=env, check=False).returncode == 0
    assert recorders.calls(tmp_path) == [("makedns", "-n"), ("systemctl", "stop xcatd"), ("makedhcp", "-a")]
    recorders.set_failure(tmp_path, "makeconservercf", 4)
    failed = subprocess.run(["makeconservercf"], env=env, capture_output=True, text=True, check=False)
    assert failed.returncode == 4 and "simulated failure" in failed.stderr
    recorders.set_failure(tmp_path, "makeconservercf", None)
    assert subprocess.run(["makeconservercf"], env=env, check=False).returncode == 0


def test_systemctl_recorder_keeps_service_state(tmp_path):
    env = {"PATH": f"{recorders.install(tmp_path)}:/usr/bin:/bin"}

    def active():
        return subprocess.run(["systemctl", "is-active", "xcatd"], env=env, capture_output=True, check=False).returncode

    assert active() == 3
    subprocess.run(["systemctl", "start", "xcatd.service"], env=env, check=True)
    assert active() == 0
    subprocess.run(["systemctl", "stop", "xcatd"], env=env, check=True)
    assert active() == 3


def test_write_atomic_sets_mode_and_reports_change(tmp_path):
    path = str(tmp_path / "f")
    assert fileops.write_atomic(path, "a\n", mode=0o600) is True
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert fileops.write_atomic(path, "a\n", mode=0o600) is False
    assert fileops.write_atomic(path, "b\n", mode=0o600) is True
    assert open(path, encoding="utf-8").read() == "b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp file left


def test_move_aside_never_deletes(tmp_path):
    data = tmp_path / "main"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    first = fileops.move_aside(str(data), stamp="20260101T000000")
    data.mkdir()
    second = fileops.move_aside(str(data), stamp="20260101T000000")
    assert first.endswith("main.hamn-20260101T000000")
    assert second.endswith("main.hamn-20260101T000000-1")
    assert (tmp_path / "main.hamn-20260101T000000" / "PG_VERSION").read_text() == "15\n"


def test_the_sampler_counts_both_at_once_only_when_the_first_node_still_says_yes():
    from saltext_hamn.lab.sampler import Sampler  # pylint: disable=import-outside-toplevel

    def looks(*answers):
        seen = iter(answers)
        return lambda node: next(seen)

    nodes = ("mn1", "mn2")
    # The VIP moving mn1 -> mn2 between the two looks: yes, yes, then mn1 no longer.
    assert Sampler._bracketed(looks(True, True, False), nodes) == ({"mn1": False, "mn2": True}, False)
    # Really on both: mn1 still yes after mn2 said yes.
    assert Sampler._bracketed(looks(True, True, True), nodes) == ({"mn1": True, "mn2": True}, True)
    # One holder: no third look needed.
    assert Sampler._bracketed(looks(True, False), nodes) == ({"mn1": True, "mn2": False}, False)
    assert Sampler._bracketed(looks(False, True), nodes) == ({"mn1": False, "mn2": True}, False)
