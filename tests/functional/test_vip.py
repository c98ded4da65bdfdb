"""The VIP library against real namespaces: netlink address, ARP probe, gratuitous ARP.

Topology (198.51.100.0/24 only, nothing in the root namespace):

    <prefix>-va  eth0 .21 --+
                            +-- br0 .23  <prefix>-vo   (observer: a compute node's view)
    <prefix>-vb  eth0 .22 --+

The two node namespaces are one L2 segment, as in the brief; the observer holds the
bridge and stands for the clients whose cached VIP -> MAC entry a failover must
*update* (A's own table cannot show that: it had no entry while it held the VIP).
"""

import copy
import select
import threading
import time

import pytest
from pyroute2 import IPRoute

from saltext_hamn.lab import netns
from saltext_hamn.utils import config
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import arp, vip

pytestmark = [pytest.mark.root]

VIP = "198.51.100.20"
LABEL = "eth0:hamn"
ADDR = {"va": "198.51.100.21", "vb": "198.51.100.22", "vo": "198.51.100.23"}


def make_cfg(**vip_overrides):
    return config.load({
        "nodes": {"mn1": {"address": ADDR["va"]}, "mn2": {"address": ADDR["vb"]}},
        "initial_primary": "mn1",
        "vip": {
            "address": VIP,
            "prefix": 24,
            "interface": "eth0",
            "label": LABEL,
            # Short, so the file stays fast; a Linux holder answers in well under 1 ms.
            "garp": {"count": 3, "interval": 0.05},
            "probe": {"timeout": 0.3, "attempts": 3},
            **vip_overrides,
        },
        "postgres": {"replication": {"password": "pw-functional-vip"}},
    })


class Net:
    def __init__(self, prefix):
        self.ns = {key: f"{prefix}-{key}" for key in ADDR}
        self.a, self.b, self.obs = self.ns["va"], self.ns["vb"], self.ns["vo"]
        self.mac = {}

    def build(self):
        ip = netns.ip
        for name in self.ns.values():
            netns.add(name)
        ip("-n", self.obs, "link", "add", "br0", "type", "bridge")
        for key, port in (("va", "pa"), ("vb", "pb")):
            ip("-n", self.obs, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", self.ns[key])
            ip("-n", self.obs, "link", "set", port, "master", "br0", "up")
            ip("-n", self.ns[key], "addr", "add", f"{ADDR[key]}/24", "dev", "eth0")
            ip("-n", self.ns[key], "link", "set", "eth0", "up")
        ip("-n", self.obs, "addr", "add", f"{ADDR['vo']}/24", "dev", "br0")
        ip("-n", self.obs, "link", "set", "br0", "up")
        for name in self.ns.values():
            # A gratuitous ARP only *creates* a neighbour entry with arp_accept=1
            # (existing entries are updated either way).
            netns.sysctl(name, "net.ipv4.conf.all.arp_accept", 1)
        for key in ("va", "vb"):
            sock, self.mac[key] = arp.open_socket("eth0", self.ns[key])
            sock.close()

    def destroy(self):
        for name in self.ns.values():
            netns.delete(name)

    def addresses(self, name, ifname="eth0"):
        with IPRoute(netns=name, flags=0) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            return {m.get_attr("IFA_ADDRESS"): m for m in ipr.get_addr(index=index, family=2)}

    def neighbour_mac(self, name, address):
        with IPRoute(netns=name, flags=0) as ipr:
            for msg in ipr.get_neighbours(family=2):
                if msg.get_attr("NDA_DST") == address:
                    return msg.get_attr("NDA_LLADDR")
        return None

    def wait_neighbour(self, name, address, mac, timeout=1.0):
        deadline = time.monotonic() + timeout
        while True:
            found = self.neighbour_mac(name, address)
            if found == mac or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture
def net(lab_spec):
    topo = Net(lab_spec.prefix)
    try:
        topo.build()
        yield topo
    finally:
        topo.destroy()


@pytest.fixture
def cfg():
    return make_cfg()


def test_up_adds_vip_with_label_and_garp_reaches_observer(net, cfg):
    assert net.neighbour_mac(net.obs, VIP) is None
    result = vip.up(cfg, netns=net.a)
    assert result["changed"] is True
    assert result["forced"] is False
    assert result["probe_answers"] == []
    assert result["garp_sent"] == 3
    assert (result["address"], result["interface"], result["label"]) == (VIP, "eth0", LABEL)
    assert result["duration_ms"] > 0
    msg = net.addresses(net.a)[VIP]
    assert msg["prefixlen"] == 24
    assert msg.get_attr("IFA_LABEL") == LABEL
    assert VIP not in net.addresses(net.b)
    # The GARP created the entry (arp_accept=1) in both other namespaces.
    assert net.wait_neighbour(net.obs, VIP, net.mac["va"]) == net.mac["va"]
    assert net.wait_neighbour(net.b, VIP, net.mac["va"]) == net.mac["va"]


def test_second_up_is_idempotent_and_reannounces(net, cfg):
    vip.up(cfg, netns=net.a)
    again = vip.up(cfg, netns=net.a)
    assert again["changed"] is False
    assert again["garp_sent"] == 3
    assert again["probe_answers"] == []
    assert list(net.addresses(net.a)).count(VIP) == 1


def test_moving_vip_updates_the_observer_entry(net, cfg):
    vip.up(cfg, netns=net.a)
    assert net.wait_neighbour(net.obs, VIP, net.mac["va"]) == net.mac["va"]
    assert vip.down(cfg, netns=net.a)["changed"] is True
    moved = vip.up(cfg, netns=net.b)
    assert moved["changed"] is True and moved["probe_answers"] == []
    assert net.wait_neighbour(net.obs, VIP, net.mac["vb"]) == net.mac["vb"]
    # ...and A, which had no entry while it held the VIP, learns B's MAC.
    assert net.wait_neighbour(net.a, VIP, net.mac["vb"]) == net.mac["vb"]
    assert VIP not in net.addresses(net.a)


def test_up_refuses_while_the_peer_holds_the_vip(net, cfg):
    vip.up(cfg, netns=net.a)
    assert net.wait_neighbour(net.obs, VIP, net.mac["va"]) == net.mac["va"]
    with pytest.raises(HamnError) as info:
        vip.up(cfg, netns=net.b)
    message = str(info.value)
    assert VIP in message and net.mac["va"] in message and "force=True" in message
    assert VIP not in net.addresses(net.b)
    # The probe (sender 0.0.0.0) must not have poisoned anyone's cache.
    assert net.neighbour_mac(net.obs, VIP) == net.mac["va"]

    forced = vip.up(cfg, force=True, netns=net.b)
    assert forced["changed"] is True and forced["forced"] is True
    assert forced["probe_answers"] == [{"mac": net.mac["va"], "ip": VIP}]
    assert VIP in net.addresses(net.b)
    assert net.wait_neighbour(net.obs, VIP, net.mac["vb"]) == net.mac["vb"]


def test_probe_directly(net, cfg):
    started = time.monotonic()
    assert arp.probe(VIP, "eth0", timeout=0.2, attempts=2, netns=net.b) == []
    free_in = time.monotonic() - started
    assert 0.19 <= free_in < 1.0  # a free address costs the whole timeout
    vip.add(VIP, 24, "eth0", LABEL, netns=net.a)
    started = time.monotonic()
    assert arp.probe(VIP, "eth0", timeout=3.0, attempts=3, netns=net.b) == [(net.mac["va"], VIP)]
    assert time.monotonic() - started < 1.0  # returns on the first answer, not after the timeout
    # A node's own address answers too; its own probe is never counted.
    assert arp.probe(ADDR["va"], "eth0", timeout=0.2, attempts=2, netns=net.b) == [(net.mac["va"], ADDR["va"])]
    assert arp.probe(VIP, "eth0", timeout=0.1, attempts=1, netns=net.a) == []


def test_down_is_idempotent(net, cfg):
    vip.up(cfg, netns=net.a)
    first = vip.down(cfg, netns=net.a)
    second = vip.down(cfg, netns=net.a)
    assert (first["changed"], second["changed"]) == (True, False)
    assert (second["address"], second["interface"]) == (VIP, "eth0")
    assert VIP not in net.addresses(net.a)
    assert ADDR["va"] in net.addresses(net.a)  # the node's own address is untouched


def test_status(net, cfg):
    assert vip.status(cfg, netns=net.a) == {
        "address": VIP, "prefix": 24, "interface": "eth0", "label": LABEL, "held": False,
    }
    vip.up(cfg, netns=net.a)
    assert vip.status(cfg, netns=net.a) == {
        "address": VIP, "prefix": 24, "interface": "eth0", "label": LABEL, "held": True,
    }
    assert vip.status(cfg, netns=net.b)["held"] is False
    unlabelled = make_cfg(label=None, prefix=32)
    vip.down(cfg, netns=net.a)
    vip.up(unlabelled, netns=net.a)
    assert vip.status(unlabelled, netns=net.a) == {
        "address": VIP, "prefix": 32, "interface": "eth0", "label": None, "held": True,
    }
    # held() / status report what the kernel has, whatever the configured prefix.
    assert vip.status(cfg, netns=net.a)["prefix"] == 32
    assert vip.down(cfg, netns=net.a)["changed"] is True


def test_missing_interface_and_namespace(net):
    bad = make_cfg(interface="eth9", label=None)
    for call in (vip.up, vip.down, vip.status):
        with pytest.raises(HamnError, match="interface eth9 not found"):
            call(bad, netns=net.a)
    with pytest.raises(HamnError, match="interface eth9 not found"):
        arp.send_gratuitous(VIP, "eth9", count=1, interval=0.01, netns=net.a)
    with pytest.raises(HamnError, match="not found"):
        vip.status(make_cfg(), netns=f"{net.a}-missing")
    with pytest.raises(HamnError, match="not found"):
        arp.probe(VIP, "eth0", timeout=0.1, attempts=1, netns=f"{net.a}-missing")
    assert f"{net.a}-missing" not in netns.existing()  # pyroute2 must not have created it


def test_interface_down_is_a_clear_error(net, cfg):
    netns.ip("-n", net.a, "link", "set", "eth0", "down")
    with pytest.raises(HamnError, match="eth0"):
        vip.up(cfg, netns=net.a)
    assert VIP not in net.addresses(net.a)


# ---- the default probe window (vip:probe:timeout 0.3 s) is still a strict guard ---------
class LateHolder:
    """A host that answers the first ARP probe for ``address`` only after ``delay`` seconds
    (a slow or busy holder), from the observer's bridge."""

    def __init__(self, net, address, delay):
        self.address, self.delay = address, delay
        self.sock, self.mac = arp.open_socket("br0", net.obs)
        self.stop = threading.Event()
        self.answered_after = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        first_probe = None  # (monotonic time, frame)
        while not self.stop.is_set():
            if first_probe and time.monotonic() - first_probe[0] >= self.delay:
                reply = arp.build_reply(self.mac, self.address, first_probe[1].sender_mac, arp.ANY_IP)
                self.sock.send(reply)
                self.answered_after = time.monotonic() - first_probe[0]
                return
            if not select.select([self.sock], [], [], 0.005)[0]:
                continue
            data, meta = self.sock.recvfrom(2048)
            frame = arp.parse(data)
            if (first_probe is None and meta[2] != arp.PACKET_OUTGOING and frame is not None
                    and frame.op == arp.OP_REQUEST and frame.sender_ip == arp.ANY_IP
                    and frame.target_ip == self.address):
                first_probe = (time.monotonic(), frame)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def default_probe_cfg():
    cfg = make_cfg()
    cfg["vip"]["probe"] = copy.deepcopy(config.DEFAULTS["vip"]["probe"])
    return cfg


def test_default_probe_window_is_short_and_refuses_a_holder(net):
    cfg = default_probe_cfg()
    assert cfg["vip"]["probe"] == {"timeout": 0.3, "attempts": 3, "handoff_timeout": 0.005}
    started = time.monotonic()
    assert vip.up(cfg, netns=net.a)["changed"] is True
    # A free VIP costs the whole window plus the gratuitous ARPs (3 x 0.05 s here).
    assert 0.3 <= time.monotonic() - started < 0.7
    with pytest.raises(HamnError, match="is in use"):
        vip.up(cfg, netns=net.b)
    assert VIP not in net.addresses(net.b)


def test_default_probe_window_catches_a_holder_answering_late(net):
    cfg = default_probe_cfg()
    with LateHolder(net, VIP, delay=0.2) as holder:
        with pytest.raises(HamnError) as info:
            vip.up(cfg, netns=net.b)
    assert holder.answered_after is not None and holder.answered_after >= 0.2
    assert holder.mac in str(info.value)
    assert VIP not in net.addresses(net.b)


def test_an_answer_after_the_window_is_missed(net):
    """The window's limit, stated: a holder slower than vip:probe:timeout goes unseen
    (raise the timeout on such a network)."""
    with LateHolder(net, VIP, delay=0.45) as holder:
        assert arp.probe(VIP, "eth0", timeout=0.3, attempts=3, netns=net.b) == []
        holder.thread.join(1)
    assert holder.answered_after is not None
