"""The watchdog's decisions, one ``tick()`` at a time, and its answers to the protocol.

Each tick: read the local PostgreSQL's role (from the observer), read the ledger,
fence when an enforced lease ran out on a node that could write, renew the peer
while streaming from it, write ``lease-status.json``.  Everything that touches the
outside world (observer, fence, client exchange, clock, boot id) is injectable so
the decision table is unit-tested with fakes.
"""

import json
import logging
import os
import tempfile
import threading
import time

from saltext_hamn.utils import config
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import fence as lease_fence
from saltext_hamn.utils.lease import ledger as lease_ledger
from saltext_hamn.utils.lease import protocol
from saltext_hamn.utils.lease import sync as lease_sync
from saltext_hamn.utils.net import handover
from saltext_hamn.utils.pg.cluster import from_config

log = logging.getLogger("hamn-leased")

STATUS = "lease-status.json"
FENCE_RETRY = 1.0  # seconds before fencing again a node that still looks writable
RENEW_TIMEOUT = 0.5  # a whole renewal exchange; the tick waits for it


class PeerHeld(Exception):
    """The takeover holds the peer: the renewal is abandoned before it is sent."""


def could_write(observed):
    """True when the local PostgreSQL is, or could start as, a writable primary.

    A live server not in recovery, or one whose role is not known (not answering,
    or stopped) without a standby signal: started as it is, it would come up writable.
    """
    if observed["role"] == "primary":
        return True
    return observed["role"] in ("unknown", "stopped") and not observed.get("standby_signal")


def write_json_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".lease-status-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Watchdog:
    """The lease holder of node ``me`` and the renewer of its peer."""

    def __init__(self, cfg, me, netns=None, clock=lease_ledger.now, observer=None, fencer=None,
                 exchange=protocol.exchange, read_boot_id=lease_ledger.boot_id, wall=None):
        hb = cfg["heartbeat"]
        self.cfg, self.me, self.netns = cfg, me, netns
        self.peer = config.peer_of(cfg, me)
        self.peer_address = cfg["nodes"][self.peer]["address"]
        self.address = cfg["nodes"][me]["address"]
        self.lease, self.port, self.key = hb["lease"], hb["lease_port"], hb["lease_key"]
        self.renew_every = hb["lease"] / 3
        self.tick_period = min(0.2, hb["lease"] / 10)
        self.state_dir = hb["state_dir"]
        replication = cfg["postgres"]["replication"]
        self.mode = replication["mode"]
        self.sync_fallback = replication.get("sync_fallback", 2.0)
        self.sync_decision = None  # the last tick's lease_sync.Decision
        self.sync_lost_since = None
        self.status_path = os.path.join(self.state_dir, STATUS)
        self.clock, self.exchange, self.wall = clock, exchange, wall or time.time
        self.ledger = lease_ledger.Ledger(self.state_dir, read_boot_id)
        self.cluster = from_config(cfg)
        self.observer = observer
        self.fencer = fencer or (lambda reason, keep_vip=False: lease_fence.self_fence(
            cfg, me, self.cluster, reason, netns=netns, clock=clock, keep_vip=keep_vip))
        # Per process, on purpose: a restarted watchdog fences a writable node at once.
        self.last_fence_try = None
        self.last_renew_try = None
        self.peer_renewing = False
        self.peer_error = None
        self._logged = {}
        # Held through a fence and the fresh look at PostgreSQL after it: a fence asked by the
        # master does not run beside one of the tick, and no answer shows a half-fenced node.
        self._fencing = threading.Lock()

    # ---- logging on change only ------------------------------------------------------
    def _note(self, what, value, message):
        if self._logged.get(what) != value:
            self._logged[what] = value
            log.info(message)

    # ---- the tick ----------------------------------------------------------------------
    def tick(self):
        observed = self.observer.current()
        now = self.clock()
        led = self.ledger.read()
        expired = led["expiry"] is None or now >= led["expiry"]
        enforced_out = led["enforcing"] and expired
        self._note("lease", (led["enforcing"], expired),
                   f"lease {'enforced' if led['enforcing'] else 'not enforced'}, "
                   f"{'expired' if expired else 'valid'}")

        writable = could_write(observed)
        if not writable:
            self.last_fence_try = None  # a new episode: fence again should it turn writable
        if enforced_out and writable:
            if self.last_fence_try is None or now - self.last_fence_try >= FENCE_RETRY:
                self.last_fence_try = now
                self.fence(f"enforced lease expired {now - (led['expiry'] or now):.2f}s ago "
                           f"(PostgreSQL {observed['role']})")
        elif led["fenced"] and observed["role"] == "primary" and not enforced_out:
            with self.ledger.update() as data:
                data.update(fenced=False, fenced_at=None, fence_reason=None)
            log.info("fence cleared: running as primary under a valid or unenforced lease")

        self._keep_sync(observed, now)
        self._maybe_renew_peer(observed, led, now)
        status = self.status(observed)
        write_json_atomic(self.status_path, status)
        return status

    # ---- synchronous_standby_names ------------------------------------------------------
    def _keep_sync(self, observed, now):
        """Decide the replication mode's setting; the observer applies it on its own thread.

        Decided under the ledger's lock, as the master's consent is: the two are ordered,
        and "not loss-free" is on disk before the names are released.
        """
        with self.ledger.update() as data:  # written back only when something changed
            decision = lease_sync.decide(self.mode, self.sync_fallback, self.peer, observed, data,
                                         self.sync_lost_since, now)
            data.update(decision.book)
            self.sync_decision = decision
        self.sync_lost_since = decision.lost_since
        if decision.want is not None and hasattr(self.observer, "want_standby_names"):
            self.observer.want_standby_names = decision.want
        if decision.names is not None:
            self._note("sync", (decision.wants_async, decision.streaming, decision.want),
                       f"{self.mode}: synchronous standby {'streaming' if decision.streaming else 'missing'}"
                       f"{', asking the master to allow async' if decision.wants_async else ''}"
                       f", standby names {decision.want!r}")

    def _allow_async(self):
        """The master's consent (a renew with allow_async): noted in the ledger, applied by the next tick."""
        with self.ledger.update() as data:
            applies = lease_sync.consent_applies(self.mode, self.sync_decision)
            if applies and not data["sync_released"]:
                data.update(sync_released=True, sync_loss_free=False)
                log.warning("the master allows async: synchronous standby released, the pair is NOT loss-free")
        if not applies:
            self._note("consent", ("ignored", self.mode),
                       f"allow_async from the master ignored (mode {self.mode}, "
                       f"{'not a sync mode that may fall back' if self.mode != lease_sync.SYNC else 'not asking for async'})")
        else:
            self._note("consent", ("applied",), "allow_async from the master applied")

    # ---- fencing -------------------------------------------------------------------------
    def fence(self, reason, keep_vip=False):
        with self._fencing:
            return self._fence(reason, keep_vip)

    def _fence(self, reason, keep_vip=False):
        log.warning("FENCING: %s%s", reason, " (VIP kept for the standby's takeover)" if keep_vip else "")
        result = self.fencer(reason, keep_vip=True) if keep_vip else self.fencer(reason)
        steps = ", ".join(f"{name} {'ok' if step['ok'] else 'FAILED: ' + step['error']}"
                          for name, step in (result.get("steps") or {}).items())
        log.warning("fence %s in %s ms: %s", "done" if result.get("fenced") else "INCOMPLETE",
                    result.get("ms"), steps)
        refresh = getattr(self.observer, "refresh", None)
        if refresh is not None:
            refresh()  # what is reported next must be the fenced server, not the one before
        return result

    # ---- renewing the peer ----------------------------------------------------------------
    def streams_from_peer(self, observed):
        return (observed["role"] == "standby" and observed.get("receiver_status") == "streaming"
                and observed.get("sender_host") == self.peer_address)

    def _maybe_renew_peer(self, observed, led, now):
        wanted = self.streams_from_peer(observed) and not led["hold_peer"]
        if not wanted:
            reason = "held by a takeover" if led["hold_peer"] else "not streaming from it"
            self.peer_renewing = False
            self._note("renewing", ("off", reason), f"not renewing peer {self.peer}: {reason}")
            return
        if self.last_renew_try is not None and now - self.last_renew_try < self.renew_every:
            return
        self.last_renew_try = now
        try:
            self.exchange(self.peer_address, self.port, self.key, "renew", self.me, {},
                          timeout=RENEW_TIMEOUT, on_challenge=self._note_renew_sent)
        except PeerHeld:
            self.peer_renewing = False
            self._note("renewing", ("off", "held"), f"not renewing peer {self.peer}: held by a takeover")
            return
        except HamnError as exc:
            self.peer_renewing, self.peer_error = False, str(exc)
            self._note("renewing", ("failed", str(exc)), f"renewing peer {self.peer} failed: {exc}")
            return
        self.peer_renewing, self.peer_error = True, None
        self._note("renewing", ("on",), f"renewing peer {self.peer} (streaming from {self.peer_address})")

    def _note_renew_sent(self, _challenge):
        """Runs between the peer's nonce and our request: t_r, under the ledger lock.

        The hold is checked again here, under the same lock hold_peer() takes, so no
        renewal is sent after hold_peer() returned.
        """
        with self.ledger.update() as data:
            if data["hold_peer"]:
                raise PeerHeld()
            data["peer_renew_sent"] = self.clock()

    # ---- the server's side of the protocol -------------------------------------------------
    def handle(self, op, sender, args, t_c):
        """Answer an authentic request (protocol.serve checked MAC, nonce, op and sender)."""
        if op == "renew":
            with self.ledger.update() as data:
                extended = t_c + self.lease
                data["expiry"] = extended if data["expiry"] is None else max(data["expiry"], extended)
                data["renewals"][sender] = t_c
                if sender == protocol.MASTER and data["enforcing"] != args["enforce"]:
                    data["enforcing"] = args["enforce"]
                    log.info("lease %s by the master", "armed" if args["enforce"] else "disarmed")
            if sender == protocol.MASTER and args.get("allow_async") is True:
                self._allow_async()
        elif op == "fence":
            self.last_fence_try = self.clock()
            self.fence("fence requested by the master", keep_vip=args.get("keep_vip", False))
        elif op == "release-vip":
            return self._release_vip()
        with self._fencing:
            return self.status(self.observer.current())

    def _release_vip(self):
        """The peer takes the VIP over: drop it, but only from a fenced node (one that
        cannot write); the answer carries this node's MAC, which the peer's ARP survey
        may have seen answer for the VIP."""
        with self._fencing:
            if not self.ledger.read()["fenced"]:
                raise protocol.Refused("this node is not fenced: it keeps the VIP")
            with handover.Release(self.cfg, self.netns) as here:
                mac, dropped = here.mac(), here.drop()
            log.warning("VIP released to %s (%s)", self.peer, "dropped" if dropped else "was not here")
            return {**self.status(self.observer.current()), "vip_released": dropped, "mac": mac}

    def senders(self):
        return (protocol.MASTER, self.peer)

    # ---- status ----------------------------------------------------------------------------
    def status(self, observed):
        now = self.clock()
        led = self.ledger.read()
        left = None if led["expiry"] is None else round(led["expiry"] - now, 3)
        sent = led["peer_renew_sent"]
        return {
            "node": self.me,
            "role": observed["role"],
            "pg_up": observed.get("pg_up"),
            "enforcing": led["enforcing"],
            "lease_left": left,
            "expired": left is None or left <= 0,
            "renewals": {who: round(now - at, 3) for who, at in led["renewals"].items()},
            "fenced": led["fenced"],
            "fenced_age": None if led["fenced_at"] is None else round(now - led["fenced_at"], 3),
            "fence_reason": led["fence_reason"],
            "hold_peer": led["hold_peer"],
            "peer_renewing": self.peer_renewing,
            "last_peer_renew_age": None if sent is None else round(now - sent, 3),
            "peer_error": self.peer_error,
            "sync": lease_sync.view(self.mode, self.sync_decision, led),
            "pid": os.getpid(),
            "updated": round(self.wall(), 3),
        }
