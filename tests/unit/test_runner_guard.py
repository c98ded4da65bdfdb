"""The runner's guard: Salt's runner client turns a TypeError raised inside a runner
into a *successful* return and any other exception into a traceback; every hamn
runner function fails instead with one line and retcode 1."""

import inspect

import pytest
from salt.exceptions import CommandExecutionError

from saltext_hamn.runners import hamn as runner


@pytest.fixture
def context(monkeypatch):
    ctx = {}
    monkeypatch.setattr(runner, "__context__", ctx, raising=False)
    return ctx


def test_wrong_arguments_fail_with_one_line(context):
    result = runner.check(no_such_argument=1)
    assert result == {"error": "hamn.check: got an unexpected keyword argument 'no_such_argument'", "retcode": 1}
    assert context["retcode"] == 1


def test_an_internal_type_error_is_a_failure_not_a_success(context, monkeypatch):
    class Broken:
        def observe(self, *_args, **_kwargs):
            return None + 1

    monkeypatch.setattr(runner, "_master", Broken)
    result = runner.status()
    assert result["retcode"] == 1 and context["retcode"] == 1
    assert result["error"].startswith("hamn.status: internal error (TypeError: unsupported operand")
    assert "\n" not in result["error"]


def test_a_refusal_is_its_own_line(context, monkeypatch):
    class Refusing:
        def observe(self, *_args, **_kwargs):
            raise CommandExecutionError("failover refused: mn1 is a healthy primary. Next: use hamn.switchover")

    monkeypatch.setattr(runner, "_master", Refusing)
    assert runner.plan("failover")["error"] == "failover refused: mn1 is a healthy primary. Next: use hamn.switchover"
    assert context["retcode"] == 1


def test_every_public_function_is_guarded():
    public = [name for name in dir(runner) if not name.startswith("_") and inspect.isfunction(getattr(runner, name))
              and getattr(getattr(runner, name), "__module__", None) == runner.__name__]
    assert public
    for name in public:
        assert hasattr(getattr(runner, name), "__wrapped__"), f"hamn.{name} is not guarded"
