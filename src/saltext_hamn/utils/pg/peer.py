"""The peer's PostgreSQL as this node sees it: port reachable? running as primary too?

Node-local code must not trust "I am not in recovery" alone: an old primary started
by hand after a failover is not in recovery either. Before acting as primary it
asks the peer; when the peer cannot be reached it acts as before (the master, which
sees both nodes, decides then).
"""

import socket
import time

import psycopg2

from saltext_hamn.utils import config
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import standby

PROBE_TIMEOUT = 0.3  # a LAN answers a connect (SYN-ACK or RST) in milliseconds


def probe(host, port, timeout=PROBE_TIMEOUT):
    """A plain TCP connect to ``host:port`` (no SQL, no login).

    Returns ``{"reachable": bool, "seconds": float}``, plus ``error`` when not
    reachable ("connection refused": the host answers, PostgreSQL does not;
    "timed out": the host or the path to it is down).
    """
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        error = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        return {"reachable": False, "seconds": round(time.monotonic() - started, 3), "error": error}
    return {"reachable": True, "seconds": round(time.monotonic() - started, 3)}


def probe_peer(cfg, me, timeout=PROBE_TIMEOUT):
    """:func:`probe` of the peer's PostgreSQL address and port from the config."""
    peer = config.peer_of(cfg, me)
    return probe(cfg["nodes"][peer]["address"], cfg["postgres"]["port"], timeout=timeout)


def ask_peer(cluster, cfg, me):
    """The peer's facts (see ``standby.peer_facts``), or None when it cannot be asked
    (down, unreachable, refusing the login): then nothing is known about it."""
    if not probe_peer(cfg, me)["reachable"]:
        return None
    host, port, user = standby.peer_endpoint(cfg, me)
    try:
        return standby.peer_facts(cluster, host, port, user, password=cfg["postgres"]["replication"]["password"])
    except (HamnError, psycopg2.Error):
        return None


def primary_facts(cluster, cfg, me):
    """The peer's facts when it runs as primary, else None (also when it cannot be asked:
    callers behave as if it were not there)."""
    facts = ask_peer(cluster, cfg, me)
    return None if facts is None or facts["in_recovery"] else facts


def split_brain(cluster, cfg, me, timeline):
    """The readable line when this primary (on ``timeline``) and its peer both run
    as primary; None when the peer does not (or cannot be asked)."""
    facts = primary_facts(cluster, cfg, me)
    if facts is None:
        return None
    return split_brain_message(me, timeline, config.peer_of(cfg, me), facts["timeline"])


def split_brain_message(me, my_timeline, peer, peer_timeline):
    """Who is older (the lower timeline) and the command that demotes it."""
    head = (f"split brain: this node ({me}, timeline {my_timeline}) and its peer {peer} "
            f"(timeline {peer_timeline}) both run as primary")
    if my_timeline is None or peer_timeline is None or my_timeline == peer_timeline:
        return (f"{head}; neither is newer, so the admin must decide which one keeps the role and demote "
                f"the other: salt-run hamn.demote {me} or salt-run hamn.demote {peer}")
    if my_timeline < peer_timeline:
        return f"{head}; this node is the older one — demote it: salt-run hamn.demote {me}"
    return f"{head}; the peer is the older one — demote it: salt-run hamn.demote {peer}"
