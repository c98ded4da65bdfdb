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
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import salt.client
import salt.utils.event
import salt.utils.minions
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils import preflight as pre, proc
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import alarms as orch_alarms, decide, discovery, history, lock as orch_lock, report
from saltext_hamn.utils.orch import runs, steps as orch_steps
from saltext_hamn.utils.orch.observation import NodeView, Observation

log = logging.getLogger(__name__)

__virtualname__ = "hamn"

# Minions whose cached pillar has a hamn tree: the two management nodes.
DEFAULT_TGT = "I@hamn:initial_primary:*"
STATUS_TIMEOUT = 2  # hamn.status answers in milliseconds; a node silent this long is down
PROBE_TIMEOUT = 0.5
FIRST_CONTACT_WAIT = 20
MASTER_CHECK_INTERVAL = 0.5  # how soon a minion call notices that the salt-master died


def __virtual__():
    return __virtualname__


class MasterLost(HamnError):
    """The salt-master died or restarted during a step: the run is interrupted, not failed."""


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


# --------------------------------------------------------------------------- plumbing
# pylint: disable=undefined-variable


def _dir():
    return os.path.join(__opts__["cachedir"], "hamn")


def _lock_path():
    return os.path.join(_dir(), "orchestration.lock")


def _nodes(tgt):
    nodes = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, "compound")["minions"]
    if len(nodes) != 2:
        raise SaltInvocationError(
            f"tgt {tgt!r} matches {len(nodes)} minions ({', '.join(sorted(nodes)) or 'none'}); "
            "expected the two management nodes"
        )
    return sorted(nodes)


def _fire(tag, data):
    """Events are for watchers; a master that is gone must not fail or hang a step."""
    try:
        with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as event:
            event.fire_event(data, tag)
    except Exception:  # pylint: disable=broad-except
        log.warning("hamn: could not fire %s (is the salt-master running?)", tag, exc_info=True)


def _master_identity():
    """(pid, start time) of the running salt-master, None when it is not running."""
    try:
        with open(__opts__["pidfile"], encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        if not proc.alive(pid):
            return None
        return pid, orch_lock.owner(pid)[1]
    except (OSError, ValueError, HamnError):
        return None


def _abandon(worker, client):
    """Close the stuck client's connections so the wait ends and nothing blocks the exit."""
    if client is not None:
        try:
            client.destroy()
        except Exception:  # pylint: disable=broad-except
            log.debug("hamn: closing an abandoned LocalClient failed", exc_info=True)
    worker.join(5)


def _call(tgt, fun, arg=(), kwarg=None, timeout=60, tgt_type="list", gather_job_timeout=None):
    """LocalClient.cmd, abandoned at once when the salt-master dies or restarts meanwhile.

    A restarted master has lost the job's returns: waiting would only run out the
    timeout (minutes for a long step), and the answer would still be lost.
    """
    extra = {"gather_job_timeout": gather_job_timeout} if gather_job_timeout else {}
    master = _master_identity()
    outcome = {}

    def work():
        try:
            with salt.client.get_local_client(mopts=__opts__) as client:
                outcome["client"] = client
                outcome["ret"] = client.cmd(list(tgt) if tgt_type == "list" else tgt, fun, arg=list(arg),
                                            kwarg=kwarg or {}, tgt_type=tgt_type, timeout=timeout,
                                            full_return=True, **extra)
        except Exception as exc:  # pylint: disable=broad-except
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"hamn {fun}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(MASTER_CHECK_INTERVAL)
        if worker.is_alive() and master is not None and _master_identity() != master:
            _abandon(worker, outcome.get("client"))
            raise MasterLost(f"the salt-master stopped or restarted while {fun} ran on {tgt}: its answer is lost. "
                             "Re-run the orchestration (or salt-run state.orchestrate hamn.recover): it resumes "
                             "from what it finds")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["ret"]


# pylint: enable=undefined-variable


def _call_one(node, fun, args=(), kwargs=None, timeout=300):
    """``fun`` on one node; its return, or HamnError naming the node (no answer / failure)."""
    result = _call([node], fun, args, kwargs, timeout).get(node)
    if not isinstance(result, dict) or _no_return(result.get("ret")):
        raise HamnError(f"{node} did not answer {fun} within {timeout}s")
    if result.get("retcode", 0) != 0:
        raise HamnError(f"{fun} failed on {node}: {_one_line(result.get('ret'))}")
    return result.get("ret")


def _no_return(ret):
    """Salt's own placeholder for a minion that did not answer (not the minion's error)."""
    return isinstance(ret, str) and ret.startswith("Minion did not return")


def _one_line(value):
    text = str(value).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


def _tcp_open(host, port, timeout=PROBE_TIMEOUT):
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _probes(targets):
    """{key: open?} for {key: (host, port)}, probed in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        futures = {key: pool.submit(_tcp_open, *hp) for key, hp in targets.items()}
        return {key: f.result() for key, f in futures.items()}


def _disconnected(nodes):
    """Nodes the master knows are not connected to its publisher (Salt's "[Not connected]").

    Asking them would only wait out the timeout. A node without cached grains is
    never assumed disconnected.
    """
    minions = salt.utils.minions.CkMinions(__opts__)  # noqa: F821 pylint: disable=undefined-variable
    try:
        connected = minions.connected_ids(subset=list(nodes))
        known = [n for n in nodes if minions.cache.fetch("grains", n)]
    except Exception:  # pylint: disable=broad-except
        log.debug("hamn: cannot tell which minions are connected", exc_info=True)
        return []
    return [n for n in known if n not in connected]


def _observe(tgt=DEFAULT_TGT, force=False, fenced=None, live_token=None, cfg=None):
    """An Observation: both nodes' hamn.status (or silence, or error) and the master's probes."""
    nodes = _nodes(tgt)
    asked = [n for n in nodes if n not in _disconnected(nodes)]
    raw = _call(asked, "hamn.status", timeout=STATUS_TIMEOUT, gather_job_timeout=1) if asked else {}
    views = {n: NodeView(name=n) for n in nodes}
    for node, result in raw.items():
        if node not in views or not isinstance(result, dict):
            continue
        ret = result.get("ret")
        if result.get("retcode", 0) == 0 and isinstance(ret, dict):
            views[node].status = ret
        elif not _no_return(ret):
            views[node].error = _one_line(ret)
    answers = {n: v.status for n, v in views.items() if v.status is not None}
    history.remember_statuses(_dir(), answers)
    last = history.last_statuses(_dir())
    cfg = cfg or _config(nodes, views)
    if cfg:
        port = cfg["postgres"]["port"]
        targets = {n: (cfg["nodes"][n]["address"], port) for n in nodes if n in cfg["nodes"]}
        targets["vip"] = (cfg["vip"]["address"], port)
        opened = _probes(targets)
        for node, view in views.items():
            view.address = cfg["nodes"].get(node, {}).get("address")
            view.pg_port_open = opened.get(node)
    for node, view in views.items():
        if view.status is None:
            view.last_known = (last.get(node) or {}).get("status")
    holder = orch_lock.read(_lock_path()) or {}
    return Observation(
        nodes=views, cfg=cfg, vip_port_open=opened.get("vip") if cfg else None, record=runs.record(_dir()),
        unfinished=runs.unfinished(_dir(), live_token=live_token or _live_token(holder)),
        force=bool(force), fenced_by_admin=fenced,
    )


def _live_token(holder):
    state = orch_lock.holder_state(_lock_path()) if holder else {}
    return holder.get("token") if state.get("alive") else None


def _config(nodes, views):
    """The validated config (password redacted) from an answering node, else the last one seen."""
    path = os.path.join(_dir(), "last_config.json")
    for node in sorted(nodes, key=lambda n: views[n].status is None):
        if views[node].status is None:
            continue
        result = _call([node], "hamn.config", timeout=STATUS_TIMEOUT).get(node)
        if isinstance(result, dict) and result.get("retcode") == 0 and isinstance(result.get("ret"), dict):
            history.write_json(path, result["ret"])
            return result["ret"]
    return history.read_json(path)


# --------------------------------------------------------------------------- what a step may do


class _Context:
    """The master side of orchestration steps (see utils/orch/steps.py)."""

    def __init__(self, tgt, cfg):
        self.tgt, self.cfg = tgt, cfg
        self._seen = None

    def observe(self, fresh=False):
        """Both nodes now; within one step the first observation is reused unless ``fresh``."""
        if fresh or self._seen is None:
            self._seen = _observe(self.tgt, live_token="running", cfg=self.cfg)
        return self._seen

    def config(self):
        return self.cfg

    @staticmethod
    def call(node, fun, args=(), kwargs=None, timeout=300):
        return _call_one(node, fun, args, kwargs, timeout)

    @staticmethod
    def call_target(target, tgt_type, fun, args):
        results = _call(target, fun, args, timeout=300, tgt_type=tgt_type)
        failed = {m: r.get("ret") for m, r in results.items() if isinstance(r, dict) and r.get("retcode", 0) != 0}
        if not results or failed:
            raise HamnError(f"{fun} {' '.join(args)} failed on {target}: {failed or 'no minion answered'}")
        return {m: r.get("ret") for m, r in results.items()}

    def fence(self, node):
        fence = self.cfg["fence"]
        argv = [a.replace("{node}", node) for a in fence["cmd"]]
        result = proc.run(argv, timeout=fence["timeout"], check=False, what="fence command")
        _fire("hamn/fence", {"node": node, "argv": argv, "retcode": result.returncode})
        if result.returncode != 0:
            raise HamnError(f"fencing {node} failed (exit {result.returncode}): {_one_line(result.stderr)}")
        return f"fence command exit 0 ({argv[0]})"

    def probe_pg(self, node):
        return _tcp_open(self.cfg["nodes"][node]["address"], self.cfg["postgres"]["port"])

    def preflight(self):
        return _preflight(self.tgt)

    @staticmethod
    def promoted(plan, run):
        fenced = plan["old"] in run.get("fenced", [])
        runs.promoted(_dir(), plan["new"], plan["old"], run["token"], fenced=fenced)

    @staticmethod
    def rejoined(node):
        runs.rejoined(_dir(), node)


# --------------------------------------------------------------------------- orchestration steps


def _own_run(orchestration):
    """This process's run: the lock it holds and that run's record."""
    state = orch_lock.holder_state(_lock_path())
    holder = state.get("record")
    if not holder or (holder.get("pid"), holder.get("pid_start"), holder.get("host")) != (
            *orch_lock.owner(), socket.gethostname()):
        who = f"{holder.get('name')} (pid {holder.get('pid')})" if holder else "nobody"
        raise HamnError(f"this {orchestration} run does not hold the hamn lock (held by {who}); nothing done")
    run = runs.load(_dir(), holder["token"])
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
    taken = orch_lock.acquire(_lock_path(), orchestration)
    token = taken["holder"]["token"]
    if taken.get("took_over"):
        log.warning("hamn: took over the lock of a dead run: %s", taken["took_over"])
    try:
        obs = _observe(tgt, force, fenced, live_token=token)
        demoted = _demote_deposed(obs)
        if demoted:
            obs = _observe(tgt, force, fenced, live_token=token)
        plan = decide.decide(orchestration, obs)
    except Exception as exc:
        orch_lock.release(_lock_path())
        history.append(_dir(), orchestration, "refused", _one_line(exc), token=token)
        _fire(f"hamn/{orchestration}/refused", {"reason": _one_line(exc), "run": token})
        if isinstance(exc, decide.Refused):
            raise HamnError(f"{orchestration} refused: {exc}") from exc
        raise
    if plan.resume_of:
        runs.supersede(_dir(), plan.resume_of, token)
    runs.start(_dir(), token, orchestration, plan.as_dict())
    history.append(_dir(), orchestration, "started", plan.reason, token=token)
    lines = [orch_steps.describe(s, plan.orchestration, plan.new, plan.old) for s in plan.steps]
    _fire(f"hamn/{orchestration}/begin", {"run": token, "plan": plan.as_dict(), "steps": lines})
    notes = "".join(f"; note: {n}" for n in plan.notes)
    return f"run {token[:8]}: {plan.reason}{notes}; steps: {', '.join(plan.steps)}"


def _demote_deposed(obs):
    """First contact with a node failed over while unreachable: demote it before anything else."""
    done = []
    for node in decide.deposed_to_demote(obs):
        log.warning("hamn: %s was failed over but runs writable again: demoting it", node)
        _demote_node(node)
        _fire("hamn/demoted", {"node": node, "why": "deposed node running writable"})
        done.append(node)
    return done


def _demote_node(node):
    _call_one(node, "hamn.services_stop")
    ret = _call_one(node, "hamn.demote", timeout=120)
    _call_one(node, "hamn.vip_down")
    return ret


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
    run = _own_run(orchestration)
    plan = run["plan"]
    tag = f"hamn/{orchestration}/{step}"
    if step not in plan["steps"]:
        result = orch_steps.run_step(None, run, step)
        runs.step_ended(_dir(), run, step, "skipped", result["comment"])
        return f"skipped ({result['comment']})"
    what = orch_steps.describe(step, plan["orchestration"], plan["new"], plan["old"])
    _fire(tag, {"stage": "start", "step": what, "run": run["token"]})
    runs.step_started(_dir(), run, step)
    started = time.monotonic()
    master = _master_identity()
    try:
        result = orch_steps.run_step(_Context(tgt, _config_cached()), run, step)
    except Exception as exc:
        seconds = round(time.monotonic() - started, 3)
        # Whatever a step saw while the master was gone (silent nodes, lost answers) is no
        # fact about the pair: the run is interrupted, and re-running it resumes.
        lost = isinstance(exc, MasterLost) or _master_identity() != master
        runs.step_ended(_dir(), run, step, "interrupted" if lost else "failed", _one_line(exc))
        _fire(tag, {"stage": "interrupted" if lost else "failed", "step": what, "error": _one_line(exc),
                    "seconds": seconds})
        if lost and not isinstance(exc, MasterLost):
            raise MasterLost(f"{_one_line(exc)} (the salt-master restarted meanwhile: re-run to resume)") from exc
        raise
    seconds = round(time.monotonic() - started, 3)
    runs.step_ended(_dir(), run, step, "done", result["comment"], **result.get("facts", {}))
    _fire(tag, {"stage": "done", "step": what, "comment": result["comment"], "seconds": seconds})
    return f"{what}: {result['comment']} ({seconds:.2f}s)"


def _config_cached():
    return history.read_json(os.path.join(_dir(), "last_config.json"))


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
    try:
        run = _own_run(orchestration)
    except HamnError as exc:
        return f"nothing to finish: {exc}"
    planned = run["plan"]["steps"]
    states = run["steps"]
    failed = [s for s in run["order"] if states[s].get("state") == "failed"]
    interrupted = [s for s in run["order"] if states[s].get("state") == "interrupted"]
    missing = [s for s in planned if states.get(s, {}).get("state") not in ("done", "skipped")]
    if interrupted:  # left without a result: the next run of it (or hamn.recover) resumes it
        summary = f"interrupted at {interrupted[0]}: {states[interrupted[0]].get('comment')}"
        entry = history.append(_dir(), orchestration, "interrupted", summary, token=run["token"])
        orch_lock.release(_lock_path())
        _fire(f"hamn/{orchestration}/finished", entry)
        return f"{orchestration} interrupted: {summary}"
    if failed:
        result, summary = "failed", f"failed at {failed[0]}: {states[failed[0]].get('comment')}"
    elif missing:
        result, summary = "failed", f"steps not run: {', '.join(missing)}"
    else:
        result, summary = "done", run["plan"]["reason"]
    runs.finish(_dir(), run, result, summary)
    entry = history.append(_dir(), orchestration, result, summary, token=run["token"])
    orch_lock.release(_lock_path())
    _fire(f"hamn/{orchestration}/finished", entry)
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
    obs = _observe(tgt, force, fenced)
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
def roles(tgt=DEFAULT_TGT, timeout=STATUS_TIMEOUT):  # pylint: disable=unused-argument
    """
    Ask both nodes for ``hamn.status`` and sum up the pair: primary, standby,
    unreachable nodes, VIP holder, split brain; plus each node's answer.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.roles
    """
    obs = _observe(tgt)
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
    obs = _observe(tgt)
    answered = [n for n in obs.names if obs.node(n).answered]
    if answered:
        for node, result in _call(answered, "hamn.services_status", timeout=STATUS_TIMEOUT).items():
            if isinstance(result, dict) and result.get("retcode") == 0:
                obs.node(node).status["services"] = result["ret"]
    found = orch_alarms.alarms(obs)
    run_line = _run_line(obs)
    if raw:
        return {"nodes": {n: v.status for n, v in obs.nodes.items()}, "alarms": found, "run": run_line,
                "record": obs.record, "history": history.load(_dir())[-5:]}
    return report.table(obs, found, run_line)


def _run_line(obs):
    state = orch_lock.holder_state(_lock_path())
    holder = state.get("record")
    if holder and state.get("alive"):
        run = runs.load(_dir(), holder["token"]) or {}
        return (f"running: {holder.get('name')} (run {holder['token'][:8]}, pid {holder.get('pid')}, "
                f"at step {runs.last_step(run) or 'begin'})")
    if obs.unfinished:
        u = obs.unfinished
        return (f"UNFINISHED: {u.name} (run {u.token[:8]}) stopped after step {u.last_step or '(none)'}; "
                "finish it: salt-run state.orchestrate hamn.recover")
    last = next((e for e in reversed(history.load(_dir())) if e.get("result") != "started"), None)
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
    obs = _observe(tgt)
    found = [a for a in orch_alarms.alarms(obs) if a["code"] != "maintenance"]
    _fire("hamn/check", {"ok": not found, "alarms": found})
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
    obs = _observe(tgt)
    if node not in obs.nodes:
        raise SaltInvocationError(f"node: expected one of {', '.join(obs.names)}, got {node!r}")
    target = obs.node(node)
    if target.silent:
        raise HamnError(f"{node} does not answer; fence it instead (hamn:fence:cmd)")
    if target.writable and len(obs.primaries) == 1 and not force:
        raise HamnError(f"{node} is the only primary; demoting it leaves the pair without one. "
                        "For a planned change: salt-run state.orchestrate hamn.switchover; or add force=True")
    ret = _demote_node(node)
    _fire("hamn/demoted", {"node": node, "why": "hamn.demote"})
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
    if node not in (runs.record(_dir()).get("deposed") or {}):
        return f"{node} is not a deposed node: nothing to do"
    deadline = time.monotonic() + FIRST_CONTACT_WAIT
    while True:  # the start event can come before the minion serves its first call
        obs = _observe(tgt)
        view = obs.nodes.get(node)
        if view is not None and view.answered or time.monotonic() > deadline:
            break
        time.sleep(1)
    if view is None or not view.answered:
        return f"{node} did not answer within {FIRST_CONTACT_WAIT}s: nothing done (its next orchestration demotes it)"
    if view.role == "standby":
        return f"{node} runs as a standby already"
    ret = _demote_node(node)
    _fire("hamn/demoted", {"node": node, "why": "first contact after being failed over"})
    return f"{node} demoted on first contact (was {view.role}); pg_control: {ret.get('state')}"


def _preflight(tgt, timeout=60):
    nodes = _nodes(tgt)
    raw = _call(nodes, "hamn.preflight", kwarg={"reference_time": time.time()}, timeout=timeout)
    reports = {n: r.get("ret") for n, r in raw.items() if isinstance(r, dict) and r.get("retcode") == 0}
    failed = [f"{n}: no answer" for n in nodes if n not in reports]
    for node, result in sorted(reports.items()):
        failed += [f"{node}: {c['name']}: {c['reason']}" for c in result["checks"] if not c["ok"]]
    compared = pre.compare(reports)
    failed += [f"{c['name']}: {c['reason']}" for c in compared if not c["ok"]]
    _fire("hamn/preflight", {"ok": not failed, "failed": failed})
    if failed:
        raise HamnError("preflight failed: " + "; ".join(failed))
    return {"reports": reports, "compared": compared}


@_guarded
def preflight(tgt=DEFAULT_TGT, timeout=60):
    """
    Run ``hamn.preflight`` on both nodes (clock compared with the master's) and
    compare their PostgreSQL, OS and xCAT versions; fails listing every failed check.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.preflight
    """
    return _preflight(tgt, timeout)
