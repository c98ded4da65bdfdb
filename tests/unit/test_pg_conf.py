"""Rendering of PostgreSQL configuration (no server needed)."""

import pytest

from saltext_hamn.utils.pg import conf
from saltext_hamn.utils.pg.cluster import Cluster
from tests import support

def cfg(**postgres):
    return support.load(postgres=postgres)


CLUSTER = Cluster(bindir="/usr/lib/postgresql/15/bin", data_dir="/srv/pg/main", passfile="/srv/pg/.pgpass")


def test_quote():
    assert conf.quote(True) == "on"
    assert conf.quote(False) == "off"
    assert conf.quote(10) == "10"
    assert conf.quote("it's") == "'it''s'"


def test_managed_block_replaces_only_itself():
    text = "admin line 1\n"
    once = conf.with_block(text, "hamn a\n", top=False)
    assert once == f"admin line 1\n{conf.BEGIN}\nhamn a\n{conf.END}\n"
    twice = conf.with_block(once + "admin line 2\n", "hamn b\n", top=False)
    assert "hamn a" not in twice and "hamn b" in twice
    assert twice.startswith("admin line 1\n") and twice.endswith("admin line 2\n")
    assert conf.with_block(twice, "hamn b\n") == twice
    top = conf.with_block("local all all peer\n", "host x\n", top=True)
    assert top.index("host x") < top.index("local all all peer")


def test_replication_settings_pg15_async():
    s = conf.replication_settings(cfg(), CLUSTER, 15)
    assert s["wal_keep_size"] == "1024MB" and "wal_keep_segments" not in s
    assert s["wal_log_hints"] is True and s["hot_standby"] is True
    assert s["password_encryption"] == "scram-sha-256"
    assert s["synchronous_standby_names"] == ""


def test_replication_settings_sync_names_both_nodes_and_old_versions():
    s = conf.replication_settings(cfg(replication={"password": "x" * 9, "mode": "sync"}), CLUSTER, 12)
    assert s["synchronous_standby_names"] == 'ANY 1 ("mn1", "mn2")'
    assert s["wal_keep_segments"] == 64 and "wal_keep_size" not in s
    strict = conf.replication_settings(cfg(replication={"password": "x" * 9, "mode": "sync_strict"}), CLUSTER, 15)
    assert strict["synchronous_standby_names"] == 'ANY 1 ("mn1", "mn2")'


def test_hba_is_per_address_scram_and_never_trust():
    lines = conf.hba_lines(cfg(), extra_client_addresses=["198.51.100.1"]).splitlines()
    assert all("trust" not in line for line in lines)
    repl = [line for line in lines if line.split()[1] == "replication" and line.startswith("host")]
    assert {line.split()[3] for line in repl} == {"198.51.100.11/32", "198.51.100.12/32", "198.51.100.10/32"}
    assert all(line.split()[-1] == "scram-sha-256" for line in repl)
    assert any("198.51.100.1/32" in line and "xcatadm" in line for line in lines)


def test_standby_files_modern_and_legacy():
    kwargs = dict(primary_host="198.51.100.11", primary_port=5432, user="replicator",
                  slot="hamn_mn2", application_name="mn2")
    modern = conf.standby_files(CLUSTER, 15, **kwargs)
    assert set(modern) == {"/srv/pg/main/standby.signal", "/srv/pg/main/hamn.standby.conf"}
    text = modern["/srv/pg/main/hamn.standby.conf"]
    assert "primary_slot_name = 'hamn_mn2'" in text
    assert "passfile=/srv/pg/.pgpass " in text and "password" not in text.replace("passfile", "")
    assert "recovery_target_timeline = 'latest'" in text
    legacy = conf.standby_files(CLUSTER, 11, **kwargs)
    assert list(legacy) == ["/srv/pg/main/recovery.conf"]
    assert "standby_mode = on" in legacy["/srv/pg/main/recovery.conf"]
    assert "primary_conninfo = 'host=198.51.100.11 port=5432 user=replicator" in legacy["/srv/pg/main/recovery.conf"]


@pytest.mark.parametrize("value, expected", [("plain", "plain"), ("", "''"), ("a b", "'a b'"), ("it's", "'it\\'s'"), ("c:\\x", "'c:\\\\x'")])
def test_conninfo_quoting(value, expected):
    assert conf.conninfo(host=value) == f"host={expected}"


def test_pgpass_escapes_colons_and_backslashes():
    assert conf.pgpass_line("*", 5432, "rep", "a:b\\c") == "*:5432:*:rep:a\\:b\\\\c\n"
