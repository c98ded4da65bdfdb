"""The decision core over a table of pair states: the plan, or the refusal and why."""

import pytest

from saltext_hamn.utils.orch import decide
from saltext_hamn.utils.orch.observation import NodeView, Observation, UnfinishedRun
from tests import support

ADDR = {"mn1": "198.51.100.11", "mn2": "198.51.100.12"}


def primary(lsn="0/5000000", vip=True, timeline=1, **extra):
    return {"role": "primary", "running": True, "timeline": timeline, "current_lsn": lsn, "vip": vip,
            "lag_bytes": 0, **extra}


def standby(of="mn1", received="0/5000000", streaming=True, vip=False, timeline=1, running=True, **extra):
    receiver = {"status": "streaming", "sender_host": ADDR[of]} if streaming else None
    return {"role": "standby", "running": running, "timeline": timeline, "received_lsn": received,
            "replayed_lsn": received, "wal_receiver": receiver, "vip": vip, **extra}


def stopped(**extra):
    return {"role": "stopped", "running": False, "timeline": 1, "vip": False, **extra}


SILENT = object()


def obs(mn1, mn2, port=None, last=None, error=None, cfg=None, record=None, **kwargs):
    """An Observation: a status dict per node, SILENT, or ("error", text)."""
    views = {}
    for name, value in (("mn1", mn1), ("mn2", mn2)):
        view = NodeView(name=name, address=ADDR[name], pg_port_open=(port or {}).get(name))
        if value is SILENT:
            view.last_known = (last or {}).get(name)
        elif isinstance(value, tuple):
            view.error = value[1]
        else:
            view.status = value
        views[name] = view
    return Observation(nodes=views, cfg=cfg or support.load(), record=record or {}, **kwargs)


FENCE = support.load(fence={"cmd": ["rpower", "{node}", "off"]})


# (orchestration, observation, expected: ("plan", new, old, key steps) or ("refused", text in the reason))
TABLE = [
    # healthy pair
    ("switchover", obs(primary(), standby()), ("plan", "mn2", "mn1", ["release-old", "switch", "settle", "verify"])),
    ("failover", obs(primary(), standby()), ("refused", "mn1 is a healthy primary")),
    ("rejoin", obs(primary(), standby()), ("plan", "mn1", "mn2", ["rejoin-old"])),
    ("recover", obs(primary(), standby()), ("plan", "mn1", "mn2", ["vip-up"])),
    # primary's PostgreSQL dead, its minion alive
    ("failover", obs(stopped(), standby(streaming=False)), ("plan", "mn2", "mn1", ["services-stop-old",
                                                                                   "demote-old", "take"])),
    ("switchover", obs(stopped(), standby(streaming=False)), ("refused", "no node runs as primary")),
    # primary's minion dead, PostgreSQL alive (port open), no fence command
    ("failover", obs(SILENT, standby(), port={"mn1": True}), ("refused", "its PostgreSQL port still answers")),
    ("failover", obs(SILENT, standby(), port={"mn1": True}, fenced_by_admin="mn1"),
     ("refused", "still answers the master")),
    ("failover", obs(SILENT, standby(), port={"mn1": True}, cfg=FENCE), ("plan", "mn2", "mn1", ["fence-old"])),
    # primary entirely silent
    ("failover", obs(SILENT, standby(streaming=False), port={"mn1": False}), ("refused", "no fence command")),
    ("failover", obs(SILENT, standby(streaming=False), port={"mn1": False}, fenced_by_admin="mn1"),
     ("plan", "mn2", "mn1", ["fence-old", "take"])),
    ("switchover", obs(SILENT, standby(streaming=False)), ("refused", "mn1 does not answer")),
    # standby silent: never touch the healthy primary
    ("failover", obs(primary(), SILENT), ("refused", "mn1 is a healthy primary and mn2 (standby) does not answer")),
    ("switchover", obs(primary(), SILENT), ("refused", "mn2 does not answer")),
    ("recover", obs(primary(), SILENT), ("plan", "mn1", "mn2", ["vip-up", "services-start"])),
    # both primary
    ("failover", obs(primary(timeline=2), primary(timeline=3)), ("refused", "split brain")),
    ("switchover", obs(primary(timeline=2), primary(timeline=3, vip=False)), ("refused", "split brain")),
    ("recover", obs(primary(timeline=2), primary(timeline=3, vip=False)), ("refused", "hamn.demote mn1")),
    # no primary at all
    ("failover", obs(stopped(), stopped()), ("refused", "nothing to promote")),
    ("recover", obs(standby(streaming=False, received="0/4000000"), standby(streaming=False)),
     ("plan", "mn2", "mn1", ["demote-old", "take"])),
    ("failover", obs(standby(streaming=False), standby(streaming=False)), ("refused", "both nodes are standbys")),
    # both silent / an error answer is not silence
    ("failover", obs(SILENT, SILENT), ("refused", "neither node answers")),
    ("failover", obs(("error", "hamn:vip:prefix: expected an integer"), standby(), cfg=FENCE),
     ("refused", "mn1 answered with an error")),
    # VIP nowhere / on the standby
    ("switchover", obs(primary(vip=False), standby()), ("plan", "mn2", "mn1", ["switch"])),
    ("switchover", obs(primary(vip=False), standby(vip=True)), ("refused", "the VIP is on the standby mn2")),
    ("recover", obs(primary(vip=False), standby(vip=True)), ("plan", "mn1", "mn2", ["vip-down-old", "vip-up"])),
    ("failover", obs(primary(), standby(vip=True)), ("refused", "both nodes hold the VIP")),
    # lag guard, from the old primary's last known position
    ("failover", obs(SILENT, standby(received="0/1000000"), port={"mn1": False}, cfg=FENCE,
                     last={"mn1": primary(lsn="0/9000000")}), ("refused", "bytes behind")),
    ("failover", obs(SILENT, standby(received="0/1000000"), port={"mn1": False}, cfg=FENCE,
                     last={"mn1": primary(lsn="0/9000000")}, force=True), ("plan", "mn2", "mn1", ["take"])),
    # a restarted standby's received LSN at the segment start: replayed is what it holds
    ("failover", obs(SILENT, standby(received="0/5000000", replayed_lsn="0/5000100"), port={"mn1": False},
                     cfg=support.load(fence={"cmd": ["f", "{node}"]}, lag_limit={"bytes": 256}),
                     last={"mn1": primary(lsn="0/5000100")}), ("plan", "mn2", "mn1", ["take"])),
    # standby not running
    ("failover", obs(SILENT, standby(running=False, streaming=False), cfg=FENCE), ("refused", "nothing to promote")),
    # maintenance
    ("switchover", obs(primary(), standby(), cfg=support.load(maintenance=True)), ("refused", "maintenance")),
]


@pytest.mark.parametrize("orchestration, observation, expected", TABLE)
def test_decision_table(orchestration, observation, expected):
    if expected[0] == "refused":
        with pytest.raises(decide.Refused) as caught:
            decide.decide(orchestration, observation)
        assert expected[1] in str(caught.value)
        assert caught.value.next_action  # every refusal says what to do next
        return
    plan = decide.decide(orchestration, observation)
    _, new, old, key_steps = expected
    assert (plan.new, plan.old) == (new, old)
    for step in key_steps:
        assert step in plan.steps, plan.steps
    assert plan.steps == [s for s in decide.ORDER if s in plan.steps]  # canonical order


def test_failover_fences_only_a_silent_old_primary():
    answering = decide.decide("failover", obs(stopped(), standby(streaming=False)))
    assert "fence-old" not in answering.steps and "demote-old" in answering.steps
    silent = decide.decide("failover", obs(SILENT, standby(streaming=False), port={"mn1": False}, cfg=FENCE))
    assert silent.steps[:2] == ["fence-old", "take"] and not silent.old_answers
    assert not set(silent.steps) & {"services-stop-old", "demote-old", "vip-down-old"}


def test_optional_steps_follow_the_pillar():
    plain = decide.decide("failover", obs(stopped(), standby(streaming=False)))
    assert "service-nodes-stop" not in plain.steps and "diskless-reset" not in plain.steps
    cfg = support.load(services={"service_nodes": {"target": "sn*"}},
                       hooks={"diskless_reset": {"enabled": True, "noderange": "compute"}})
    full = decide.decide("failover", obs(stopped(), standby(streaming=False), cfg=cfg))
    assert {"service-nodes-stop", "service-nodes-start", "diskless-reset"} <= set(full.steps)
    # A switchover's own steps do the service nodes and the reset when configured (steps.py).
    assert decide.decide("switchover", obs(primary(), standby(), cfg=cfg)).steps == list(decide.SWITCHOVER)


def unfinished(name, last_step, **kwargs):
    return UnfinishedRun(name=name, token="abcdef0123456789", old="mn1", new="mn2", last_step=last_step, **kwargs)


# Each point at which a switchover mn1 -> mn2 can be interrupted, and what a re-run does.
# Every step is idempotent: a resumed switchover runs the same list and each step
# picks up where the interrupted one stopped.
INTERRUPTED = [
    ("in release-old", obs(primary(), standby())),
    ("after release-old", obs(stopped(vip=True), standby(streaming=False))),
    ("in switch, promoted", obs(stopped(vip=True), primary(vip=False, timeline=2))),
    ("in switch, VIP moved", obs(stopped(), primary(timeline=2))),
    ("after switch", obs(standby(of="mn2", timeline=2), primary(timeline=2))),
    ("in settle", obs(standby(of="mn2", timeline=2), primary(timeline=2))),
]


@pytest.mark.parametrize("point, observation", INTERRUPTED)
@pytest.mark.parametrize("rerun", ["switchover", "recover"])
def test_an_interrupted_switchover_resumes_towards_its_goal(point, observation, rerun):
    observation.unfinished = unfinished("switchover", point.split(",")[0].split()[-1])
    plan = decide.decide(rerun, observation)
    assert (plan.new, plan.old, plan.resume_of) == ("mn2", "mn1", "abcdef0123456789")
    assert plan.orchestration == "switchover"
    assert plan.steps == list(decide.SWITCHOVER), point


def test_an_interrupted_run_blocks_other_orchestrations():
    observation = obs(stopped(), standby(streaming=False), unfinished=unfinished("switchover", "release-old"))
    with pytest.raises(decide.Refused, match="interrupted switchover .* never finished") as caught:
        decide.decide("failover", observation)
    assert "hamn.recover" in caught.value.next_action


def test_an_interrupted_switchover_whose_old_node_went_silent_needs_a_fence():
    observation = obs(SILENT, standby(streaming=False), port={"mn1": False},
                      unfinished=unfinished("switchover", "release-old"))
    with pytest.raises(decide.Refused, match="no fence command"):
        decide.decide("switchover", observation)
    observation.cfg = FENCE
    assert "fence-old" in decide.decide("switchover", observation).steps


def test_the_node_to_demote_in_a_split_brain():
    deposed = obs(primary(timeline=3), primary(timeline=2), record={"primary": "mn2", "deposed": {"mn1": {}}})
    assert decide.node_to_demote(deposed) == "mn1"  # the master's record beats the timeline
    by_timeline = obs(primary(timeline=2), primary(timeline=3))
    assert decide.node_to_demote(by_timeline) == "mn1"
    assert decide.node_to_demote(obs(primary(timeline=2), primary(timeline=2))) is None


def test_a_deposed_node_running_writable_is_demoted_on_first_contact():
    record = {"primary": "mn2", "deposed": {"mn1": {"run": "x"}}}
    assert decide.deposed_to_demote(obs(primary(), primary(timeline=2), record=record)) == ["mn1"]
    assert decide.deposed_to_demote(obs(standby(of="mn2"), primary(timeline=2), record=record)) == []
    assert decide.deposed_to_demote(obs(SILENT, primary(timeline=2), record=record)) == []


def test_evidence_that_a_silent_primary_still_serves_blocks_the_admins_word():
    view_of_standby = standby(streaming=False, peer_postgres={"reachable": True})
    with pytest.raises(decide.Refused, match="mn2 still reaches its PostgreSQL port"):
        decide.decide("failover", obs(SILENT, view_of_standby, port={"mn1": False}, fenced_by_admin="mn1"))
    on_vip = obs(SILENT, standby(streaming=False), port={"mn1": False}, fenced_by_admin="mn1", vip_port_open=True)
    with pytest.raises(decide.Refused, match="still answers on the VIP"):
        decide.decide("failover", on_vip)


@pytest.mark.parametrize("mode", ["async", "sync", "sync_strict"])
def test_a_switchover_is_the_same_in_every_replication_mode(mode):
    # The old primary restarts as the new one's standby inside the switch step, before
    # services and hooks run: in the sync modes their commits do not wait for a rejoin.
    cfg = support.load(postgres={"replication": {"mode": mode}})
    steps = decide.decide("switchover", obs(primary(), standby(), cfg=cfg)).steps
    assert steps == list(decide.SWITCHOVER) == [s for s in decide.ORDER if s in steps]
