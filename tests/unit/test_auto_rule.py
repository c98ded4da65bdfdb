"""The automatic failover rule over a table of states: every branch, by its code."""

import pytest

from saltext_hamn.utils.auto import rule

PRIMARY_HB = {"role": "primary", "pg_up": True, "lsn": "0/3000100", "streaming": False, "reaches_peer_pg": True}
STANDBY_HB = {"role": "standby", "pg_up": True, "lsn": "0/3000100", "replayed": "0/3000100", "streaming": True,
              "reaches_peer_pg": True}
LOST_HB = {**STANDBY_HB, "streaming": False, "reaches_peer_pg": False}


def facts(mn1=None, mn2=None, **kw):
    """mn1 primary with a healthy pair, overridden per case."""
    one = {"heartbeat": PRIMARY_HB, "age": 0.3, "connected": True, "pg_open": True,
           "watchdog": {"role": "primary"}, "watchdog_enforcing": True, "renewal_age": 0.3}
    two = {"heartbeat": STANDBY_HB, "age": 0.4, "connected": True, "pg_open": True,
           "watchdog": {"role": "standby"}, "renewal_age": 0.4}
    one.update(mn1 or {})
    two.update(mn2 or {})
    base = {"primary": "mn1", "lag_limit_bytes": 16 << 20, "failover_delay": 3.75}
    base.update(kw)
    return rule.Facts(nodes={"mn1": rule.NodeFacts("mn1", **one), "mn2": rule.NodeFacts("mn2", **two)}, **base)


# The primary is dead as the master sees it: PostgreSQL closed, minion SIGKILLed (socket gone).
DEAD = {"pg_open": False, "connected": False, "age": 0.8}
# It fenced itself (lease ran out, nobody renewing): stopped boot-safe, minion and watchdog answer.
SELF_FENCED = {"pg_open": False, "heartbeat": {**PRIMARY_HB, "role": "stopped", "pg_up": False},
               "watchdog": {"role": "stopped", "fenced": True, "fence_reason": "enforced lease expired"}}
# ... and cut off: no heartbeat for a while, watchdog unreachable, minion socket not yet timed out.
CUT = {"pg_open": False, "connected": True, "age": 3.5, "watchdog": None}

CASES = [
    # name, facts, expected code, extra checks
    ("healthy pair", facts(), "healthy", {}),
    ("automation off", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB}, auto_failover=False), "disabled", {}),
    ("maintenance", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB}, maintenance=True), "maintenance", {}),
    ("paused", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB}, paused="by admin"), "paused", {}),
    ("orchestration running", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB}, busy="switchover running"), "busy", {}),
    ("both say primary", facts(mn2={"heartbeat": PRIMARY_HB}), "split-brain", {}),
    ("no primary known", facts(primary=None), "no-primary", {}),
    ("only the standby lost the primary (forged or real)", facts(mn2={"heartbeat": LOST_HB}), "standby-only", {}),
    ("PG dead, minion alive: restart in place",
     facts(mn1={"pg_open": False, "heartbeat": {**PRIMARY_HB, "pg_up": False}}, mn2={"heartbeat": LOST_HB}),
     "restart", {"action": rule.RESTART, "old": "mn1"}),
    ("PG dead, restarts used up: fail over, the minion makes it boot-safe",
     facts(mn1={"pg_open": False, "watchdog": None, "heartbeat": {**PRIMARY_HB, "pg_up": False}, "restarts": 2},
           mn2={"heartbeat": LOST_HB}),
     "failover", {"proof": rule.PROOF_MINION}),
    ("master cannot reach PG, node says it runs", facts(mn1={"pg_open": False}, mn2={"heartbeat": LOST_HB}),
     "master-only", {}),
    ("master lost it, standby still streams", facts(mn1=DEAD), "master-only", {}),
    ("PG + minion killed, watchdog answers: fail over, fenced by the watchdog",
     facts(mn1=DEAD, mn2={"heartbeat": LOST_HB}), "failover",
     {"action": rule.FAILOVER, "old": "mn1", "new": "mn2", "proof": rule.PROOF_WATCHDOG}),
    ("standby silent", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB, "age": 9.0}), "standby-silent", {}),
    ("standby's minion killed", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB, "connected": False}),
     "standby-silent", {}),
    ("standby not running", facts(mn1=DEAD, mn2={"heartbeat": {**LOST_HB, "pg_up": False, "role": "stopped"}}),
     "no-candidate", {}),
    ("standby deposed", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB, "deposed": True}), "deposed", {}),
    ("cooldown", facts(mn1=DEAD, mn2={"heartbeat": LOST_HB}, cooldown_left=120), "cooldown", {}),
    ("standby lags past the limit",
     facts(mn1=DEAD, mn2={"heartbeat": {**LOST_HB, "lsn": "0/1000000", "replayed": "0/1000000"}},
           lag_limit_bytes=1024), "lag", {}),
    ("lag unknown", facts(mn1={**DEAD, "heartbeat": {"role": "primary"}}, mn2={"heartbeat": LOST_HB}), "lag", {}),
    ("cut off, lease running", facts(mn1={**CUT, "renewal_age": 2.0}, mn2={"heartbeat": LOST_HB}),
     "lease-wait", {"wait": pytest.approx(1.75)}),
    ("cut off, lease surely over", facts(mn1={**CUT, "renewal_age": 3.8}, mn2={"heartbeat": LOST_HB}),
     "failover", {"proof": rule.PROOF_LEASE}),
    ("cut off, lease never enforced, no fence command",
     facts(mn1={**CUT, "renewal_age": 30, "watchdog_enforcing": False}, mn2={"heartbeat": LOST_HB}),
     "no-proof", {}),
    ("cut off, lease never enforced, fence command set",
     facts(mn1={**CUT, "renewal_age": 30, "watchdog_enforcing": False}, mn2={"heartbeat": LOST_HB},
           fence_cmd=True), "failover", {"proof": rule.PROOF_FENCE_CMD}),
    ("cut off, heartbeat still fresh and says PG up", facts(mn1={**CUT, "age": 1.0}, mn2={"heartbeat": LOST_HB}),
     "master-only", {}),
    ("primary fenced itself, nobody took over: it resumes",
     facts(mn1=SELF_FENCED, mn2={"heartbeat": LOST_HB}), "unfence",
     {"action": rule.UNFENCE, "old": "mn1", "new": "mn2"}),
    ("primary fenced itself, already restarted as a standby: it resumes",
     facts(mn1={**SELF_FENCED, "pg_open": True, "heartbeat": {**LOST_HB, "role": "standby"},
                "watchdog": {**SELF_FENCED["watchdog"], "role": "standby"}}, mn2={"heartbeat": LOST_HB}),
     "unfence", {"action": rule.UNFENCE}),
    ("primary fenced itself, peer silent with its port closed: it resumes",
     facts(mn1=SELF_FENCED, mn2={"heartbeat": LOST_HB, "age": 30, "pg_open": False}), "unfence", {}),
    ("primary fenced itself, peer silent with its port open: no unfence (it starts read-only)",
     facts(mn1=SELF_FENCED, mn2={"heartbeat": LOST_HB, "age": 30}), "restart", {}),
    ("primary fenced itself, tries used up: the ordinary rule (its last LSN unknown: no failover)",
     facts(mn1={**SELF_FENCED, "restarts": 2}, mn2={"heartbeat": LOST_HB}), "lag", {}),
    ("a deposed node is never unfenced (no failback)",
     facts(mn1={**SELF_FENCED, "deposed": True}, mn2={"heartbeat": LOST_HB}), "restart", {}),
    ("primary fenced itself while paused", facts(mn1=SELF_FENCED, mn2={"heartbeat": LOST_HB}, paused="by admin"),
     "paused", {}),
    ("recorded primary runs as a standby, not fenced: no writer, never 'healthy'",
     facts(mn1={"heartbeat": {**STANDBY_HB, "streaming": False}, "watchdog": {"role": "standby"}},
           mn2={"heartbeat": LOST_HB}), "no-writer", {}),
    ("failed node back, auto_rejoin", facts(mn1={"deposed": True, "heartbeat": {**LOST_HB, "role": "stopped"}},
                                            mn2={"heartbeat": PRIMARY_HB}, primary="mn2", auto_rejoin=True),
     "rejoin", {"action": rule.REJOIN, "old": "mn1", "new": "mn2"}),
    ("failed node back, no auto_rejoin", facts(mn1={"deposed": True, "heartbeat": {**LOST_HB, "role": "stopped"}},
                                               mn2={"heartbeat": PRIMARY_HB}, primary="mn2"), "healthy", {}),
]


@pytest.mark.parametrize("name, given, code, checks", CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, given, code, checks):
    decision = rule.decide(given)
    assert decision.code == code, f"{name}: {decision.reason}"
    assert decision.reason
    for key, value in checks.items():
        assert getattr(decision, key) == value, f"{name}: {key}"
    if code != "failover":
        assert decision.action != rule.FAILOVER


@pytest.mark.parametrize(
    "given, enforced",
    [
        (facts(), True),
        (facts(mn2={"heartbeat": LOST_HB}), False),  # no streaming standby: nobody would take over
        (facts(cooldown_left=10), False),
        (facts(paused="by admin"), False),
        (facts(mn2={"age": 10}), False),
        (facts(mn2={"deposed": True}), False),
    ],
)
def test_the_lease_is_enforced_only_when_a_failover_could_follow(given, enforced):
    assert rule.enforce_lease(given) is enforced


def test_a_failed_automatic_rejoin_is_not_retried_every_heartbeat():
    given = facts(mn1={"deposed": True, "heartbeat": {**LOST_HB, "role": "stopped"}},
                  mn2={"heartbeat": PRIMARY_HB}, primary="mn2", auto_rejoin=True, rejoin_failed="pg_rewind failed")
    assert rule.decide(given).action == rule.NONE


def test_a_stale_streaming_state_does_not_hide_a_lost_primary():
    """After a cut link the WAL receiver says "streaming" until wal_receiver_timeout."""
    given = facts(mn1=DEAD, mn2={"heartbeat": {**LOST_HB, "streaming": True}})
    assert rule.decide(given).code == "failover"


@pytest.mark.parametrize(
    "mode, loss_free, code",
    [
        ("sync", True, "failover"),  # every acknowledged commit is on the standby: lag does not matter
        ("sync", False, "not-loss-free"),  # the primary let writes through without the standby
        ("sync", None, "not-loss-free"),  # never told: no proof
        ("sync_strict", True, "failover"),
        ("async", None, "lag"),  # async keeps its lag limit
    ],
)
def test_replication_mode_decides_whether_a_lagging_standby_may_take_over(mode, loss_free, code):
    lagging = {**LOST_HB, "lsn": "0/1000000", "replayed": "0/1000000"}
    given = facts(mn1=DEAD, mn2={"heartbeat": lagging}, lag_limit_bytes=1024, mode=mode, loss_free=loss_free)
    assert rule.decide(given).code == code


def test_a_primary_whose_minion_answers_but_cannot_tell_is_restarted_first():
    unknown = {"pg_open": False, "heartbeat": {**PRIMARY_HB, "pg_up": None, "role": "unknown"}}
    assert rule.decide(facts(mn1=unknown, mn2={"heartbeat": LOST_HB})).code == "restart"
