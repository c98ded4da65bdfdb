"""The steps of the orchestrations, each re-checking its preconditions when it runs.

A step is called by name with the run's record (which holds the plan). It acts
only when the plan lists it; it then observes what it depends on *now* (not at
render time, not at the decision) and raises StepRefused when that no longer
holds. The invariants:

* promote only when the old primary is proven not writable: it answered and is
  stopped or a standby, or it was fenced in this run (fence command exit 0, or
  the admin's word) and its PostgreSQL port no longer answers the master;
* in a failover nothing touches the old primary before the new one has answered
  as promotable;
* the VIP is raised only on a primary, and only when the old node does not hold it.

``ctx`` is the runner's side (Salt calls, observations, the fence command,
events); tests pass a fake.
"""

import time

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import decide

PROBE_SETTLE_SECONDS = 5.0  # a fenced node's PostgreSQL port must close within this

DESCRIPTIONS = {
    "preflight": "preflight on both nodes, versions compared",
    "replication-primary": "configure replication on the primary {new}",
    "replication-standby": "configure replication on the standby {old}",
    "setup-verify": "verify replication {new} -> {old}",
    "setup-vip-up": "raise the VIP on {new}",
    "resolution-primary": "name resolution on {new} (resolv.conf nameserver = VIP, hosts: files dns)",
    "resolution-standby": "name resolution on {old}",
    "site": "site table master/nameservers = VIP on {new}",
    "files-primary": "push the synced files from {new}",
    "files-standby": "first file sync onto {old}",
    "release-old": "stop xCAT services on {old}, then its PostgreSQL boot-safe (clean shutdown checkpoint)",
    "switch": "promote {new} and hand the VIP over from {old} node to node; {old} restarts as standby",
    "settle": "{new}: checkpoint, xCAT services, post-promotion commands; {old} streams from it",
    "services-stop-old": "stop xCAT services on {old}",
    "service-nodes-stop": "stop the services on the service nodes",
    "demote-old": "stop PostgreSQL on {old}, boot-safe (any later start is a standby)",
    "vip-down-old": "drop the VIP on {old}",
    "fence-old": "fence {old} if it does not answer",
    "take": "promote {new} once {old} is proven not writable, and raise the VIP there (ARP probe)",
    "vip-up": "raise the VIP on {new} (ARP probe, gratuitous ARP)",
    "services-start": "start xCAT services on {new}",
    "post-promotion": "run the post-promotion commands on {new}",
    "service-nodes-start": "start the services on the service nodes",
    "diskless-reset": "reset the diskless nodes",
    "rejoin-old": "rejoin {old} as standby of {new}",
    "verify": "verify replication {new} -> {old}",
}
# How the SLS names the two nodes before the run decides who they are.
ROLE_WORDS = {
    "setup": {"new": "the primary", "old": "the standby"},
    "rejoin": {"new": "the primary", "old": "the node that rejoins"},
}
DEFAULT_WORDS = {"new": "the new primary", "old": "the old primary"}


class StepRefused(HamnError):
    """A step's precondition does not hold when it runs."""


def describe(step, orchestration, new=None, old=None):
    words = dict(ROLE_WORDS.get(orchestration, DEFAULT_WORDS))
    words.update({k: v for k, v in (("new", new), ("old", old)) if v})
    return DESCRIPTIONS[step].format(**words)


def run_step(ctx, run, step):
    """Do ``step`` of ``run``; returns {"comment", "skipped"?, "facts"? (the run's), "details"? (the step's)}."""
    plan = run["plan"]
    if step not in decide.ORDER:
        raise HamnError(f"unknown step {step!r}")
    if step not in plan["steps"]:
        return {"skipped": True, "comment": f"not needed: {plan['reason']}"}
    for role in ("new", "old"):
        if not plan.get(role):
            raise StepRefused(f"{step}: the plan names no {role} node")
    return _STEPS[step](ctx, run, plan)


# --------------------------------------------------------------------------- preconditions


def _require_promotable(ctx, plan):
    """The failover invariant: the new node answers now and is a promotable standby (or primary)."""
    if plan["orchestration"] == "switchover" or "take" not in plan["steps"]:
        return  # a switchover checked the standby at begin and hands over with no loss
    obs = ctx.observe()
    new = obs.node(plan["new"])
    if new.writable:
        return
    if not new.running_standby:
        raise StepRefused(f"{plan['new']} no longer answers as a running standby ({new.role}); "
                          f"{plan['old']} is left untouched")
    problem = decide._lag_problem(obs, plan.get("primary_lsn"), new)  # pylint: disable=protected-access
    if problem and not plan.get("force"):
        raise StepRefused(problem + f"; {plan['old']} is left untouched")


def _require_old_not_writable(ctx, run, plan):
    obs = ctx.observe()
    old = obs.node(plan["old"])
    if old.answered:
        if old.role in ("stopped", "standby"):
            return f"{old.name} answers as {old.role}"
        raise StepRefused(f"refusing to promote {plan['new']}: {old.name} answers as {old.role}, "
                          "not stopped or standby")
    if old.error is not None:
        raise StepRefused(f"refusing to promote {plan['new']}: {old.name} answers with an error: {old.error}")
    if old.name not in run.get("fenced", []):
        raise StepRefused(f"refusing to promote {plan['new']}: {old.name} does not answer and was not fenced")
    evidence = decide.still_serving(obs, old, obs.node(plan["new"]))
    if evidence:
        raise StepRefused(f"refusing to promote {plan['new']}: {old.name} was fenced but {evidence}")
    return f"{old.name} was fenced and nothing reaches its PostgreSQL"


def _require_primary(ctx, plan, what):
    obs = ctx.observe()
    new = obs.node(plan["new"])
    if not new.writable:
        raise StepRefused(f"{what}: {plan['new']} is not primary ({new.role})")
    return obs


# --------------------------------------------------------------------------- steps


def _on_new(fun, *args, timeout=300, **kwargs):
    def step(ctx, run, plan):  # pylint: disable=unused-argument
        return {"comment": f"{plan['new']}: {fun} done", "ret": ctx.call(plan["new"], fun, args, kwargs, timeout)}

    return step


def _on_old(fun, *args, timeout=300, **kwargs):
    def step(ctx, run, plan):  # pylint: disable=unused-argument
        return {"comment": f"{plan['old']}: {fun} done", "ret": ctx.call(plan["old"], fun, args, kwargs, timeout)}

    return step


def _preflight(ctx, run, plan):  # pylint: disable=unused-argument
    return {"comment": "preflight passed", "ret": ctx.preflight()}


def _services_stop_old(ctx, run, plan):
    _require_promotable(ctx, plan)
    return _on_old("hamn.services_stop")(ctx, run, plan)


def _service_nodes(action):
    def step(ctx, run, plan):  # pylint: disable=unused-argument
        sn = ctx.config()["services"]["service_nodes"]
        names = sn["names"] if action == "stop" else list(reversed(sn["names"]))
        done = [ctx.call_target(sn["target"], sn["tgt_type"], f"service.{action}", [name]) for name in names]
        return {"comment": f"{action} {', '.join(names)} on {sn['target']}", "ret": done}

    return step


def _demote_old(ctx, run, plan):
    _require_promotable(ctx, plan)
    ret = ctx.call(plan["old"], "hamn.demote", (), {}, 120)
    return {"comment": f"{plan['old']}: PostgreSQL stopped boot-safe at {ret.get('lsn')}", "ret": ret,
            "facts": {"handover_lsn": ret.get("lsn")}}


def _release_old(ctx, run, plan):
    """The old primary stops its services and PostgreSQL (boot-safe) in one call; the
    service nodes stop first, as they write to the database too."""
    done = _service_nodes("stop")(ctx, run, plan)["comment"] if _has_service_nodes(ctx) else None
    ret = ctx.call(plan["old"], "hamn.release_primary", (), {}, 120)
    lsn = ret.get("lsn")
    if ret.get("was_role") == "standby":
        comment = f"{plan['old']} already runs as a standby"
    elif lsn is None:
        raise StepRefused(f"{plan['old']} did not stop cleanly (pg_control: {ret.get('state')}), so it is "
                          f"unknown whether {plan['new']} has all of its WAL; {plan['old']} is left boot-safe. "
                          "Next: salt-run state.orchestrate hamn.recover (its lag guard decides)")
    else:
        comment = f"{plan['old']} stopped boot-safe at {lsn}"
    if done:
        comment = f"{done}; {comment}"
    return {"comment": comment, "ret": ret, "facts": {"handover_lsn": lsn}}


def _has_service_nodes(ctx):
    return bool(((ctx.config() or {}).get("services") or {}).get("service_nodes", {}).get("target"))


def _switch(ctx, run, plan):
    """Both nodes at once (utils/handoff.py): the new one promotes once it holds the old
    one's shutdown checkpoint and takes the VIP the moment the old one drops it."""
    new, old, token = plan["new"], plan["old"], run["token"][:16]
    answers = ctx.call_each({
        new: ("hamn.take_over", (), {"run": token, "lsn": run.get("handover_lsn"),
                                     "force": bool(plan.get("force"))}),
        old: ("hamn.release_vip", (), {"run": token}),
    }, 120)
    ctx.promoted(plan, run)
    took, released = answers[new], answers[old]
    raised, dropped = (took.get("vip") or {}).get("at", {}), released.get("at", {})
    nowhere = None
    if released.get("vip_dropped") and raised.get("vip_raised") and dropped.get("vip_dropped"):
        nowhere = round((raised["vip_raised"] - dropped["vip_dropped"]) * 1000, 1)
    how = (f"the VIP was on no node for {nowhere} ms" if nowhere is not None else
           "VIP raised" + ("" if took.get("released_by_peer") else " after a full ARP probe (no word from the old node)"))
    promotion = took.get("promotion") or {}
    what = "promoted" if promotion.get("changed") else "primary already"
    comment = (f"{new} {what} (timeline {promotion.get('timeline')}); {how}; {old} "
               + ("started as standby" if released.get("standby_started") else "not started here"))
    return {"comment": comment, "ret": answers,
            "facts": {"promoted": True},
            "details": {"vip_nowhere_ms": nowhere, "moment_at": raised.get("vip_raised"),
                        "handoff": {"new": took, "old": released}}}


def _settle(ctx, run, plan):
    """The new primary's checkpoint, services and hooks while the old one settles as
    its standby; then the service nodes and the diskless reset, when configured."""
    # Preconditions checked where they hold: settle_primary refuses on a standby,
    # follow refuses unless the peer is primary.
    new, old = plan["new"], plan["old"]
    answers = ctx.call_each({new: ("hamn.settle_primary", (), {}), old: ("hamn.follow", (), {})}, 3600)
    ctx.rejoined(old)
    followed = answers[old]
    comment = f"{new}: services and post-promotion commands done; {old} follows {new} ({followed.get('method') or followed.get('comment')})"
    if followed.get("method") and followed.get("comment"):
        comment += f"; {followed['comment']}"
    if _has_service_nodes(ctx):
        comment += "; " + _service_nodes("start")(ctx, run, plan)["comment"]
    reset = (ctx.config().get("hooks") or {}).get("diskless_reset") or {}
    if reset.get("enabled"):
        ctx.call(new, "hamn.run_hooks", (), {"which": "diskless_reset"}, 1800)
        comment += "; diskless nodes reset"
    return {"comment": comment, "ret": answers}


def _fence_old(ctx, run, plan):
    _require_promotable(ctx, plan)
    obs = ctx.observe()
    old = obs.node(plan["old"])
    if not old.silent:
        raise StepRefused(f"{old.name} answers again ({old.role}); re-run the orchestration: the plan changes")
    if plan.get("fenced_by_admin") == old.name:
        how = "the admin states it is powered off"
    else:
        how = ctx.fence(old.name)
    deadline = time.monotonic() + PROBE_SETTLE_SECONDS
    while ctx.probe_pg(old.name):
        if time.monotonic() > deadline:
            raise StepRefused(f"{old.name} was fenced ({how}) but its PostgreSQL port still answers the master")
        time.sleep(0.2)
    return {"comment": f"{old.name} fenced: {how}; its PostgreSQL port is closed",
            "facts": {"fenced": sorted(set(run.get("fenced", [])) | {old.name})}}


def _take(ctx, run, plan):
    """Promotion and VIP in one call on the new node, once the old one is proven not
    writable and does not hold the VIP; the checkpoint comes after the VIP."""
    proof = _require_old_not_writable(ctx, run, plan)
    old = ctx.observe().node(plan["old"])
    if old.holds_vip:
        raise StepRefused(f"refusing to promote {plan['new']}: {old.name} still holds the VIP")
    lsn = plan.get("primary_lsn") or run.get("handover_lsn")
    ret = ctx.call(plan["new"], "hamn.takeover", (),
                   {"peer_fenced": True, "primary_lsn": lsn, "force": bool(plan.get("force"))}, 120)
    ctx.promoted(plan, run)
    took = f"promoted in {ret.get('promote_seconds')} s, VIP up {ret.get('vip_seconds')} s later"
    return {"comment": f"{plan['new']} {took} ({proof})", "ret": ret, "facts": {"promoted": True}}


def _vip_up(ctx, run, plan):
    obs = _require_primary(ctx, plan, "refusing to raise the VIP")
    old = obs.node(plan["old"])
    if old.holds_vip:
        raise StepRefused(f"refusing to raise the VIP on {plan['new']}: {old.name} still holds it")
    return _on_new("hamn.vip_up")(ctx, run, plan)


def _services_start(ctx, run, plan):
    _require_primary(ctx, plan, "refusing to start xCAT services")
    return _on_new("hamn.services_start")(ctx, run, plan)


def _rejoin_old(ctx, run, plan):
    _require_primary(ctx, plan, "refusing to rejoin")
    ret = ctx.call(plan["old"], "hamn.rewind", (), {"fallback": True}, 3600)
    ctx.rejoined(plan["old"])
    comment = f"{plan['old']} follows {plan['new']} ({ret.get('method') or ret.get('comment')})"
    if isinstance(ret, dict) and ret.get("comment") and ret.get("method"):
        comment += f"; {ret['comment']}"
    return {"comment": comment, "ret": ret}


_STEPS = {
    "preflight": _preflight,
    "release-old": _release_old,
    "switch": _switch,
    "settle": _settle,
    "replication-primary": _on_new("state.apply", "hamn.replication", timeout=600),
    "replication-standby": _on_old("state.apply", "hamn.replication", timeout=3600),
    "setup-verify": _on_new("hamn.verify_replication"),
    "setup-vip-up": _on_new("hamn.vip_up"),
    "resolution-primary": _on_new("state.apply", "hamn.resolution"),
    "resolution-standby": _on_old("state.apply", "hamn.resolution"),
    "site": _on_new("hamn.run_hooks", which="site"),
    "files-primary": _on_new("state.apply", "hamn.files"),
    "files-standby": _on_old("state.apply", "hamn.files"),
    "services-stop-old": _services_stop_old,
    "service-nodes-stop": _service_nodes("stop"),
    "demote-old": _demote_old,
    "vip-down-old": _on_old("hamn.vip_down"),
    "fence-old": _fence_old,
    "take": _take,
    "vip-up": _vip_up,
    "services-start": _services_start,
    "post-promotion": _on_new("hamn.run_hooks", timeout=1800),
    "service-nodes-start": _service_nodes("start"),
    "diskless-reset": _on_new("hamn.run_hooks", which="diskless_reset", timeout=1800),
    "rejoin-old": _rejoin_old,
    "verify": _on_new("hamn.verify_replication"),
}
assert set(_STEPS) == set(decide.ORDER) == set(DESCRIPTIONS)
