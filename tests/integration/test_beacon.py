"""The ``hamn`` beacon in real minions: heartbeats reach the master every second.

A master and two minions of this module's own, whose config enables the beacon as
a deployment would (``beacons: {hamn: [{interval: 1}]}``); the session's minions
stay without it. The master's events come through salt-factories' event listener.
"""

import collections
import time

import pytest

from saltext_hamn.utils.lease import supervise
from tests.integration.conftest import master_overrides, netns_minion

pytestmark = [pytest.mark.root, pytest.mark.postgres]

BEACONS = {"hamn": [{"interval": 1}]}
# Salt runs beacons from a fixed 1 s callback but counts their interval in units of
# loop_interval; salt-factories sets 0.05 (one heartbeat per 20 s), Salt's default is 1.
LOOP_INTERVAL = 1
WATCH = 5  # seconds of heartbeats looked at


@pytest.fixture(scope="module")
def beacon_master(salt_factories, lab):
    factory = salt_factories.salt_master_daemon("hamn-beacon-master", overrides=master_overrides(lab))
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def beacon_minions(beacon_master, lab):
    started = []
    try:
        for node in lab.spec.nodes:
            factory = netns_minion(beacon_master, lab, node, beacons=BEACONS, loop_interval=LOOP_INTERVAL)
            factory.start(start_timeout=120)
            started.append(factory)
        yield started
    finally:
        for factory in started:
            factory.terminate()
        # The beacon starts each node's lease watchdog, which outlives its minion on purpose.
        for node in lab.spec.nodes:
            supervise.stop(lab.node_cfg(node))


def heartbeats(event_listener, master, since):
    """The beacon events per node, in the order they were built."""
    patterns = [(master.id, "salt/beacon/*/hamn/")]
    found = collections.defaultdict(list)
    for event in event_listener.get_events(patterns, after_time=since):
        found[event.data["node"]].append(event)
    return {node: sorted(events, key=lambda e: e.data["seq"]) for node, events in found.items()}


def test_heartbeats_arrive_every_second_with_each_nodes_role(beacon_master, beacon_minions, event_listener):
    since = time.time()
    first = event_listener.wait_for_events(
        [(beacon_master.id, "salt/beacon/mn1/hamn/"), (beacon_master.id, "salt/beacon/mn2/hamn/")],
        timeout=30, after_time=since)
    assert first.found_all_events, "no heartbeat from one of the nodes within 30 s"
    watch_from = time.time()
    time.sleep(WATCH)
    beats = heartbeats(event_listener, beacon_master, watch_from)
    assert set(beats) == {"mn1", "mn2"}

    for node, role in (("mn1", "primary"), ("mn2", "standby")):
        events = beats[node]
        assert WATCH - 1 <= len(events) <= WATCH + 1, f"{node}: {len(events)} heartbeats in {WATCH} s"
        for event in events:
            data = event.data
            assert event.tag == f"salt/beacon/{node}/hamn/"
            assert (data["v"], data["node"], data["id"], data["role"]) == (1, node, node, role)
            assert data["error"] is None, data["error"]
            assert (data["pg_up"], data["reaches_peer_pg"], data["reaches_master"]) == (True, True, True)
            assert data["streaming"] is (role == "standby")
            # The beacon keeps the node's watchdog running; no master arms it here.
            assert data["lease"]["node"] == node and data["lease"]["enforcing"] is False
        seqs = [e.data["seq"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{node}: heartbeats missing: {seqs}"
        gaps = [b.data["at"] - a.data["at"] for a, b in zip(events, events[1:])]
        assert all(0.7 <= gap <= 1.5 for gap in gaps), f"{node}: gaps between heartbeats {gaps}"
        print(f"\n{node}: {len(events)} heartbeats, gaps {[round(g, 3) for g in gaps]}, at->master "
              f"{[round(e.stamp.timestamp() - e.data['at'], 3) for e in events]}")
