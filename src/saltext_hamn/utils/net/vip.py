"""The virtual IP, through netlink (pyroute2); never persisted across reboots."""

import ipaddress

from pyroute2 import IPRoute

from saltext_hamn.utils.errors import HamnError


def _ipr(netns):
    return IPRoute(netns=netns) if netns else IPRoute()


def _ifindex(ipr, interface):
    found = ipr.link_lookup(ifname=interface)
    if not found:
        raise HamnError(f"interface {interface} not found")
    return found[0]


def held(address, interface, netns=None):
    """True when ``address`` is configured on ``interface``."""
    with _ipr(netns) as ipr:
        index = _ifindex(ipr, interface)
        return any(a.get_attr("IFA_ADDRESS") == address for a in ipr.get_addr(index=index, family=2))


def add(address, prefix, interface, label=None, netns=None):
    """Add the VIP (idempotent); returns True when it was added."""
    ipaddress.IPv4Address(address)
    with _ipr(netns) as ipr:
        index = _ifindex(ipr, interface)
        if any(a.get_attr("IFA_ADDRESS") == address for a in ipr.get_addr(index=index, family=2)):
            return False
        kwargs = {"label": label} if label else {}
        ipr.addr("add", index=index, address=address, prefixlen=int(prefix), **kwargs)
    return True


def remove(address, prefix, interface, netns=None):
    """Remove the VIP (idempotent); returns True when it was removed."""
    with _ipr(netns) as ipr:
        index = _ifindex(ipr, interface)
        if not any(a.get_attr("IFA_ADDRESS") == address for a in ipr.get_addr(index=index, family=2)):
            return False
        ipr.addr("del", index=index, address=address, prefixlen=int(prefix))
    return True
