"""Replication modes on a real PostgreSQL pair with real ``hamn-leased`` daemons: the
primary's watchdog owns synchronous_standby_names; the test process plays the master
(from the witness namespace).

In order on one pair (mn1 primary, mn2 streaming standby): sync, then sync_strict,
then a promotion of mn2 in sync mode.
"""

import contextlib
import copy
import os
import threading
import time

import psycopg2
import pytest

from saltext_hamn.lab import netns
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import ledger, protocol, supervise
from saltext_hamn.utils.lease import sync as lease_sync
from saltext_hamn.utils.pg import connection, postmaster, replication
from saltext_hamn.utils.pg import promote as pg_promote
from tests.functional import pair
from tests.support import poll

pytestmark = [pytest.mark.root, pytest.mark.postgres]

FALLBACK = 1.0


class Node(pair.Node):
    mode = "async"

    def run_cfg(self):
        cfg = copy.deepcopy(self.cfg)
        cfg["postgres"]["replication"].update(mode=self.mode, sync_fallback=FALLBACK)
        return cfg

    def ensure(self, mode):
        self.mode = mode
        return supervise.ensure(self.run_cfg(), self.name, netns=self.ns)

    def status(self):  # the watchdog's, not PostgreSQL's
        return supervise.read_status(self.run_cfg()) or {}

    def sync(self):
        return self.status().get("sync") or {}

    def renew(self, **args):
        """A master renewal (never armed here: nothing in this module may fence)."""
        hb = self.cfg["heartbeat"]
        with netns.entered(self.lab.spec.witness_ns):
            return protocol.exchange(self.cfg["nodes"][self.name]["address"], hb["lease_port"], hb["lease_key"],
                                     "renew", "master", {"enforce": False, **args}, timeout=2)

    def renew_from_peer(self, **args):
        hb, peer = self.cfg["heartbeat"], "mn2" if self.name == "mn1" else "mn1"
        with netns.entered(self.lab.spec.witness_ns):
            return protocol.exchange(self.cfg["nodes"][self.name]["address"], hb["lease_port"], hb["lease_key"],
                                     "renew", peer, args, timeout=2)

    def setting(self):
        return self.sql("SELECT current_setting('synchronous_standby_names')")[0][0]

    def pg_start(self):
        self.call(postmaster.start)

    def pg_stop(self):
        self.call(postmaster.stop, mode="fast")


lab, mn1, mn2 = pair.fixtures("s", "func-sync", Node)


def wait_for(predicate, timeout, step=0.05):
    return poll(predicate, timeout, step)


class Writer:
    """One INSERT on its own thread and connection, without any timeout: did it return?"""

    def __init__(self, node, value, statement_timeout_ms=None):
        self.done = threading.Event()
        self.error = None
        self.conn = connection.connect(node.cluster, statement_timeout_ms=statement_timeout_ms)
        self.thread = threading.Thread(target=self._run, args=(value,), daemon=True)
        self.thread.start()

    def _run(self, value):
        try:
            with self.conn.cursor() as cur:
                cur.execute("INSERT INTO sync_t VALUES (%s)", (value,))
        except psycopg2.Error as exc:
            self.error = exc
        finally:
            self.done.set()

    def close(self):
        if not self.done.is_set():
            with contextlib.suppress(psycopg2.Error):
                self.conn.cancel()  # thread-safe; a cancelled wait commits locally: cleanup only
            self.done.wait(5)
        with contextlib.suppress(psycopg2.Error):
            self.conn.close()


@pytest.fixture(scope="module")
def watchdogs(lab, mn1, mn2):
    try:
        yield
    finally:
        for node in (mn1, mn2):
            supervise.stop(node.run_cfg())
            with contextlib.suppress(OSError):
                print(f"\n--- {node.name} lease.log ---\n" + open(os.path.join(node.cfg["heartbeat"]["state_dir"],
                                                                                  "lease.log"),
                                                                     encoding="utf-8").read()[-4000:])


def names_for(peer):
    return lease_sync.standby_names("sync", peer)


def test_a_sync_waits_for_the_standby_and_falls_back_only_with_the_masters_consent(mn1, mn2, watchdogs):
    assert mn1.setting() == ""  # the lab starts async
    for node in (mn1, mn2):
        node.ensure("sync")
    started = time.monotonic()
    assert wait_for(lambda: mn1.sync().get("loss_free") is True, 10), mn1.status()
    print(f"\nsync in effect and seen {time.monotonic() - started:.2f}s after the watchdogs started")
    assert mn1.setting() == names_for("mn2")
    assert mn1.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'mn2'") == [("sync",)]
    block = mn1.sync()
    assert block == {"mode": "sync", "standby_names": names_for("mn2"), "sync_standby_streaming": True,
                     "wants_async": False, "loss_free": True}
    standby = wait_for(lambda: (lambda st: st.get("role") == "standby" and st)(mn2.status()), 3)
    assert standby and "sync" in standby and standby["sync"] is None
    mn1.sql("CREATE TABLE sync_t (v int PRIMARY KEY)")
    mn1.sql("INSERT INTO sync_t VALUES (1)")

    mn2.pg_stop()
    stopped = time.monotonic()
    # statement_timeout does not cover the wait for the standby (PostgreSQL disarms it before
    # the commit): the INSERT neither returns nor fails.
    writer = Writer(mn1, 2, statement_timeout_ms=1000)
    try:
        assert wait_for(lambda: mn1.sync().get("wants_async"), FALLBACK + 3), mn1.status()
        asked = time.monotonic() - stopped
        time.sleep(1.0)
        assert not writer.done.is_set(), "a commit was acknowledged without the standby and without consent"
        assert mn1.setting() == names_for("mn2") and mn1.sync()["loss_free"] is True
        # The peer may not let writes through.
        with pytest.raises(HamnError, match="only the master allows async"):
            mn1.renew_from_peer(allow_async=True)
        time.sleep(0.5)
        assert not writer.done.is_set() and mn1.setting() == names_for("mn2")
        # The master's consent: recorded "not loss-free" first, then the writes go through.
        consented = time.monotonic()
        answer = mn1.renew(allow_async=True)
        assert answer["sync"]["loss_free"] is False
        assert ledger.Ledger(mn1.cfg["heartbeat"]["state_dir"]).read()["sync_released"] is True
        assert writer.done.wait(3) and writer.error is None
        released = time.monotonic() - consented
        assert mn1.setting() == "" and mn1.sync()["loss_free"] is False and mn1.sync()["wants_async"] is False
        print(f"standby stopped: wants_async after {asked:.2f}s (fallback {FALLBACK:g}s); "
              f"the waiting commit returned {released:.3f}s after the master's consent")
        mn1.sql("INSERT INTO sync_t VALUES (3)")  # async now: no wait
    finally:
        writer.close()

    mn2.pg_start()
    back = time.monotonic()
    assert wait_for(lambda: mn1.sync().get("loss_free") is True, 15), mn1.status()
    print(f"standby restarted: names back and loss-free again {time.monotonic() - back:.2f}s later")
    assert mn1.setting() == names_for("mn2")
    assert not ledger.Ledger(mn1.cfg["heartbeat"]["state_dir"]).read()["sync_released"]
    mn1.sql("INSERT INTO sync_t VALUES (4)")
    assert wait_for(lambda: mn2.sql("SELECT count(*) FROM sync_t")[0][0] == 4, 5)


def test_b_sync_strict_never_lets_writes_through_and_loses_nothing(mn1, mn2, watchdogs):
    for node in (mn1, mn2):
        restarted = node.ensure("sync_strict")
        assert restarted["restarted"] is True
    assert wait_for(lambda: mn1.sync().get("mode") == "sync_strict" and mn1.sync().get("loss_free") is True, 10)
    mn1.sql("INSERT INTO sync_t SELECT generate_series(10, 19)")  # acknowledged with the standby there
    mn2.pg_stop()
    writer = Writer(mn1, 20)
    try:
        time.sleep(FALLBACK * 3)
        block = mn1.sync()
        assert block["wants_async"] is False and block["loss_free"] is True and block["sync_standby_streaming"] is False
        assert not writer.done.is_set()
        answer = mn1.renew(allow_async=True)  # the renewal itself is accepted, the consent ignored
        assert answer["sync"]["loss_free"] is True and answer["lease_left"] > 0
        time.sleep(1.5)
        assert not writer.done.is_set(), "sync_strict acknowledged a commit without the standby"
        assert mn1.setting() == names_for("mn2")
        assert "allow_async from the master ignored" in open(
            os.path.join(mn1.cfg["heartbeat"]["state_dir"], "lease.log"), encoding="utf-8").read()
        # A client's own cancel (pg_cancel_backend, a driver's cancel) is PostgreSQL's one way
        # around the wait: the commit then stays local, with a warning -- shown here, a documented limit.
        cancelled = Writer(mn1, 21)
        try:
            time.sleep(0.5)
            assert not cancelled.done.is_set()
            cancelled.conn.cancel()
            assert cancelled.done.wait(3) and cancelled.error is None
            assert any("canceling wait for synchronous replication" in n for n in cancelled.conn.notices)
            assert mn1.sql("SELECT count(*) FROM sync_t WHERE v = 21")[0][0] == 1
        finally:
            cancelled.close()
        mn2.pg_start()
        assert writer.done.wait(15) and writer.error is None
    finally:
        writer.close()
    replication.wait_streaming(mn2.cluster, timeout=30)
    # Everything acknowledged before the stop, and the commit that waited, is on the standby.
    assert wait_for(lambda: mn2.sql("SELECT count(*) FROM sync_t WHERE v BETWEEN 10 AND 20")[0][0] == 11, 5)
    assert wait_for(lambda: mn1.sync().get("loss_free") is True, 10)


def test_c_a_promoted_standby_names_the_old_primary_at_once(mn1, mn2, watchdogs):
    for node in (mn1, mn2):
        node.ensure("sync")
    assert wait_for(lambda: mn1.sync().get("loss_free") is True and mn1.sync().get("mode") == "sync", 10)
    assert mn2.setting() != names_for("mn1")
    mn1.pg_stop()
    supervise.stop(mn2.run_cfg())  # what follows is the promotion's own doing, not the watchdog's
    with netns.entered(mn2.ns):
        done = pg_promote.promote(mn2.cluster, mn2.run_cfg(), "mn2")
    assert done["changed"] is True
    time.sleep(0.5)
    assert mn2.setting() == names_for("mn1")  # set before pg_promote
    assert mn2.ensure("sync")["started"] is True
    block = wait_for(lambda: mn2.sync().get("standby_names") and mn2.sync(), 5)
    assert block["standby_names"] == names_for("mn1") and block["loss_free"] is False
    # Nothing can be acknowledged on the new primary while the old one is away, until the master allows it.
    assert wait_for(lambda: mn2.sync().get("wants_async"), FALLBACK + 3)
    writer = Writer(mn2, 30)
    try:
        time.sleep(1.0)
        assert not writer.done.is_set()
        mn2.renew(allow_async=True)
        assert writer.done.wait(3) and writer.error is None
        assert mn2.setting() == "" and mn2.sync()["loss_free"] is False
    finally:
        writer.close()
