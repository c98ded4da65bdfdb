"""The planned handover of the primary role and the VIP, node to node.

A switchover's critical section, in two minion calls that run at the same time
(the master dispatches both, then checks both answers):

* the new node runs :func:`take_over`: it checks it holds the old primary's
  shutdown checkpoint and that the old one does not run as primary, promotes,
  says it is ready for the VIP, waits for the old node's word that the VIP is
  gone, then raises it after one short ARP probe;
* the old primary (already stopped boot-safe by ``release-old``) runs
  :func:`release_vip`: it waits until the new node is primary *and* ready, drops
  the VIP at once, says so, and starts its PostgreSQL again as a standby (it
  stopped cleanly and the new primary holds all of its WAL: no rewind).

Why node to node: while no node holds the VIP, a client's connection attempt
(SYN) goes to a MAC that no longer answers for it and is lost, and the client's
kernel resends it only after 1 s. Dropping and raising the VIP in two Salt round
trips leaves it nowhere for ~0.5 s, so nearly every switchover costs clients a
second; this way it is nowhere for a few milliseconds. Until then the VIP stays
on the old node, whose closed port refuses connections at once.

The words travel over the new node's PostgreSQL as ``application_name`` values
read in pg_stat_activity: the new node's own session says
``hamn-handoff-<run>-ready``; the old node's session (the replication role, scram:
nobody else can speak for it) says ``hamn-handoff-<run>-released``, and the new
node ends that session once read, which is the old node's acknowledgement.
"""

import os
import time

import psycopg2

from saltext_hamn.utils import config, services
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import handover
from saltext_hamn.utils.pg import connection, demote as pg_demote, peer as pg_peer, postmaster
from saltext_hamn.utils.pg import promote as pg_promote, rewind as pg_rewind, standby, status

POLL_SECONDS = 0.002
FOLLOW_SECONDS = 15.0  # a cleanly stopped old primary streams within a second; then it is rewound
_RUN_CHARS = frozenset("0123456789abcdef")


def marker(run, word=None):
    """The application_name that carries a word ("ready", "released") for ``run`` (a token's hex)."""
    run = str(run)[:16]
    if not run or not set(run) <= _RUN_CHARS:
        raise HamnError(f"handoff run id {run!r}: expected the run token's hex digits")
    return f"hamn-handoff-{run}" + (f"-{word}" if word else "")


# --------------------------------------------------------------------------- old node


def release_primary(cluster, cfg, me, major, timeout=60):
    """Step ``release-old``: stop the cluster services, then PostgreSQL boot-safe (a
    clean shutdown whose checkpoint the new node must hold before it promotes).

    Idempotent: a node already running as a standby is left running (a resumed run
    after the role moved); a stopped one only gets its standby config again.
    """
    here = status.collect(cluster)
    if here["role"] == "primary":
        # Re-checked here, now: stopping the primary while its peer does not stream
        # from it would leave nobody to take over.
        peer = config.peer_of(cfg, me)
        address = cfg["nodes"][peer]["address"]
        if not any(str(s.get("address") or "").split("/")[0] == address and s.get("state") == "streaming"
                   for s in here["standbys"]):
            raise HamnError(f"refusing to stop PostgreSQL here: {peer} ({address}) does not stream from this "
                            "primary now, so nothing could take over. Next: salt-run hamn.status")
    stopped_services = services.stop_services(cfg)
    if here["role"] == "standby":
        return {"services": stopped_services, "changed": False, "was_role": "standby", "lsn": None,
                "state": "in archive recovery", "boot_safe": True,
                "comment": "already runs as a standby: nothing to release"}
    return {"services": stopped_services, **pg_demote.demote(cluster, cfg, me, major, timeout=timeout)}


HOLD_MARKER_SECONDS = 1.0  # the new node polls every millisecond; this is ample


def release_vip(cluster, cfg, me, major, run, timeout=20.0, netns=None):
    """On the old primary, stopped boot-safe: drop the VIP as soon as the peer is a
    primary ready to raise it.

    Returns ``{vip_dropped, waited_seconds, acknowledged, standby_started, at, seconds}``.
    Raises when PostgreSQL runs here as primary (release it first) or when the peer
    is not a ready primary within ``timeout`` (the VIP then stays here: nothing
    behind it accepts writes, and a re-run resumes).
    """
    started = time.monotonic()
    here = status.collect(cluster)
    if here["role"] == "primary":
        raise HamnError("PostgreSQL runs here as primary: stop it boot-safe first (hamn.release_primary)")
    host, port, user = standby.peer_endpoint(cfg, me)
    password = cfg["postgres"]["replication"]["password"]
    with handover.Release(cfg, netns) as vip_here:
        if not vip_here.held():  # nothing to hand over (on no node, or moved already): the new node probes
            return {"vip_dropped": False, "comment": "the VIP is not on this node",
                    "standby_started": _start_as_standby(cluster, major),
                    "seconds": round(time.monotonic() - started, 3)}
        mac = vip_here.mac().replace(":", "")
        conn = _wait_for_ready_peer(host, port, user, password, run, started + float(timeout))
        try:
            stamps = {"peer_ready_seen": time.time()}
            waited = round(time.monotonic() - started, 3)
            dropped = vip_here.drop()
            stamps["vip_dropped"] = time.time()
            word = marker(run, f"released-{mac if dropped else 'none'}")
            connection.query(conn, "SELECT set_config('application_name', %s, false)", (word,))
            stamps["word_sent"] = time.time()
            acknowledged = _wait_acknowledged(conn, time.monotonic() + HOLD_MARKER_SECONDS)
        finally:
            conn.close()
    return {"vip_dropped": dropped, "waited_seconds": waited, "acknowledged": acknowledged, "at": stamps,
            "standby_started": _start_as_standby(cluster, major), "seconds": round(time.monotonic() - started, 3)}


_READY = ("SELECT NOT pg_is_in_recovery() AND EXISTS "
          "(SELECT 1 FROM pg_stat_activity WHERE application_name = %s)")


def _wait_for_ready_peer(host, port, user, password, run, deadline):
    """A session on the peer once it runs as primary and says it is ready for the VIP."""
    conn, last_error = None, None
    while True:
        try:
            if conn is None:
                conn = connection.connect_peer(host, port, user, password=password, timeout=2,
                                               application_name=marker(run))
            if connection.scalar(conn, _READY, (marker(run, "ready"),)):
                return conn
        except (HamnError, psycopg2.Error) as exc:
            last_error = str(exc).strip().splitlines()[0]
            if conn is not None:
                conn.close()
            conn = None
        if time.monotonic() >= deadline:
            if conn is not None:
                conn.close()
            why = f" (last error: {last_error})" if last_error else ""
            raise HamnError(f"the peer at {host} did not become a primary ready for the VIP in time{why}; the VIP "
                            "stays on this node, where PostgreSQL is stopped and nothing accepts writes")
        time.sleep(POLL_SECONDS if conn is not None else 0.05)


def _wait_acknowledged(conn, deadline):
    """The word lives as long as this session: the new node ends it once read (True);
    False when it did not within the deadline (it then probes the VIP fully)."""
    while time.monotonic() < deadline:
        try:
            connection.scalar(conn, "SELECT 1")
        except psycopg2.Error:
            return True
        time.sleep(POLL_SECONDS)
    return False


def follow(cluster, cfg, me, major, timeout=3600):
    """Step ``settle`` on the old node: it streams from the new primary on its timeline.

    After a clean handover it was started as a standby by :func:`release_vip` and
    only needs a moment; otherwise (it was not boot-safe, or cannot follow the new
    timeline) ``hamn.rewind`` with its fallback rejoins it.
    """
    started = time.monotonic()
    host, _, _ = standby.peer_endpoint(cfg, me)
    peer = standby.require_peer_primary(cluster, cfg, me, major)
    deadline = started + FOLLOW_SECONDS
    info = status.collect(cluster)
    while info["running"] and time.monotonic() < deadline:
        if pg_rewind.already_following(info, host, peer["timeline"]):
            return {"changed": True, "method": "restart as standby (clean handover, no rewind)",
                    "timeline": peer["timeline"], "seconds": round(time.monotonic() - started, 3)}
        time.sleep(0.05)
        info = status.collect(cluster)
    return pg_rewind.rewind(cluster, cfg, me, major, fallback=True, timeout=timeout)


def _start_as_standby(cluster, major):
    """Start the stopped, boot-safe old primary: it comes up as the new primary's standby."""
    if not postmaster.has_data(cluster) or postmaster.is_running(cluster):
        return False
    if not os.path.exists(pg_demote.signal_path(cluster, major)):
        return False  # not boot-safe: never start it here; the rejoin step decides
    return postmaster.start(cluster, wait=False)  # follow() (step settle) sees it streaming


# --------------------------------------------------------------------------- new node


def take_over(cluster, cfg, me, run, lsn=None, force=False, timeout=20.0, netns=None):
    """On the new node: promote once the old primary is proven stopped, then take the VIP.

    ``lsn`` is the old primary's shutdown checkpoint (from ``release-old``): this
    node must hold it. Returns ``{promoted, vip, released_by_peer, seconds, ...}``.
    """
    started = time.monotonic()
    here = status.collect(cluster)
    result = {}
    if here["role"] != "primary":
        if here["role"] != "standby":
            raise HamnError(f"PostgreSQL here is {here['role']}, not a running standby: nothing to promote")
        if not lsn and not force:
            raise HamnError("no handover position (the old primary's shutdown checkpoint): nothing proves this "
                            "standby has all of its WAL; refusing to promote without force")
        if lsn:
            result["received"] = pg_promote.wait_for_lsn(cluster, lsn, timeout=min(float(timeout), 10.0))
        peer = pg_peer.ask_peer(cluster, cfg, me)
        if peer is not None and not peer["in_recovery"]:
            raise HamnError(f"refusing to promote: the peer {config.peer_of(cfg, me)} still runs as primary")
        result["promotion"] = pg_promote.promote(cluster, cfg, me, force=force, primary_lsn=lsn, checkpoint=False)
    else:
        result["promotion"] = {"changed": False, "comment": "already primary"}
    promoted_at = time.monotonic()
    with handover.Claim(cfg, netns) as claim:
        if claim.held():  # resumed after the VIP moved: announce it again
            result["vip"], result["released_by_peer"] = claim.take(), True
        else:
            result["vip"], result["released_by_peer"] = _take_vip(cluster, claim, run, promoted_at + float(timeout))
    result.update(promoted=result["promotion"].get("changed", False),
                  vip_seconds=round(time.monotonic() - promoted_at, 3),
                  seconds=round(time.monotonic() - started, 3))
    return result


def settle_primary(cluster, cfg, me):
    """Step ``settle`` on the new primary: the checkpoint that records its timeline in
    pg_control (pg_rewind needs it), then the cluster services and the
    post-promotion commands (makedns, makedhcp -a, makeconservercf)."""
    checkpoint = pg_promote.checkpoint(cluster)
    started = services.start_services(cfg)
    hooks = services.run_hooks(cfg, "post_promotion", node=me)
    return {"checkpoint": checkpoint, "services": started, "hooks": hooks}


def _take_vip(cluster, claim, run, deadline):
    """Survey the VIP, say ready, wait for the old node's word, raise the VIP, then end
    the old node's session (its acknowledgement). Returns (vip result, word received)."""
    holders = claim.survey()  # while the old node still holds it: only it may answer
    if len(holders) > 1:
        raise HamnError(f"the VIP {claim.address} is answered by several hosts ({', '.join(holders)}): "
                        "not taking it; find the other holder")
    if not holders:  # on no node (the old one has nothing to hand over): the full probe decides
        answers = claim.full_probe()
        if answers:
            raise HamnError(f"VIP {claim.address} is in use: answered by {', '.join(answers)}; not adding it")
        return claim.take(), False
    stamps = {"surveyed": time.time()}
    with connection.session(cluster) as conn:
        connection.query(conn, "SELECT set_config('application_name', %s, false)", (marker(run, "ready"),))
        stamps["ready_said"] = time.time()
        prefix = marker(run, "released-")
        while True:
            words = connection.query(conn, "SELECT pid, application_name FROM pg_stat_activity "
                                           "WHERE starts_with(application_name, %s)", (prefix,))
            if words or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS / 2)
        stamps["word_seen"] = time.time()
        dropped_mac = words[0][1][len(prefix):] if words else None
        if words and _proven_free(holders, dropped_mac):
            raised = claim.take()
        else:
            # No word (the old node died, or was cut off), or the survey saw a host other
            # than the one that dropped it: the full probe decides, as for any raise.
            answers = claim.full_probe()
            if answers:
                raise HamnError(f"VIP {claim.address} is in use: answered by {', '.join(answers)}; not adding it")
            raised = claim.take()
        stamps["vip_raised"] = time.time()
        for pid, _ in words:
            connection.query(conn, "SELECT pg_terminate_backend(%s)", (pid,))
    raised["at"] = stamps
    return raised, bool(words)


def _proven_free(holders, dropped_mac):
    """The survey saw at most the old node, and the old node dropped what it held."""
    seen = {m.replace(":", "") for m in holders}
    if dropped_mac == "none":
        return not seen
    return seen <= {dropped_mac}
