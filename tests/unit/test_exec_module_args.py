"""Argument handling of the execution module (no node needed)."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_hamn.modules import hamn
from tests import support

PILLAR = {"hamn": support.pillar()}


@pytest.fixture(autouse=True)
def loader_dunders(monkeypatch):
    monkeypatch.setattr(hamn, "__pillar__", PILLAR, raising=False)
    monkeypatch.setattr(hamn, "__opts__", {"id": "mn9"}, raising=False)


@pytest.mark.parametrize("call, message", [
    (lambda: hamn.promote(force="yes"), "force: expected True or False"),
    (lambda: hamn.promote(timeout=0), "timeout: expected a positive number"),
    (lambda: hamn.stop_db(mode="sideways"), "expected smart, fast or immediate"),
    (lambda: hamn.wait_for_lsn("nope"), "expected an LSN"),
    (lambda: hamn.rewind(fallback=1), "fallback: expected True or False"),
    (lambda: hamn.vip_up(force="true"), "force: expected True or False"),
])
def test_bad_arguments_raise_invocation_errors(call, message):
    with pytest.raises(SaltInvocationError, match=message):
        call()


def test_minion_that_is_not_a_node_is_told_so():
    with pytest.raises(SaltInvocationError, match=r"this minion \(mn9\) is not one of the configured nodes"):
        hamn.status()


def test_config_redacts_the_password(monkeypatch):
    monkeypatch.setattr(hamn, "__opts__", {"id": "mn1"}, raising=False)
    assert hamn.config()["postgres"]["replication"]["password"] == hamn.REDACTED
    assert hamn.config()["heartbeat"]["lease_key"] == hamn.REDACTED


NOT_A_NODE = r"hamn:nodes: this minion \(mn9\) is not one of the configured nodes \(mn1, mn2\)"


def test_config_of_a_minion_that_is_not_a_node_raises():
    with pytest.raises(SaltInvocationError, match=NOT_A_NODE):
        hamn.config()


def test_pillar_valid_reports_a_minion_that_is_not_a_node(monkeypatch):
    from saltext_hamn.states import hamn as hamn_state  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(hamn_state, "__salt__", {"hamn.config": hamn.config}, raising=False)
    ret = hamn_state.pillar_valid("hamn-pillar")
    assert ret["result"] is False
    assert ret["comment"].startswith("invalid hamn pillar: hamn:nodes: this minion (mn9) is not one of")


@pytest.mark.parametrize("call, message", [
    (lambda: hamn.demote(timeout=0), "timeout: expected a positive number"),
    (lambda: hamn.stop_db(timeout="soon"), "timeout: expected a positive number"),
    (hamn.demote, NOT_A_NODE),
    (hamn.stop_db, NOT_A_NODE),
])
def test_demote_and_stop_db_check_arguments_and_node(call, message):
    with pytest.raises(SaltInvocationError, match=message):
        call()
