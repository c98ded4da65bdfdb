"""ARP for the virtual IP: duplicate-address probe and gratuitous announcements.

Frames are built and parsed here in pure Python (unit-testable without privileges)
and sent through an ``AF_PACKET``/``SOCK_RAW`` socket bound to the VIP interface;
no ``arping`` subprocess (it costs ~1 s per call and is not installed everywhere).

Only Ethernet + IPv4 ARP (RFC 826) is handled: that is what the VIP interface of an
xCAT management node is.  Raw sockets need CAP_NET_RAW (the minion runs as root).
"""

import collections
import errno
import ipaddress
import logging
import select
import socket
import struct
import time

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net.nsenter import entered

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
OP_REQUEST = 1
OP_REPLY = 2
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sends (packet sockets see them too)

BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ANY_IP = "0.0.0.0"

# Ethernet header: destination, source, ethertype.  ARP body (RFC 826) for
# Ethernet/IPv4: htype, ptype, hlen, plen, oper, sha, spa, tha, tpa.
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
ETH_LEN = _ETH.size  # 14
ARP_LEN = _ARP.size  # 28
# Offsets inside the whole frame (documented here, checked by the unit tests).
OFF_OPER = ETH_LEN + 6
OFF_SHA = ETH_LEN + 8
OFF_SPA = ETH_LEN + 14
OFF_THA = ETH_LEN + 18
OFF_TPA = ETH_LEN + 24
# 60 bytes is Ethernet's minimum frame without FCS; not every driver pads a short
# raw frame itself, and a runt can be dropped by the switch.
MIN_FRAME = 60

Frame = collections.namedtuple(
    "Frame", "dst src op sender_mac sender_ip target_mac target_ip"
)


# ---- addresses ------------------------------------------------------------------------
def mac_to_bytes(mac):
    """``'02:00:5e:00:00:01'`` (or 6 raw bytes) -> 6 bytes."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, got {len(mac)}")
        return bytes(mac)
    parts = str(mac).replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def mac_to_str(raw):
    return ":".join(f"{b:02x}" for b in raw)


def _ip_bytes(address):
    return ipaddress.IPv4Address(address).packed


def _ip_str(raw):
    return str(ipaddress.IPv4Address(raw))


# ---- frames ---------------------------------------------------------------------------
def build_frame(op, src_mac, sender_ip, target_mac, target_ip, dst_mac=BROADCAST, sender_mac=None):
    """An Ethernet frame carrying one ARP packet, padded to the 60-byte minimum.

    ``src_mac`` is the Ethernet source; the ARP sender hardware address is
    ``sender_mac`` (default: the same).
    """
    if op not in (OP_REQUEST, OP_REPLY):
        raise ValueError(f"ARP operation must be 1 (request) or 2 (reply), got {op!r}")
    src = mac_to_bytes(src_mac)
    body = _ARP.pack(
        ARPHRD_ETHER, ETH_P_IP, 6, 4, op,
        mac_to_bytes(sender_mac) if sender_mac is not None else src, _ip_bytes(sender_ip),
        mac_to_bytes(target_mac), _ip_bytes(target_ip),
    )
    frame = _ETH.pack(mac_to_bytes(dst_mac), src, ETH_P_ARP) + body
    return frame.ljust(MIN_FRAME, b"\0")


def build_request(src_mac, src_ip, target_ip, dst_mac=BROADCAST):
    """Who has ``target_ip``? tell ``src_ip`` (target hardware address zero)."""
    return build_frame(OP_REQUEST, src_mac, src_ip, ZERO_MAC, target_ip, dst_mac)


def build_reply(src_mac, src_ip, target_mac, target_ip, dst_mac=None):
    """``src_ip`` is at ``src_mac``, sent to ``target_mac`` (unicast unless ``dst_mac``)."""
    return build_frame(OP_REPLY, src_mac, src_ip, target_mac, target_ip,
                       target_mac if dst_mac is None else dst_mac)


def build_probe(src_mac, target_ip):
    """RFC 5227 probe for ``target_ip``.

    Sender IP 0.0.0.0: we do not own the address yet, and a request carrying it as
    sender would make every host on the segment cache it -> our MAC, stealing the
    traffic from the current holder before we know whether there is one.  A Linux
    holder answers such a probe with a reply whose sender IP is the probed address.
    """
    return build_request(src_mac, ANY_IP, target_ip)


def build_gratuitous_request(src_mac, address):
    """ARP announcement (RFC 5227 s. 2.3): broadcast request, sender = target = ``address``."""
    return build_request(src_mac, address, address)


def build_gratuitous_reply(src_mac, address):
    """Gratuitous reply, broadcast, sender = target = ``address``.

    The target hardware address is our own MAC: Linux only treats a *reply* as
    gratuitous (bypassing the neighbour ``locktime``, creating entries with
    ``arp_accept``) when its tha equals its sha (RFC 2002 s. 4.6 style).
    """
    return build_frame(OP_REPLY, src_mac, address, src_mac, address, BROADCAST)


def parse(frame):
    """An Ethernet/IPv4 ARP frame as a :class:`Frame` (MACs and IPs as strings).

    Returns None for anything else (another ethertype, another hardware or protocol
    type, a truncated packet) so that a receive loop can simply skip it.
    """
    frame = bytes(frame)
    if len(frame) < ETH_LEN + ARP_LEN:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame, 0)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, ETH_LEN)
    if (htype, ptype, hlen, plen) != (ARPHRD_ETHER, ETH_P_IP, 6, 4):
        return None
    return Frame(mac_to_str(dst), mac_to_str(src), op, mac_to_str(sha), _ip_str(spa),
                 mac_to_str(tha), _ip_str(tpa))


def conflicts(parsed, address, own_mac):
    """True when ``parsed`` shows another host using or probing ``address``.

    Either it claims the address as sender (a reply to our probe, an announcement,
    an ordinary request from the holder) or it is another host's RFC 5227 probe for
    the same address (sender 0.0.0.0): two nodes bringing the VIP up at once must
    not both go ahead.
    """
    if parsed is None or parsed.sender_mac == own_mac:
        return False
    if parsed.sender_ip == address:
        return True
    return parsed.op == OP_REQUEST and parsed.sender_ip == ANY_IP and parsed.target_ip == address


# ---- the socket -----------------------------------------------------------------------
def open_socket(interface, netns=None):
    """A raw ARP socket bound to ``interface`` (in ``netns``); returns ``(sock, mac)``.

    The socket is created with protocol 0 (receives nothing) and only then bound to
    (interface, ARP): created with ETH_P_ARP directly it would already receive ARP from
    every interface in the namespace until bind().
    """
    try:
        with entered(netns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except FileNotFoundError as exc:
        raise HamnError(f"network namespace {netns} not found") from exc
    except OSError as exc:
        raise HamnError(f"cannot open a raw ARP socket: {exc.strerror or exc}") from exc
    try:
        sock.bind((interface, ETH_P_ARP))
        name = sock.getsockname()  # (ifname, proto, pkttype, hatype, hwaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ENODEV:
            raise HamnError(f"interface {interface} not found") from exc
        raise HamnError(f"cannot bind an ARP socket to {interface}: {exc.strerror or exc}") from exc
    if name[3] != ARPHRD_ETHER or len(name[4]) != 6:
        sock.close()
        raise HamnError(f"interface {interface} is not an Ethernet interface (hardware type {name[3]})")
    return sock, mac_to_str(name[4])


def _send(sock, frame, interface):
    try:
        sock.send(frame)
    except OSError as exc:
        raise HamnError(f"sending ARP on {interface} failed: {exc.strerror or exc}") from exc


DRAIN_LIMIT = 256  # frames read after the deadline at most (a busy segment never ends the queue)


def _read_answer(sock, wait, address, own_mac, found, interface):
    """Read one frame if one comes within ``wait`` s: None when none came, True when it was
    an answer for ``address`` (added to ``found``), False for any other frame."""
    ready, _, _ = select.select([sock], [], [], wait)
    if not ready:
        return None
    try:
        data, meta = sock.recvfrom(2048)
    except OSError as exc:
        raise HamnError(f"receiving ARP on {interface} failed: {exc.strerror or exc}") from exc
    if meta[2] == PACKET_OUTGOING:
        return False
    parsed = parse(data)
    if not conflicts(parsed, address, own_mac):
        return False
    pair = (parsed.sender_mac, parsed.sender_ip)
    if pair not in found:
        found.append(pair)
    return True


def probe(address, interface, timeout=0.3, attempts=3, netns=None, opened=None):
    """Ask whether another host holds ``address`` (duplicate-address detection).

    Sends ``attempts`` RFC 5227 probes spread evenly over ``timeout`` seconds (the
    total listening time) and returns the ``(mac, ip)`` pairs of the other hosts
    that answered (``ip`` is the address, or 0.0.0.0 for a host probing it at the
    same moment), without duplicates; empty when the address looks free.  Returns
    shortly after the first answer instead of waiting for the whole timeout.
    """
    address = str(ipaddress.IPv4Address(address))
    attempts = max(1, int(attempts))
    timeout = float(timeout)
    sock, own_mac = opened or open_socket(interface, netns)
    found = []
    try:
        frame = build_probe(own_mac, address)
        start = time.monotonic()
        deadline = start + timeout
        sent, drained = 0, 0
        while True:
            now = time.monotonic()
            due = start + sent * timeout / attempts if sent < attempts and not found else deadline
            if now >= due and due < deadline:
                _send(sock, frame, interface)
                sent += 1
                continue
            if now >= deadline:
                # An answer already queued counts, however late this process got the CPU:
                # a short probe on a busy host must not call a held address free.
                drained += 1
                if drained > DRAIN_LIMIT or _read_answer(sock, 0.0, address, own_mac, found, interface) is None:
                    break
                continue
            if _read_answer(sock, max(0.0, min(deadline, due) - now), address, own_mac, found, interface):
                # Someone answered: no need to sit out the timeout; linger briefly
                # so that a second holder (a real duplicate) is reported too.
                deadline = min(deadline, time.monotonic() + 0.05)
        log.debug("ARP probe for %s on %s: %d probe(s) in %.0f ms, answers %s",
                  address, interface, sent, (time.monotonic() - start) * 1000, found)
    finally:
        if opened is None:
            sock.close()
    return found


def send_round(opened, address, interface):
    """One gratuitous ARP round (request and reply) on an open ``(sock, mac)``."""
    sock, own_mac = opened
    for frame in (build_gratuitous_request(own_mac, address), build_gratuitous_reply(own_mac, address)):
        _send(sock, frame, interface)


def send_gratuitous(address, interface, count=5, interval=0.2, netns=None):
    """Announce that ``address`` is here: ``count`` rounds, ``interval`` seconds apart.

    Each round sends a broadcast gratuitous request *and* reply: implementations
    differ in which one updates their cache (Linux with ``arp_accept=0`` updates
    existing entries from both; some switches and OSes honour only one kind), so
    sending both is what keepalived/IPaddr2-style failover tools do.  Several rounds
    because a single frame can be lost, and because Linux ignores an update that
    arrives within the neighbour ``locktime`` (1 s) of the previous one unless it
    recognizes it as gratuitous.  Returns the number of rounds sent.
    """
    address = str(ipaddress.IPv4Address(address))
    sock, own_mac = open_socket(interface, netns)
    try:
        frames = (build_gratuitous_request(own_mac, address), build_gratuitous_reply(own_mac, address))
        for n in range(int(count)):
            if n:
                time.sleep(float(interval))
            for frame in frames:
                _send(sock, frame, interface)
    finally:
        sock.close()
    log.debug("sent %d gratuitous ARP round(s) for %s on %s (%s)", count, address, interface, own_mac)
    return int(count)
