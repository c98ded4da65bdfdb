"""Primary -> streaming standby with the library the lab uses, on real PostgreSQL."""

import os

import psycopg2
import pytest

from saltext_hamn.utils.pg import bootstrap, canary, conf, connection, postmaster, replication
from tests.functional.conftest import PASSWORD, cfg_for, pg_major

pytestmark = [pytest.mark.root, pytest.mark.postgres]


def start_primary(cluster):
    cfg = cfg_for(cluster)
    bootstrap.initdb(cluster, pg_major())
    bootstrap.write_server_files(cluster, cfg, pg_major())
    postmaster.start(cluster)
    with connection.session(cluster) as conn:
        replication.ensure_role(conn, "replicator", PASSWORD, replication=True)
        replication.ensure_slot(conn, "hamn_mn2")
    return cfg


def make_standby(standby, primary):
    replication.write_pgpass(standby, "*", primary.port, "replicator", PASSWORD)
    moved = replication.basebackup(
        standby, host=primary.socket_dir, port=primary.port, user="replicator", slot="hamn_mn2"
    )
    bootstrap.write_server_files(standby, cfg_for(standby), pg_major())
    replication.write_standby_config(
        standby, pg_major(), primary_host=primary.socket_dir, primary_port=primary.port,
        user="replicator", slot="hamn_mn2", application_name="mn2",
    )
    postmaster.start(standby)
    return moved


def test_standby_streams_and_canary_travels(clusters):
    primary, standby = clusters("primary"), clusters("standby")
    start_primary(primary)
    make_standby(standby, primary)

    row = replication.wait_streaming(standby, timeout=30)
    assert row["status"] == "streaming"
    assert row["slot"] == "hamn_mn2"
    with connection.session(primary) as conn:
        senders = connection.query(conn, "SELECT application_name, state FROM pg_stat_replication")
        assert ("mn2", "streaming") in senders
        token = canary.write(conn)
    canary.wait_for(lambda: connection.connect(standby), token, timeout=10)
    with connection.session(primary) as conn:
        canary.remove(conn, token)
    canary.wait_for(lambda: connection.connect(standby), token, timeout=10, gone=True)
    with connection.session(standby) as conn:
        assert connection.scalar(conn, "SELECT pg_is_in_recovery()") is True
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            canary.write(conn)


def test_replication_role_uses_scram_and_password_stays_out_of_files(clusters):
    primary = clusters("primary")
    start_primary(primary)
    with connection.session(primary) as conn:
        stored = connection.scalar(conn, "SELECT rolpassword FROM pg_authid WHERE rolname = 'replicator'")
    assert stored.startswith("SCRAM-SHA-256$")
    assert PASSWORD not in stored
    with open(primary.server_log, encoding="utf-8") as handle:
        assert PASSWORD not in handle.read()
    for name in ("postgresql.conf", conf.SETTINGS_FILE, "pg_hba.conf"):
        with open(os.path.join(primary.data_dir, name), encoding="utf-8") as handle:
            text = handle.read()
        assert PASSWORD not in text
    with open(os.path.join(primary.data_dir, "pg_hba.conf"), encoding="utf-8") as handle:
        hba = [l.split() for l in handle if l.strip() and not l.startswith("#")]
    assert all(line[-1] != "trust" for line in hba), "no trust lines (initdb's are replaced first-match)"
    replication.write_pgpass(primary, "*", primary.port, "replicator", PASSWORD)
    assert os.stat(primary.pgpass).st_mode & 0o777 == 0o600


def test_wrong_replication_password_is_refused(clusters):
    primary, standby = clusters("primary"), clusters("standby")
    start_primary(primary)
    replication.write_pgpass(standby, "*", primary.port, "replicator", "not-the-password")
    with pytest.raises(Exception, match="pg_basebackup failed"):
        replication.basebackup(standby, host=primary.socket_dir, port=primary.port, user="replicator", slot="hamn_mn2")


def test_basebackup_moves_existing_data_dir_aside(clusters):
    primary, standby = clusters("primary"), clusters("standby")
    start_primary(primary)
    marker = os.path.join(standby.data_dir, "precious.txt")
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write("do not lose me")
    moved = make_standby(standby, primary)
    assert moved and moved.startswith(standby.data_dir + ".hamn-")
    with open(os.path.join(moved, "precious.txt"), encoding="utf-8") as handle:
        assert handle.read() == "do not lose me"
    assert replication.wait_streaming(standby, timeout=30)["status"] == "streaming"


def test_server_files_keep_admin_lines_and_rewrite_idempotently(clusters):
    primary = clusters("primary")
    cfg = cfg_for(primary)
    bootstrap.initdb(primary, pg_major())
    conf_path = os.path.join(primary.data_dir, "postgresql.conf")
    with open(conf_path, "a", encoding="utf-8") as handle:
        handle.write("work_mem = '8MB'  # the admin's own\n")
    first = bootstrap.write_server_files(primary, cfg, pg_major())
    assert set(first) == {"hamn.conf", "postgresql.conf", "pg_hba.conf", "pg_ident.conf"}
    assert bootstrap.write_server_files(primary, cfg, pg_major()) == []
    postmaster.start(primary)
    with connection.session(primary) as conn:
        assert connection.scalar(conn, "SHOW work_mem") == "8MB"
        assert connection.scalar(conn, "SHOW wal_log_hints") == "on"
        assert connection.scalar(conn, "SHOW password_encryption") == "scram-sha-256"


def test_stop_returns_shutdown_checkpoint_lsn(clusters):
    primary = clusters("primary")
    start_primary(primary)
    with connection.session(primary) as conn:
        before = connection.scalar(conn, "SELECT pg_current_wal_lsn()")
    lsn = postmaster.stop(primary)
    assert not postmaster.is_running(primary)
    assert postmaster.controldata(primary)["Database cluster state"] == "shut down"
    hi, lo = (int(x, 16) for x in lsn.split("/"))
    bhi, blo = (int(x, 16) for x in before.split("/"))
    assert (hi, lo) >= (bhi, blo)
