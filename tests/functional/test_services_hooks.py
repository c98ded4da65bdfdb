"""Services, takeover hooks and preflight with the lab recorders and a real PostgreSQL data dir."""

import time

import pytest

from saltext_hamn.lab import recorders
from saltext_hamn.utils import preflight, services
from saltext_hamn.utils.pg import bootstrap, postmaster
from tests import support
from tests.functional.conftest import make_cluster, pg_major

pytestmark = [pytest.mark.root]


default_cfg = support.load


@pytest.fixture
def node_dir(recorder_dir):
    return recorder_dir


def takeover(cfg):
    return (services.stop_services(cfg) + services.start_services(cfg)
            + services.run_hooks(cfg, node="mn2"))


def test_takeover_sequence_with_default_config(node_dir):
    steps = takeover(default_cfg())
    assert recorders.calls(node_dir) == [
        ("systemctl", "stop xcatd"),
        ("systemctl", "stop dhcpd"),
        ("systemctl", "stop named"),
        ("systemctl", "stop conserver"),
        ("systemctl", "start conserver"),
        ("systemctl", "start named"),
        ("systemctl", "start dhcpd"),
        ("systemctl", "start xcatd"),
        ("makedns", "-n"),
        ("makedhcp", "-a"),
        ("makeconservercf", ""),
    ]
    assert all(step["retcode"] == 0 for step in steps)
    assert set(services.service_states(default_cfg()).values()) == {"active"}


def test_failing_makedhcp_stops_before_makeconservercf(node_dir):
    recorders.set_failure(node_dir, "makedhcp", 2)
    with pytest.raises(services.StepFailed, match=r"makedhcp failed \(exit 2\)") as info:
        takeover(default_cfg())
    assert [s["name"] for s in info.value.steps] == ["makedns", "makedhcp"]
    names = [name for name, _ in recorders.calls(node_dir)]
    assert names[-2:] == ["makedns", "makedhcp"]
    assert "makeconservercf" not in names


@pytest.mark.postgres
@pytest.mark.parametrize("checksums, ok", [(False, False), (True, True)])
def test_preflight_rewind_ready_on_real_data_dir(workdir, checksums, ok):
    """initdb as postgres under the run's lab dir (removed by ``workdir``)."""
    cluster = make_cluster(workdir, "pf")
    # hamn's initdb says on or off explicitly: PostgreSQL 18 would turn them on by itself.
    assert bootstrap.initdb(cluster, pg_major(), data_checksums=checksums) is True
    assert postmaster.has_data(cluster)
    assert postmaster.controldata(cluster)["Data page checksum version"] == ("1" if checksums else "0")
    cfg = default_cfg(postgres={
        "replication": {"password": "Functional-Pw-3"},
        "data_dir": cluster.data_dir,
        "bindir": cluster.bindir,
        "version": pg_major(),
    }, preflight={"check_install": False})

    report = preflight.run(cfg, "mn1", cluster, reference_time=time.time())
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["rewind_ready"]["ok"] is ok, checks["rewind_ready"]
    if ok:
        assert "data checksums on" in checks["rewind_ready"]["reason"]
    else:
        assert "wal_log_hints off and data checksums off" in checks["rewind_ready"]["reason"]
    assert checks["postgres_bin"]["ok"] is True
    assert report["versions"]["postgres"].split(".")[0] == str(pg_major())
    for name in ("postgres_version", "postgres_major", "subnet", "peer_resolves", "clock", "install_dir"):
        assert checks[name]["ok"] is True, checks[name]
    assert report["ok"] is ok
