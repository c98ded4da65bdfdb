"""``hamn-lab`` as an admin runs it: up (twice), status, salt, run-on, then the
drill (``make demo``'s story, --json) in that lab, which ends with down — and down
after a half-built lab. Each run uses its own prefix, so it coexists with the test
session's lab."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from saltext_hamn.lab import netns, timeline
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


def hamn_lab(spec, *args, check=True, timeout=300):
    env = dict(os.environ, HAMN_LAB_PREFIX=spec.prefix, HAMN_LAB_DIR=spec.base_dir)
    result = subprocess.run([HAMN_LAB, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_gone(spec):
    assert not [ns for ns in netns.existing() if ns.startswith(spec.prefix + "-")]
    assert not spec.lab_dir.exists()
    assert not processes_under(spec.lab_dir)


def test_up_twice_status_salt_run_on_then_the_drill(cli_spec, tmp_path):
    first = hamn_lab(cli_spec, "up")
    assert "standby streaming" in first.stdout
    again = hamn_lab(cli_spec, "up")  # idempotent: nothing rebuilt
    assert "initdb" not in again.stdout and "pg_basebackup" not in again.stdout
    assert "lab up" in again.stdout

    status = json.loads(hamn_lab(cli_spec, "status").stdout)
    assert status["state"] == "up"
    # The lab runs the PostgreSQL the run asked for (HAMN_PG: make test runs this test on 15 and 18).
    from saltext_hamn.lab import pgbin

    assert status["postgres"].startswith(f"{pgbin.choose().version} ("), status["postgres"]
    assert status["nodes"]["mn1"]["postgres"] == "primary"
    assert status["nodes"]["mn2"]["wal_receiver"] == "streaming"

    ping = json.loads(hamn_lab(cli_spec, "salt", "*", "test.ping", "--out=json", "--static").stdout)
    assert ping == {"mn1": True, "mn2": True}
    funcs = json.loads(hamn_lab(cli_spec, "salt", "mn2", "sys.list_functions", "hamn", "--out=json").stdout)
    assert "hamn.config" in funcs["mn2"]

    addrs = hamn_lab(cli_spec, "run-on", "mn2", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert "198.51.100.12/24" in addrs
    assert hamn_lab(cli_spec, "run-on", "mn9", "true", check=False).returncode == 2

    # The drill in this lab (hamn.setup on a lab that `up` built), ending with down.
    drill = hamn_lab(cli_spec, "drill", "--json", "--out", str(tmp_path / "drill"), timeout=900)
    assert "lab down" in drill.stderr and not drill.stdout.startswith("[hamn-lab]")
    assert_gone(cli_spec)
    assert_drill_report(json.loads(drill.stdout), tmp_path / "drill")


def assert_drill_report(report, out):
    """What the drill must show; its figures (seconds, lag) are for people, not asserted."""
    names = [r["name"] for r in report["runs"]]
    assert [n for n in names if n in ("setup", "switchover", "auto-failover", "rejoin")] == \
        ["setup", "switchover", "auto-failover", "rejoin"], names
    assert all(r["result"] == "done" for r in report["runs"]), report["runs"]
    assert report["error"] is None
    from saltext_hamn.lab import pgbin

    assert report["postgres"].startswith(pgbin.choose().version + " ("), report["postgres"]
    writes = report["writes"]
    assert writes["acknowledged"] > 0 and writes["read_from"] in ("mn1", "mn2")
    assert "switchover" not in writes["lost_by_phase"], "a switchover loses no acknowledged commit"
    phases = {o["phase"] for o in report["outages"] if o["kind"] == "failed"}
    assert "primary killed, automatic failover" in phases, report["outages"]
    assert not any(o["open"] for o in report["outages"]), "writes work again at the end"
    assert [s["before"] for s in report["lag"]] == ["switchover", "kill"]
    assert all(isinstance(s.get("bytes"), int) for s in report["lag"]), report["lag"]
    rejoined = [r for r in report["rejoin"] if r["run"] == "rejoin"]
    assert rejoined and rejoined[0]["path"] != "unknown", report["rejoin"]
    labels = {m["label"] for m in report["markers"]}
    assert {"promoted + VIP moved", "rejoined"} <= labels, labels  # switch (switchover), takeover (automatic)
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# hamn drill")
    if timeline.available():
        assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_down_cleans_a_half_built_lab(cli_spec):
    Lab(cli_spec, out=lambda m: None).up_postgres()  # no salt daemons: "up" died midway
    assert processes_under(cli_spec.lab_dir), "postgres should be running in the half-built lab"
    hamn_lab(cli_spec, "down")
    assert_gone(cli_spec)
    hamn_lab(cli_spec, "down")  # and down on nothing is fine


def test_up_on_a_postgresql_that_is_not_here_makes_nothing(cli_spec):
    refused = hamn_lab(cli_spec, "up", "--pg", "99", check=False)
    assert refused.returncode == 1
    assert "hamn-lab: PostgreSQL 99 is not installed here (found: " in refused.stderr, refused.stderr
    assert_gone(cli_spec)
