"""The switchover's handoff node to node (utils/handoff.py) on a real pair in two
namespaces: the old primary stops boot-safe, the new one promotes, the VIP moves
on the old node's word, and at no sampled instant do both nodes hold it."""

import threading
import time

import pytest

from saltext_hamn.lab import recorders
from saltext_hamn.utils import handoff
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import handover, vip
from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import postmaster
from tests.functional import pair

pytestmark = [pytest.mark.root, pytest.mark.postgres]

lab, mn1, mn2 = pair.fixtures("k", "func-handoff")
RUN = "0123456789abcdef"


class VipSampler(threading.Thread):
    """Who holds the VIP, every millisecond, from both namespaces."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes, self.both, self.samples, self.stop = nodes, [], 0, threading.Event()

    def run(self):
        # One open netlink socket per namespace: opening one per look would take longer
        # than the moment being watched.
        handles = [handover.Release(n.cfg, n.ns) for n in self.nodes]
        try:
            while not self.stop.is_set():
                if sum(h.held() for h in handles) > 1:
                    self.both.append(time.monotonic())
                self.samples += 1
                time.sleep(0.001)
        finally:
            for handle in handles:
                handle.close()


def test_release_refuses_while_the_peer_does_not_stream(mn1, mn2):
    postmaster.stop(mn2.cluster)
    try:
        with pytest.raises(HamnError, match="mn2 .* does not stream from this primary now"):
            mn1.call(handoff.release_primary, mn1.cfg, "mn1", mn1.major)
        assert mn1.status()["role"] == "primary"  # nothing was stopped
    finally:
        postmaster.start(mn2.cluster)
    for _ in range(100):
        if mn1.status()["standbys"]:
            break
        time.sleep(0.1)


def test_take_over_needs_the_handover_position(mn2):
    with pytest.raises(HamnError, match="no handover position"):
        mn2.call(handoff.take_over, mn2.cfg, "mn2", RUN, lsn=None)
    assert mn2.status()["role"] == "standby"


def test_the_vip_moves_node_to_node_and_the_old_primary_follows_without_rewind(mn1, mn2, recorder_dir):
    with entered(mn1.ns):
        vip.up(mn1.cfg)
    mn1.sql("CREATE TABLE IF NOT EXISTS handoff_t (v int)")
    mn1.sql("INSERT INTO handoff_t VALUES (1)")
    released = mn1.call(handoff.release_primary, mn1.cfg, "mn1", mn1.major)
    assert released["lsn"] and released["boot_safe"] and not postmaster.is_running(mn1.cluster)
    sampler = VipSampler([mn1, mn2])
    sampler.start()
    answers = {}

    def side(node, fn, *args, **kwargs):
        answers[node.name] = node.call(fn, node.cfg, node.name, *args, **kwargs)

    threads = [threading.Thread(target=side, args=(mn1, handoff.release_vip, mn1.major, RUN)),
               threading.Thread(target=side, args=(mn2, handoff.take_over, RUN),
                                kwargs={"lsn": released["lsn"]})]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    time.sleep(0.05)
    sampler.stop.set()
    sampler.join(5)
    old, new = answers["mn1"], answers["mn2"]
    assert new["promoted"] and new["released_by_peer"] is True, new
    assert old["vip_dropped"] and old["acknowledged"] and old["standby_started"], old
    assert sampler.samples > 10 and sampler.both == []  # never on both nodes (sampled through the handoff)
    assert new["vip"]["at"]["vip_raised"] >= old["at"]["vip_dropped"]  # dropped first, then raised
    followed = mn1.call(handoff.follow, mn1.cfg, "mn1", mn1.major)
    assert followed["method"] == "restart as standby (clean handover, no rewind)"
    assert mn2.status()["role"] == "primary" and mn2.sql("SELECT v FROM handoff_t") == [(1,)]
    with entered(mn2.ns):
        assert vip.status(mn2.cfg)["held"]
    with entered(mn1.ns):
        assert not vip.status(mn1.cfg)["held"]
    settled = mn2.call(handoff.settle_primary, mn2.cfg, "mn2")
    assert settled["checkpoint"]["timeline"] == mn2.status()["timeline"]
    # Services stopped on the old primary before its database, started on the new one, then the hooks.
    calls = [c[0] if c[0] != "systemctl" else f"systemctl {c[1].split()[0]}" for c in recorders.calls(recorder_dir)]
    assert calls.index("systemctl stop") < calls.index("systemctl start") < calls.index("makedns")
