"""Runner ``hamn``: the master's view of the pair, and the building blocks of the
orchestrations in ``states/hamn/`` (lock, audited steps, fencing, history).

The master is the witness: it asks both nodes and decides nothing from one side
alone. Logic lives in ``saltext_hamn.utils.orch``.
"""

import logging
import os
import time

import salt.client
import salt.utils.event
import salt.utils.minions
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils import preflight as pre, proc
from saltext_hamn.utils.orch import discovery, history, lock as orch_lock, report

log = logging.getLogger(__name__)

__virtualname__ = "hamn"

# Minions whose cached pillar has a hamn tree: the two management nodes.
DEFAULT_TGT = "I@hamn:initial_primary:*"
LOCK_TTL = 3 * 3600


def __virtual__():
    return __virtualname__


# pylint: disable=undefined-variable
def _dir():
    return os.path.join(__opts__["cachedir"], "hamn")


def _fire(tag, data):
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as event:
        event.fire_event(data, tag)


# pylint: enable=undefined-variable


def _nodes(tgt):
    nodes = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, "compound")["minions"]  # noqa: F821
    if len(nodes) != 2:
        raise SaltInvocationError(
            f"tgt {tgt!r} matches {len(nodes)} minions ({', '.join(sorted(nodes)) or 'none'}); "
            "expected the two management nodes"
        )
    return sorted(nodes)


def _call(tgt, fun, arg=(), kwarg=None, timeout=60, tgt_type="list", gather_job_timeout=None):
    client = salt.client.get_local_client(mopts=__opts__)  # noqa: F821
    extra = {"gather_job_timeout": gather_job_timeout} if gather_job_timeout else {}
    return client.cmd(list(tgt) if tgt_type == "list" else tgt, fun, arg=list(arg), kwarg=kwarg or {},
                      tgt_type=tgt_type, timeout=timeout, full_return=True, **extra)


def _answers(nodes, timeout):
    # hamn.status answers in milliseconds: a node silent for `timeout` is down, and
    # there is no job worth looking for on it (short gather_job_timeout).
    raw = _call(nodes, "hamn.status", timeout=timeout, gather_job_timeout=2)
    answers = {n: r["ret"] for n, r in raw.items() if isinstance(r, dict) and r.get("retcode", 1) == 0
               and isinstance(r.get("ret"), dict)}
    history.remember_statuses(_dir(), answers)
    return answers


def roles(tgt=DEFAULT_TGT, timeout=5):
    """
    Ask both nodes for ``hamn.status`` and sum up the pair: primary, standby,
    unreachable nodes, VIP holder, split brain; plus each node's answer and the
    last known status of nodes that did not answer.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.roles
    """
    nodes = _nodes(tgt)
    answers = _answers(nodes, timeout)
    summary = discovery.roles(nodes, answers)
    summary["answers"] = answers
    summary["last_known"] = history.last_statuses(_dir())
    summary["config"] = None
    for node in sorted(answers, key=lambda n: n != summary["primary"]):
        result = _call([node], "hamn.config", timeout=timeout).get(node)
        if isinstance(result, dict) and result.get("retcode") == 0:
            summary["config"] = result["ret"]  # the password comes back redacted
            break
    return summary


def check(orchestration, tgt=DEFAULT_TGT, timeout=5):
    """
    Fail unless both nodes answer, one is primary, the other streams from it,
    nothing is in maintenance, and the standby's lag is within the pillar's
    limit: the preconditions of a planned switchover.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.check switchover
    """
    pair = roles(tgt, timeout)
    problems = []
    if pair["unreachable"]:
        problems.append(f"not answering: {', '.join(pair['unreachable'])}")
    if pair["split_brain"]:
        problems.append("both nodes claim the primary role or the VIP")
    primary, standby = pair["primary"], pair["standby"]
    if not primary:
        problems.append("no primary")
    answer = pair["answers"].get(standby) or {}
    if (answer.get("wal_receiver") or {}).get("status") != "streaming":
        problems.append(f"{standby} is not streaming from the primary")
    limit = (pair["config"] or {}).get("lag_limit", {})
    lag = (pair["answers"].get(primary) or {}).get("lag_bytes")
    if lag is not None and limit and lag > limit["bytes"]:
        problems.append(f"{standby} lags {lag} bytes (limit {limit['bytes']})")
    if any(a.get("maintenance") for a in pair["answers"].values()):
        problems.append("maintenance is set in the pillar")
    _fire(f"hamn/{orchestration}/check", {"ok": not problems, "problems": problems,
                                           "primary": primary, "standby": standby})
    if problems:
        raise CommandExecutionError(f"{orchestration} refused: " + "; ".join(problems))
    return {"primary": primary, "standby": standby, "lag_bytes": lag}


def status(tgt=DEFAULT_TGT, timeout=5, raw=False):
    """
    Both nodes side by side: role, timeline, LSNs, lag, VIP holder, services, and
    the last orchestration run.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.status
    """
    nodes = _nodes(tgt)
    answers = _answers(nodes, timeout)
    services = _call(list(answers), "hamn.services_status", timeout=timeout) if answers else {}
    for node, result in services.items():
        if isinstance(result, dict) and result.get("retcode") == 0:
            answers[node]["services"] = result["ret"]
    if raw:
        return {"roles": discovery.roles(nodes, answers), "answers": answers, "history": history.load(_dir())}
    return report.table(nodes, answers, history.load(_dir()))


def lock(orchestration, ttl=LOCK_TTL):
    """
    Take the master's hamn lock for ``orchestration``; fails naming the running
    one when another holds it. A lock left by a crashed run is taken over.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.lock switchover
    """
    taken = orch_lock.acquire(os.path.join(_dir(), "orchestration.lock"), orchestration, ttl)
    if taken["took_over"]:
        log.warning("hamn: took over a stale lock of %s", taken["took_over"].get("name"))
    _fire(f"hamn/{orchestration}/lock", {"holder": taken["holder"], "took_over": taken["took_over"]})
    return taken


def unlock(orchestration):
    """
    Release the lock held by ``orchestration``.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.unlock switchover
    """
    released = orch_lock.release(os.path.join(_dir(), "orchestration.lock"), orchestration)
    _fire(f"hamn/{orchestration}/unlock", {"released": released})
    return released


def step(orchestration, step, tgt, function, fun_args=None, fun_kwargs=None, timeout=300, tgt_type="list"):
    """
    Run ``function`` on ``tgt`` (one minion id, or a target with ``tgt_type``) as one
    audited step of an orchestration: fires ``hamn/<orchestration>/<step>`` when it
    starts and when it ends (with the result), and fails when no minion answers or
    the function fails on any of them.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.step switchover promote mn2 hamn.promote
    """
    # salt.runner reserves "fun", "arg" and "kwarg": hence "function", "fun_args", "fun_kwargs".
    tag = f"hamn/{orchestration}/{step}"
    _fire(tag, {"stage": "start", "tgt": tgt, "fun": function})
    started = time.monotonic()
    target = [tgt] if tgt_type == "list" and isinstance(tgt, str) else tgt
    results = _call(target, function, fun_args or (), fun_kwargs, timeout, tgt_type)
    seconds = round(time.monotonic() - started, 3)
    expected = target if tgt_type == "list" else list(results)
    missing = [m for m in expected if not isinstance(results.get(m), dict)]
    failed = {m: r.get("ret") for m, r in results.items() if isinstance(r, dict) and r.get("retcode", 0) != 0}
    if missing or failed or not results:
        error = {"no answer": missing or (not results and [str(tgt)]), "failed": failed}
        _fire(tag, {"stage": "failed", "tgt": tgt, "fun": function, "error": error, "seconds": seconds})
        if failed:
            raise CommandExecutionError(f"{step}: {function} failed on {', '.join(failed)}: {list(failed.values())[0]}")
        raise CommandExecutionError(f"{step}: {', '.join(error['no answer'])} did not answer {function} within {timeout}s")
    rets = {m: r.get("ret") for m, r in results.items()}
    _fire(tag, {"stage": "done", "tgt": tgt, "fun": function, "ret": rets, "seconds": seconds})
    return rets[tgt] if isinstance(tgt, str) and tgt in rets else rets


def handover(orchestration, old, new, timeout=120):
    """
    The zero-loss core of a switchover: stop PostgreSQL on the old primary, take
    its shutdown checkpoint LSN, and wait until the standby has received it.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.handover switchover mn1 mn2
    """
    stopped = step(orchestration, "stop-db", old, "hamn.stop_db", fun_kwargs={"mode": "fast"}, timeout=timeout)
    reached = step(orchestration, "wait-for-lsn", new, "hamn.wait_for_lsn", fun_args=[stopped["lsn"]],
                   fun_kwargs={"timeout": timeout}, timeout=timeout + 30)
    return {"lsn": stopped["lsn"], "standby": reached}


def fence(orchestration, node, cmd=None, timeout=60):
    """
    Fence an unreachable node with the pillar's fence command (an argument list,
    ``{node}`` filled in), run on the master. Without a command it only records
    that the ARP probe of ``hamn.vip_up`` is the remaining guard.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.fence failover mn1 cmd='["rpower", "{node}", "off"]'
    """
    tag = f"hamn/{orchestration}/fence"
    if not cmd:
        _fire(tag, {"node": node, "fenced": False, "reason": "no fence command configured"})
        return {"fenced": False, "reason": "no fence command configured; relying on the VIP ARP probe"}
    if isinstance(cmd, str) or not all(isinstance(a, str) for a in cmd):
        raise SaltInvocationError("cmd: expected a list of arguments (no shell strings)")
    argv = [a.replace("{node}", node) for a in cmd]
    result = proc.run(argv, timeout=timeout, check=False, what="fence command")
    _fire(tag, {"node": node, "argv": argv, "retcode": result.returncode})
    if result.returncode != 0:
        raise CommandExecutionError(f"fencing {node} failed (exit {result.returncode}): {result.stderr.strip()[-300:]}")
    return {"fenced": True, "argv": argv}


def record(orchestration, result="done", summary=""):
    """
    Append an orchestration run to the master's hamn history (shown by
    ``hamn.status``) and fire ``hamn/<orchestration>/finished``.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.record switchover
    """
    entry = history.append(_dir(), orchestration, result, summary)
    _fire(f"hamn/{orchestration}/finished", entry)
    return entry


def preflight(orchestration="preflight", tgt=DEFAULT_TGT, timeout=60):
    """
    Run ``hamn.preflight`` on both nodes (clock compared with the master's) and
    compare their PostgreSQL, OS and xCAT versions; fails listing every failed check.

    CLI Example:

    .. code-block:: bash

        salt-run hamn.preflight
    """
    nodes = _nodes(tgt)
    raw = _call(nodes, "hamn.preflight", kwarg={"reference_time": time.time()}, timeout=timeout)
    reports = {n: r.get("ret") for n, r in raw.items() if isinstance(r, dict) and r.get("retcode") == 0}
    failed = [f"{n}: no answer" for n in nodes if n not in reports]
    for node, result in sorted(reports.items()):
        failed += [f"{node}: {c['name']}: {c['reason']}" for c in result["checks"] if not c["ok"]]
    compared = pre.compare(reports)
    failed += [f"{c['name']}: {c['reason']}" for c in compared if not c["ok"]]
    _fire(f"hamn/{orchestration}/preflight", {"ok": not failed, "failed": failed})
    if failed:
        raise CommandExecutionError("preflight failed: " + "; ".join(failed))
    return {"reports": reports, "compared": compared}
