"""Replication modes on the primary's watchdog: the sync state machine over fakes.

The watchdog decides ``synchronous_standby_names`` from its observation of the local
PostgreSQL and hands it to the observer (which applies it with ALTER SYSTEM); the
master's ``allow_async`` is the only way out of a waiting ``sync`` primary.
"""

import json

import pytest

from saltext_hamn.utils.lease import protocol
from saltext_hamn.utils.lease import sync
from saltext_hamn.utils.lease.watchdog import Watchdog
from tests import support
from tests.unit.test_lease_watchdog import Clock, Peer, serve_raw

NAMES = 'FIRST 1 ("mn2")'
FALLBACK = 2.0


class Observer:
    """A primary whose setting changes when the watchdog wants it to (as the real observer does)."""

    def __init__(self, names="", rows=None, current="0/5000000", role="primary"):
        self.role, self.names, self.rows, self.lsn = role, names, rows or [], current
        self.want_standby_names = None
        self.applied = []

    def apply(self):
        """What the observer thread does between two ticks."""
        if self.want_standby_names is not None and self.want_standby_names != self.names:
            self.applied.append(self.want_standby_names)
            self.names = self.want_standby_names

    def current(self):
        primary = self.role == "primary"
        return {"role": self.role, "pg_up": True, "receiver_status": None, "sender_host": None,
                "standby_signal": self.role == "standby", "standby_names": self.names if primary else None,
                "current_lsn": self.lsn if primary else None,
                "replication": [dict(r) for r in self.rows] if primary else None}


def row(state="streaming", sync_state="sync", flush="0/5000000", name="mn2"):
    return {"application_name": name, "state": state, "sync_state": sync_state, "flush_lsn": flush}


@pytest.fixture
def make(tmp_path):
    clock = Clock()

    def factory(mode="sync", observer=None, fallback=FALLBACK):
        cfg = support.load(heartbeat={"state_dir": str(tmp_path)},
                           postgres={"replication": {"password": "x" * 12, "mode": mode, "sync_fallback": fallback}})
        obs = observer or Observer()
        wd = Watchdog(cfg, "mn1", clock=clock, observer=obs, fencer=lambda r: {"fenced": True, "steps": {}},
                      exchange=Peer(), read_boot_id=lambda: "boot-a", wall=lambda: 1.7e9)
        return wd, obs

    factory.clock = clock
    return factory


def tick(wd, obs, advance=0.2, times=1):
    for _ in range(times):
        wd.tick()
        obs.apply()
        wd.clock.now += advance
    return wd.tick()


def consent(wd, sender="master"):
    args = {"enforce": False, "allow_async": True} if sender == "master" else {"allow_async": True}
    return serve_raw(wd, lambda h: protocol.signed(wd.key, {"op": "renew", "from": sender, "nonce": h["nonce"],
                                                            "args": args}))


# ---- the pure decision --------------------------------------------------------------------------

def obs(names=NAMES, rows=(), current="0/5000000", role="primary"):
    return Observer(names, list(rows), current, role).current()


BOOK = {"sync_released": False, "sync_loss_free": True}


@pytest.mark.parametrize("case, mode, observed, book, lost_since, now, want, changes, wants_async", [
    ("sync standby present", "sync", obs(rows=[row()]), {**BOOK, "sync_loss_free": False}, None, 10,
     NAMES, {"sync_loss_free": True}, False),
    ("absent, under the fallback", "sync", obs(), BOOK, 9.0, 10.9, NAMES, {}, False),
    ("absent, fallback reached: asks, keeps the names", "sync", obs(), BOOK, 8.0, 10.0, NAMES, {}, True),
    ("catching up is not sync", "sync", obs(rows=[row(state="catchup", sync_state="potential")]), BOOK, 1.0,
     10.0, NAMES, {}, True),
    ("released: names emptied, not loss-free", "sync", obs(names=NAMES), {"sync_released": True,
     "sync_loss_free": False}, None, 10, "", {"sync_loss_free": False}, False),
    ("released, standby streams but behind: stays released", "sync",
     obs(names="", rows=[row(sync_state="async", flush="0/4000000")]),
     {"sync_released": True, "sync_loss_free": False}, None, 10, "", {"sync_loss_free": False}, False),
    ("released, standby caught up: names back", "sync", obs(names="", rows=[row(sync_state="async")]),
     {"sync_released": True, "sync_loss_free": False}, None, 10, NAMES,
     {"sync_released": False, "sync_loss_free": False}, False),
    ("names not in effect (new primary): not loss-free", "sync", obs(names='FIRST 1 ("mn1")'), BOOK, None,
     10, NAMES, {"sync_loss_free": False}, False),
    ("strict: absent for long, never asks", "sync_strict", obs(), BOOK, 0.0, 100.0, NAMES, {}, False),
    ("strict: a release from sync mode is void", "sync_strict", obs(names=""),
     {"sync_released": True, "sync_loss_free": False}, None, 10, NAMES,
     {"sync_released": False, "sync_loss_free": False}, False),
    ("async: empty, never loss-free", "async", obs(names=NAMES, rows=[row()]), BOOK, None, 10, "",
     {"sync_released": False, "sync_loss_free": False}, False),
])
def test_decide_table(case, mode, observed, book, lost_since, now, want, changes, wants_async):
    d = sync.decide(mode, FALLBACK, "mn2", observed, book, lost_since, now)
    assert (d.want, d.book, d.wants_async) == (want, changes, wants_async), case


@pytest.mark.parametrize("role", ["stopped", "unknown"])
def test_decide_touches_nothing_without_a_running_primary(role):
    d = sync.decide("sync", FALLBACK, "mn2", {"role": role, "standby_names": None}, BOOK, 5.0, 10.0)
    assert d.want is None and d.book == {} and d.lost_since is None and sync.view("sync", d, BOOK) is None


def test_a_standby_starts_its_next_primary_period_not_loss_free():
    d = sync.decide("sync", FALLBACK, "mn2", obs(role="standby"), BOOK, None, 10.0)
    assert d.want is None and d.book == {"sync_released": False, "sync_loss_free": False}
    assert sync.view("sync", d, BOOK) is None


def test_another_standbys_row_does_not_count():
    d = sync.decide("sync", FALLBACK, "mn2", obs(rows=[row(name="pg_basebackup")]), BOOK, 0.0, 10.0)
    assert d.streaming is False and d.wants_async is True


@pytest.mark.parametrize("mode, status, expected", [
    ("async", {"role": "primary", "sync": {"mode": "async", "loss_free": False}}, None),
    ("sync", {"role": "primary", "sync": {"mode": "sync", "loss_free": True}}, True),
    ("sync", {"role": "primary", "sync": {"mode": "sync", "loss_free": False}}, False),
    ("sync", {"role": "primary", "sync": {"mode": "async", "loss_free": True}}, False),
    ("sync", {"role": "standby", "sync": None}, False),
    ("sync", None, False),
    ("sync_strict", {"role": "primary", "sync": {"mode": "sync_strict", "loss_free": True}}, True),
    ("sync_strict", {"role": "primary", "sync": None}, False),
])
def test_failover_loss_free(mode, status, expected):
    assert sync.failover_loss_free(mode, status) is expected


# ---- the watchdog: ticks, consent, ledger ------------------------------------------------------

def test_sync_primary_gets_the_names_and_is_loss_free_once_seen_in_sync(make):
    wd, o = make("sync", Observer(names=""))
    status = tick(wd, o)
    assert o.applied == [NAMES]
    assert status["sync"] == {"mode": "sync", "standby_names": NAMES, "sync_standby_streaming": False,
                              "wants_async": False, "loss_free": False}
    o.rows = [row()]
    status = tick(wd, o)
    assert status["sync"]["sync_standby_streaming"] is True and status["sync"]["loss_free"] is True
    assert wd.ledger.read()["sync_loss_free"] is True and o.applied == [NAMES]  # idempotent


def test_fallback_without_consent_keeps_waiting_then_consent_releases(make):
    wd, o = make("sync", Observer(names=NAMES, rows=[row()]))
    assert tick(wd, o)["sync"]["loss_free"] is True
    o.rows = []  # the standby went away
    status = tick(wd, o, advance=0.2, times=int(FALLBACK / 0.2) - 2)
    assert status["sync"]["wants_async"] is False and status["sync"]["loss_free"] is True
    status = tick(wd, o, advance=0.2, times=3)
    assert status["sync"]["wants_async"] is True and status["sync"]["standby_names"] == NAMES
    assert status["sync"]["loss_free"] is True  # nothing acknowledged without it yet
    status = tick(wd, o, advance=0.2, times=20)  # no consent: the names stay, however long
    assert o.names == NAMES and o.applied == [] and status["sync"]["wants_async"] is True
    # The peer may not give consent: refused, nothing changes.
    answer = consent(wd, sender="mn2")
    assert answer["ok"] is False and "only the master allows async" in answer["error"]
    assert wd.ledger.read()["sync_released"] is False
    # The master's consent: "not loss-free" is in the ledger (and the answer) before the names go.
    answer = consent(wd)
    assert answer["ok"] is True and answer["status"]["sync"]["loss_free"] is False
    assert answer["status"]["sync"]["wants_async"] is False
    book = wd.ledger.read()
    assert book["sync_released"] is True and book["sync_loss_free"] is False and o.names == NAMES
    status = tick(wd, o)
    assert o.names == "" and o.applied == [""] and status["sync"]["loss_free"] is False
    # Back but behind: still released.
    o.rows = [row(sync_state="async", flush="0/4000000")]
    status = tick(wd, o, times=3)
    assert o.names == "" and wd.ledger.read()["sync_released"] is True
    # Caught up: names back, not yet loss-free; seen in sync: loss-free (persisted).
    o.rows = [row(sync_state="async")]
    status = tick(wd, o)
    assert o.applied == ["", NAMES] and status["sync"]["loss_free"] is False
    assert wd.ledger.read()["sync_released"] is False
    o.rows = [row()]
    status = tick(wd, o)
    assert status["sync"]["loss_free"] is True and wd.ledger.read()["sync_loss_free"] is True


def test_consent_when_not_asked_is_ignored(make):
    wd, o = make("sync", Observer(names=NAMES, rows=[row()]))
    tick(wd, o)
    assert consent(wd)["ok"] is True  # the renew itself still counts
    tick(wd, o, times=3)
    assert o.names == NAMES and wd.ledger.read()["sync_released"] is False
    assert wd.ledger.read()["renewals"]["master"] is not None


def test_strict_never_clears_even_with_consent(make):
    wd, o = make("sync_strict", Observer(names=NAMES, rows=[row()]))
    assert tick(wd, o)["sync"]["loss_free"] is True
    o.rows = []
    status = tick(wd, o, times=50)  # 10 s, five fallbacks
    assert status["sync"]["wants_async"] is False
    answer = consent(wd)
    assert answer["ok"] is True and answer["status"]["sync"]["loss_free"] is True
    status = tick(wd, o, times=5)
    assert o.names == NAMES and o.applied == [] and status["sync"]["loss_free"] is True
    assert wd.ledger.read()["sync_released"] is False


def test_async_never_sets_and_clears_a_leftover(make):
    wd, o = make("async", Observer(names="", rows=[row(sync_state="async")]))
    status = tick(wd, o, times=20)
    assert o.applied == [] and status["sync"]["loss_free"] is False and status["sync"]["mode"] == "async"
    o.names = NAMES  # e.g. left from sync mode
    tick(wd, o)
    assert o.names == "" and o.applied == [""]


def test_standby_reports_no_sync_block_and_the_ledger_survives_a_restart(make, tmp_path):
    wd, o = make("sync", Observer(names=NAMES, rows=[row()]))
    tick(wd, o)
    again, o2 = make("sync", Observer(names=NAMES, rows=[]))  # restarted watchdog, standby away
    status = tick(again, o2)
    assert status["sync"]["loss_free"] is True  # from the ledger
    standby, o3 = make("sync", Observer(role="standby"))
    status = tick(standby, o3)
    assert status["sync"] is None and standby.ledger.read()["sync_loss_free"] is False
    assert json.loads((tmp_path / "lease-status.json").read_text())["sync"] is None
