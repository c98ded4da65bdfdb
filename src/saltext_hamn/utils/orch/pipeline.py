"""The orchestration pipeline on the master: begin, steps, finish.

Called by the ``hamn`` runner (``salt-run hamn.begin|step|finish``) and by the
``hamn_orch`` state module, which is what the orchestration SLS files use: a
``salt.runner`` state builds a new runner client (grains, loaders) for every
state, ~0.4 s each, while a state module runs in the orchestrate process itself.
Both pass a ``Master`` over the master's opts.
"""

import logging
import socket
import time

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import decide, history, lock as orch_lock
from saltext_hamn.utils.orch import master as master_side, runs, steps as orch_steps
from saltext_hamn.utils.orch.master import MasterLost, one_line

log = logging.getLogger(__name__)

# Minions whose cached pillar has a hamn tree: the two management nodes.
DEFAULT_TGT = "I@hamn:initial_primary:*"


def own_run(master, orchestration):
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


def begin(master, orchestration, force=False, fenced=None, tgt=DEFAULT_TGT):
    """Take the lock, observe both nodes, decide; the run's first line, or HamnError (refused)."""
    taken = orch_lock.acquire(master.lock_path, orchestration)
    token = taken["holder"]["token"]
    if taken.get("took_over"):
        log.warning("hamn: took over the lock of a dead run: %s", taken["took_over"])
    try:
        obs = master.observe(tgt, force, fenced, live_token=token)
        demoted = demote_deposed(master, obs)
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


def demote_deposed(master, obs):
    """First contact with a node failed over while unreachable: demote it before anything else."""
    done = []
    for node in decide.deposed_to_demote(obs):
        log.warning("hamn: %s was failed over but runs writable again: demoting it", node)
        master.demote_node(node)
        master.fire("hamn/demoted", {"node": node, "why": "deposed node running writable"})
        done.append(node)
    return done


def step(master, orchestration, step, tgt=DEFAULT_TGT):  # pylint: disable=redefined-outer-name
    """One step of this process's run, its preconditions re-checked now; its line, or an error."""
    run = own_run(master, orchestration)
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
    ctx = master_side.StepContext(master, tgt, run)
    try:
        result = orch_steps.run_step(ctx, run, step)
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
    details = {**(result.get("details") or {}), "timings": ctx.timings}
    runs.step_ended(master.dir, run, step, "done", result["comment"], details=details, **result.get("facts", {}))
    master.fire(tag, {"stage": "done", "step": what, "comment": result["comment"], "seconds": seconds})
    return f"{what}: {result['comment']} ({seconds:.2f}s)"


def finish(master, orchestration):
    """Record the run as done, failed or interrupted and release its own lock; its line."""
    try:
        run = own_run(master, orchestration)
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
