"""The master's handling of a heartbeat, over a fake master: what it trusts, what it
records, in which order a failover acts, and what a failure leaves behind."""

import time

import pytest

from saltext_hamn.utils.auto import rule, view, witness
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import runs
from tests.support import load

CFG = load(heartbeat={"cooldown": 60})
STANDBY_LOST = {"node": "mn2", "id": "mn2", "role": "standby", "pg_up": True, "streaming": False,
                "reaches_peer_pg": False, "lsn": "0/3000100", "replayed": "0/3000100", "at": None}
PRIMARY = {"node": "mn1", "id": "mn1", "role": "primary", "pg_up": True, "lsn": "0/3000100", "at": None}


class FakeMaster:
    def __init__(self, directory, disconnected=(), fail=None):
        self.dir = str(directory)
        self.lock_path = str(directory / "orchestration.lock")
        self.events, self.calls = [], []
        self._disconnected = list(disconnected)
        self.fail = fail or {}

    def fire(self, tag, data):
        self.events.append((tag, data))

    def disconnected(self, nodes):
        return [n for n in nodes if n in self._disconnected]

    def call_one(self, node, fun, args=(), kwargs=None, timeout=300):
        self.calls.append((node, fun))
        if (node, fun) in self.fail:
            raise HamnError(self.fail[(node, fun)])
        return {"seconds": 0.5, "promote_seconds": 0.1, "vip_seconds": 0.3} if fun == "hamn.takeover" else {}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """mn1 primary dead (PG closed, minion gone), its watchdog answering; mn2 a standby that lost it."""
    state = {"pg_open": {"mn1": False, "mn2": True}, "watchdogs": {"mn1": {"role": "stopped"}, "mn2": {"role": "standby"}},
             "fenced": [], "exchanges": []}
    monkeypatch.setattr(witness, "node_config", lambda master, node: CFG)
    monkeypatch.setattr(witness, "probes", lambda targets: {n: state["pg_open"][n] for n in targets})
    monkeypatch.setattr(witness, "tcp_open", lambda host, port, timeout=0.5: False)

    def renew(master, cfg, node, enforce):
        state["exchanges"].append(("renew", node, enforce))
        view.note_renewal_attempt(master.dir, node)
        status = state["watchdogs"].get(node)
        view.note_renewal_result(master.dir, node, status, None if status else "unreachable")
        return status

    monkeypatch.setattr(witness, "renew", renew)

    class Protocol:
        @staticmethod
        def exchange(host, port, key, op, sender, args=None, timeout=0.5, on_challenge=None):
            state["exchanges"].append((op, host))
            state["fenced"].append(host)
            return {"fenced": True}

    import saltext_hamn.utils.lease as lease_pkg  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(lease_pkg, "protocol", Protocol, raising=False)
    master = FakeMaster(tmp_path, disconnected=["mn1"])
    view.note_heartbeat(master.dir, "mn1", {**PRIMARY, "at": time.time()})
    runs.observed_primary(master.dir, "mn1")
    return master, state


def beat(payload):
    return {**payload, "at": time.time()}


def test_a_heartbeat_naming_another_sender_is_ignored(world):
    master, state = world
    result = witness.handle(master, {**beat(STANDBY_LOST), "id": "mn1"})
    assert result["code"] == "ignored"
    assert state["exchanges"] == [] and master.calls == []


def test_a_heartbeat_queued_during_a_cut_is_stale(world):
    master, _ = world
    result = witness.handle(master, {**STANDBY_LOST, "at": time.time() - 60})
    assert result["code"] == "stale" and master.calls == []


def test_a_lost_primary_is_fenced_first_then_the_standby_takes_over(world):
    master, state = world
    result = witness.handle(master, beat(STANDBY_LOST))
    assert result["code"] == "failover" and result["ok"], result
    assert ("fence", CFG["nodes"]["mn1"]["address"]) in state["exchanges"]
    fence_at = state["exchanges"].index(("fence", CFG["nodes"]["mn1"]["address"]))
    disarm_new = state["exchanges"].index(("renew", "mn2", False), fence_at)
    assert disarm_new > fence_at  # the new primary's lease is disarmed after the old one is fenced
    assert [c for c in master.calls] == [("mn2", "hamn.takeover"), ("mn2", "hamn.services_start"),
                                         ("mn2", "hamn.run_hooks")]
    record = runs.record(master.dir)
    assert record["primary"] == "mn2" and "mn1" in record["deposed"]
    assert view.load(master.dir)["cooldown_until"] > time.time() + 50
    # The next heartbeat does not fail over again: mn2 is primary now, mn1 deposed.
    assert witness.handle(master, beat({**PRIMARY, "node": "mn2", "id": "mn2"}))["action"] == rule.NONE


def test_a_failure_after_the_fence_pauses_the_automation(world):
    master, _ = world
    master.fail[("mn2", "hamn.takeover")] = "promote failed: lag"
    result = witness.handle(master, beat(STANDBY_LOST))
    assert result["ok"] is False and "promote failed" in result["error"]
    paused = view.load(master.dir)["paused"]
    assert paused and paused["by"] == "hamn"
    assert witness.handle(master, beat(STANDBY_LOST))["code"] == "paused"


def test_a_proof_that_fails_changes_nothing_and_is_decided_again(world, monkeypatch):
    master, state = world

    class Refusing:
        @staticmethod
        def exchange(*args, **kwargs):
            raise HamnError("lease watchdog at 198.51.100.11:7390: no answer within 5s")

    import saltext_hamn.utils.lease as lease_pkg  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(lease_pkg, "protocol", Refusing, raising=False)
    result = witness.handle(master, beat(STANDBY_LOST))
    assert result["ok"] is False and master.calls == []
    assert view.load(master.dir)["paused"] is None
    assert runs.record(master.dir)["primary"] == "mn1"
    del state


def test_paused_and_resumed(world):
    master, _ = world
    witness.pause(master, "firmware", by="admin")
    assert witness.handle(master, beat(STANDBY_LOST))["code"] == "paused"
    assert witness.summary(master)["state"].startswith("paused: firmware")
    assert witness.resume(master)["reason"].startswith("firmware")
    assert witness.summary(master)["state"] == "armed"


def test_the_master_records_not_loss_free_before_it_consents_to_async(tmp_path):
    directory = str(tmp_path)
    assert not view.consents_to_async(view.load(directory), "mn1")
    view.note_renewal_result(directory, "mn1", {"enforcing": True, "sync": {"loss_free": True, "wants_async": False}})
    assert view.loss_free(view.load(directory), "mn1") is True
    assert not view.consents_to_async(view.load(directory), "mn1")
    # The standby is gone: the primary asks; the master writes "not loss-free" first...
    view.note_renewal_result(directory, "mn1", {"enforcing": True, "sync": {"loss_free": True, "wants_async": True}})
    data = view.load(directory)
    assert view.loss_free(data, "mn1") is False
    # ...and only then consents, in its next renewal.
    assert view.consents_to_async(data, "mn1")
    view.note_renewal_result(directory, "mn1", {"enforcing": True, "sync": {"loss_free": True, "wants_async": False}})
    assert view.loss_free(view.load(directory), "mn1") is True and not view.consents_to_async(view.load(directory), "mn1")


def test_a_self_fenced_primary_nobody_replaced_is_brought_back_disarmed_first(world):
    master, state = world
    master._disconnected = []  # its minion answers
    state["watchdogs"]["mn1"] = {"role": "stopped", "fenced": True, "fence_reason": "enforced lease expired"}
    view.note_heartbeat(master.dir, "mn1", {**PRIMARY, "role": "stopped", "pg_up": False, "at": time.time()})
    result = witness.handle(master, beat(STANDBY_LOST))
    assert result["code"] == "unfence" and result["ok"], result
    assert master.calls == [("mn1", "hamn.unfence")]
    last_renew = max(i for i, e in enumerate(state["exchanges"]) if e[:2] == ("renew", "mn1"))
    assert state["exchanges"][last_renew] == ("renew", "mn1", False)  # disarmed before the call
    assert ("fence", CFG["nodes"]["mn1"]["address"]) not in state["exchanges"]
    assert runs.record(master.dir)["primary"] == "mn1"
    assert view.load(master.dir)["restarts"]["mn1"]["tries"] == 1


def test_a_failed_unfence_is_bounded_by_restart_tries(world):
    master, state = world
    master._disconnected = []
    master.fail[("mn1", "hamn.unfence")] = "unfence refused: the peer runs as primary"
    state["watchdogs"]["mn1"] = {"role": "stopped", "fenced": True}
    view.note_heartbeat(master.dir, "mn1", {**PRIMARY, "role": "stopped", "pg_up": False, "at": time.time()})
    codes = [witness.handle(master, beat(STANDBY_LOST)).get("code") for _ in range(4)]
    assert codes[:2] == ["unfence", "unfence"] and "unfence" not in codes[2:], codes
    assert any(tag == "hamn/auto/unfence-failed" for tag, _ in master.events)
