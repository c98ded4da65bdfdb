"""What is wrong with the pair right now, each alarm with the command that ends it.

Shown by ``salt-run hamn.status`` and raised by ``salt-run hamn.check``; the
runbook's "When things go wrong" section explains each code.
"""

from saltext_hamn.utils.orch import decide


def alarms(obs):
    """[{"code", "message", "action"}] for ``obs`` (an Observation), worst first."""
    found = []

    def add(code, message, action):
        found.append({"code": code, "message": message, "action": action})

    if len(obs.primaries) > 1:
        add("split-brain", decide.split_brain_reason(obs), decide.split_brain_action(obs))
    for name in decide.deposed_to_demote(obs):
        if len(obs.primaries) < 2:
            add("deposed-writable", f"{name} was failed over but runs writable again",
                f"salt-run hamn.demote {name}")
    if len(obs.vip_holders) > 1:
        add("vip-twice", "both nodes hold the VIP", f"salt-run hamn.demote {decide.node_to_demote(obs) or '<node>'}")
    if obs.unfinished:
        run = obs.unfinished
        add("unfinished-run", f"the {run.name} run {run.token[:8]} stopped after step {run.last_step or '(none)'} "
            "and never finished", "salt-run state.orchestrate hamn.recover")
    for node in obs.errors:
        add("node-error", f"{node.name} answers with an error: {node.error}", f"salt {node.name} hamn.config")
    for node in obs.silent:
        add("node-silent", f"{node.name} does not answer (PostgreSQL port "
            f"{'open' if node.pg_port_open else 'closed' if node.pg_port_open is False else 'not probed'})",
            "check its salt-minion; if it was the primary: salt-run state.orchestrate hamn.failover")
    answered = [n for n in obs.nodes.values() if n.answered]
    if not obs.primaries and answered:
        add("no-primary", "no node runs PostgreSQL as primary", "salt-run state.orchestrate hamn.recover")
    if len(obs.primaries) == 1:
        primary = obs.primaries[0]
        other = obs.other(primary.name)
        for holder in obs.vip_holders:
            if holder.name != primary.name:
                add("vip-on-standby", f"the VIP is on {holder.name}, which is not the primary",
                    "salt-run state.orchestrate hamn.recover")
        if not obs.vip_holders and not obs.silent:
            add("vip-nowhere", f"no node holds the VIP (primary: {primary.name})",
                "salt-run state.orchestrate hamn.recover")
        if other.answered and not other.streams_from(primary.address):
            add("standby-not-streaming", f"{other.name} does not stream from {primary.name} ({other.role})",
                "salt-run state.orchestrate hamn.rejoin")
    active = [set(n.services_active()) for n in answered]
    if len(active) == 2 and active[0] & active[1]:
        both = ", ".join(sorted(active[0] & active[1]))
        standby = next((n.name for n in answered if not n.writable), None)
        add("services-on-both", f"xCAT services active on both nodes: {both}",
            f"salt {standby or '<standby>'} hamn.services_stop")
    if obs.maintenance:
        add("maintenance", "maintenance is set: orchestrations and automatic rebuilds are off",
            "set hamn:maintenance: false when done")
    return found


def automation_alarms(auto, fresh_within=3.0):
    """Alarms about the automatic failover, from ``witness.summary``: what keeps it from acting."""
    found = []
    if not auto:
        return found
    if auto.get("paused_by") == "hamn":
        found.append({"code": "auto-paused", "message": f"the automation paused itself: {auto['state']}",
                      "action": "check salt-run hamn.status, fix what failed, then salt-run hamn.resume"})
    if auto.get("rejoin_failed"):
        found.append({"code": "auto-rejoin-failed",
                      "message": f"the automatic rejoin failed: {auto['rejoin_failed'].get('error')}",
                      "action": "salt-run state.orchestrate hamn.rejoin, then salt-run hamn.resume"})
    for node, facts in sorted((auto.get("nodes") or {}).items()):
        age = facts.get("heartbeat_age")
        if facts.get("lease_unreachable") and age is not None and age <= fresh_within:
            found.append({"code": "lease-unreachable",
                          "message": f"{node}'s minion sends heartbeats but its lease watchdog does not answer: "
                                     "its lease cannot fence it, so a cut-off primary is not failed over",
                          "action": f"systemctl restart hamn-leased on {node} (the beacon restarts it within "
                                    "a second while the minion lives)"})
    return found
