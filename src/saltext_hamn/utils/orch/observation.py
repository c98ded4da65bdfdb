"""What the master knows about the pair at one instant, as plain data.

The runner fills it from Salt (each node's ``hamn.status`` or its silence) and the
master's own TCP probes; the decision core (``decide.py``) and the alarms
(``alarms.py``) read only this, so both can be tested over a table of states.

A node that answers with an error is *not* silent: it is alive and undecidable
(its pillar may be wrong), and must never be treated as fenceable.
"""

from dataclasses import dataclass, field

from saltext_hamn.utils.pg import lsn as pg_lsn


@dataclass
class NodeView:
    """One management node as the master sees it."""

    name: str
    status: dict | None = None  # hamn.status answer; None when the minion is silent
    error: str | None = None  # the minion answered, but with an error
    pg_port_open: bool | None = None  # master's TCP probe of the node's PostgreSQL port
    address: str | None = None
    last_known: dict | None = None  # the last status the master saw, when silent now

    @property
    def answered(self):
        return self.status is not None

    @property
    def silent(self):
        return self.status is None and self.error is None

    @property
    def role(self):
        if self.error is not None:
            return "error"
        if self.status is None:
            return "silent"
        return self.status.get("role") or "unknown"

    @property
    def writable(self):
        """Runs PostgreSQL outside recovery: accepts writes."""
        return self.role == "primary"

    @property
    def running_standby(self):
        return self.role == "standby" and bool(self.status.get("running"))

    @property
    def holds_vip(self):
        return bool(self.status and self.status.get("vip"))

    @property
    def maintenance(self):
        return bool(self.status and self.status.get("maintenance"))

    @property
    def timeline(self):
        return (self.status or {}).get("timeline")

    def streams_from(self, address):
        receiver = (self.status or {}).get("wal_receiver") or {}
        return self.running_standby and receiver.get("status") == "streaming" and receiver.get("sender_host") == address

    @property
    def position(self):
        """How far this node's WAL goes: current LSN of a primary, else max(received, replayed).

        A restarted standby's receive LSN can read as the start of its segment, below
        what it has replayed: the larger of the two is what it holds.
        """
        status = self.status or {}
        if status.get("role") == "primary":
            return pg_lsn.parse(status.get("current_lsn"))
        values = [pg_lsn.parse(status.get(k)) for k in ("received_lsn", "replayed_lsn") if status.get(k)]
        return max(values) if values else None

    @property
    def last_primary_lsn(self):
        """The current LSN this node reported when the master last saw it as primary."""
        last = self.last_known or {}
        if last.get("role") == "primary":
            return last.get("current_lsn")
        return None

    @property
    def reaches_peer_pg(self):
        """This node's own view: does it reach its peer's PostgreSQL port? (None: not told)"""
        return ((self.status or {}).get("peer_postgres") or {}).get("reachable")

    def services_active(self):
        services = (self.status or {}).get("services") or {}
        return sorted(name for name, state in services.items() if state == "active")


@dataclass
class UnfinishedRun:
    """An orchestration run that started and never recorded an end (its process is gone)."""

    name: str
    token: str
    old: str | None
    new: str | None
    last_step: str | None = None
    promoted: bool = False
    fenced: list = field(default_factory=list)
    handover_lsn: str | None = None


@dataclass
class Observation:
    nodes: dict  # name -> NodeView (always both nodes)
    cfg: dict | None = None  # validated hamn config from a node (password redacted)
    vip_port_open: bool | None = None  # master's TCP probe of VIP:port
    record: dict = field(default_factory=dict)  # the master's record: primary, deposed nodes
    unfinished: UnfinishedRun | None = None
    force: bool = False  # accept lag past the limit
    fenced_by_admin: str | None = None  # the admin states this node is powered off

    def node(self, name):
        return self.nodes[name]

    def other(self, name):
        return next(n for n in self.nodes.values() if n.name != name)

    @property
    def names(self):
        return sorted(self.nodes)

    @property
    def primaries(self):
        return [n for n in self.nodes.values() if n.writable]

    @property
    def vip_holders(self):
        return [n for n in self.nodes.values() if n.holds_vip]

    @property
    def errors(self):
        return [n for n in self.nodes.values() if n.error is not None]

    @property
    def silent(self):
        return [n for n in self.nodes.values() if n.silent]

    @property
    def deposed(self):
        return dict(self.record.get("deposed") or {})

    @property
    def maintenance(self):
        return bool((self.cfg or {}).get("maintenance")) or any(n.maintenance for n in self.nodes.values())

    def lag_limit(self):
        return (self.cfg or {}).get("lag_limit") or {}

    def replication_mode(self):
        return (((self.cfg or {}).get("postgres") or {}).get("replication") or {}).get("mode") or "async"

    def fence_cmd(self):
        return ((self.cfg or {}).get("fence") or {}).get("cmd")
