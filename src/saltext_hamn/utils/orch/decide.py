"""The decision core: from an Observation to the plan of an orchestration, or a refusal.

One place decides (Patroni's ha.py style): every branch returns a Plan or raises
Refused with the reason and the next thing to do. The SLS files are fixed lists of
steps; the plan says which of them act and on which node, and each step re-checks
its own preconditions when it runs (``steps.py``).

Words used below: ``new`` is the node that is primary when the run ends, ``old``
the other one (the primary giving up its role, the failed node, or the node that
rejoins).
"""

from dataclasses import asdict, dataclass, field

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import lsn as pg_lsn

ORCHESTRATIONS = ("setup", "switchover", "failover", "rejoin", "recover")

# Every step an orchestration may run, in the one order they run in.
ORDER = (
    "preflight", "replication-primary", "replication-standby", "setup-verify", "setup-vip-up",
    "resolution-primary", "resolution-standby", "site", "files-primary", "files-standby",
    "release-old", "switch", "settle",
    "services-stop-old", "service-nodes-stop", "demote-old", "vip-down-old", "fence-old",
    "take", "vip-up", "services-start", "post-promotion", "service-nodes-start", "diskless-reset",
    "rejoin-old", "verify",
)
SETUP = ORDER[:10]
# A planned switchover: one call per node per phase, the VIP handed over node to node
# (utils/handoff.py); every step idempotent, so a resumed switchover runs the same list.
SWITCHOVER = ("release-old", "switch", "settle", "verify")
# ``take``: promotion and VIP in one call on the new node (hamn.takeover), checkpoint after.
TAKEOVER_TAIL = ("take", "services-start", "post-promotion", "service-nodes-start", "diskless-reset")
FAILOVER_OLD_ANSWERS = ("services-stop-old", "service-nodes-stop", "demote-old", "vip-down-old", *TAKEOVER_TAIL)
FAILOVER_OLD_SILENT = ("service-nodes-stop", "fence-old", *TAKEOVER_TAIL)
TAKEOVER = ORDER[13:]  # what failover.sls lists; recover.sls lists SWITCHOVER's steps, then these
REJOIN = ("services-stop-old", "vip-down-old", "rejoin-old", "verify")


class Refused(HamnError):
    """The orchestration must not run now; ``reason`` says why, ``next_action`` what to do."""

    def __init__(self, reason, next_action):
        self.reason, self.next_action = reason, next_action
        super().__init__(f"{reason}. Next: {next_action}")


@dataclass
class Plan:
    orchestration: str
    new: str | None
    old: str | None
    steps: list
    reason: str
    notes: list = field(default_factory=list)
    resume_of: str | None = None
    primary_lsn: str | None = None  # the old primary's last known WAL position (lag guard)
    old_answers: bool = True
    force: bool = False
    fenced_by_admin: str | None = None

    def as_dict(self):
        return asdict(self)

    def acts(self, step):
        return step in self.steps


def decide(orchestration, obs):
    """The Plan for ``orchestration`` given ``obs``; raises Refused."""
    if orchestration not in ORCHESTRATIONS:
        raise Refused(f"unknown orchestration {orchestration!r}", f"use one of {', '.join(ORCHESTRATIONS)}")
    _refuse_undecidable(obs)
    if obs.unfinished:
        if orchestration in (obs.unfinished.name, "recover"):
            return _with_options(resume(obs), obs)
        run = obs.unfinished
        raise Refused(
            f"an interrupted {run.name} (run {run.token[:8]}, last step {run.last_step or 'none'}) never finished",
            f"finish it first: salt-run state.orchestrate hamn.recover (it resumes the {run.name})",
        )
    if obs.maintenance and orchestration != "setup":
        raise Refused("maintenance is set (hamn:maintenance)",
                      "set hamn:maintenance: false, refresh the pillar (salt '*' saltutil.refresh_pillar), re-run")
    plan = {"setup": setup, "switchover": switchover, "failover": failover, "rejoin": rejoin,
            "recover": recover}[orchestration](obs)
    return _with_options(plan, obs)


# --------------------------------------------------------------------------- guards


def _refuse_undecidable(obs):
    for node in obs.errors:
        raise Refused(f"{node.name} answered with an error, so its role is unknown: {node.error}",
                      f"fix it (salt {node.name} hamn.config shows pillar errors), then re-run")
    if len(obs.primaries) > 1:
        raise Refused(split_brain_reason(obs), split_brain_action(obs))
    if len(obs.vip_holders) > 1:
        victim = node_to_demote(obs) or "<node>"
        raise Refused("both nodes hold the VIP",
                      f"drop it where PostgreSQL is not primary: salt-run hamn.demote {victim}")
    if not obs.nodes or len(obs.silent) == len(obs.nodes):
        raise Refused("neither node answers", "check the salt-minions and the network, then re-run")


def split_brain_reason(obs):
    parts = ", ".join(f"{n.name} (timeline {n.timeline})" for n in obs.primaries)
    return f"split brain: both nodes run PostgreSQL as primary: {parts}"


def split_brain_action(obs):
    victim = node_to_demote(obs)
    if victim:
        return (f"demote {victim} (its diverged commits are kept when it rejoins): salt-run hamn.demote {victim}; "
                "then salt-run state.orchestrate hamn.rejoin")
    return ("decide which node keeps the role, demote the other (salt-run hamn.demote <node>), "
            "then salt-run state.orchestrate hamn.rejoin")


def node_to_demote(obs):
    """Of two primaries (or VIP holders): the deposed one, else the older timeline, else None."""
    suspects = obs.primaries if len(obs.primaries) > 1 else obs.vip_holders
    deposed = [n.name for n in suspects if n.name in obs.deposed]
    if len(deposed) == 1:
        return deposed[0]
    recorded = obs.record.get("primary")
    if recorded and any(n.name == recorded for n in suspects) and len(suspects) == 2:
        return next(n.name for n in suspects if n.name != recorded)
    timelines = {n.name: n.timeline for n in suspects if n.timeline is not None}
    if len(timelines) == 2 and len(set(timelines.values())) == 2:
        return min(timelines, key=timelines.get)
    if len(obs.primaries) == 1 and len(obs.vip_holders) > 1:
        return next(n.name for n in obs.vip_holders if not n.writable)
    return None


def deposed_to_demote(obs):
    """Nodes the master deposed (failed over while unreachable) that run writable again.

    Their first contact demotes them before anything else runs there.
    """
    return sorted(name for name in obs.deposed if name in obs.nodes
                  and obs.node(name).role in ("primary", "unknown")
                  and obs.record.get("primary") not in (None, name))


def _with_options(plan, obs):
    plan.force, plan.fenced_by_admin = bool(obs.force), obs.fenced_by_admin
    if plan.orchestration != "setup":
        services = (obs.cfg or {}).get("services") or {}
        if not (services.get("service_nodes") or {}).get("target"):
            _drop(plan, "service-nodes-stop", "service-nodes-start")
        reset = ((obs.cfg or {}).get("hooks") or {}).get("diskless_reset") or {}
        if not reset.get("enabled"):
            _drop(plan, "diskless-reset")
    return plan


def _drop(plan, *steps):
    plan.steps = [s for s in plan.steps if s not in steps]


# --------------------------------------------------------------------------- checks


def _lag_problem(obs, primary_lsn, candidate):
    """Why promoting ``candidate`` could lose commits, or None."""
    limit = obs.lag_limit().get("bytes")
    if primary_lsn is None or limit is None or candidate.position is None:
        return None
    lag = pg_lsn.lag(primary_lsn, candidate.position)
    if lag > limit:
        return f"{candidate.name} is {lag} bytes behind the primary's last known position {primary_lsn} (limit {limit})"
    return None


def _promotable(obs, node, primary_lsn):
    """Raise unless ``node`` can be promoted now."""
    if node.silent:
        raise Refused(f"{node.name}, the node to promote, does not answer",
                      f"bring its salt-minion back ({node.name}), then re-run")
    if node.role == "primary":
        return
    if not node.running_standby:
        raise Refused(f"{node.name}, the node to promote, does not run PostgreSQL as a standby (role {node.role})",
                      f"start it: salt {node.name} hamn.start_db, then re-run")
    problem = _lag_problem(obs, primary_lsn, node)
    if problem and not obs.force:
        raise Refused(problem + "; promoting could lose committed transactions",
                      "wait for it to catch up, or accept the loss: add pillar='{\"force\": true}'")


def still_serving(obs, old, new):
    """Evidence that a silent old primary still serves PostgreSQL, or None."""
    if old.pg_port_open:
        return "its PostgreSQL port still answers the master"
    if new.reaches_peer_pg:
        return f"{new.name} still reaches its PostgreSQL port"
    if obs.vip_port_open and not new.holds_vip:
        return "PostgreSQL still answers on the VIP, which the standby does not hold"
    return None


def _fence_possible(obs, old):
    """Raise unless a silent old primary can be proven powered off."""
    new = obs.other(old.name)
    if obs.fenced_by_admin == old.name:
        evidence = still_serving(obs, old, new)
        if evidence:
            raise Refused(f"you state {old.name} is off, but {evidence}", f"power {old.name} off for real, then re-run")
        return "the admin states it is powered off"
    if obs.fence_cmd():
        return "the fence command (hamn:fence:cmd) powers it off"
    port = still_serving(obs, old, new) or {False: "its PostgreSQL port does not answer the master",
                                             None: "its PostgreSQL port was not probed"}[old.pg_port_open]
    raise Refused(
        f"{old.name} does not answer and may still accept writes ({port}); no fence command is configured "
        "(hamn:fence:cmd), so nothing proves it stopped writing",
        f"power {old.name} off (IPMI, rpower), then: salt-run state.orchestrate hamn.failover "
        f"pillar='{{\"fenced\": \"{old.name}\"}}' - or configure hamn:fence:cmd",
    )


# --------------------------------------------------------------------------- orchestrations


def setup(obs):
    if obs.silent:
        raise Refused(f"{', '.join(n.name for n in obs.silent)} does not answer: setup needs both nodes",
                      "start the salt-minions, accept their keys, then re-run")
    primaries = obs.primaries
    new = primaries[0].name if primaries else (obs.cfg or {}).get("initial_primary")
    if new not in obs.nodes:
        raise Refused("no node runs as primary and hamn:initial_primary names no node",
                      "set hamn:initial_primary to one of " + ", ".join(obs.names))
    why = "it runs as primary" if primaries else "hamn:initial_primary (neither node runs as primary)"
    return Plan("setup", new=new, old=obs.other(new).name, steps=list(SETUP), reason=f"primary {new}: {why}")


def switchover(obs):
    if obs.silent:
        silent = obs.silent[0]
        was = "primary" if obs.record.get("primary") == silent.name or silent.last_primary_lsn else "standby"
        action = ("salt-run state.orchestrate hamn.failover" if was == "primary" else
                  f"bring {silent.name} back, then salt-run state.orchestrate hamn.rejoin")
        raise Refused(f"{silent.name} does not answer: a planned switchover needs both nodes", action)
    if not obs.primaries:
        raise Refused("no node runs as primary", "salt-run state.orchestrate hamn.recover")
    old = obs.primaries[0]
    new = obs.other(old.name)
    if not new.streams_from(old.address):
        raise Refused(f"{new.name} does not stream from the primary {old.name} (role {new.role})",
                      "salt-run state.orchestrate hamn.rejoin, then re-run")
    lag = old.status.get("lag_bytes")
    limit = obs.lag_limit().get("bytes")
    if lag is not None and limit is not None and lag > limit and not obs.force:
        raise Refused(f"{new.name} lags {lag} bytes (limit {limit})",
                      "wait for it to catch up (salt-run hamn.status), then re-run")
    if new.holds_vip:
        raise Refused(f"the VIP is on the standby {new.name}, not on the primary {old.name}",
                      "salt-run state.orchestrate hamn.recover puts it on the primary")
    notes = [] if old.holds_vip else [f"the VIP is on no node; it is raised on {new.name}"]
    return Plan("switchover", new=new.name, old=old.name, steps=list(SWITCHOVER),
                reason=f"{old.name} is primary, {new.name} streams from it", notes=notes)


def failover(obs):
    primaries = obs.primaries
    if primaries:
        primary = primaries[0]
        other = obs.other(primary.name)
        if other.silent:
            raise Refused(f"{primary.name} is a healthy primary and {other.name} (standby) does not answer: "
                          "nothing to fail over", f"when {other.name} is back: salt-run state.orchestrate hamn.rejoin")
        if primary.pg_port_open is False:
            raise Refused(f"{primary.name} runs as primary but its PostgreSQL port does not answer the master",
                          "check the network and listen_addresses; to move the role: hamn.switchover")
        raise Refused(f"{primary.name} is a healthy primary", "for a planned change: salt-run state.orchestrate "
                      "hamn.switchover; for a standby that does not stream: hamn.rejoin")
    candidates = [n for n in obs.nodes.values() if n.running_standby]
    if not candidates:
        states = ", ".join(f"{n.name} {n.role}" for n in obs.nodes.values())
        raise Refused(f"no node runs PostgreSQL as a standby ({states}): nothing to promote",
                      "start the node that was primary last (salt <node> hamn.start_db) or rebuild; see "
                      "salt-run hamn.status")
    if len(candidates) > 1:
        raise Refused("no primary and both nodes are standbys", "salt-run state.orchestrate hamn.recover "
                      "promotes the one with the most WAL")
    new = candidates[0]
    old = obs.other(new.name)
    return _takeover("failover", obs, old, new, f"{old.name} is not primary ({old.role}); {new.name} is a standby")


def _takeover(name, obs, old, new, reason):
    primary_lsn = old.last_primary_lsn
    _promotable(obs, new, primary_lsn)
    if old.silent:
        how = _fence_possible(obs, old)
        return Plan(name, new=new.name, old=old.name, steps=list(FAILOVER_OLD_SILENT), old_answers=False,
                    reason=f"{reason}; {old.name} is silent and is fenced first ({how})", primary_lsn=primary_lsn)
    steps = list(FAILOVER_OLD_ANSWERS)
    if name == "recover":  # the old node answers: make it the standby in the same run
        steps += ["rejoin-old", "verify"]
    return Plan(name, new=new.name, old=old.name, steps=steps, primary_lsn=primary_lsn,
                reason=f"{reason}; {old.name} answers and is stopped boot-safe first")


def rejoin(obs):
    if not obs.primaries:
        raise Refused("no node runs as primary: nothing to rejoin to",
                      "salt-run state.orchestrate hamn.failover (or hamn.recover)")
    new = obs.primaries[0]
    old = obs.other(new.name)
    if old.silent:
        raise Refused(f"{old.name} does not answer", f"bring {old.name} back up (its salt-minion), then re-run")
    notes = [f"{old.name} already streams from {new.name}"] if old.streams_from(new.address) else []
    return Plan("rejoin", new=new.name, old=old.name, steps=list(REJOIN), notes=notes,
                reason=f"{old.name} becomes the standby of {new.name}")


def recover(obs):
    """Converge to one primary with the VIP and services, and a streaming standby."""
    if obs.primaries:
        new = obs.primaries[0]
        old = obs.other(new.name)
        steps = ["vip-up", "services-start"]
        if old.answered:
            steps = ["services-stop-old", "vip-down-old", *steps]
            if not old.streams_from(new.address):
                steps += ["rejoin-old", "verify"]
        return Plan("recover", new=new.name, old=old.name, steps=[s for s in ORDER if s in steps],
                    old_answers=old.answered, reason=f"{new.name} is primary; make the rest of the pair match")
    candidates = sorted((n for n in obs.nodes.values() if n.running_standby),
                        key=lambda n: (n.timeline or 0, n.position or 0), reverse=True)
    if not candidates:
        return failover(obs)  # refuses with the reason
    new = candidates[0]
    old = obs.other(new.name)
    return _takeover("recover", obs, old, new, f"no primary; {new.name} is the standby with the most WAL")


def resume(obs):
    """Finish an interrupted run towards its goal (``new`` primary), every step idempotent."""
    run = obs.unfinished
    if run.new not in obs.nodes or run.old not in obs.nodes:
        raise Refused(f"the interrupted {run.name} names unknown nodes", "salt-run state.orchestrate hamn.recover")
    new, old = obs.node(run.new), obs.node(run.old)
    why = f"resuming the interrupted {run.name} (run {run.token[:8]}, last step {run.last_step or 'none'})"
    if run.name == "setup":
        plan = setup(obs)
    elif run.name == "rejoin":
        plan = rejoin(obs)
    elif run.name == "switchover" and old.answered and old.writable:
        plan = switchover(obs)  # stopped before the old primary was touched: start it again
    elif run.name == "switchover" and old.answered:
        if not new.writable:
            _promotable(obs, new, None)
        where = f"{new.name} is primary already" if new.writable else f"{new.name} takes over"
        plan = Plan(run.name, new=new.name, old=old.name, reason=f"{old.name} is not primary, {where}",
                    steps=list(SWITCHOVER))  # every step picks up where the interrupted one stopped
    elif new.writable:
        plan = recover(obs)  # promoted already: finish what follows the promotion
        after = ["post-promotion", "service-nodes-start", "diskless-reset"]
        if run.name == "failover":  # the failed node rejoins later, by hamn.rejoin
            plan.steps = [s for s in plan.steps if s not in ("rejoin-old", "verify")]
        plan.steps = [s for s in ORDER if s in plan.steps or s in after]
    else:
        plan = _takeover(run.name, obs, old, new, f"{new.name} was to become primary")
    plan.orchestration = run.name  # the step semantics of the interrupted run
    plan.resume_of = run.token
    plan.reason = f"{why}: {plan.reason}"
    return plan
