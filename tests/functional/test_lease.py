"""The lease watchdog on a real PostgreSQL pair: real ``hamn-leased`` daemons in the node
namespaces, the test process playing the salt-master from the witness namespace.

The tests run in order on one pair: mn1 primary, mn2 streaming standby; the last two
fence nodes for real.
"""

import contextlib
import copy
import json
import os
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from saltext_hamn.lab import netns
from saltext_hamn.utils.config import LEASE_MARGIN
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import ledger, protocol, supervise
from saltext_hamn.utils.lease.observe import postmaster_alive
from saltext_hamn.utils.net import vip
from saltext_hamn.utils.pg import postmaster
from tests.functional import pair
from tests.support import poll

pytestmark = [pytest.mark.root, pytest.mark.postgres]


class Node(pair.Node):
    @property
    def address(self):
        return self.cfg["nodes"][self.name]["address"]

    @property
    def state_dir(self):
        return self.cfg["heartbeat"]["state_dir"]

    @property
    def lease(self):
        return self.cfg["heartbeat"]["lease"]

    @property
    def signal(self):
        return os.path.join(self.cluster.data_dir, "standby.signal")

    def book(self):
        return ledger.Ledger(self.state_dir).read()

    def ensure(self):
        return supervise.ensure(self.cfg, self.name, netns=self.ns)

    def exchange(self, op, args=None, key=None, sender="master", on_challenge=None):
        """What the master does, from the witness namespace (where this test process runs)."""
        hb = self.cfg["heartbeat"]
        with netns.entered(self.lab.spec.witness_ns):
            return protocol.exchange(self.address, hb["lease_port"], key or hb["lease_key"], op, sender, args,
                                     timeout=2, on_challenge=on_challenge)


lab, mn1, mn2 = pair.fixtures("l", "func-lease", Node)


class Master:
    """The master's renewals of one node: t_r noted in on_challenge, as the runner will."""

    def __init__(self, node):
        self.node, self.last_t_r = node, None
        self._stop = threading.Event()
        self._thread = None

    def _note(self, _challenge):
        self.last_t_r = ledger.now()

    def renew(self, enforce=True):
        return self.node.exchange("renew", {"enforce": enforce}, on_challenge=self._note)

    @contextlib.contextmanager
    def renewing(self, every=1.0, enforce=True):
        def loop():
            while not self._stop.is_set():
                with contextlib.suppress(HamnError):
                    self.renew(enforce)
                self._stop.wait(every)

        self._stop.clear()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)


def wait_for(predicate, timeout, step=0.02):
    return poll(predicate, timeout, step)


@pytest.fixture(scope="module")
def watchdogs(mn1, mn2):
    try:
        for node in (mn1, mn2):
            started = node.ensure()
            assert started["started"] is True and started["pid"] > 0
            assert netns.wait_tcp(lab_spec_witness(node), node.address, node.cfg["heartbeat"]["lease_port"], 10)
        yield
    finally:
        for node in (mn1, mn2):
            supervise.stop(node.cfg)
            with contextlib.suppress(OSError):  # for a failed run's report
                print(f"\n--- {node.name} lease.log ---\n" + open(os.path.join(node.state_dir, "lease.log"),
                                                                encoding="utf-8").read()[-3000:])


def lab_spec_witness(node):
    return node.lab.spec.witness_ns


def test_ensure_is_idempotent_and_private(mn1, mn2, watchdogs):
    again = mn1.ensure()
    assert again["started"] is False and again["restarted"] is False and again["pid"] == supervise.running_pid(mn1.cfg)
    config_file = os.path.join(mn1.state_dir, supervise.CONFIG)
    assert oct(os.stat(config_file).st_mode & 0o777) == "0o600"
    # A second daemon on the same state_dir leaves at once, saying why.
    second = subprocess.run(supervise.command(mn1.cfg, mn1.ns), capture_output=True, text=True, timeout=20)
    assert second.returncode == 0 and "one already runs" in second.stdout
    status = supervise.read_status(mn1.cfg)
    assert status["role"] == "primary" and status["pid"] == again["pid"] and status["age"] < 1.0
    # A changed configuration restarts it, with the new settings.
    changed = copy.deepcopy(mn1.cfg)
    changed["heartbeat"]["lease"] = 4.0
    log_path = os.path.join(mn1.state_dir, "lease.log")
    try:
        restarted = supervise.ensure(changed, "mn1", netns=mn1.ns)
        assert restarted["restarted"] is True and restarted["pid"] != again["pid"]
        # ensure() returns once the new daemon runs; its first log line may come a moment later.
        assert wait_for(lambda: "lease 4s" in open(log_path, encoding="utf-8").read(), 5)
    finally:
        back = mn1.ensure()  # the tests after this one need the 3 s lease back, whatever failed above
    assert back["restarted"] is True and mn1.ensure()["started"] is False
    assert wait_for(lambda: (supervise.read_status(mn1.cfg) or {}).get("pid") == back["pid"], 5)
    # Neither the lease key nor the replication password reach the log or the status.
    secrets = (mn1.cfg["heartbeat"]["lease_key"], mn1.cfg["postgres"]["replication"]["password"])
    text = open(log_path, encoding="utf-8").read() + json.dumps(status)
    assert "started" in text and "lease 3s" in text and not any(secret in text for secret in secrets)


def test_a_master_renewals_keep_an_enforced_lease(mn1, mn2, watchdogs):
    ledger.hold_peer(mn2.state_dir)  # only the master renews mn1 here
    try:
        master = Master(mn1)
        with master.renewing(every=1.0):
            time.sleep(2 * mn1.lease + 1)
            status = mn1.exchange("status")
        assert status["role"] == "primary" and status["enforcing"] is True and status["fenced"] is False
        assert 0 < status["lease_left"] <= mn1.lease and status["renewals"]["master"] < 1.5
        assert postmaster_alive(mn1.cluster.data_dir)
    finally:
        ledger.release_peer(mn2.state_dir)


def test_g_hold_peer_stops_the_standbys_renewals(mn1, mn2, watchdogs):
    Master(mn1).renew(enforce=False)  # disarmed: the hold below lets mn1's lease run out
    assert wait_for(lambda: (supervise.read_status(mn2.cfg) or {}).get("peer_renewing"), 5)
    first = ledger.hold_peer(mn2.state_dir)
    try:
        assert first is not None and first < mn2.lease / 3 + 0.6
        time.sleep(mn2.lease)
        second = ledger.hold_peer(mn2.state_dir)
        assert second >= first + mn2.lease - 0.1  # no renewal slipped in
        assert supervise.read_status(mn2.cfg)["peer_renewing"] is False
        assert mn1.exchange("status")["renewals"]["mn2"] >= mn2.lease - 0.1
    finally:
        ledger.release_peer(mn2.state_dir)
    assert wait_for(lambda: mn1.exchange("status")["renewals"]["mn2"] < 1.0, 3)


def test_b_the_standbys_streaming_alone_keeps_the_lease(mn1, mn2, watchdogs):
    Master(mn1).renew(enforce=True)  # armed, then the master goes quiet
    time.sleep(2 * mn1.lease + 1)
    status = mn1.exchange("status")
    assert status["enforcing"] is True and status["fenced"] is False and status["lease_left"] > 0
    assert status["renewals"]["master"] > 2 * mn1.lease and status["renewals"]["mn2"] < mn1.lease / 3 + 0.5
    assert postmaster_alive(mn1.cluster.data_dir) and mn1.status()["role"] == "primary"


def test_f_a_renew_with_a_wrong_key_is_refused_and_extends_nothing(mn1, mn2, watchdogs):
    Master(mn1).renew(enforce=False)  # disarmed: this test lets the lease run low
    ledger.hold_peer(mn2.state_dir)
    try:
        time.sleep(0.3)
        before = mn1.book()
        with pytest.raises(HamnError, match="not authentic"):
            mn1.exchange("renew", {"enforce": True}, key="0" * 64)
        with pytest.raises(HamnError, match="refused renew: only the master sets enforce"):
            mn1.exchange("renew", {"enforce": True}, sender="mn2")
        after = mn1.book()
        assert after["expiry"] == before["expiry"] and after["renewals"] == before["renewals"]
        assert after["enforcing"] is False
        mn1.exchange("renew", {"enforce": False})  # the right key does extend it
        assert mn1.book()["expiry"] > before["expiry"]
    finally:
        ledger.release_peer(mn2.state_dir)


def test_d_a_restarted_watchdog_keeps_the_old_expiry(mn1, mn2, watchdogs):
    ledger.hold_peer(mn2.state_dir)
    try:
        Master(mn1).renew(enforce=False)
        expiry = mn1.book()["expiry"]
        old = supervise.running_pid(mn1.cfg)
        os.kill(old, signal.SIGKILL)
        assert wait_for(lambda: supervise.running_pid(mn1.cfg) is None, 5)
        restarted = mn1.ensure()
        assert restarted["started"] is True and restarted["pid"] != old
        assert wait_for(lambda: (supervise.read_status(mn1.cfg) or {}).get("pid") == restarted["pid"], 5)
        status = mn1.exchange("status")
        assert mn1.book()["expiry"] == expiry  # no fresh grace
        assert status["lease_left"] < expiry - ledger.now() + 0.01 and status["lease_left"] < mn1.lease
    finally:
        ledger.release_peer(mn2.state_dir)


def test_c_without_renewals_the_primary_fences_itself(mn1, mn2, watchdogs):
    v = mn1.cfg["vip"]
    vip.add(v["address"], v["prefix"], v["interface"], v["label"], netns=mn1.ns)
    master = Master(mn1)
    master.renew(enforce=True)
    witness, veth = mn1.lab.spec.witness_ns, mn1.lab.spec.veth("mn1")
    netns.ip("-n", witness, "link", "set", veth, "down")  # the primary is cut off from everyone
    try:
        cut = ledger.now()
        stopped = wait_for(lambda: not postmaster_alive(mn1.cluster.data_dir) and ledger.now(),
                           mn1.lease + LEASE_MARGIN + 5)
        assert stopped, "the primary was not fenced"
        last_renewal = max(master.last_t_r, mn2.book()["peer_renew_sent"] or 0)
        after = stopped - last_renewal
        print(f"\nPostgreSQL on mn1 stopped {after:.3f}s after the last renewal "
              f"({stopped - cut:.3f}s after the cut; lease {mn1.lease:g}s, margin {LEASE_MARGIN:g}s)")
        # Not before the lease could have run out, and well within the failover delay.
        assert mn1.lease - 0.3 <= after <= mn1.lease + LEASE_MARGIN
    finally:
        netns.ip("-n", witness, "link", "set", veth, "up")
    assert not vip.held(v["address"], v["interface"], netns=mn1.ns)
    assert os.path.exists(mn1.signal)
    # The ledger's note is the fence's last step: it may land a moment after PostgreSQL is gone.
    status = wait_for(lambda: (lambda s: s["fenced"] and s)(mn1.exchange("status")), 2, step=0.05)
    assert status and "lease expired" in status["fence_reason"] and status["role"] == "stopped"
    log = open(os.path.join(mn1.state_dir, "lease.log"), encoding="utf-8").read()
    assert "FENCING: enforced lease expired" in log and "fence done" in log
    # Started by hand as an admin or systemd would: read-only.
    mn1.cluster.run("pg_ctl", "start", "-D", mn1.cluster.data_dir, "-w", "-l", mn1.cluster.server_log, timeout=90)
    assert mn1.sql("SELECT pg_is_in_recovery()")[0][0] is True
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        mn1.sql("CREATE TABLE lease_must_not_exist (v int)")
    time.sleep(0.5)
    assert postmaster_alive(mn1.cluster.data_dir)  # a standby is left alone


def test_e_fence_from_the_master(mn1, mn2, watchdogs):
    assert mn2.status()["role"] == "standby" and postmaster_alive(mn2.cluster.data_dir)
    os.unlink(mn2.signal)  # so the fence's own write can be seen (PG reads it only at start)
    with pytest.raises(HamnError, match="fence is accepted from the master only"):
        mn2.exchange("fence", sender="mn1")
    assert postmaster_alive(mn2.cluster.data_dir) and not os.path.exists(mn2.signal)
    started = time.monotonic()
    status = mn2.exchange("fence")
    took = time.monotonic() - started
    assert status["fenced"] is True and status["fence_reason"] == "fence requested by the master"
    assert not postmaster_alive(mn2.cluster.data_dir) and os.path.exists(mn2.signal)
    assert not postmaster.is_running(mn2.cluster) and took < LEASE_MARGIN, took
    # Again on a stopped server: the signal is still written.
    os.unlink(mn2.signal)
    assert mn2.exchange("fence")["fenced"] is True and os.path.exists(mn2.signal)
