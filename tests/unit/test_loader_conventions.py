"""Salt conventions of the loader modules."""

import inspect

import pytest

from saltext_hamn.modules import hamn as hamn_mod
from saltext_hamn.states import hamn as hamn_state


def public_functions(module):
    return [
        (name, fn) for name, fn in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and fn.__module__ == module.__name__
    ]


def test_virtualnames():
    assert hamn_mod.__virtualname__ == "hamn"
    assert hamn_state.__virtualname__ == "hamn"


@pytest.mark.parametrize("name, fn", public_functions(hamn_mod))
def test_every_execution_function_has_a_cli_example(name, fn):
    assert "CLI Example:" in (fn.__doc__ or ""), f"hamn.{name} lacks a CLI Example"


def test_state_virtual_needs_the_execution_module():
    hamn_state.__salt__ = {}
    try:
        ok, reason = hamn_state.__virtual__()
        assert ok is False and "execution module" in reason
    finally:
        del hamn_state.__salt__
