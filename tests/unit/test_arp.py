"""ARP frame building and parsing (pure Python, no privileges)."""

import struct

import pytest

from saltext_hamn.utils.net import arp

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
VIP = "198.51.100.10"
NODE = "198.51.100.11"


def test_mac_conversions():
    assert arp.mac_to_bytes("02:00:5E:00:00:01") == b"\x02\x00\x5e\x00\x00\x01"
    assert arp.mac_to_bytes("02-00-5e-00-00-01") == b"\x02\x00\x5e\x00\x00\x01"
    assert arp.mac_to_bytes(b"\x01\x02\x03\x04\x05\x06") == b"\x01\x02\x03\x04\x05\x06"
    assert arp.mac_to_str(b"\x02\x00\x5e\x00\x00\x01") == "02:00:5e:00:00:01"
    for bad in ("02:00:5e:00:00", "02:00:5e:00:00:01:02", "zz:00:00:00:00:00", b"\x01\x02"):
        with pytest.raises(ValueError):
            arp.mac_to_bytes(bad)


def test_request_layout_and_offsets():
    frame = arp.build_request(MAC_A, NODE, VIP)
    assert len(frame) == arp.MIN_FRAME == 60
    assert frame[0:6] == b"\xff" * 6  # broadcast destination
    assert frame[6:12] == arp.mac_to_bytes(MAC_A)
    assert frame[12:14] == b"\x08\x06"
    # htype 1 (Ethernet), ptype 0x0800 (IPv4), hlen 6, plen 4
    assert frame[14:20] == b"\x00\x01\x08\x00\x06\x04"
    assert struct.unpack_from("!H", frame, arp.OFF_OPER)[0] == arp.OP_REQUEST
    assert (arp.OFF_OPER, arp.OFF_SHA, arp.OFF_SPA, arp.OFF_THA, arp.OFF_TPA) == (20, 22, 28, 32, 38)
    assert frame[arp.OFF_SHA:arp.OFF_SHA + 6] == arp.mac_to_bytes(MAC_A)
    assert frame[arp.OFF_SPA:arp.OFF_SPA + 4] == bytes([198, 51, 100, 11])
    assert frame[arp.OFF_THA:arp.OFF_THA + 6] == b"\0" * 6
    assert frame[arp.OFF_TPA:arp.OFF_TPA + 4] == bytes([198, 51, 100, 10])
    assert frame[42:] == b"\0" * 18  # padding to the Ethernet minimum


def test_request_round_trip():
    parsed = arp.parse(arp.build_request(MAC_A, NODE, VIP))
    assert parsed == arp.Frame(
        dst=arp.BROADCAST, src=MAC_A, op=arp.OP_REQUEST, sender_mac=MAC_A, sender_ip=NODE,
        target_mac=arp.ZERO_MAC, target_ip=VIP,
    )


def test_reply_round_trip_is_unicast_by_default():
    parsed = arp.parse(arp.build_reply(MAC_B, VIP, MAC_A, NODE))
    assert parsed.op == arp.OP_REPLY
    assert (parsed.dst, parsed.src) == (MAC_A, MAC_B)
    assert (parsed.sender_mac, parsed.sender_ip) == (MAC_B, VIP)
    assert (parsed.target_mac, parsed.target_ip) == (MAC_A, NODE)
    assert arp.parse(arp.build_reply(MAC_B, VIP, MAC_A, NODE, dst_mac=arp.BROADCAST)).dst == arp.BROADCAST


def test_probe_has_sender_ip_zero():
    frame = arp.build_probe(MAC_A, VIP)
    assert frame[arp.OFF_SPA:arp.OFF_SPA + 4] == b"\0\0\0\0"
    parsed = arp.parse(frame)
    assert parsed.op == arp.OP_REQUEST
    assert parsed.sender_ip == "0.0.0.0"
    assert parsed.sender_mac == MAC_A
    assert parsed.target_ip == VIP
    assert parsed.target_mac == arp.ZERO_MAC
    assert parsed.dst == arp.BROADCAST


@pytest.mark.parametrize("builder, op", [
    (arp.build_gratuitous_request, arp.OP_REQUEST),
    (arp.build_gratuitous_reply, arp.OP_REPLY),
])
def test_gratuitous_frames(builder, op):
    parsed = arp.parse(builder(MAC_A, VIP))
    assert parsed.op == op
    assert parsed.dst == arp.BROADCAST
    assert parsed.src == parsed.sender_mac == MAC_A
    assert parsed.sender_ip == parsed.target_ip == VIP


def test_gratuitous_reply_target_mac_is_own_mac():
    # Linux takes a reply for gratuitous only when tha == sha.
    assert arp.parse(arp.build_gratuitous_reply(MAC_A, VIP)).target_mac == MAC_A


def test_parse_rejects_non_arp():
    frame = arp.build_request(MAC_A, NODE, VIP)
    assert arp.parse(frame[:41]) is None  # truncated
    assert arp.parse(frame[:12] + b"\x08\x00" + frame[14:]) is None  # IPv4 ethertype
    assert arp.parse(frame[:14] + b"\x00\x06" + frame[16:]) is None  # IEEE 802 hardware type
    assert arp.parse(frame[:16] + b"\x86\xdd" + frame[18:]) is None  # IPv6 protocol type
    assert arp.parse(frame[:42]) is not None  # unpadded is fine


def test_build_frame_rejects_bad_values():
    with pytest.raises(ValueError):
        arp.build_frame(3, MAC_A, NODE, arp.ZERO_MAC, VIP)
    with pytest.raises(ValueError):
        arp.build_request(MAC_A, "198.51.100.300", VIP)


def test_conflicts():
    own = MAC_A
    reply = arp.parse(arp.build_reply(MAC_B, VIP, own, "0.0.0.0"))  # answer to our probe
    assert arp.conflicts(reply, VIP, own)
    assert arp.conflicts(arp.parse(arp.build_gratuitous_request(MAC_B, VIP)), VIP, own)
    assert arp.conflicts(arp.parse(arp.build_probe(MAC_B, VIP)), VIP, own)  # simultaneous probe
    # Not conflicts: our own frames, other addresses, requests *for* the VIP from a client.
    assert not arp.conflicts(arp.parse(arp.build_probe(own, VIP)), VIP, own)
    assert not arp.conflicts(arp.parse(arp.build_gratuitous_request(MAC_B, NODE)), VIP, own)
    assert not arp.conflicts(arp.parse(arp.build_request(MAC_B, NODE, VIP)), VIP, own)
    assert not arp.conflicts(None, VIP, own)


class _Segment:
    """One end of a datagram socketpair as probe()'s packet socket; the other host answers
    every probe at once (the reply is queued before the prober looks)."""

    def __init__(self, holder_mac):
        import socket  # pylint: disable=import-outside-toplevel

        self.mine, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.holder_mac = holder_mac

    def fileno(self):
        return self.mine.fileno()

    def send(self, frame):
        probe = arp.parse(frame)
        self.theirs.send(arp.build_reply(self.holder_mac, probe.target_ip, probe.sender_mac, "0.0.0.0"))

    def recvfrom(self, size):
        return self.mine.recv(size), ("eth0", 0x0806, 0, 1, b"")  # PACKET_HOST

    def close(self):
        self.mine.close()
        self.theirs.close()


def test_a_short_probe_counts_an_answer_queued_while_it_was_off_the_cpu(monkeypatch):
    segment = _Segment(MAC_B)
    ticks = iter(range(100))
    # Every look at the clock is a second later: the 5 ms probe is past its deadline
    # the moment after it sent, as on a host too busy to schedule it in time.
    monkeypatch.setattr(arp.time, "monotonic", lambda: float(next(ticks)))
    try:
        found = arp.probe(VIP, "eth0", timeout=0.005, attempts=1, opened=(segment, MAC_A))
    finally:
        segment.close()
    assert found == [(MAC_B, VIP)]
