"""The master as witness: one heartbeat in, the master's own checks, one decision, maybe one action.

``handle(master, data)`` is what the runner ``hamn.heartbeat`` does for every
``salt/beacon/<node>/hamn/`` event the reactor hands it:

1. take the heartbeat as a hint (its sender is the id the master itself stamped),
2. renew both nodes' leases and probe their PostgreSQL ports itself,
3. gather :class:`rule.Facts` and :func:`rule.decide`,
4. act under the orchestration lock: restart in place, fail over, or rejoin.

The failover is done here directly (not through state.orchestrate): each of its
few steps re-checks what it relies on, and the run is recorded like an
orchestration run, so ``hamn.status`` and ``hamn.recover`` know it.
"""

import logging
import threading
import time

import salt.pillar

from saltext_hamn.utils import config
from saltext_hamn.utils.auto import rule, view
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import alarms as orch_alarms, history, lock as orch_lock, runs
from saltext_hamn.utils.orch.master import one_line, probes, tcp_open

log = logging.getLogger(__name__)

CONFIG_TTL = 5  # seconds a compiled pillar is reused by a long-lived (reactor) process
RENEW_TIMEOUT = 0.5
TAKEOVER_TIMEOUT = 20  # promotion + VIP take ~1 s; the lease wait at most failover_delay
_configs = {}
_configs_lock = threading.Lock()
_acting = threading.Lock()


# --------------------------------------------------------------------------- config


def node_config(master, node):
    """The validated hamn config of ``node``, compiled on the master from its pillar
    (the lease key never travels in a return or an event)."""
    with _configs_lock:
        cached = _configs.get(node)
        if cached and time.monotonic() - cached[0] < CONFIG_TTL:
            return cached[1]
    grains = master_grains(master, node)
    pillar = salt.pillar.get_pillar(master.opts, grains, node, saltenv=master.opts.get("saltenv"),
                                    pillarenv=master.opts.get("pillarenv")).compile_pillar()
    cfg = config.load(pillar.get("hamn"))
    if node not in cfg["nodes"]:
        raise HamnError(f"{node} sends hamn heartbeats but is not one of hamn:nodes ({', '.join(sorted(cfg['nodes']))})")
    with _configs_lock:
        _configs[node] = (time.monotonic(), cfg)
    return cfg


def master_grains(master, node):
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    try:
        return salt.utils.minions.CkMinions(master.opts).cache.fetch("grains", node) or {}
    except Exception:  # pylint: disable=broad-except
        return {}


# --------------------------------------------------------------------------- the master's own checks


def renew(master, cfg, node, enforce):
    """Renew ``node``'s lease; its watchdog's status, or None when unreachable."""
    from saltext_hamn.utils.lease import protocol  # pylint: disable=import-outside-toplevel

    hb = cfg["heartbeat"]
    address = cfg["nodes"][node]["address"]
    args = {"enforce": bool(enforce)}
    if view.consents_to_async(view.load(master.dir), node):
        args["allow_async"] = True
    try:
        status = protocol.exchange(address, hb["lease_port"], hb["lease_key"], "renew", "master", args,
                                   timeout=RENEW_TIMEOUT,
                                   on_challenge=lambda _challenge: view.note_renewal_attempt(master.dir, node))
    except HamnError as exc:
        view.note_renewal_result(master.dir, node, None, one_line(exc))
        return None
    view.note_renewal_result(master.dir, node, status)
    return status


def _renew_both(master, cfg, enforce):
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, renew(master, cfg, n, enforce)))
               for n in sorted(cfg["nodes"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def facts(master, cfg, data, watchdogs=None, pg_open=None):
    """rule.Facts from the master's memory and its probes of this instant."""
    nodes = sorted(cfg["nodes"])
    hb = cfg["heartbeat"]
    if pg_open is None:
        port = cfg["postgres"]["port"]
        pg_open = probes({n: (cfg["nodes"][n]["address"], port) for n in nodes})
    disconnected = set(master.disconnected(nodes))
    record = runs.record(master.dir)
    deposed = record.get("deposed") or {}
    per_node = {}
    for node in nodes:
        renewal = data["renewals"].get(node) or {}
        per_node[node] = rule.NodeFacts(
            name=node,
            heartbeat=(data["heartbeats"].get(node) or {}).get("payload"),
            age=view.heartbeat_age(data, node),
            connected=node not in disconnected,
            pg_open=pg_open.get(node),
            watchdog=(watchdogs or {}).get(node),
            watchdog_enforcing=bool(renewal.get("enforcing")),
            renewal_age=view.renewal_age(data, node),
            deposed=node in deposed,
            restarts=int((data["restarts"].get(node) or {}).get("tries", 0)),
        )
    cooldown = max(0.0, float(data.get("cooldown_until") or 0) - time.time())
    primary = _primary(per_node, record, hb)
    return rule.Facts(
        nodes=per_node, primary=primary, interval=hb["interval"], misses=hb["misses"],
        failover_delay=hb["failover_delay"], lag_limit_bytes=cfg["lag_limit"]["bytes"],
        restart_tries=hb["restart_tries"], auto_failover=hb["auto_failover"], auto_rejoin=hb["auto_rejoin"],
        maintenance=bool(cfg["maintenance"]) or any(n.said.get("maintenance") for n in per_node.values()),
        paused=(data.get("paused") or {}).get("reason"), cooldown_left=cooldown, busy=busy(master),
        fence_cmd=bool(cfg["fence"]["cmd"]),
        rejoin_failed=(data.get("rejoin_failed") or {}).get("error"),
        mode=cfg["postgres"]["replication"]["mode"],
        loss_free=view.loss_free(data, primary) if primary else None,
    )


def _primary(per_node, record, hb):
    """Who was primary: a fresh heartbeat says so, else the master's record, else the last heartbeat."""
    max_age = hb["interval"] * hb["misses"]
    fresh = [n.name for n in per_node.values() if n.fresh(max_age) and n.role == "primary"]
    if len(fresh) == 1:
        return fresh[0]
    if record.get("primary") in per_node:
        return record["primary"]
    said = [n.name for n in per_node.values() if n.role == "primary"]
    return said[0] if len(said) == 1 else None


def busy(master):
    """Why no automatic action may start now: a live orchestration, or an unfinished run."""
    state = orch_lock.holder_state(master.lock_path)
    if state.get("record") and state.get("alive"):
        return f"{state['record'].get('name')} is running (run {state['record'].get('token', '')[:8]})"
    unfinished = runs.unfinished(master.dir, live_token=None)
    if unfinished:
        return (f"run {unfinished.token[:8]} ({unfinished.name}) never finished: "
                "salt-run state.orchestrate hamn.recover")
    return None


# --------------------------------------------------------------------------- one heartbeat


def handle(master, data):
    """The whole reaction to one heartbeat event; returns the decision as a dict."""
    node = data.get("id")
    if not node or data.get("node") != node:
        # data["id"] is stamped by the master; a payload naming another node is forged or broken.
        master.fire("hamn/auto/ignored", {"id": node, "claims": data.get("node"), "why": "sender mismatch"})
        return {"action": rule.NONE, "code": "ignored", "reason": f"heartbeat from {node} claims {data.get('node')}"}
    cfg = node_config(master, node)
    sent = data.get("at")
    max_age = cfg["heartbeat"]["interval"] * cfg["heartbeat"]["misses"]
    if isinstance(sent, (int, float)) and time.time() - sent > max_age + cfg["preflight"]["max_clock_offset"]:
        # Queued by a minion that was cut off: it tells how things were, not how they are.
        return {"action": rule.NONE, "code": "stale", "reason": f"heartbeat from {node} sent {time.time() - sent:.0f} s ago"}
    payload = {k: v for k, v in data.items() if not k.startswith("_") and k != "id"}
    view.note_heartbeat(master.dir, node, payload)
    _remember_primary(master, cfg, view.load(master.dir))
    # One probe of both PostgreSQL ports serves both looks at the facts (they are
    # milliseconds apart: only the renewals come in between).
    port = cfg["postgres"]["port"]
    pg_open = probes({n: (cfg["nodes"][n]["address"], port) for n in sorted(cfg["nodes"])})
    before = facts(master, cfg, view.load(master.dir), pg_open=pg_open)
    watchdogs = _renew_both(master, cfg, rule.enforce_lease(before))
    # One decision at a time in this process (the reactor runs heartbeats in parallel
    # threads, which the per-process orchestration lock does not tell apart); a
    # heartbeat arriving meanwhile has renewed the leases and stops here.
    if not _acting.acquire(blocking=False):
        return {"action": rule.NONE, "code": "busy", "reason": "another heartbeat is being decided or acted on"}
    try:
        now_facts = facts(master, cfg, view.load(master.dir), watchdogs=watchdogs, pg_open=pg_open)
        _reset_restarts(master, now_facts)
        decision = rule.decide(now_facts)
        _remember(master, decision)
        if decision.action == rule.NONE:
            return decision.as_dict()
        return _act(master, cfg, decision, now_facts)
    finally:
        _acting.release()


def _remember_primary(master, cfg, data):
    """Keep the master's record of who is primary: once the primary's PostgreSQL dies,
    its heartbeats say "stopped", and the rule must still know whom it lost."""
    max_age = cfg["heartbeat"]["interval"] * cfg["heartbeat"]["misses"]
    fresh = {n: (data["heartbeats"][n]["payload"] or {}).get("role") for n in data["heartbeats"]
             if n in cfg["nodes"] and (view.heartbeat_age(data, n) or 0) <= max_age}
    primaries = [n for n, role in fresh.items() if role == "primary"]
    if len(primaries) == 1 and len(fresh) == 2:
        runs.observed_primary(master.dir, primaries[0])


def _reset_restarts(master, given):
    for name, node in given.nodes.items():
        if node.restarts and node.pg_open and node.said.get("pg_up"):
            with view.changing(master.dir) as data:
                data["restarts"].pop(name, None)


def _remember(master, decision):
    """Keep the decision; fire ``hamn/auto/<code>`` when it changes (not every second)."""
    with view.changing(master.dir) as data:
        last = data.get("decision") or {}
        data["decision"] = {**decision.as_dict(), "at": time.time(),
                            "since": time.time() if last.get("code") != decision.code else last.get("since")}
    if last.get("code") != decision.code:
        log.info("hamn automation: %s: %s", decision.code, decision.reason)
        master.fire(f"hamn/auto/{decision.code}", decision.as_dict())


# --------------------------------------------------------------------------- actions


def _act(master, cfg, decision, given):
    try:
        taken = orch_lock.acquire(master.lock_path, f"auto-{decision.action}")
    except HamnError as exc:
        return {**decision.as_dict(), "action": rule.NONE, "code": "busy", "reason": one_line(exc)}
    token = taken["holder"]["token"]
    try:
        if decision.action == rule.RESTART:
            return _restart(master, cfg, decision, token)
        if decision.action == rule.FAILOVER:
            return _failover(master, cfg, decision, given, token)
        if decision.action == rule.REJOIN:
            return _rejoin(master, cfg, decision, token)
        if decision.action == rule.UNFENCE:
            return _unfence(master, cfg, decision, token)
        raise HamnError(f"unknown action {decision.action}")
    finally:
        orch_lock.release(master.lock_path)


def _count_try(master, node):
    """One more restart or unfence of ``node`` (bounded by restart_tries; reset once it runs)."""
    with view.changing(master.dir) as data:
        entry = data["restarts"].setdefault(node, {"tries": 0})
        entry.update(tries=entry["tries"] + 1, last=time.time())


def _in_place(master, decision, token, name, events, attempt):
    """One bounded try on the old primary itself (restart, unfence): counted against
    restart_tries, recorded in the history, announced. ``attempt()`` returns the
    node's timings (a dict) or raises HamnError."""
    old = decision.old
    _count_try(master, old)
    started = time.monotonic()
    try:
        timings, error = attempt(), None
    except HamnError as exc:
        timings, error = {}, one_line(exc)
    result = {**decision.as_dict(), **timings, "ok": error is None, "seconds": round(time.monotonic() - started, 3)}
    if error:
        result["error"] = error
    done, failed, what = events
    history.append(master.dir, f"auto-{name}", "failed" if error else "done", f"{old}: {error or what}", token=token)
    master.fire(failed if error else done, result)
    return result


def _restart(master, cfg, decision, token):
    def attempt():
        master.call_one(decision.old, "hamn.start_db", kwargs={"timeout": 20}, timeout=30)
        if not _wait_open(cfg, decision.old, 10):
            raise HamnError("hamn.start_db returned but the PostgreSQL port stays closed")
        return {}

    return _in_place(master, decision, token, "restart",
                     ("hamn/auto/restarted", "hamn/auto/restart-failed", "restarted"), attempt)


def _unfence(master, cfg, decision, token):
    """Bring the fenced primary back (rule._unfence says why that is safe)."""
    def attempt():
        # Disarmed first, as before a takeover: an enforced lease would fence it again
        # while it starts; the next heartbeats arm it once the standby streams.
        if renew(master, cfg, decision.old, enforce=False) is None:
            raise HamnError(f"{decision.old}'s lease watchdog does not answer: not bringing it back")
        ret = master.call_one(decision.old, "hamn.unfence", kwargs={"peer_checked": True}, timeout=TAKEOVER_TIMEOUT)
        return {k: v for k, v in ret.items() if k.endswith("_seconds")} if isinstance(ret, dict) else {}

    return _in_place(master, decision, token, "unfence",
                     ("hamn/auto/unfenced", "hamn/auto/unfence-failed", "primary again"), attempt)


def _wait_open(cfg, node, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if tcp_open(cfg["nodes"][node]["address"], cfg["postgres"]["port"], timeout=0.3):
            return True
        time.sleep(0.05)
    return False


def _failover(master, cfg, decision, given, token):
    old, new = decision.old, decision.new
    timings = {}
    started = time.monotonic()
    run = runs.start(master.dir, token, "auto-failover",
                     {"orchestration": "auto-failover", "old": old, "new": new, "reason": decision.reason,
                      "steps": ["prove", "takeover", "services", "hooks"]})
    master.fire("hamn/auto/failover/begin", decision.as_dict())

    def step(name, func):
        runs.step_started(master.dir, run, name)
        t0 = time.monotonic()
        try:
            comment = func()
        except Exception as exc:
            runs.step_ended(master.dir, run, name, "failed", one_line(exc))
            raise
        timings[name] = round(time.monotonic() - t0, 3)
        runs.step_ended(master.dir, run, name, "done", comment or "")
        return comment

    try:
        step("prove", lambda: _prove(master, cfg, decision, given, run))
    except Exception as exc:  # nothing changed yet: the next heartbeat decides again
        runs.finish(master.dir, run, "refused", f"cannot prove {old} stopped writing: {one_line(exc)}")
        history.append(master.dir, "auto-failover", "refused", one_line(exc), token=token)
        master.fire("hamn/auto/failover/refused", {**decision.as_dict(), "error": one_line(exc)})
        return {**decision.as_dict(), "ok": False, "error": one_line(exc)}
    try:
        primary_lsn = given.nodes[old].said.get("lsn") if given.nodes[old].role == "primary" else None
        step("takeover", lambda: _takeover(master, cfg, decision, primary_lsn, run))
        runs.promoted(master.dir, new, old, token, fenced=True)
        run["promoted"] = True
        runs.save(master.dir, run)
        with view.changing(master.dir) as data:
            data["cooldown_until"] = time.time() + cfg["heartbeat"]["cooldown"]
            data["restarts"].pop(old, None)
            data["failovers"] = (data.get("failovers") or [])[-9:] + [
                {"at": time.time(), "old": old, "new": new, "proof": decision.proof, "run": token}]
        step("services", lambda: str(master.call_one(new, "hamn.services_start", timeout=120)))
        step("hooks", lambda: str(master.call_one(new, "hamn.run_hooks", timeout=600)))
    except Exception as exc:  # pylint: disable=broad-except
        reason = f"automatic failover {old} -> {new} failed: {one_line(exc)}"
        pause(master, f"{reason}; check with salt-run hamn.status, then salt-run hamn.resume", by="hamn")
        runs.finish(master.dir, run, "failed", reason)
        history.append(master.dir, "auto-failover", "failed", reason, token=token)
        master.fire("hamn/auto/failover/failed", {**decision.as_dict(), "error": one_line(exc), "timings": timings})
        return {**decision.as_dict(), "ok": False, "error": reason, "timings": timings}
    summary = f"{old} -> {new} ({decision.proof}) in {time.monotonic() - started:.2f} s"
    runs.finish(master.dir, run, "done", summary)
    history.append(master.dir, "auto-failover", "done", summary, token=token)
    result = {**decision.as_dict(), "ok": True, "timings": timings,
              "seconds": round(time.monotonic() - started, 3)}
    master.fire("hamn/auto/failover/done", result)
    return result


def _prove(master, cfg, decision, given, run):
    """Make sure the old primary cannot write; raises when that cannot be shown."""
    from saltext_hamn.utils.lease import protocol  # pylint: disable=import-outside-toplevel

    old = decision.old
    hb = cfg["heartbeat"]
    if decision.proof == rule.PROOF_WATCHDOG:
        # The VIP stays on the fenced node until the standby takes it over (release-vip):
        # meanwhile clients are refused at once instead of losing their connection attempts.
        status = protocol.exchange(cfg["nodes"][old]["address"], hb["lease_port"], hb["lease_key"], "fence",
                                   "master", {"keep_vip": True}, timeout=5)
        if not status.get("fenced"):
            raise HamnError(f"{old}'s watchdog answered the fence request without fencing: {status}")
        comment = f"{old}'s watchdog fenced it (VIP kept for the handoff)"
    elif decision.proof == rule.PROOF_MINION:
        master.call_one(old, "hamn.stop_db", kwargs={"mode": "immediate", "timeout": 10}, timeout=15)
        master.call_one(old, "hamn.vip_down", timeout=15)
        comment = f"{old}'s minion stopped PostgreSQL boot-safe and dropped the VIP"
    elif decision.proof == rule.PROOF_FENCE_CMD:
        fence = cfg["fence"]
        argv = [a.replace("{node}", old) for a in fence["cmd"]]
        from saltext_hamn.utils import proc  # pylint: disable=import-outside-toplevel

        result = proc.run(argv, timeout=fence["timeout"], check=False, what="fence command")
        if result.returncode != 0:
            raise HamnError(f"fencing {old} failed (exit {result.returncode}): {one_line(result.stderr)}")
        comment = f"fence command exit 0 ({argv[0]})"
    elif decision.proof == rule.PROOF_LEASE:
        age = view.renewal_age(view.load(master.dir), old)
        if age is None or age < hb["failover_delay"]:
            raise HamnError(f"{old}'s lease may still run ({age} s since the master's last renewal)")
        comment = f"{old}'s lease ran out {age - hb['lease']:.1f} s ago"
    else:
        raise HamnError(f"unknown proof {decision.proof}")
    run.setdefault("fenced", []).append(old)
    runs.save(master.dir, run)
    # Re-check what the promotion relies on: nothing answers on the old primary's PostgreSQL port.
    if tcp_open(cfg["nodes"][old]["address"], cfg["postgres"]["port"], timeout=0.3):
        raise HamnError(f"{old}'s PostgreSQL port still accepts connections after '{comment}'")
    return comment


def _takeover(master, cfg, decision, primary_lsn, run):
    # Disarm the new primary's lease first: its enforcement outlives the master's
    # renewals, and the cooldown that follows keeps it disarmed.
    if renew(master, cfg, decision.new, enforce=False) is None:
        raise HamnError(f"{decision.new}'s lease watchdog does not answer: not promoting a node that could "
                        "fence itself right after")
    try:
        ret = master.call_one(decision.new, "hamn.takeover",
                              kwargs={"peer_fenced": decision.proof != rule.PROOF_LEASE, "primary_lsn": primary_lsn,
                                      "handoff": decision.proof == rule.PROOF_WATCHDOG},
                              timeout=TAKEOVER_TIMEOUT + cfg["heartbeat"]["failover_delay"])
    except HamnError as exc:
        # A return lost on a busy master must not leave the run "failed" while the node did
        # take over: ask its watchdog (authenticated) and the VIP port.
        ret = _verify_takeover(master, cfg, decision.new)
        if ret is None:
            raise
        log.warning("hamn automation: %s; %s verified as primary through its watchdog", one_line(exc), decision.new)
    if isinstance(ret, dict):
        run["takeover"] = {k: v for k, v in ret.items() if k.endswith("seconds") or k == "lease_waited"}
        runs.save(master.dir, run)
        return f"{decision.new} promoted, VIP up ({ret.get('seconds')} s)"
    return str(ret)


def _verify_takeover(master, cfg, node):
    """{"seconds": None, "verified": ...} when ``node`` runs as primary with the VIP up, else None."""
    status = renew(master, cfg, node, enforce=False)
    vip_open = tcp_open(cfg["vip"]["address"], cfg["postgres"]["port"], timeout=0.5)
    if status and status.get("role") == "primary" and vip_open:
        return {"seconds": None, "verified": "its watchdog says primary, the VIP answers"}
    return None


def _rejoin(master, cfg, decision, token):
    """Rebuild the failed node as standby, through the same steps as hamn.rejoin."""
    from saltext_hamn.utils.orch import decide as orch_decide, steps as orch_steps  # pylint: disable=import-outside-toplevel
    from saltext_hamn.utils.orch.master import StepContext  # pylint: disable=import-outside-toplevel

    tgt = "L@" + ",".join(sorted(cfg["nodes"]))
    try:
        obs = master.observe(tgt, live_token=token)
        plan = orch_decide.decide("rejoin", obs)
        run = runs.start(master.dir, token, "auto-rejoin", plan.as_dict())
        for name in plan.steps:
            orch_steps.run_step(StepContext(master, tgt, run), run, name)
        runs.finish(master.dir, run, "done", plan.reason)
    except Exception as exc:  # pylint: disable=broad-except
        reason = one_line(exc)
        with view.changing(master.dir) as data:
            data["rejoin_failed"] = {"at": time.time(), "node": decision.old, "error": reason}
        history.append(master.dir, "auto-rejoin", "failed", reason, token=token)
        master.fire("hamn/auto/rejoin/failed", {**decision.as_dict(), "error": reason})
        return {**decision.as_dict(), "ok": False, "error": reason}
    history.append(master.dir, "auto-rejoin", "done", decision.reason, token=token)
    master.fire("hamn/auto/rejoin/done", decision.as_dict())
    return {**decision.as_dict(), "ok": True}


# --------------------------------------------------------------------------- pause / resume / status


def pause(master, reason, by="admin"):
    with view.changing(master.dir) as data:
        data["paused"] = {"reason": f"{reason} (by {by})" if reason else f"by {by}", "by": by, "at": time.time()}
    master.fire("hamn/auto/paused", {"reason": reason, "by": by})


def resume(master):
    with view.changing(master.dir) as data:
        was = data.get("paused")
        if data.get("cooldown_until", 0) > time.time():
            was = was or {"reason": "cooldown after the last automatic failover"}
        data["paused"] = None
        data["rejoin_failed"] = None
        data["cooldown_until"] = 0.0  # the admin checked the pair: arm it now
    master.fire("hamn/auto/resumed", {"was": was})
    return was


def automation(master):
    """``salt-run hamn.automation``: the summary, its alarms and the last 20 automatic actions."""
    auto = summary(master)
    recent = [e for e in history.load(master.dir) if str(e.get("name", "")).startswith("auto-")][-20:]
    return {**auto, "alarms": orch_alarms.automation_alarms(auto), "history": recent}


def summary(master):
    """The automation's state for hamn.status: armed/paused/cooldown, last decision, heartbeats, leases."""
    data = view.load(master.dir)
    cooldown = max(0.0, float(data.get("cooldown_until") or 0) - time.time())
    if data.get("paused"):
        state = f"paused: {data['paused']['reason']}"
    elif cooldown > 0:
        state = f"cooldown ({cooldown:.0f} s left)"
    else:
        state = "armed"
    nodes = {}
    for node in sorted(set(data["heartbeats"]) | set(data["renewals"])):
        renewal = data["renewals"].get(node) or {}
        status = renewal.get("status") or {}
        age = view.heartbeat_age(data, node)
        nodes[node] = {
            "heartbeat_age": None if age is None else round(age, 1),
            "renewed_ago": None if view.renewal_age(data, node) is None else round(view.renewal_age(data, node), 1),
            "lease_unreachable": bool(renewal.get("error")),
            "loss_free": view.loss_free(data, node),
            "lease": ("unreachable: " + renewal["error"]) if renewal.get("error") else
                     ("fenced" if status.get("fenced") else
                      (f"enforced, {status.get('lease_left'):.1f} s left"
                       if status.get("enforcing") and status.get("lease_left") is not None else
                       ("not enforced" if status else "unknown"))),
        }
    return {"state": state, "paused_by": (data.get("paused") or {}).get("by"), "decision": data.get("decision"),
            "nodes": nodes,
            "rejoin_failed": data.get("rejoin_failed"), "last_failover": (data.get("failovers") or [None])[-1]}

