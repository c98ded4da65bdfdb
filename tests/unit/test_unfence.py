"""hamn.unfence's own checks, over fakes: what it refuses, and the order it acts in."""

import pytest

from saltext_hamn.utils.auto import unfence
from saltext_hamn.utils.errors import HamnError
from tests.support import load

CFG = load()


@pytest.fixture
def node(monkeypatch, tmp_path):
    state = {"role": "standby", "fenced": True, "peer_reachable": True, "peer_primary": None, "did": []}
    cfg = {**CFG, "heartbeat": {**CFG["heartbeat"], "state_dir": str(tmp_path)}}

    class Ledger:
        def __init__(self, state_dir):
            assert state_dir == str(tmp_path)

        def read(self):
            return {"fenced": state["fenced"], "fence_reason": "enforced lease expired"}

    monkeypatch.setattr(unfence.lease_ledger, "Ledger", Ledger)
    monkeypatch.setattr(unfence.pg_status, "collect", lambda cluster: {"role": state["role"]})
    def ask_peer(cluster, cfg, me):
        if not state["peer_reachable"]:
            return None
        return {"in_recovery": False, **state["peer_primary"]} if state["peer_primary"] else {"in_recovery": True}

    monkeypatch.setattr(unfence.pg_peer, "ask_peer", ask_peer)
    monkeypatch.setattr(unfence.postmaster, "start", lambda cluster, timeout: state["did"].append("start") or True)
    monkeypatch.setattr(unfence.pg_promote, "promote",
                        lambda cluster, cfg, me, force, timeout: state["did"].append(("promote", force)) or {})
    monkeypatch.setattr(unfence.vip, "up", lambda cfg: state["did"].append("vip") or {"changed": True})
    return cfg, state


def test_a_fenced_node_starts_promotes_without_force_then_raises_the_vip(node):
    cfg, state = node
    result = unfence.unfence(object(), cfg, "mn1")
    assert result["changed"] and state["did"] == ["start", ("promote", False), "vip"]


def test_a_node_its_watchdog_did_not_fence_is_refused(node):
    cfg, state = node
    state["fenced"] = False
    with pytest.raises(HamnError, match="did not fence it"):
        unfence.unfence(object(), cfg, "mn2")
    assert state["did"] == []


def test_a_peer_running_as_primary_is_refused(node):
    cfg, state = node
    state["peer_primary"] = {"timeline": 7}
    with pytest.raises(HamnError, match="the peer runs as primary"):
        unfence.unfence(object(), cfg, "mn1")
    assert state["did"] == []


def test_an_unreachable_peer_needs_the_masters_word(node):
    cfg, state = node
    state["peer_reachable"] = False
    with pytest.raises(HamnError, match="nobody vouched"):
        unfence.unfence(object(), cfg, "mn1")
    assert state["did"] == []
    assert unfence.unfence(object(), cfg, "mn1", peer_checked=True)["changed"]


def test_a_repeated_call_on_a_primary_only_reannounces_the_vip(node):
    cfg, state = node
    state["role"], state["fenced"] = "primary", False
    assert unfence.unfence(object(), cfg, "mn1")["changed"] is False and state["did"] == ["vip"]
