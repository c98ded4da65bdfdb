"""The logic of the hamn.replica_configured state on a real PostgreSQL pair in two
network namespaces: from empty data dirs, idempotence, dry runs, reload vs
restart, the admin's own settings, and role discovery after a failover."""

import copy
import os

import pytest

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import conf, connection, postmaster, promote, replica, status
from tests.support import own_lab

pytestmark = [pytest.mark.root, pytest.mark.postgres]


@pytest.fixture(scope="module")
def lab(lab_spec):
    with own_lab(lab_spec, "r", "func-replica") as lab:
        lab.prepare()  # network, dirs, pillar: no PostgreSQL yet
        yield lab


def run(lab, node, dry_run, cfg=None, role=None):
    cfg = cfg or lab.node_cfg(node)
    cluster = lab.cluster(node)
    with entered(lab.spec.node_ns(node)):
        role = role or replica.discover_role(cluster, cfg, node)[0]
        return role, replica.converge(cluster, cfg, node, role, dry_run=dry_run)


def discover(lab, node):
    with entered(lab.spec.node_ns(node)):
        return replica.discover_role(lab.cluster(node), lab.node_cfg(node), node)


def show(lab, node, setting):
    with connection.session(lab.cluster(node)) as conn:
        return connection.scalar(conn, f"SHOW {setting}")


def with_cfg(lab, node, **changes):
    cfg = copy.deepcopy(lab.node_cfg(node))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = cfg
        for key in parents:
            target = target[key]
        target[leaf] = value
    return cfg


def test_first_setup_builds_primary_then_standby(lab):
    role, why = discover(lab, "mn1")
    assert role == "primary" and "first setup" in why
    with pytest.raises(HamnError, match="not reachable yet: configure it first"):
        discover(lab, "mn2")
    _, planned = run(lab, "mn1", dry_run=True)
    assert "initdb" in planned and not postmaster.has_data(lab.cluster("mn1"))  # dry run touched nothing
    _, done = run(lab, "mn1", dry_run=False)
    assert done["server"] == "start" and done["slot"] == "create hamn_mn2"
    assert done["replication_role"] == "create replicator"
    assert run(lab, "mn1", dry_run=True) == ("primary", {})
    # hamn:postgres:data_checksums (default true) reached initdb: on, also on 15, whose own default is off.
    assert postmaster.controldata(lab.cluster("mn1"))["Data page checksum version"] == "1"

    manual = with_cfg(lab, "mn2", postgres__auto_rebuild=False)
    with pytest.raises(HamnError, match="this node has no data.*hamn.rewind fallback=True.*auto_rebuild"):
        run(lab, "mn2", dry_run=False, cfg=manual, role="standby")
    assert discover(lab, "mn2")[0] == "standby"
    _, done = run(lab, "mn2", dry_run=False)
    assert done["rebuild"].startswith("this node has no data: pg_basebackup")
    assert status.collect(lab.cluster("mn2"))["wal_receiver"]["status"] == "streaming"
    assert run(lab, "mn2", dry_run=True) == ("standby", {})


def test_reload_when_enough_restart_when_needed(lab):
    hamn_conf = os.path.join(lab.cluster("mn1").data_dir, conf.SETTINGS_FILE)
    before = open(hamn_conf, encoding="utf-8").read()
    bigger_keep = with_cfg(lab, "mn1", postgres__wal__keep_size=2 * 1024**3)
    _, planned = run(lab, "mn1", dry_run=True, cfg=bigger_keep)
    assert planned == {"files": ["hamn.conf"], "server": "reload"}
    assert open(hamn_conf, encoding="utf-8").read() == before  # test mode wrote nothing
    _, done = run(lab, "mn1", dry_run=False, cfg=bigger_keep)
    assert done == {"files": ["hamn.conf"], "server": "reloaded"}
    assert show(lab, "mn1", "wal_keep_size") == "2GB"

    more_slots = with_cfg(lab, "mn1", postgres__wal__keep_size=2 * 1024**3, postgres__wal__max_replication_slots=12)
    _, planned = run(lab, "mn1", dry_run=True, cfg=more_slots)
    assert planned["server"] == "restart (needed for max_replication_slots)"
    _, done = run(lab, "mn1", dry_run=False, cfg=more_slots)
    assert done["server"] == "restarted (needed for max_replication_slots)"
    assert show(lab, "mn1", "max_replication_slots") == "12"
    assert run(lab, "mn1", dry_run=True, cfg=more_slots)[1] == {}
    run(lab, "mn1", dry_run=False)  # back to the pillar's values
    assert show(lab, "mn1", "max_replication_slots") == "10"


def test_admins_own_settings_survive(lab):
    path = os.path.join(lab.cluster("mn1").data_dir, "postgresql.conf")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("work_mem = '6MB'  # the admin's own\n")
    with open(os.path.join(lab.cluster("mn1").data_dir, "pg_hba.conf"), "a", encoding="utf-8") as handle:
        handle.write("host all all 198.51.100.99/32 scram-sha-256  # the admin's own\n")
    with connection.session(lab.cluster("mn1")) as conn:
        connection.query(conn, "SELECT pg_reload_conf()")
    assert run(lab, "mn1", dry_run=True)[1] == {}
    assert show(lab, "mn1", "work_mem") == "6MB"
    assert "198.51.100.99/32" in open(os.path.join(lab.cluster("mn1").data_dir, "pg_hba.conf")).read()


def test_after_failover_roles_follow_runtime_facts(lab):
    mn1, mn2 = lab.cluster("mn1"), lab.cluster("mn2")
    # Unplanned failover: mn1 dies (stopped hard), mn2 is promoted.
    postmaster.stop(mn1, mode="immediate")
    with entered(lab.spec.node_ns("mn2")):
        promote.promote(mn2, lab.node_cfg("mn2"), "mn2", force=True)
    assert discover(lab, "mn2")[0] == "primary"  # the pillar still says initial_primary: mn1
    assert run(lab, "mn2", dry_run=True)[1] == {}  # slot for mn1 made at promotion

    role, why = discover(lab, "mn1")
    assert role == "standby" and "runs as primary" in why
    manual = with_cfg(lab, "mn1", postgres__auto_rebuild=False)
    with pytest.raises(HamnError, match="was a primary.*hamn.rewind"):
        run(lab, "mn1", dry_run=False, cfg=manual, role="standby")
    _, done = run(lab, "mn1", dry_run=False)
    assert "pg_rewind" in done["rebuild"]
    s = status.collect(mn1)
    assert s["role"] == "standby" and s["wal_receiver"]["sender_host"] == "198.51.100.12"
    assert run(lab, "mn1", dry_run=True) == ("standby", {})
