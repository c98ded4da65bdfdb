"""The lab topology: a bridge in the witness namespace, one veth per node namespace."""

from saltext_hamn.lab import netns
from saltext_hamn.lab.spec import BRIDGE, NODE_ADDRESSES, NODE_IFACE, PREFIXLEN, WITNESS_ADDRESS


def build(spec):
    """Create the namespaces, bridge and veths (idempotent)."""
    w = spec.witness_ns
    for name in spec.namespaces:
        netns.add(name)
    if not netns.link_exists(w, BRIDGE):
        netns.ip("-n", w, "link", "add", BRIDGE, "type", "bridge")
        netns.ip("-n", w, "addr", "add", f"{WITNESS_ADDRESS}/{PREFIXLEN}", "dev", BRIDGE)
    netns.ip("-n", w, "link", "set", BRIDGE, "up")
    for node in spec.nodes:
        ns, veth = spec.node_ns(node), spec.veth(node)
        if not netns.link_exists(w, veth):
            netns.ip("-n", w, "link", "add", veth, "type", "veth", "peer", "name", NODE_IFACE, "netns", ns)
            netns.ip("-n", ns, "addr", "add", f"{NODE_ADDRESSES[node]}/{PREFIXLEN}", "dev", NODE_IFACE)
        netns.ip("-n", w, "link", "set", veth, "master", BRIDGE, "up")
        netns.ip("-n", ns, "link", "set", NODE_IFACE, "up")
        # Let gratuitous ARP create neighbour entries, not only refresh them.
        netns.sysctl(ns, "net.ipv4.conf.all.arp_accept", 1)
    netns.sysctl(w, "net.ipv4.conf.all.arp_accept", 1)


def destroy(spec):
    for name in spec.namespaces:
        netns.delete(name)
