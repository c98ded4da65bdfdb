"""Each step re-checks its preconditions when it runs (a fake master side: ctx)."""

import pytest

from saltext_hamn.utils.orch import decide, steps
from tests.unit.test_decide import FENCE, SILENT, obs, primary, standby, stopped


class FakeCtx:
    """Answers observe() from a list of observations; records calls, fences, probes."""

    def __init__(self, *observations, port_open=(False,), fence_ok=True):
        self.observations = list(observations)
        self.calls, self.fenced = [], []
        self.port_open = list(port_open)
        self.fence_ok = fence_ok
        self.cfg = FENCE
        self.answers = {}

    def observe(self, fresh=False):  # pylint: disable=unused-argument
        return self.observations.pop(0) if len(self.observations) > 1 else self.observations[0]

    def call(self, node, fun, args=(), kwargs=None, timeout=300):  # pylint: disable=unused-argument
        self.calls.append((node, fun))
        return self.answers.get(fun, {"lsn": "0/5000000"})

    def call_each(self, calls, timeout=300):  # pylint: disable=unused-argument
        self.calls.append(sorted((node, fun, tuple(sorted((kwargs or {}).items()))) for node, (fun, _, kwargs)
                                 in calls.items()))
        return {node: self.answers.get(fun, {}) for node, (fun, _, _) in calls.items()}

    def fence(self, node):
        if not self.fence_ok:
            raise steps.StepRefused("fencing failed")
        self.fenced.append(node)
        return "fence command exit 0"

    def probe_pg(self, node):  # pylint: disable=unused-argument
        return self.port_open.pop(0) if len(self.port_open) > 1 else self.port_open[0]

    def config(self):
        return self.cfg

    def promoted(self, plan, run):
        self.calls.append((plan["new"], "record-promoted"))

    def rejoined(self, node):
        self.calls.append((node, "record-rejoined"))


def run_of(plan, **extra):
    return {"token": "t" * 32, "plan": plan.as_dict(), "fenced": [], **extra}


def failover_plan(observation):
    return decide.decide("failover", observation)


def test_take_refuses_while_the_old_primary_answers_as_primary_or_holds_the_vip():
    plan = failover_plan(obs(stopped(), standby(streaming=False)))
    ctx = FakeCtx(obs(primary(), standby(streaming=False)))  # it came back as primary meanwhile
    with pytest.raises(steps.StepRefused, match="mn1 answers as primary"):
        steps.run_step(ctx, run_of(plan), "take")
    ctx = FakeCtx(obs(stopped(vip=True), standby(streaming=False)))  # vip-down-old did not happen
    with pytest.raises(steps.StepRefused, match="mn1 still holds the VIP"):
        steps.run_step(ctx, run_of(plan), "take")
    assert not any(fun == "hamn.takeover" for _, fun in ctx.calls)


def test_take_of_a_silent_old_primary_needs_a_fence_of_this_run_and_a_closed_port():
    plan = failover_plan(obs(SILENT, standby(streaming=False), port={"mn1": False}, cfg=FENCE))
    silent = obs(SILENT, standby(streaming=False), port={"mn1": False}, cfg=FENCE)
    with pytest.raises(steps.StepRefused, match="does not answer and was not fenced"):
        steps.run_step(FakeCtx(silent), run_of(plan), "take")
    port_open = obs(SILENT, standby(streaming=False), port={"mn1": True}, cfg=FENCE)
    with pytest.raises(steps.StepRefused, match="port still answers"):
        steps.run_step(FakeCtx(port_open), run_of(plan, fenced=["mn1"]), "take")
    ctx = FakeCtx(silent)
    result = steps.run_step(ctx, run_of(plan, fenced=["mn1"]), "take")
    assert ctx.calls == [("mn2", "hamn.takeover"), ("mn2", "record-promoted")]
    assert result["facts"] == {"promoted": True}


def test_fence_waits_for_the_port_to_close_and_records_the_node():
    plan = failover_plan(obs(SILENT, standby(streaming=False), port={"mn1": True}, cfg=FENCE))
    ctx = FakeCtx(obs(SILENT, standby(streaming=False), port={"mn1": True}, cfg=FENCE), port_open=(True, False))
    result = steps.run_step(ctx, run_of(plan), "fence-old")
    assert ctx.fenced == ["mn1"] and result["facts"]["fenced"] == ["mn1"]


def test_fence_refuses_when_the_old_node_answers_again():
    plan = failover_plan(obs(SILENT, standby(streaming=False), port={"mn1": False}, cfg=FENCE))
    ctx = FakeCtx(obs(stopped(), standby(streaming=False), cfg=FENCE))
    with pytest.raises(steps.StepRefused, match="answers again"):
        steps.run_step(ctx, run_of(plan), "fence-old")
    assert not ctx.fenced


def test_failover_never_touches_the_old_primary_before_the_standby_is_promotable():
    plan = failover_plan(obs(stopped(), standby(streaming=False)))
    gone = FakeCtx(obs(stopped(), SILENT))
    for step in ("services-stop-old", "demote-old"):
        with pytest.raises(steps.StepRefused, match="no longer answers as a running standby"):
            steps.run_step(gone, run_of(plan), step)
    assert gone.calls == []
    plan = failover_plan(obs(SILENT, standby(streaming=False), port={"mn1": False}, cfg=FENCE))
    gone = FakeCtx(obs(SILENT, SILENT, cfg=FENCE))
    with pytest.raises(steps.StepRefused):
        steps.run_step(gone, run_of(plan), "fence-old")
    assert gone.fenced == []


def test_vip_goes_up_only_on_a_primary_and_never_while_the_old_node_holds_it():
    plan = decide.decide("recover", obs(stopped(), primary(vip=False, timeline=2)))
    assert (plan.new, plan.old) == ("mn2", "mn1") and "vip-up" in plan.steps
    with pytest.raises(steps.StepRefused, match="mn2 is not primary"):
        steps.run_step(FakeCtx(obs(stopped(), standby(streaming=False))), run_of(plan), "vip-up")
    with pytest.raises(steps.StepRefused, match="mn1 still holds it"):
        steps.run_step(FakeCtx(obs(stopped(vip=True), primary(vip=False, timeline=2))), run_of(plan), "vip-up")
    ctx = FakeCtx(obs(stopped(), primary(vip=False, timeline=2)))
    steps.run_step(ctx, run_of(plan), "vip-up")
    assert ctx.calls == [("mn2", "hamn.vip_up")]


def test_steps_outside_the_plan_are_skipped_and_a_missing_target_fails():
    plan = decide.decide("switchover", obs(primary(), standby()))
    ctx = FakeCtx(obs(primary(), standby()))
    assert steps.run_step(ctx, run_of(plan), "fence-old")["skipped"]
    broken = run_of(plan)
    broken["plan"]["old"] = None
    with pytest.raises(steps.StepRefused, match="names no old node"):
        steps.run_step(ctx, broken, "release-old")


def test_release_old_hands_over_only_a_clean_shutdown_checkpoint():
    plan = decide.decide("switchover", obs(primary(), standby()))
    ctx = FakeCtx(obs(primary(), standby()))
    ctx.answers["hamn.release_primary"] = {"lsn": "0/5000000", "state": "shut down", "was_role": "primary"}
    result = steps.run_step(ctx, run_of(plan), "release-old")
    assert ctx.calls == [("mn1", "hamn.release_primary")] and result["facts"] == {"handover_lsn": "0/5000000"}
    ctx.answers["hamn.release_primary"] = {"lsn": None, "state": "in production", "was_role": "primary"}
    with pytest.raises(steps.StepRefused, match="did not stop cleanly .* hamn.recover"):
        steps.run_step(ctx, run_of(plan), "release-old")
    # Resumed after the role moved: the old node runs as a standby and is left running.
    ctx.answers["hamn.release_primary"] = {"lsn": None, "was_role": "standby"}
    assert "already runs as a standby" in steps.run_step(ctx, run_of(plan), "release-old")["comment"]


def test_switch_runs_both_sides_at_once_with_the_handover_position_and_records_the_promotion():
    plan = decide.decide("switchover", obs(primary(), standby()))
    ctx = FakeCtx(obs(primary(), standby()))
    ctx.answers["hamn.take_over"] = {"promotion": {"changed": True, "timeline": 2}, "released_by_peer": True,
                                     "vip": {"at": {"vip_raised": 100.004}}}
    ctx.answers["hamn.release_vip"] = {"at": {"vip_dropped": 100.001}, "vip_dropped": True, "standby_started": True}
    run = run_of(plan, handover_lsn="0/5000000")
    result = steps.run_step(ctx, run, "switch")
    token = run["token"][:16]
    assert ctx.calls == [[("mn1", "hamn.release_vip", (("run", token),)),
                          ("mn2", "hamn.take_over", (("force", False), ("lsn", "0/5000000"), ("run", token)))],
                         ("mn2", "record-promoted")]
    assert result["details"]["vip_nowhere_ms"] == 3.0 and "on no node for 3.0 ms" in result["comment"]
    assert result["details"]["moment_at"] == 100.004  # the drill's marker: when the VIP answered again


def test_settle_runs_the_new_primary_and_the_old_one_at_once_and_records_the_rejoin():
    plan = decide.decide("switchover", obs(primary(), standby()))
    ctx = FakeCtx(obs(primary(), standby()))
    ctx.answers["hamn.follow"] = {"method": "restart as standby (clean handover, no rewind)"}
    result = steps.run_step(ctx, run_of(plan), "settle")
    assert ctx.calls == [[("mn1", "hamn.follow", ()), ("mn2", "hamn.settle_primary", ())]
                         , ("mn1", "record-rejoined")]
    assert "no rewind" in result["comment"]


def test_every_step_has_a_description_for_every_orchestration():
    for orchestration in decide.ORCHESTRATIONS:
        for step in decide.ORDER:
            assert "{" not in steps.describe(step, orchestration)
