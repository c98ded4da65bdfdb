"""Boot-safe demotion on a real PostgreSQL pair in two network namespaces.

Whatever hamn takes out of the primary role must come back read-only, however it
is started next (here as an admin or systemd would: a bare ``pg_ctl start``); the
node-local code must notice a peer that runs as primary too; ``hamn.status`` tells
whether the peer's PostgreSQL port answers.

The tests run in order on one pair and move the roles around like an admin would.
"""

import os
import time

import psycopg2
import pytest

from saltext_hamn.modules import hamn as hamn_module
from saltext_hamn.states import hamn as hamn_state
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.filesync import state as filesync_state
from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import conf, demote, postmaster, promote, replica, replication, rewind
from tests.functional import pair

pytestmark = [pytest.mark.root, pytest.mark.postgres]


class Node(pair.Node):
    """A pair node with the demotion checks of this module."""

    @property
    def signal(self):
        return os.path.join(self.cluster.data_dir, "standby.signal")

    def start_by_hand(self):
        """What an admin or systemd does: pg_ctl start, no hamn involved."""
        self.cluster.run("pg_ctl", "start", "-D", self.cluster.data_dir, "-w", "-l", self.cluster.server_log,
                         timeout=90)

    def module(self, monkeypatch, fn, *args, **kwargs):
        """An execution module function as the minion of this node runs it."""
        monkeypatch.setattr(hamn_module, "__pillar__", {"hamn": self.cfg}, raising=False)
        monkeypatch.setattr(hamn_module, "__opts__", {"id": self.name}, raising=False)
        with entered(self.ns):
            return fn(*args, **kwargs)


lab, mn1, mn2 = pair.fixtures("b", "func-demote", Node)


def wait_for_log(node, text, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(node.cluster.server_log, encoding="utf-8", errors="replace") as handle:
            if text in handle.read():
                return True
        time.sleep(0.1)
    return False


def rows(node):
    return node.sql("SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM hamn_d")[0][0]


def test_status_tells_whether_the_peers_postgres_port_answers(mn1, mn2, monkeypatch):
    up = mn1.module(monkeypatch, hamn_module.status)
    assert up["role"] == "primary" and up["peer"] == "mn2"
    assert up["peer_postgres"]["reachable"] is True and up["peer_postgres"]["seconds"] < 1
    postmaster.stop(mn2.cluster)
    try:
        started = time.monotonic()
        down = mn1.module(monkeypatch, hamn_module.status)
        assert time.monotonic() - started < 1
        assert down["peer_postgres"]["reachable"] is False and down["peer_postgres"]["seconds"] < 1
        assert down["peer_postgres"]["error"] == "connection refused"
    finally:
        postmaster.start(mn2.cluster)
    replication.wait_streaming(mn2.cluster, timeout=30)


def test_stop_db_on_a_standby_leaves_its_config_alone(mn2):
    standby_conf = os.path.join(mn2.cluster.conf_dir, conf.STANDBY_FILE)
    before = {p: (os.stat(p).st_mtime_ns, open(p, encoding="utf-8").read()) for p in (mn2.signal, standby_conf)}
    stopped = mn2.call(demote.stop, mn2.cfg, "mn2", mn2.major)
    assert stopped == {"changed": True, "was_running": True, "lsn": stopped["lsn"],
                       "state": "shut down in recovery", "boot_safe": True}
    after = {p: (os.stat(p).st_mtime_ns, open(p, encoding="utf-8").read()) for p in (mn2.signal, standby_conf)}
    assert after == before
    postmaster.start(mn2.cluster)
    replication.wait_streaming(mn2.cluster, timeout=30)


def test_demoted_primary_started_by_hand_is_read_only(mn1, mn2):
    mn1.sql("CREATE TABLE hamn_d (v text PRIMARY KEY)")
    mn1.sql("INSERT INTO hamn_d VALUES ('before-demote')")
    assert not os.path.exists(mn1.signal)
    done = mn1.call(demote.demote, mn1.cfg, "mn1", mn1.major)
    assert done["changed"] and done["was_running"] and done["was_role"] == "primary"
    assert done["state"] == "shut down" and done["lsn"] and done["boot_safe"] is True
    assert done["standby_signal"] == mn1.signal and os.path.exists(mn1.signal)
    assert not postmaster.is_running(mn1.cluster)
    standby_conf = open(os.path.join(mn1.cluster.conf_dir, conf.STANDBY_FILE), encoding="utf-8").read()
    assert "host=198.51.100.12" in standby_conf and "primary_slot_name = 'hamn_mn1'" in standby_conf
    assert mn2.call(promote.wait_for_lsn, done["lsn"], timeout=10)["reached"]

    mn1.start_by_hand()
    assert mn1.sql("SELECT pg_is_in_recovery()")[0][0] is True
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        mn1.sql("INSERT INTO hamn_d VALUES ('must-not-be-written')")
    # Stopped again, the demotion is idempotent: nothing to write, nothing running.
    mn1.call(demote.demote, mn1.cfg, "mn1", mn1.major)
    again = mn1.call(demote.demote, mn1.cfg, "mn1", mn1.major)
    assert again["changed"] is False and again["was_running"] is False and again["was_role"] == "stopped"
    assert again["state"] == "shut down in recovery" and again["boot_safe"] is True


def test_switchover_old_primary_started_by_hand_follows_the_new_one(mn1, mn2):
    # mn1 was demoted above and mn2 received its shutdown checkpoint: promote mn2.
    promoted = mn2.call(promote.promote, mn2.cfg, "mn2")
    assert promoted["changed"] and promoted["timeline"] == 2
    mn2.sql("INSERT INTO hamn_d VALUES ('on-the-new-primary')")

    mn1.start_by_hand()  # no pg_rewind: it stopped cleanly at what mn2 had received
    row = replication.wait_streaming(mn1.cluster, timeout=30)
    assert row["sender_host"] == "198.51.100.12" and row["slot"] == "hamn_mn1"
    info = mn1.status()
    assert info["role"] == "standby" and info["timeline"] == promoted["timeline"]
    mn1.call(promote.wait_for_lsn, mn2.status()["current_lsn"], timeout=10, replayed=True)
    assert rows(mn1) == rows(mn2) == ["before-demote", "on-the-new-primary"]


def test_stop_db_on_a_primary_leaves_it_boot_safe(mn1, mn2):
    assert not os.path.exists(mn2.signal)
    stopped = mn2.call(demote.stop, mn2.cfg, "mn2", mn2.major)
    assert stopped["changed"] and stopped["state"] == "shut down" and stopped["lsn"]
    assert stopped["boot_safe"] is True and os.path.exists(mn2.signal)
    mn1.call(promote.wait_for_lsn, stopped["lsn"], timeout=10)
    # Back to mn1 as primary (a switchover the other way), mn2 follows when started by hand.
    promoted = mn1.call(promote.promote, mn1.cfg, "mn1")
    assert promoted["timeline"] == 3
    mn2.start_by_hand()
    assert mn2.sql("SELECT pg_is_in_recovery()")[0][0] is True
    replication.wait_streaming(mn2.cluster, timeout=30)
    assert mn2.status()["timeline"] == 3


def test_split_brain_is_refused_on_both_nodes(mn1, mn2, monkeypatch):
    # The standby is promoted while the primary still runs (e.g. a failover during a partition).
    mn2.call(promote.promote, mn2.cfg, "mn2", force=True)
    older = "split brain: this node (mn1, timeline 3) and its peer mn2 (timeline 4) both run as primary; " \
            "this node is the older one — demote it: salt-run hamn.demote mn1"
    with pytest.raises(HamnError) as info:
        mn1.call(replica.discover_role, mn1.cfg, "mn1")
    assert str(info.value) == older
    with pytest.raises(HamnError) as info:
        mn2.call(replica.discover_role, mn2.cfg, "mn2")
    assert str(info.value) == ("split brain: this node (mn2, timeline 4) and its peer mn1 (timeline 3) both run as "
                               "primary; the peer is the older one — demote it: salt-run hamn.demote mn1")

    # The states fail with that line.
    monkeypatch.setattr(hamn_state, "__pillar__", {"hamn": mn1.cfg}, raising=False)
    monkeypatch.setattr(hamn_state, "__opts__", {"id": "mn1", "test": False}, raising=False)
    with entered(mn1.ns):
        ret = hamn_state.replica_configured("replication")
    assert ret["result"] is False and ret["comment"] == older and ret["changes"] == {}

    pushes = []
    salt = {"hamn.status": lambda: mn1.module(monkeypatch, hamn_module.status),
            "cp.push": lambda *a, **k: pushes.append(a) or True}
    with entered(mn1.ns):
        ret = filesync_state.files_synced("files", salt=salt, opts={"id": "mn1"}, pillar={"hamn": mn1.cfg},
                                          test=False)
    assert ret["result"] is False and ret["comment"] == f"refused to sync files as primary: {older}"
    assert pushes == []
    mn1.sql("INSERT INTO hamn_d VALUES ('only-on-mn1')")  # the older primary diverges


def test_demote_of_a_crashed_primary_reports_it_and_stays_read_only(mn1, mn2):
    postmaster.stop(mn1.cluster, mode="immediate")  # mn1 "crashes" as primary
    assert not os.path.exists(mn1.signal)  # removed by its promotion
    done = mn1.call(demote.demote, mn1.cfg, "mn1", mn1.major)
    assert done["was_running"] is False and done["was_role"] == "stopped"
    assert done["state"] == "in production" and done["lsn"] is None
    assert done["changed"] is True and done["boot_safe"] is True and os.path.exists(mn1.signal)
    mn1.start_by_hand()
    assert mn1.sql("SELECT pg_is_in_recovery()")[0][0] is True
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        mn1.sql("INSERT INTO hamn_d VALUES ('must-not-be-written')")
    # With the older node read-only, the newer one is the only primary again.
    assert mn2.call(replica.discover_role, mn2.cfg, "mn2")[0] == "primary"
    # Its diverged timeline-3 WAL goes past mn2's fork point: read-only, but it cannot follow by itself.
    assert wait_for_log(mn1, "new timeline 4 forked off current database system timeline 3 before current "
                             "recovery point")
    assert (mn1.status()["wal_receiver"] or {}).get("status") != "streaming"
    joined = mn1.call(rewind.rewind, mn1.cfg, "mn1", mn1.major)
    assert joined["method"] == "pg_rewind" and joined["timeline"] == 4, joined
    mn2.sql("INSERT INTO hamn_d VALUES ('after-rejoin')")
    mn1.call(promote.wait_for_lsn, mn2.status()["current_lsn"], timeout=10, replayed=True)
    assert rows(mn1) == rows(mn2) and "after-rejoin" in rows(mn1) and "only-on-mn1" not in rows(mn1)
