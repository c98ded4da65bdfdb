"""Run records and the master's record: what makes a run unfinished, who is deposed."""

from saltext_hamn.utils.orch import runs


def plan(orchestration="switchover"):
    return {"orchestration": orchestration, "old": "mn1", "new": "mn2", "steps": ["handover", "promote"]}


def test_a_run_without_a_result_is_unfinished_unless_it_is_the_live_one(tmp_path):
    directory = str(tmp_path)
    assert runs.unfinished(directory) is None
    run = runs.start(directory, "a" * 32, "switchover", plan(), pid=1)
    runs.step_started(directory, run, "handover")
    assert runs.unfinished(directory, live_token="a" * 32) is None  # running now
    found = runs.unfinished(directory)
    assert (found.name, found.old, found.new, found.last_step) == ("switchover", "mn1", "mn2", "handover")
    runs.finish(directory, run, "done")
    assert runs.unfinished(directory) is None


def test_a_resumed_run_is_superseded_and_only_the_newest_counts(tmp_path):
    directory = str(tmp_path)
    runs.start(directory, "a" * 32, "switchover", plan(), pid=1)
    runs.start(directory, "b" * 32, "recover", plan("switchover"), pid=2)
    runs.supersede(directory, "a" * 32, "b" * 32)
    assert runs.load(directory, "a" * 32)["result"] == "resumed"
    found = runs.unfinished(directory)
    assert found.token == "b" * 32 and found.name == "switchover"  # the semantics of the resumed run


def test_facts_of_a_step_are_kept_for_a_resume(tmp_path):
    directory = str(tmp_path)
    run = runs.start(directory, "c" * 32, "failover", plan("failover"), pid=1)
    runs.step_started(directory, run, "fence-old")
    runs.step_ended(directory, run, "fence-old", "done", "fenced", fenced=["mn1"])
    runs.step_started(directory, run, "promote")
    runs.step_ended(directory, run, "promote", "done", "promoted", promoted=True)
    found = runs.unfinished(directory)
    assert found.fenced == ["mn1"] and found.promoted and found.last_step == "promote"


def test_the_record_keeps_deposed_nodes_until_they_rejoin(tmp_path):
    directory = str(tmp_path)
    runs.promoted(directory, "mn2", "mn1", "t" * 32, fenced=True)
    record = runs.record(directory)
    assert record["primary"] == "mn2" and "mn1" in record["deposed"]
    runs.promoted(directory, "mn1", "mn2", "u" * 32, fenced=False)  # mn1 promoted again: no longer deposed
    record = runs.record(directory)
    assert record["primary"] == "mn1" and record["deposed"] == {}
    runs.promoted(directory, "mn2", "mn1", "v" * 32, fenced=True)
    runs.rejoined(directory, "mn1")
    assert runs.record(directory)["deposed"] == {}


def test_old_runs_are_pruned(tmp_path):
    directory = str(tmp_path)
    for i in range(runs.KEEP_RUNS + 5):
        run = runs.start(directory, f"{i:032d}", "rejoin", plan("rejoin"), pid=1)
        runs.finish(directory, run, "done")
    assert len(list((tmp_path / "runs").iterdir())) == runs.KEEP_RUNS
