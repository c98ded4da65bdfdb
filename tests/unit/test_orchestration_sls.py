"""The orchestration SLS files render to what the hamn runner accepts.

Salt's ``salt.runner`` state reports a runner called with a wrong argument name as
*success* ("Passed invalid arguments"), so a typo in an SLS would pass silently.
This test renders each orchestration with a fake pair and checks every
``salt.runner`` call against the runner function's real signature.
"""

import inspect
import json
from pathlib import Path

import jinja2
import pytest
import yaml

from saltext_hamn.runners import hamn as runner
from tests import support

STATES = Path(__file__).resolve().parents[2] / "states"
STATE_ARGS = {"name", "require", "onfail_any", "order"}


def pair(primary="mn1", standby="mn2", unreachable=(), **cfg_overrides):
    cfg = support.load(**cfg_overrides)
    status = {"mn1": {"role": "primary" if primary == "mn1" else "standby", "current_lsn": "0/5000000"},
              "mn2": {"role": "primary" if primary == "mn2" else "standby"}}
    return {"nodes": ["mn1", "mn2"], "primary": None if primary in unreachable else primary, "standby": standby,
            "failed": primary if primary in unreachable else None, "unreachable": list(unreachable),
            "vip_holder": primary, "split_brain": False, "answers": {}, "config": cfg,
            "last_known": {n: {"seen": 0, "status": s} for n, s in status.items()}}


def render(sls, roles, pillar=None):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(STATES)), extensions=["jinja2.ext.do"],
                             undefined=jinja2.StrictUndefined)
    env.filters["json"] = json.dumps
    salt = {"saltutil.runner": lambda fun: roles, "pillar.get": lambda key, default=None: (pillar or {}).get(key, default)}
    text = env.get_template(f"hamn/{sls}.sls").render(salt=salt)
    return yaml.safe_load(text)


CASES = [
    ("setup", pair()),
    ("switchover", pair()),
    ("switchover", pair(services={"service_nodes": {"target": "sn*"}},
                        hooks={"diskless_reset": {"enabled": True, "noderange": "compute"}})),
    ("failover", pair(primary="mn1", standby="mn2")),
    ("failover", pair(primary="mn1", standby="mn2", unreachable=("mn1",), fence={"cmd": ["rpower", "{node}", "off"]})),
    ("rejoin", pair()),
]


@pytest.mark.parametrize("sls, roles", CASES)
def test_every_runner_call_matches_the_runner_signature(sls, roles):
    states = render(sls, roles)
    assert states, sls
    for ident, body in states.items():
        (function, args), = body.items()
        assert function == "salt.runner", ident
        kwargs = {k: v for item in args for k, v in item.items()}
        target = getattr(runner, kwargs["name"].split(".", 1)[1])
        params = inspect.signature(target).parameters
        given = set(kwargs) - STATE_ARGS
        assert given <= set(params), f"{sls}: {ident!r} passes {sorted(given - set(params))} to {kwargs['name']}"
        missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in given]
        assert not missing, f"{sls}: {ident!r} misses {missing} for {kwargs['name']}"


@pytest.mark.parametrize("sls, roles", CASES)
def test_steps_form_one_chain_and_always_release_the_lock(sls, roles):
    states = render(sls, roles)
    ids = list(states)
    assert ids[0] == "take the hamn lock" and ids[-1] == "release the hamn lock"
    steps = [i for i in ids if not i.startswith(("record the", "release the"))]
    for before, after in zip(steps, steps[1:]):
        requires = [r for item in states[after]["salt.runner"] for k, v in item.items() if k == "require" for r in v]
        assert {"salt": before} in requires, f"{after!r} does not require {before!r}"
    onfail = next(v for item in states[f"record the failed {sls}"]["salt.runner"] for k, v in item.items()
                  if k == "onfail_any")
    assert [r["salt"] for r in onfail] == steps


def test_failover_fences_only_an_unreachable_primary_and_passes_the_last_lsn():
    reachable = render("failover", pair())
    assert "stop PostgreSQL on mn1" in reachable and not any(i.startswith("fence") for i in reachable)
    gone = render("failover", pair(unreachable=("mn1",), fence={"cmd": ["rpower", "{node}", "off"]}))
    fence = {k: v for item in gone["fence mn1 (not answering)"]["salt.runner"] for k, v in item.items()}
    assert fence["cmd"] == ["rpower", "{node}", "off"] and fence["node"] == "mn1"
    promote = {k: v for item in gone["promote mn2"]["salt.runner"] for k, v in item.items()}
    assert promote["fun_kwargs"] == {"force": False, "primary_lsn": "0/5000000"}
    forced = render("failover", pair(unreachable=("mn1",)), pillar={"force": True})
    promote = {k: v for item in forced["promote mn2"]["salt.runner"] for k, v in item.items()}
    assert promote["fun_kwargs"]["force"] is True
