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
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils.auto import witness
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import alarms as orch_alarms, decide, discovery, history, lock as orch_lock
from saltext_hamn.utils.orch import master as master_side, pipeline, report, runs, steps as orch_steps

log = logging.getLogger(__name__)

__virtualname__ = "hamn"

DEFAULT_TGT = pipeline.DEFAULT_TGT
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
    return pipeline.begin(_master(), orchestration, force, fenced, tgt)


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
    return pipeline.step(_master(), orchestration, step, tgt)


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
    return pipeline.finish(_master(), orchestration)


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
