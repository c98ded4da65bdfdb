"""``hamn-lab`` as an admin runs it: up (twice), status, salt, run-on, down — and
down after a half-built lab. Each run uses its own prefix, so it coexists with the
test session's lab."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from saltext_hamn.lab import netns
from saltext_hamn.lab.lab import Lab, processes_under
from saltext_hamn.lab.spec import LabSpec

pytestmark = [pytest.mark.root, pytest.mark.postgres]
HAMN_LAB = str(Path(sys.executable).parent / "hamn-lab")


@pytest.fixture
def cli_spec(lab_spec, request):
    spec = LabSpec(prefix=f"hc{os.getpid() % 100000}{request.node.name[-1]}"[:10],
                   base_dir=str(lab_spec.lab_dir / "cli"))
    yield spec
    Lab(spec, out=lambda m: None).down()  # safety net if the test failed midway


def hamn_lab(spec, *args, check=True):
    env = dict(os.environ, HAMN_LAB_PREFIX=spec.prefix, HAMN_LAB_DIR=spec.base_dir)
    result = subprocess.run([HAMN_LAB, *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_gone(spec):
    assert not [ns for ns in netns.existing() if ns.startswith(spec.prefix + "-")]
    assert not spec.lab_dir.exists()
    assert not processes_under(spec.lab_dir)


def test_up_twice_status_salt_run_on_down(cli_spec):
    first = hamn_lab(cli_spec, "up")
    assert "standby streaming" in first.stdout
    again = hamn_lab(cli_spec, "up")  # idempotent: nothing rebuilt
    assert "initdb" not in again.stdout and "pg_basebackup" not in again.stdout
    assert "lab up" in again.stdout

    status = json.loads(hamn_lab(cli_spec, "status").stdout)
    assert status["state"] == "up"
    assert status["nodes"]["mn1"]["postgres"] == "primary"
    assert status["nodes"]["mn2"]["wal_receiver"] == "streaming"

    ping = json.loads(hamn_lab(cli_spec, "salt", "*", "test.ping", "--out=json", "--static").stdout)
    assert ping == {"mn1": True, "mn2": True}
    funcs = json.loads(hamn_lab(cli_spec, "salt", "mn2", "sys.list_functions", "hamn", "--out=json").stdout)
    assert "hamn.config" in funcs["mn2"]

    addrs = hamn_lab(cli_spec, "run-on", "mn2", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert "198.51.100.12/24" in addrs
    assert hamn_lab(cli_spec, "run-on", "mn9", "true", check=False).returncode == 2

    down = hamn_lab(cli_spec, "down")
    assert "lab down" in down.stdout
    assert_gone(cli_spec)


def test_down_cleans_a_half_built_lab(cli_spec):
    Lab(cli_spec, out=lambda m: None).up_postgres()  # no salt daemons: "up" died midway
    assert processes_under(cli_spec.lab_dir), "postgres should be running in the half-built lab"
    hamn_lab(cli_spec, "down")
    assert_gone(cli_spec)
    hamn_lab(cli_spec, "down")  # and down on nothing is fine
