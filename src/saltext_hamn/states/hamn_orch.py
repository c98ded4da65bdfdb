"""State module ``hamn_orch``: the steps of the hamn orchestration SLS files.

Only for ``salt-run state.orchestrate hamn.<name>`` (the master's orchestrate
process); thin over ``saltext_hamn.utils.orch.pipeline``, like the ``hamn.begin``
/ ``hamn.step`` / ``hamn.finish`` runner functions, but without a ``salt.runner``
state's new runner client (grains, loaders: ~0.4 s) for every step.

A failure is ``result: False`` with one readable line, so requisites skip the
later steps exactly as they would after a failed runner.
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_hamn.utils.orch import master as master_side, pipeline

log = logging.getLogger(__name__)

__virtualname__ = "hamn_orch"


def __virtual__():
    if __opts__.get("__role") != "master":  # noqa: F821 pylint: disable=undefined-variable
        return False, "hamn_orch: the hamn orchestration steps run only in salt-run state.orchestrate"
    return __virtualname__


def _state(name, func, *args):
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    master = master_side.Master(__opts__)  # noqa: F821 pylint: disable=undefined-variable
    try:
        line = func(master, *args)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["comment"] = master_side.one_line(exc)
        ret["changes"] = {"return": {"error": ret["comment"]}}
        return ret
    except Exception as exc:  # pylint: disable=broad-except
        log.debug("hamn_orch: %s failed unexpectedly", name, exc_info=True)
        ret["comment"] = f"internal error ({type(exc).__name__}: {exc}); run with -l debug for the traceback"
        ret["changes"] = {"return": {"error": ret["comment"]}}
        return ret
    ret.update(result=True, comment=line, changes={"return": line})
    return ret


def begin(name, orchestration, force=False, fenced=None, tgt=pipeline.DEFAULT_TGT):
    """Take the hamn lock, observe both nodes and decide the plan (or refuse with the next action)."""
    return _state(name, pipeline.begin, orchestration, force, fenced, tgt)


def step(name, orchestration, step, tgt=pipeline.DEFAULT_TGT):  # pylint: disable=redefined-outer-name
    """One step of the plan, its preconditions re-checked when it runs; skipped when not planned."""
    return _state(name, pipeline.step, orchestration, step, tgt)


def finish(name, orchestration):
    """Record the run and release its own lock (runs last, whatever happened before)."""
    return _state(name, pipeline.finish, orchestration)
