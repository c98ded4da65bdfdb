"""The VIP's side of a switchover's handoff: sockets opened beforehand, so that the
moment between the old node dropping the VIP and the new one raising it is spent
on two netlink messages and one ARP round, not on opening sockets.

:class:`Release` (old node) holds a netlink socket; :meth:`Release.drop` removes
the VIP. :class:`Claim` (new node) holds a netlink socket and an ARP socket;
:meth:`Claim.survey` probes the VIP *while the old node still holds it* (only the
old node may answer), :meth:`Claim.take` adds it and sends the first gratuitous
ARP round, the rest coming from a detached process.
"""

import contextlib
import ipaddress
import os
import time

from pyroute2 import NetlinkError

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import announce, arp, vip


@contextlib.contextmanager
def _netlink_errors(what):
    try:
        yield
    except NetlinkError as exc:
        code = getattr(exc, "code", None)
        detail = os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)
        raise HamnError(f"{what} failed: {detail}") from exc


class _Open:
    def __init__(self, cfg, netns=None):
        v = cfg["vip"]
        self.address = str(ipaddress.IPv4Address(v["address"]))
        self.prefix, self.interface, self.label = int(v["prefix"]), v["interface"], v["label"]
        self.garp = v["garp"]
        self.probe_cfg = v["probe"]
        self.netns = netns
        self._stack = contextlib.ExitStack()
        try:
            self.ipr = self._stack.enter_context(vip._netlink(netns, f"the VIP on {self.interface}"))  # pylint: disable=protected-access
            self.index = vip._ifindex(self.ipr, self.interface)  # pylint: disable=protected-access
        except BaseException:
            self._stack.close()
            raise

    def held(self):
        return vip._find(self.ipr, self.index, self.address) is not None  # pylint: disable=protected-access

    def mac(self):
        link = self.ipr.get_links(self.index)[0]
        return (link.get_attr("IFLA_ADDRESS") or "").lower()

    def close(self):
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Release(_Open):
    """The old node's open handle on the VIP."""

    def drop(self):
        """Remove the VIP; True when it was here. The netlink acknowledgement is the
        kernel's word that it is gone."""
        msg = vip._find(self.ipr, self.index, self.address)  # pylint: disable=protected-access
        if msg is None:
            return False
        with _netlink_errors(f"removing {self.address} from {self.interface}"):
            self.ipr.addr("del", index=self.index, address=self.address, prefixlen=msg["prefixlen"])
        return True


class Claim(_Open):
    """The new node's open handles on the VIP and on ARP."""

    def __init__(self, cfg, netns=None):
        super().__init__(cfg, netns)
        try:
            self.arp = arp.open_socket(self.interface, netns)
            self._stack.callback(self.arp[0].close)
        except BaseException:
            self._stack.close()
            raise

    def survey(self):
        """The MACs that answer for the VIP now (a short probe)."""
        answers = arp.probe(self.address, self.interface, timeout=self.probe_cfg["handoff_timeout"], attempts=1,
                            opened=self.arp)
        return sorted({mac.lower() for mac, _ in answers})

    def full_probe(self):
        answers = arp.probe(self.address, self.interface, timeout=self.probe_cfg["timeout"],
                            attempts=self.probe_cfg["attempts"], opened=self.arp)
        return sorted({mac.lower() for mac, _ in answers})

    def take(self):
        """Add the VIP and send the first gratuitous ARP round; the rest later, detached."""
        started = time.monotonic()
        changed = False
        if not self.held():
            kwargs = {"label": self.label} if self.label else {}
            with _netlink_errors(f"adding {self.address}/{self.prefix} to {self.interface}"):
                self.ipr.addr("add", index=self.index, address=self.address, prefixlen=self.prefix, **kwargs)
            changed = True
        try:
            arp.send_round(self.arp, self.address, self.interface)
        except HamnError as exc:
            raise HamnError(f"VIP {self.address} is on {self.interface} but announcing it failed: {exc}") from exc
        later = self.garp["count"] - 1
        if later > 0:
            announce.detach(self.address, self.interface, later, self.garp["interval"], self.netns)
        return {"changed": changed, "address": self.address, "prefix": self.prefix, "interface": self.interface,
                "label": self.label, "forced": False, "garp_sent": 1, "garp_later": max(0, later),
                "duration_ms": round((time.monotonic() - started) * 1000, 2)}
