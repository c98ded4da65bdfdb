"""Runner ``hamn``: the master's view of the pair and the steps of the orchestrations.

The master is the witness: it asks both nodes, probes their PostgreSQL ports and
the VIP itself, and decides in one place (``saltext_hamn.utils.orch.decide``).
The orchestration SLS files in ``states/hamn/`` are fixed lists of steps:

    hamn.begin   take the lock, observe, decide (or refuse with the next action)
    hamn.step    one step of the plan, its preconditions re-checked when it runs
    hamn.finish  record the result, release the lock (only the run's own lock)

Every public function is guarded: Salt's runner client turns a TypeError raised
inside a runner into a *successful* return, and any other exception into a
15-line traceback; here every failure is one readable line, a non-zero retcode
for ``salt-run``, and a failed ``salt.runner`` state.
"""

import functools
import inspect
import logging
import socket
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils.auto import witness
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import alarms as orch_alarms, decide, discovery, history, lock as orch_lock
from saltext_hamn.utils.orch import master as master_side, report, runs, steps as orch_steps
from saltext_hamn.utils.orch.master import MasterLost, one_line

log = logging.getLogger(__name__)

__virtualname__ = "hamn"

# Minions whose cached pillar has a hamn tree: the two management nodes.
DEFAULT_TGT = "I@hamn:initial_primary:*"
FIRST_CONTACT_WAIT = 20  # seconds a starting minion gets to answer its first status


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------------------- guard


def _failed(message):
    __context__["retcode"] = 1  # noqa: F821 pylint: disable=undefined-variable
    return {"error": message, "retcode": 1}


def _guarded(func):
    """One readable line and a failure for every error, TypeErrors included."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            inspect.signature(func).bind(*args, **kwargs)
        except TypeError as exc:
            return _failed(f"hamn.{func.__name__}: {exc}")
        try:
            return func(*args, **kwargs)
        except (CommandExecutionError, SaltInvocationError) as exc:
            log.info("hamn.%s: %s", func.__name__, exc)
            return _failed(str(exc))
        except Exception as exc:  # pylint: disable=broad-except
            log.debug("hamn.%s failed unexpectedly", func.__name__, exc_info=True)  # the traceback, for -l debug
            return _failed(f"hamn.{func.__name__}: internal error ({type(exc).__name__}: {exc}); "
                           "run with -l debug for the traceback")

    return wrapper


def _master():
    return master_side.Master(__opts__)  # noqa: F821 pylint: disable=undefined-variable


# --------------------------------------------------------------------------- orchestration steps


def _own_run(master, orchestration):
    """This process's run: the lock it holds and that run's record."""
    state = orch_lock.holder_state(master.lock_path)
    holder = state.get("record")
    if not holder or (holder.get("pid"), holder.get("pid_start"), holder.get("host")) != (
            *orch_lock.owner(), socket.gethostname()):
        who = f"{holder.get('name')} (pid {holder.get('pid')})" if holder else "nobody"
        raise HamnError(f"this {orchestration} run does not hold the hamn lock (held by {who}); nothing done")
    run = runs.load(master.dir, holder["token"])
    if run is None:
        raise HamnError(f"this {orchestration} run has no record (it was refused before it started)")
    return run


@_guarded
def begin(orchestration, force=False, fenced=None, tgt=DEFAULT_TGT):
    """
    Start an orchestration run: take the master's hamn lock (refused, naming the
    running one, while another run lives), observe both nodes, and decide the
    plan; or refuse with the reason and the next action. ``force`` accepts lag
    past the limit; ``fenced`` names a node the admin has powered off by hand.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.begin failover
    """
    master = _master()
    taken = orch_lock.acquire(master.lock_path, orchestration)
    token = taken["holder"]["token"]
    if taken.get("took_over"):
        log.warning("hamn: took over the lock of a dead run: %s", taken["took_over"])
    try:
        obs = master.observe(tgt, force, fenced, live_token=token)
        demoted = _demote_deposed(master, obs)
        if demoted:
            obs = master.observe(tgt, force, fenced, live_token=token)
        plan = decide.decide(orchestration, obs)
    except Exception as exc:
        orch_lock.release(master.lock_path)
        history.append(master.dir, orchestration, "refused", one_line(exc), token=token)
        master.fire(f"hamn/{orchestration}/refused", {"reason": one_line(exc), "run": token})
        if isinstance(exc, decide.Refused):
            raise HamnError(f"{orchestration} refused: {exc}") from exc
        raise
    if plan.resume_of:
        runs.supersede(master.dir, plan.resume_of, token)
    runs.start(master.dir, token, orchestration, plan.as_dict())
    history.append(master.dir, orchestration, "started", plan.reason, token=token)
    lines = [orch_steps.describe(s, plan.orchestration, plan.new, plan.old) for s in plan.steps]
    master.fire(f"hamn/{orchestration}/begin", {"run": token, "plan": plan.as_dict(), "steps": lines})
    notes = "".join(f"; note: {n}" for n in plan.notes)
    return f"run {token[:8]}: {plan.reason}{notes}; steps: {', '.join(plan.steps)}"


def _demote_deposed(master, obs):
    """First contact with a node failed over while unreachable: demote it before anything else."""
    done = []
    for node in decide.deposed_to_demote(obs):
        log.warning("hamn: %s was failed over but runs writable again: demoting it", node)
        master.demote_node(node)
        master.fire("hamn/demoted", {"node": node, "why": "deposed node running writable"})
        done.append(node)
    return done


@_guarded
def step(orchestration, step, tgt=DEFAULT_TGT):  # pylint: disable=redefined-outer-name
    """
    Run one step of this process's orchestration run: fires
    ``hamn/<orchestration>/<step>`` when it starts and ends, re-checks the step's
    preconditions now, and fails with one line when they do not hold or the
    minion call fails. Steps the plan does not need are skipped.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.step switchover promote
    """
    master = _master()
    run = _own_run(master, orchestration)
    plan = run["plan"]
    tag = f"hamn/{orchestration}/{step}"
    if step not in plan["steps"]:
        result = orch_steps.run_step(None, run, step)
        runs.step_ended(master.dir, run, step, "skipped", result["comment"])
        return f"skipped ({result['comment']})"
    what = orch_steps.describe(step, plan["orchestration"], plan["new"], plan["old"])
    master.fire(tag, {"stage": "start", "step": what, "run": run["token"]})
    runs.step_started(master.dir, run, step)
    started = time.monotonic()
    before = master.identity()
    try:
        result = orch_steps.run_step(master_side.StepContext(master, tgt, run), run, step)
    except Exception as exc:
        seconds = round(time.monotonic() - started, 3)
        # Whatever a step saw while the master was gone (silent nodes, lost answers) is no
        # fact about the pair: the run is interrupted, and re-running it resumes.
        lost = isinstance(exc, MasterLost) or master.identity() != before
        runs.step_ended(master.dir, run, step, "interrupted" if lost else "failed", one_line(exc))
        master.fire(tag, {"stage": "interrupted" if lost else "failed", "step": what, "error": one_line(exc),
                          "seconds": seconds})
        if lost and not isinstance(exc, MasterLost):
            raise MasterLost(f"{one_line(exc)} (the salt-master restarted meanwhile: re-run to resume)") from exc
        raise
    seconds = round(time.monotonic() - started, 3)
    runs.step_ended(master.dir, run, step, "done", result["comment"], **result.get("facts", {}))
    master.fire(tag, {"stage": "done", "step": what, "comment": result["comment"], "seconds": seconds})
    return f"{what}: {result['comment']} ({seconds:.2f}s)"


@_guarded
def finish(orchestration):
    """
    End this process's run: record it as done or failed (with the failed step) in
    the master's history, fire ``hamn/<orchestration>/finished`` and release the
    lock. Never releases another run's lock.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.finish switchover
    """
    master = _master()
    try:
        run = _own_run(master, orchestration)
    except HamnError as exc:
        return f"nothing to finish: {exc}"
    planned = run["plan"]["steps"]
    states = run["steps"]
    failed = [s for s in run["order"] if states[s].get("state") == "failed"]
    interrupted = [s for s in run["order"] if states[s].get("state") == "interrupted"]
    missing = [s for s in planned if states.get(s, {}).get("state") not in ("done", "skipped")]
    if interrupted:  # left without a result: the next run of it (or hamn.recover) resumes it
        summary = f"interrupted at {interrupted[0]}: {states[interrupted[0]].get('comment')}"
        entry = history.append(master.dir, orchestration, "interrupted", summary, token=run["token"])
        orch_lock.release(master.lock_path)
        master.fire(f"hamn/{orchestration}/finished", entry)
        return f"{orchestration} interrupted: {summary}"
    if failed:
        result, summary = "failed", f"failed at {failed[0]}: {states[failed[0]].get('comment')}"
    elif missing:
        result, summary = "failed", f"steps not run: {', '.join(missing)}"
    else:
        result, summary = "done", run["plan"]["reason"]
    runs.finish(master.dir, run, result, summary)
    entry = history.append(master.dir, orchestration, result, summary, token=run["token"])
    orch_lock.release(master.lock_path)
    master.fire(f"hamn/{orchestration}/finished", entry)
    return f"{orchestration} {result}: {summary}"


@_guarded
def plan(orchestration, force=False, fenced=None, tgt=DEFAULT_TGT):  # pylint: disable=redefined-outer-name
    """
    The plan ``orchestration`` would follow now, or why it would refuse; read-only
    (the orchestrations' ``test=True`` renders from it).

    CLI Example:

    .. code-block:: bash

        salt-run hamn.plan failover
    """
    master = _master()
    obs = master.observe(tgt, force, fenced)
    try:
        decided = decide.decide(orchestration, obs)
    except decide.Refused as exc:
        return {"ok": False, "refused": f"{orchestration} refused: {exc}"}
    order = [s for s in decide.ORDER if s in decided.steps]
    return {"ok": True, "reason": decided.reason, "notes": decided.notes, "new": decided.new, "old": decided.old,
            "steps": [{"step": s, "description": orch_steps.describe(s, decided.orchestration, decided.new,
                                                                      decided.old)} for s in order]}


# --------------------------------------------------------------------------- admin commands


@_guarded
def roles(tgt=DEFAULT_TGT, timeout=master_side.STATUS_TIMEOUT):  # pylint: disable=unused-argument
    """
    Ask both nodes for ``hamn.status`` and sum up the pair: primary, standby,
    unreachable nodes, VIP holder, split brain; plus each node's answer.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.roles
    """
    master = _master()
    obs = master.observe(tgt)
    answers = {n: v.status for n, v in obs.nodes.items() if v.status is not None}
    summary = discovery.roles(obs.names, answers)
    summary.update(answers=answers, errors={n.name: n.error for n in obs.errors}, config=obs.cfg,
                   record=obs.record)
    return summary


@_guarded
def status(tgt=DEFAULT_TGT, raw=False):
    """
    Both nodes side by side (role, timeline, LSNs, lag, VIP holder, services), the
    alarms with the command that ends each, and the current, unfinished or last
    orchestration run.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.status
    """
    master = _master()
    obs = master.observe(tgt)
    answered = [n for n in obs.names if obs.node(n).answered]
    if answered:
        for node, result in master.call(answered, "hamn.services_status", timeout=master_side.STATUS_TIMEOUT).items():
            if isinstance(result, dict) and result.get("retcode") == 0:
                obs.node(node).status["services"] = result["ret"]
    auto = witness.summary(master)
    found = orch_alarms.alarms(obs) + orch_alarms.automation_alarms(auto)
    run_line = _run_line(master, obs)
    if raw:
        return {"nodes": {n: v.status for n, v in obs.nodes.items()}, "alarms": found, "run": run_line,
                "record": obs.record, "history": history.load(master.dir)[-5:], "automation": auto}
    return report.table(obs, found, run_line, auto)


def _run_line(master, obs):
    state = orch_lock.holder_state(master.lock_path)
    holder = state.get("record")
    if holder and state.get("alive"):
        run = runs.load(master.dir, holder["token"]) or {}
        return (f"running: {holder.get('name')} (run {holder['token'][:8]}, pid {holder.get('pid')}, "
                f"at step {runs.last_step(run) or 'begin'})")
    if obs.unfinished:
        u = obs.unfinished
        return (f"UNFINISHED: {u.name} (run {u.token[:8]}) stopped after step {u.last_step or '(none)'}; "
                "finish it: salt-run state.orchestrate hamn.recover")
    last = next((e for e in reversed(history.load(master.dir)) if e.get("result") != "started"), None)
    if last:
        return (f"last orchestration: {last.get('name')} {last.get('result')} at {last.get('finished')}"
                + (f" ({last.get('summary')})" if last.get("summary") else ""))
    return None


@_guarded
def check(tgt=DEFAULT_TGT):
    """
    Fail listing every alarm (split brain, no primary, VIP misplaced, standby not
    streaming, services on both, unfinished run...) with the command that ends
    it; succeed when the pair is healthy.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.check
    """
    master = _master()
    obs = master.observe(tgt)
    found = [a for a in orch_alarms.alarms(obs) + orch_alarms.automation_alarms(witness.summary(master))
             if a["code"] != "maintenance"]
    master.fire("hamn/check", {"ok": not found, "alarms": found})
    if found:
        raise HamnError("; ".join(f"{a['code']}: {a['message']} -> {a['action']}" for a in found))
    return "healthy: " + ", ".join(f"{n.name} {n.role}" for n in obs.nodes.values())


@_guarded
def demote(node, force=False, tgt=DEFAULT_TGT):
    """
    End a split brain (or take a node out of the primary role by hand): stop
    xCAT services on ``node``, stop its PostgreSQL boot-safe (any later start
    comes up as a standby; nothing is deleted, its diverged commits are kept
    when it rejoins) and drop its VIP. Refuses to demote the only primary
    unless ``force=True``.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.demote mn1
    """
    master = _master()
    obs = master.observe(tgt)
    if node not in obs.nodes:
        raise SaltInvocationError(f"node: expected one of {', '.join(obs.names)}, got {node!r}")
    target = obs.node(node)
    if target.silent:
        raise HamnError(f"{node} does not answer; fence it instead (hamn:fence:cmd)")
    if target.writable and len(obs.primaries) == 1 and not force:
        raise HamnError(f"{node} is the only primary; demoting it leaves the pair without one. "
                        "For a planned change: salt-run state.orchestrate hamn.switchover; or add force=True")
    ret = master.demote_node(node)
    master.fire("hamn/demoted", {"node": node, "why": "hamn.demote"})
    where = f"at {ret['lsn']}" if ret.get("lsn") else f"(pg_control: {ret.get('state')})"
    return (f"{node} demoted: PostgreSQL stopped boot-safe {where}; nothing deleted. Rejoin it (its diverged "
            "commits are kept): salt-run state.orchestrate hamn.rejoin")


@_guarded
def first_contact(node, tgt=DEFAULT_TGT):
    """
    For the reactor on ``salt/minion/<id>/start``: when ``node`` is one the master
    failed over while it could not be told, demote it before anything else runs
    there. The event is only a hint: the master re-checks the facts.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.first_contact mn1
    """
    master = _master()
    if node not in (runs.record(master.dir).get("deposed") or {}):
        return f"{node} is not a deposed node: nothing to do"
    deadline = time.monotonic() + FIRST_CONTACT_WAIT
    while True:  # the start event can come before the minion serves its first call
        obs = master.observe(tgt)
        view = obs.nodes.get(node)
        if view is not None and view.answered or time.monotonic() > deadline:
            break
        time.sleep(1)
    if view is None or not view.answered:
        return f"{node} did not answer within {FIRST_CONTACT_WAIT}s: nothing done (its next orchestration demotes it)"
    if view.role == "standby":
        return f"{node} runs as a standby already"
    ret = master.demote_node(node)
    master.fire("hamn/demoted", {"node": node, "why": "first contact after being failed over"})
    return f"{node} demoted on first contact (was {view.role}); pg_control: {ret.get('state')}"


@_guarded
def preflight(tgt=DEFAULT_TGT, timeout=60):
    """
    Run ``hamn.preflight`` on both nodes (clock compared with the master's) and
    compare their PostgreSQL, OS and xCAT versions; fails listing every failed check.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.preflight
    """
    return _master().preflight(tgt, timeout)


# --------------------------------------------------------------------------- automatic failover


@_guarded
def heartbeat(data=None, tag=None):
    """
    React to one heartbeat of the ``hamn`` beacon (the reactor calls this for
    ``salt/beacon/*/hamn/``): renew both nodes' leases, probe them, decide with
    the automatic failover rule and act (restart in place, fail over, rejoin).
    The event is only a hint: every action rests on the master's own checks.
    Returns the decision.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.heartbeat data='{"id": "mn2", "node": "mn2", "role": "standby"}'
    """
    if not isinstance(data, dict):
        raise SaltInvocationError(f"data: expected the heartbeat event's data (a mapping), got {type(data).__name__}")
    del tag  # the tag is the sender's to choose; data["id"] is the master's stamp
    return witness.handle(_master(), data)


@_guarded
def pause(reason=""):
    """
    Stop every automatic action (failover, restart in place, rejoin) until
    ``hamn.resume``. Leases keep being renewed, but no longer enforced: a primary
    is not fenced by its lease while paused.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.pause reason="firmware update on mn1"
    """
    master = _master()
    witness.pause(master, str(reason or ""), by="admin")
    return f"automation paused{': ' + str(reason) if reason else ''}"


@_guarded
def resume():
    """
    Arm the automation again after ``hamn.pause``, after an automatic action
    failed and paused it, or during the cooldown after an automatic failover
    (which it ends: run it once the pair is healthy again).

    CLI Example:

    .. code-block:: bash

        salt-run hamn.resume
    """
    master = _master()
    was = witness.resume(master)
    return "automation armed" + (f" (was paused: {was['reason']})" if was else " (it was not paused)")


@_guarded
def automation():
    """
    The automatic failover's state without asking the nodes (cheap, for
    monitoring loops): armed / paused / cooldown, the last decision and why, each
    node's heartbeat age and lease, the last automatic failover, the
    automation's alarms and its last 20 actions (restarts, failovers, rejoins).

    CLI Example:

    .. code-block:: bash

        salt-run hamn.automation
    """
    return witness.automation(_master())
