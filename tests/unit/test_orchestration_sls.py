"""The orchestration SLS files are thin: fixed step lists the hamn_orch states accept.

A state called with a wrong argument name fails only at run time, after the
steps before it ran: every ``hamn_orch`` state rendered here is checked against
the state function's real signature. The lists must hold every step the decision core can plan, in
its order, and the dry run must render the plan or fail naming the refusal.
"""

import inspect
import json
from pathlib import Path

import jinja2
import pytest
import yaml

from saltext_hamn.states import hamn_orch
from saltext_hamn.utils.orch import decide

STATES = Path(__file__).resolve().parents[2] / "states"
STATE_ARGS = {"require", "order"}
SLS = {"setup": decide.SETUP, "switchover": decide.SWITCHOVER, "failover": decide.TAKEOVER,
       "recover": decide.SWITCHOVER[:-1] + decide.TAKEOVER, "rejoin": decide.REJOIN}


def render(sls, pillar=None, test=False, planned=None):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(STATES)), extensions=["jinja2.ext.do"],
                             undefined=jinja2.StrictUndefined)
    env.filters["json"] = json.dumps
    calls = []

    def run(fun, **kwargs):
        calls.append((fun, kwargs))
        return planned

    salt = {"saltutil.runner": run, "pillar.get": lambda key, default=None: (pillar or {}).get(key, default)}
    text = env.get_template(f"hamn/{sls}.sls").render(salt=salt, opts={"test": test})
    return yaml.safe_load(text), calls


def args_of(body):
    (function, items), = body.items()
    return function, {k: v for item in items for k, v in item.items()}


@pytest.mark.parametrize("sls", sorted(SLS))
def test_every_state_matches_the_state_function_signature(sls):
    states, calls = render(sls)
    assert not calls, "the real run must not call the runner at render time"
    for ident, body in states.items():
        function, kwargs = args_of(body)
        module, fun = function.split(".", 1)
        assert module == "hamn_orch", ident
        params = inspect.signature(getattr(hamn_orch, fun)).parameters
        given = (set(kwargs) - STATE_ARGS) | {"name"}  # the state's id is its name
        assert given <= set(params), f"{sls}: {ident!r} passes {sorted(given - set(params))} to {function}"
        missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in given]
        assert not missing, f"{sls}: {ident!r} misses {missing} for {function}"


@pytest.mark.parametrize("sls", sorted(SLS))
def test_steps_are_the_planned_ones_in_one_chain_and_finish_always_runs(sls):
    states, _ = render(sls)
    functions = [args_of(b)[0] for b in states.values()]
    bodies = [args_of(b)[1] for b in states.values()]
    assert functions[0] == "hamn_orch.begin" and functions[-1] == "hamn_orch.finish"
    assert bodies[-1]["order"] == "last" and "require" not in bodies[-1]
    steps = [b["step"] for f, b in zip(functions, bodies) if f == "hamn_orch.step"]
    assert tuple(steps) == tuple(SLS[sls])  # nothing the decision core plans can be missing
    ids = list(states)
    for before, after in zip(ids[:-2], ids[1:-1]):
        assert {"hamn_orch": before} in bodies[ids.index(after)]["require"], f"{after!r} does not require {before!r}"


def test_force_and_fenced_are_passed_through_not_decided():
    states, _ = render("failover", pillar={"force": True, "fenced": "mn1"})
    begin = args_of(next(iter(states.values())))[1]
    assert (begin["force"], begin["fenced"]) == (True, "mn1")


def test_dry_run_renders_the_plan_or_fails_naming_the_refusal():
    planned = {"ok": True, "reason": "mn1 is primary", "steps": [
        {"step": "promote", "description": "promote mn2 once mn1 is proven not writable"}]}
    states, calls = render("switchover", test=True, planned=planned)
    assert calls == [("hamn.plan", {"orchestration": "switchover", "force": False, "fenced": None})]
    assert list(states) == ["would promote mn2 once mn1 is proven not writable"]
    refused = {"ok": False, "refused": "failover refused: mn1 is a healthy primary. Next: use hamn.switchover"}
    states, _ = render("failover", test=True, planned=refused)
    (ident, body), = states.items()
    assert ident == refused["refused"] and "test.fail_without_changes" in body
