"""The automatic failover rule: what the master does after a heartbeat, from facts.

One pure function, :func:`decide`, over a plain :class:`Facts`; every branch
returns a :class:`Decision` with a named reason, so the rule is tested over a
table of states (tests/unit/test_auto_rule.py) and explained in
docs/auto-failover.md.

Fail over only when
- the standby has lost the primary's PostgreSQL (its own heartbeat says so),
- the master's own probe of the primary's PostgreSQL fails too,
- the old primary is proven unable to write: its watchdog fenced it on the
  master's request, or its minion stopped it boot-safe, or the fence command
  returned 0, or its enforced lease has surely run out,
- and nothing forbids it: automation on, not paused, no maintenance, no
  orchestration running, not in cooldown, the standby a fresh, running,
  not deposed standby within the lag limit (in ``sync`` / ``sync_strict``
  mode: the pair loss-free, as the old primary's watchdog last reported).
A primary whose minion answers and whose PostgreSQL alone died is restarted in
place first (``restart_tries`` times). A primary that fenced itself when its
lease ran out, while nobody took its place (both its renewers were gone for a
moment: the master restarting while the nodes' link was cut), is brought back as
primary ("unfence"), under the same bound: it holds every acknowledged commit,
so this loses nothing and needs no rejoin.

Events are hints: the facts come from the heartbeats *and* the master's own
probes taken when the rule runs; a heartbeat alone never triggers an action.
"""

from dataclasses import dataclass, field

from saltext_hamn.utils import config
from saltext_hamn.utils.pg import lsn as pg_lsn

# Decision actions.
NONE = "none"
RESTART = "restart"
FAILOVER = "failover"
REJOIN = "rejoin"
UNFENCE = "unfence"

# How the old primary is proven not to write (the failover's first step).
PROOF_WATCHDOG = "watchdog-fence"  # its lease watchdog answered the master's fence request
PROOF_MINION = "minion-stop"  # its minion answers: hamn.stop_db there (boot-safe)
PROOF_FENCE_CMD = "fence-command"  # hamn:fence:cmd returned 0
PROOF_LEASE = "lease-expired"  # unreachable, its enforced lease surely ran out


@dataclass
class NodeFacts:
    """One node as the master sees it when the rule runs."""

    name: str
    heartbeat: dict | None = None  # last beacon payload
    age: float | None = None  # seconds since it arrived (None: never)
    connected: bool | None = None  # its minion holds a connection to the master's publisher
    pg_open: bool | None = None  # the master's TCP probe of its PostgreSQL, now
    watchdog: dict | None = None  # its watchdog's status from the master's renewal, now (None: unreachable)
    watchdog_enforcing: bool = False  # its lease was enforced at the master's last successful renewal
    renewal_age: float | None = None  # seconds since the master's last renewal attempt that got a challenge
    deposed: bool = False  # failed over while it could not be demoted (the master's record)
    restarts: int = 0  # restarts in place tried since PostgreSQL was last seen up

    def fresh(self, max_age):
        """Its minion lives: a recent heartbeat, and (a SIGKILLed minion's socket closes at
        once) still connected; a cut link only shows as heartbeats that stop coming."""
        return self.age is not None and self.age <= max_age and self.connected is not False

    @property
    def said(self):
        return self.heartbeat or {}

    @property
    def role(self):
        return self.said.get("role")


@dataclass
class Facts:
    nodes: dict  # name -> NodeFacts (both)
    primary: str | None  # the node that was primary (heartbeats, else the master's record)
    interval: float = 1.0
    misses: int = 3
    failover_delay: float = 3.75
    lag_limit_bytes: int | None = None
    restart_tries: int = 2
    auto_failover: bool = True
    auto_rejoin: bool = False
    maintenance: bool = False
    paused: str | None = None  # why, when paused
    cooldown_left: float = 0.0
    busy: str | None = None  # an orchestration holds the lock, or a run is unfinished
    fence_cmd: bool = False
    rejoin_failed: str | None = None  # the last automatic rejoin failed: wait for the admin
    mode: str = "async"  # postgres:replication:mode
    loss_free: bool | None = None  # sync modes: the primary's watchdog last said every acked commit is on the standby
    notes: list = field(default_factory=list)

    @property
    def max_age(self):
        """A heartbeat older than this means the node's minion is silent."""
        return self.interval * self.misses

    def other(self, name):
        return next(n for n in self.nodes.values() if n.name != name)


@dataclass
class Decision:
    action: str
    reason: str  # one line, names the nodes and the cause
    code: str  # short stable name of the branch (events, tests, status)
    old: str | None = None
    new: str | None = None
    proof: str | None = None
    wait: float | None = None  # seconds until the lease surely ran out

    def as_dict(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _none(code, reason, **kw):
    return Decision(NONE, reason, code, **kw)


def armed(facts):
    """Why automation may not act at all (None: it may)."""
    if not facts.auto_failover:
        return "disabled", "automation is off (hamn:heartbeat:auto_failover: false)"
    if facts.maintenance:
        return "maintenance", "maintenance mode: no automatic action"
    if facts.paused:
        return "paused", f"paused ({facts.paused}); salt-run hamn.resume to arm it"
    if facts.busy:
        return "busy", facts.busy
    return None


def enforce_lease(facts):
    """Whether the master's renewals arm the primary's lease: only when a failover could follow.

    A primary left without a candidate standby (or in cooldown, or paused) is not
    fenced by its lease when the master goes away: nobody would take over.
    """
    if armed(facts) or facts.cooldown_left > 0 or facts.primary is None:
        return False
    standby = facts.other(facts.primary)
    return bool(standby.fresh(facts.max_age) and standby.role == "standby" and standby.said.get("streaming")
                and not standby.deposed)


def decide(facts):
    """The one decision for this heartbeat (see the module docstring)."""
    blocked = armed(facts)
    if blocked:
        return _none(*blocked)
    fresh_primaries = [n.name for n in facts.nodes.values() if n.fresh(facts.max_age) and n.role == "primary"]
    if len(fresh_primaries) == 2:
        return _none("split-brain", "both nodes say they are primary: no automatic action "
                     "(salt-run hamn.status names the node to demote)")
    if facts.primary is None:
        return _none("no-primary", "no node is known as primary: nothing to fail over")
    old = facts.nodes[facts.primary]
    new = facts.other(old.name)
    unfence = _unfence(facts, old, new)
    if unfence:
        return unfence
    if old.pg_open:
        rejoin = _rejoin(facts, old, new)
        if rejoin:
            return rejoin
        if old.fresh(facts.max_age) and old.role == "standby":
            # Its port answers, but as a standby: no node takes writes. Not "healthy".
            why = "its watchdog fenced it" if (old.watchdog or {}).get("fenced") else "it runs as a standby"
            return _none("no-writer", f"{old.name} was primary, but {why} and no node accepts writes; no automatic "
                         "action: salt-run hamn.status, then salt-run state.orchestrate hamn.recover",
                         old=old.name, new=new.name)
        if new.fresh(facts.max_age) and new.role == "standby" and new.said.get("reaches_peer_pg") is False:
            return _none("standby-only", f"only {new.name} lost {old.name}'s PostgreSQL; the master "
                         "reaches it: no failover", old=old.name, new=new.name)
        return _none("healthy", f"{old.name} is primary and reachable")

    # The master cannot reach the primary's PostgreSQL. Its minion answers and does not say
    # it runs (down, or unknown for a moment): restarting in place comes first.
    if old.fresh(facts.max_age) and old.said.get("pg_up") is not True:
        if old.restarts < facts.restart_tries:
            return Decision(RESTART, f"{old.name}'s PostgreSQL is down, its minion answers: restart it in place "
                            f"(try {old.restarts + 1} of {facts.restart_tries})", "restart", old=old.name)
        facts.notes.append(f"{facts.restart_tries} restart(s) of {old.name} failed")
    elif old.fresh(facts.max_age) and old.said.get("pg_up"):
        return _none("master-only", f"the master cannot reach {old.name}'s PostgreSQL but {old.name} says it "
                     "runs: no failover", old=old.name, new=new.name)

    if not new.fresh(facts.max_age):
        return _none("standby-silent", f"{old.name}'s PostgreSQL is unreachable, but {new.name} is silent too "
                     "(no heartbeat): no failover", old=old.name, new=new.name)
    # Its own TCP probe, not the WAL receiver's state: after a cut link the receiver
    # says "streaming" until wal_receiver_timeout.
    if new.said.get("reaches_peer_pg") is not False:
        return _none("master-only", f"the master lost {old.name}'s PostgreSQL, {new.name} still reaches it: "
                     "no failover", old=old.name, new=new.name)
    if new.role != "standby" or not new.said.get("pg_up"):
        return _none("no-candidate", f"{old.name} lost, but {new.name} is not a running standby "
                     f"(role {new.role or 'unknown'}): no failover", old=old.name, new=new.name)
    if new.deposed:
        return _none("deposed", f"{new.name} was failed over before and never rejoined: it does not get the "
                     "primary role back automatically", old=old.name, new=new.name)
    if facts.cooldown_left > 0:
        return _none("cooldown", f"{old.name} lost, but the last automatic failover was recent "
                     f"({facts.cooldown_left:.0f} s of cooldown left)", old=old.name, new=new.name)
    if facts.mode in config.SYNC_MODES:
        if not facts.loss_free:
            return _none("not-loss-free", f"{old.name} lost, but in {facts.mode} mode the pair was not loss-free "
                         f"({new.name} had missed writes the primary let through, or it is unknown): no automatic "
                         "failover; salt-run state.orchestrate hamn.failover pillar='{\"force\": true}' accepts "
                         "the loss", old=old.name, new=new.name)
        lag = 0  # every acknowledged commit is on the standby: nothing to lose
    else:
        lag = _lag(old, new)
    if lag is None or (facts.lag_limit_bytes is not None and lag > facts.lag_limit_bytes):
        shown = "unknown" if lag is None else f"{lag} bytes"
        return _none("lag", f"{old.name} lost, but {new.name}'s lag is {shown} (limit {facts.lag_limit_bytes}): "
                     "no automatic failover; salt-run state.orchestrate hamn.failover "
                     "pillar='{\"force\": true}' accepts the loss", old=old.name, new=new.name)

    proof, wait = _proof(facts, old)
    if proof is None:
        if wait is not None:
            return _none("lease-wait", f"{old.name} lost; waiting {wait:.1f} s for its lease to run out",
                         old=old.name, new=new.name, wait=wait)
        return _none("no-proof", f"{old.name} lost, but nothing proves it stopped writing: its watchdog is "
                     "unreachable, its lease was not enforced and no fence command is set; power it off, then "
                     f"salt-run state.orchestrate hamn.failover pillar='{{\"fenced\": \"{old.name}\"}}'",
                     old=old.name, new=new.name)
    return Decision(FAILOVER, f"{old.name} lost (master and {new.name} agree); {new.name} takes over "
                    f"({proof})", "failover", old=old.name, new=new.name, proof=proof)


def _lag(old, new):
    """Bytes the candidate misses of the old primary's last reported position."""
    ahead = pg_lsn.parse(old.said.get("lsn")) if old.said.get("role") == "primary" else None
    have = [pg_lsn.parse(new.said.get(k)) for k in ("lsn", "replayed") if new.said.get(k)]
    if ahead is None or not have:
        return None
    return max(0, ahead - max(have))


def _proof(facts, old):
    """(proof, None) when the old primary can be proven not to write, else (None, seconds to wait or None)."""
    if old.watchdog is not None:
        return PROOF_WATCHDOG, None
    if old.fresh(facts.max_age):
        return PROOF_MINION, None
    if facts.fence_cmd:
        return PROOF_FENCE_CMD, None
    if old.watchdog_enforcing and old.renewal_age is not None:
        left = facts.failover_delay - old.renewal_age
        if left <= 0:
            return PROOF_LEASE, None
        return None, left
    return None, None


def _unfence(facts, old, new):
    """The primary fenced itself (its watchdog says so now) and nobody took its place:
    bring it back as primary. None when that does not apply or is not safe.

    Safe because only a promotion makes a second writer, and the peer is seen not to
    be one: its own fresh heartbeat says standby, or it is silent with its
    PostgreSQL port closed to the master. The old primary holds every commit it
    acknowledged, so nothing is lost and the standby keeps following it.
    """
    watchdog = old.watchdog or {}
    if not watchdog.get("fenced") or watchdog.get("role") == "primary" or old.deposed:
        return None  # not fenced, or a failed-over node: that one never gets the role back by itself
    if new.fresh(facts.max_age):
        peer_not_writer = new.role == "standby"  # its own heartbeat says so
    else:
        peer_not_writer = new.role != "primary" and new.pg_open is False  # silent, its port closed to the master
    if not peer_not_writer:
        return None  # the peer might write, or is unknown: the rest of the rule decides
    if old.restarts >= facts.restart_tries:
        facts.notes.append(f"{facts.restart_tries} attempt(s) to bring {old.name} back failed")
        return None
    return Decision(UNFENCE, f"{old.name} fenced itself ({watchdog.get('fence_reason') or 'lease ran out'}) and "
                    f"nobody took its place ({new.name} is not primary): it resumes as primary "
                    f"(try {old.restarts + 1} of {facts.restart_tries})", "unfence", old=old.name, new=new.name)


def _rejoin(facts, primary, other):
    """The failed node is back, running, not primary: rebuild it as standby when the pillar says so."""
    if facts.rejoin_failed or not (facts.auto_rejoin and other.deposed and other.fresh(facts.max_age)):
        return None
    if other.role == "primary":
        return None  # split brain; the first-contact reactor demotes it
    if other.role == "standby" and other.said.get("streaming"):
        return None  # already following; the record is cleared by the next rejoin/status
    return Decision(REJOIN, f"{other.name} is back after a failover: rebuild it as standby of {primary.name}",
                    "rejoin", old=other.name, new=primary.name)
