"""Real PostgreSQL clusters in temporary directories (unix sockets, own ports)."""

import itertools
import os
import pwd
import shutil
import uuid

import pytest

from tests import support
from saltext_hamn.lab import pgbin
from saltext_hamn.utils.pg import postmaster
from saltext_hamn.utils.pg.cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.postgres]
_ports = itertools.count(55432)
PASSWORD = "Repl-Pw-Functional-7"


def pg_install():
    """The PostgreSQL under test (env HAMN_PG: 15, 18 or a bindir; default the newest Debian one)."""
    return pgbin.choose()


def pg_major():
    return pg_install().major


@pytest.fixture
def workdir(lab_spec):
    """A directory the postgres user can traverse; removed (with its clusters) afterwards."""
    path = lab_spec.lab_dir / f"func-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    for p in (lab_spec.lab_dir, path):
        os.chmod(p, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_cluster(workdir, name):
    """A Cluster with its own data dir, socket dir and port (nothing started)."""
    pg = pwd.getpwnam("postgres")
    base = workdir / name
    for sub, mode in (("", 0o755), ("run", 0o755), ("data", 0o700)):
        path = base / sub if sub else base
        path.mkdir(exist_ok=True)
        os.chown(path, pg.pw_uid, pg.pw_gid)
        os.chmod(path, mode)
    return Cluster(
        bindir=pg_install().bindir,
        data_dir=str(base / "data"),
        port=next(_ports),
        socket_dir=str(base / "run"),
        log_file=str(base / "postgresql.log"),
        passfile=str(base / "pgpass"),
    )


def cfg_for(cluster, mode="async"):
    """A validated hamn config describing ``cluster`` (unix-socket only: no TCP listener)."""
    return support.load(postgres={
        "version": pg_major(),
        "bindir": cluster.bindir,
        "data_dir": cluster.data_dir,
        "socket_dir": cluster.socket_dir,
        "port": cluster.port,
        "listen_addresses": "localhost",
        "replication": {"password": PASSWORD, "mode": mode},
    })


@pytest.fixture
def clusters(workdir):
    """Factory of clusters; every one made is stopped at teardown."""
    made = []

    def factory(name):
        cluster = make_cluster(workdir, name)
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        if postmaster.has_data(cluster) and postmaster.is_running(cluster):
            postmaster.stop(cluster, mode="immediate")
