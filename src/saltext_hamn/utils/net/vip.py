"""The virtual IP: add, remove, inspect, through netlink (pyroute2) and raw ARP.

No ``ip``/``ifconfig`` subprocess.  The address is added at runtime only: nothing is
written to /etc/network/interfaces, NetworkManager or systemd-networkd, so a reboot
forgets it.  That is deliberate (the seed's "not persistent"): a node that reboots
must not come back holding the VIP; the VIP follows the PostgreSQL primary, and
only a switchover/failover puts it on a node.

Low level: :func:`held`, :func:`add`, :func:`remove` (address arguments, used by the
lab).  High level, taking the validated ``hamn`` config: :func:`up`, :func:`down`,
:func:`status` (what ``hamn.vip_up`` / ``vip_down`` / ``vip_status`` return).
Every function takes ``netns``: None on a real node, the node's namespace in the
lab and the tests.  Failures raise :class:`~saltext_hamn.utils.errors.HamnError`.
"""

import contextlib
import ipaddress
import logging
import os
import socket
import time

from pyroute2 import IPRoute, NetlinkError

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import announce, arp

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _netlink(netns, what):
    """An IPRoute socket in ``netns``; netlink/OS errors become HamnError about ``what``."""
    try:
        # flags=0: pyroute2's default (O_CREAT) would silently *create* a missing
        # namespace instead of failing.
        ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
    except FileNotFoundError as exc:
        raise HamnError(f"network namespace {netns} not found") from exc
    except OSError as exc:
        raise HamnError(f"cannot open a netlink socket: {exc}") from exc
    try:
        with ipr:
            yield ipr
    except NetlinkError as exc:
        code = getattr(exc, "code", None)
        detail = os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)
        raise HamnError(f"{what} failed: {detail}") from exc


def _ifindex(ipr, interface):
    found = ipr.link_lookup(ifname=interface)
    if not found:
        raise HamnError(f"interface {interface} not found")
    return found[0]


def _find(ipr, index, address):
    """The netlink message of ``address`` on interface ``index``, or None."""
    for msg in ipr.get_addr(index=index, family=socket.AF_INET):
        if msg.get_attr("IFA_ADDRESS") == address:
            return msg
    return None


def _label(msg, interface):
    """The alias label of an address message; None when it is just the interface name."""
    label = msg.get_attr("IFA_LABEL")
    return None if label in (None, interface) else label


# ---- low level ------------------------------------------------------------------------
def held(address, interface, netns=None):
    """True when ``address`` is configured on ``interface``."""
    with _netlink(netns, f"reading the addresses of {interface}") as ipr:
        return _find(ipr, _ifindex(ipr, interface), address) is not None


def add(address, prefix, interface, label=None, netns=None):
    """Add the VIP (idempotent, no ARP); returns True when it was added."""
    address = str(ipaddress.IPv4Address(address))
    with _netlink(netns, f"adding {address}/{prefix} to {interface}") as ipr:
        index = _ifindex(ipr, interface)
        if _find(ipr, index, address) is not None:
            return False
        kwargs = {"label": label} if label else {}
        ipr.addr("add", index=index, address=address, prefixlen=int(prefix), **kwargs)
    return True


def remove(address, prefix, interface, netns=None):
    """Remove the VIP (idempotent); returns True when it was removed.

    The address is deleted with the prefix length it actually has, so a VIP added
    by hand with another prefix still goes away; ``prefix`` is kept for callers.
    """
    del prefix
    with _netlink(netns, f"removing {address} from {interface}") as ipr:
        index = _ifindex(ipr, interface)
        msg = _find(ipr, index, address)
        if msg is None:
            return False
        ipr.addr("del", index=index, address=address, prefixlen=msg["prefixlen"])
    return True


# ---- high level (the execution module's vip_up / vip_down / vip_status) ----------------
def _ms(start):
    return round((time.monotonic() - start) * 1000, 1)


def status(cfg, netns=None):
    """``{address, prefix, interface, label, held}`` for the configured VIP.

    When held, ``prefix`` and ``label`` are what the kernel has (label None: no
    alias label); otherwise they are the configured values.
    """
    v = cfg["vip"]
    result = {"address": v["address"], "prefix": v["prefix"], "interface": v["interface"],
              "label": v["label"], "held": False}
    with _netlink(netns, f"reading the addresses of {v['interface']}") as ipr:
        msg = _find(ipr, _ifindex(ipr, v["interface"]), v["address"])
        if msg is not None:
            result.update(held=True, prefix=msg["prefixlen"], label=_label(msg, v["interface"]))
    return result


def up(cfg, force=False, netns=None, announce_later=False):
    """Bring the VIP up on this node (idempotent).

    Already held: only re-announce it (gratuitous ARP) and return ``changed`` False.
    Otherwise probe it with ARP first and refuse (HamnError) when another host
    answers, unless ``force``; then add it with the configured prefix and label and
    announce it.  ``announce_later``: send the first gratuitous ARP round now and the
    rest from a detached process, so the caller returns as soon as the VIP answers.
    Returns ``{changed, address, prefix, interface, label, forced,
    probe_answers: [{mac, ip}], garp_sent, duration_ms}`` (``garp_later``: rounds
    still to come).
    """
    v = cfg["vip"]
    address, interface = v["address"], v["interface"]
    start = time.monotonic()
    result = {"changed": False, "address": address, "prefix": v["prefix"], "interface": interface,
              "label": v["label"], "forced": False, "probe_answers": [], "garp_sent": 0}
    if not held(address, interface, netns=netns):
        answers = arp.probe(address, interface, timeout=v["probe"]["timeout"], attempts=v["probe"]["attempts"],
                            netns=netns)
        result["probe_answers"] = [{"mac": mac, "ip": ip} for mac, ip in answers]
        if answers:
            macs = ", ".join(sorted({mac for mac, _ in answers}))
            if not force:
                raise HamnError(
                    f"VIP {address} is in use on the {interface} network: answered by {macs}; "
                    "not adding it (make sure the other node released it; force=True overrides)"
                )
            log.warning("VIP %s answered by %s; adding it anyway (force=True)", address, macs)
            result["forced"] = True
        # add() is idempotent: losing a race with a concurrent up() is harmless here.
        result["changed"] = add(address, v["prefix"], interface, v["label"], netns=netns)
    count = v["garp"]["count"]
    now = 1 if announce_later else count
    try:
        result["garp_sent"] = arp.send_gratuitous(address, interface, count=now, interval=v["garp"]["interval"],
                                                  netns=netns)
    except HamnError as exc:
        raise HamnError(f"VIP {address} is on {interface} but announcing it failed: {exc}") from exc
    if count > now:
        result["garp_later"] = announce.detach(address, interface, count - now, v["garp"]["interval"], netns)
    result["duration_ms"] = _ms(start)
    log.info("VIP %s/%s up on %s (changed=%s, %s ms)", address, v["prefix"], interface,
             result["changed"], result["duration_ms"])
    return result


def down(cfg, netns=None):
    """Remove the VIP from this node (idempotent).

    Returns ``{changed, address, interface, duration_ms}``.  No ARP is sent: the
    node taking the VIP over announces it.
    """
    v = cfg["vip"]
    start = time.monotonic()
    changed = remove(v["address"], v["prefix"], v["interface"], netns=netns)
    result = {"changed": changed, "address": v["address"], "interface": v["interface"],
              "duration_ms": _ms(start)}
    if changed:
        log.info("VIP %s removed from %s", v["address"], v["interface"])
    return result
