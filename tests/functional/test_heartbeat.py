"""The heartbeat payload on a real PostgreSQL pair in namespaces: the fields of each
role, what the standby says once the primary is gone, and what a run costs.

The tests run in order; the last one stops the primary.
"""

import os
import signal
import socket
import statistics
import threading
import time

import pytest

from saltext_hamn.lab.spec import NODE_IFACE, VIP_ADDRESS, WITNESS_ADDRESS
from saltext_hamn.utils.auto import heartbeat
from saltext_hamn.utils.net import vip
from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import lsn, postmaster
from tests.functional import pair

pytestmark = [pytest.mark.root, pytest.mark.postgres]

lab, mn1, mn2 = pair.fixtures("h", "func-beacon")
MASTER_PORT = 4506
RUNS = 20


class MasterPort:
    """A listener on the witness's ret port standing in for the salt-master."""

    def __init__(self, netns):
        with entered(netns):
            self.sock = socket.create_server((WITNESS_ADDRESS, MASTER_PORT))
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        # Accept and drop: an unaccepted backlog would fill up and the probes time out.
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(2)


@pytest.fixture(scope="module")
def master(lab):  # pylint: disable=redefined-outer-name
    port = MasterPort(lab.spec.witness_ns)
    yield (WITNESS_ADDRESS, MASTER_PORT)
    port.close()


def beat(node, master_endpoint):
    """One heartbeat of ``node`` as its beacon builds it (without the lease watchdog)."""
    return heartbeat.build(node.cfg, node.name, master_endpoint, netns=node.ns, cluster=node.cluster,
                           lease=lambda cfg, me, netns=None: None)


def run_times(node, master_endpoint, runs=RUNS):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        beat(node, master_endpoint)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def test_primary_payload(mn1, master):
    payload = beat(mn1, master)
    assert payload["error"] is None, payload["error"]
    assert (payload["node"], payload["role"], payload["pg_up"], payload["timeline"]) == ("mn1", "primary", True, 1)
    assert lsn.parse(payload["lsn"]) > 0 and payload["replayed"] is None
    assert payload["streaming"] is False and payload["maintenance"] is False
    assert (payload["reaches_peer_pg"], payload["reaches_master"], payload["vip"]) == (True, True, False)


def test_standby_payload(mn1, mn2, master):
    mn1.sql("CREATE TABLE IF NOT EXISTS hb_t (v int)")
    mn1.sql("INSERT INTO hb_t SELECT generate_series(1, 100)")
    primary_at = lsn.parse(beat(mn1, master)["lsn"])
    deadline = time.monotonic() + 10
    while True:
        payload = beat(mn2, master)
        if lsn.parse(payload["replayed"]) >= primary_at or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert payload["error"] is None, payload["error"]
    assert (payload["node"], payload["role"], payload["pg_up"], payload["timeline"]) == ("mn2", "standby", True, 1)
    assert payload["streaming"] is True
    assert lsn.parse(payload["lsn"]) >= lsn.parse(payload["replayed"]) >= primary_at
    assert isinstance(payload["lag_bytes"], int) and payload["lag_bytes"] >= 0
    assert (payload["reaches_peer_pg"], payload["reaches_master"], payload["vip"]) == (True, True, False)


def test_vip_is_reported_where_it_is_held(mn1, mn2, master):
    vip.add(VIP_ADDRESS, 24, NODE_IFACE, netns=mn1.ns)
    try:
        assert (beat(mn1, master)["vip"], beat(mn2, master)["vip"]) == (True, False)
    finally:
        vip.remove(VIP_ADDRESS, 24, NODE_IFACE, netns=mn1.ns)
    assert beat(mn1, master)["vip"] is False


def test_master_unreachable(mn1, master):
    refused = (WITNESS_ADDRESS, MASTER_PORT + 1)  # the host answers, nothing listens
    silent = ("198.51.100.99", MASTER_PORT)  # nobody has this address: the probe times out
    assert beat(mn1, refused)["reaches_master"] is False
    started = time.monotonic()
    payload = beat(mn1, silent)
    took = time.monotonic() - started
    assert payload["reaches_master"] is False and payload["reaches_peer_pg"] is True
    assert heartbeat.PROBE_TIMEOUT <= took < heartbeat.PROBE_TIMEOUT + 0.2  # bounded by the probe timeout


def test_run_time_on_a_healthy_pair(mn1, mn2, master):
    timings = {node.name: run_times(node, master) for node in (mn1, mn2)}
    print(f"\nheartbeat run time, median / max of {RUNS}: "
          + ", ".join(f"{name} {med * 1000:.1f} / {top * 1000:.1f} ms" for name, (med, top) in timings.items()))
    for median, _ in timings.values():
        assert median < 0.05


def test_a_hung_server_blocks_a_run_only_briefly(mn2, master):
    """The beacon runs on the minion's event loop: a postmaster that accepts but never
    answers must cost at most the connect timeout, and say so."""
    pid = int(open(f"{mn2.cluster.data_dir}/postmaster.pid", encoding="ascii").readline())
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        payload = beat(mn2, master)
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (payload["role"], payload["pg_up"]) == ("unknown", False)
    assert payload["error"].startswith("postgres: cannot connect to PostgreSQL")
    assert took < heartbeat.PG_CONNECT_TIMEOUT + 1.0
    assert beat(mn2, master)["pg_up"] is True  # answers again once resumed


def test_standby_sees_the_primary_go(mn1, mn2, master):
    postmaster.stop(mn1.cluster, mode="immediate")
    deadline = time.monotonic() + 15
    while True:
        payload = beat(mn2, master)
        if (payload["streaming"] is False and payload["reaches_peer_pg"] is False) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (payload["streaming"], payload["reaches_peer_pg"]) == (False, False)
    # The standby itself is fine and still knows how far it got.
    assert (payload["role"], payload["pg_up"], payload["error"]) == ("standby", True, None)
    assert lsn.parse(payload["replayed"]) > 0

    stopped = beat(mn1, master)
    assert (stopped["role"], stopped["pg_up"], stopped["timeline"], stopped["lsn"]) == ("stopped", False, 1, None)
    assert stopped["error"] is None and stopped["reaches_peer_pg"] is True
    median, top = run_times(mn1, master, runs=5)
    print(f"\nheartbeat run time with PostgreSQL stopped (pg_ctl status + pg_controldata): "
          f"median {median * 1000:.1f} ms, max {top * 1000:.1f} ms")
    assert median < 0.5
