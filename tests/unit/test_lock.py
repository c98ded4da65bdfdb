"""The master's orchestration lock: real files, real processes, real flock."""

import json
import multiprocessing
import os
import stat
import subprocess
import time
from collections import defaultdict

import pytest

from saltext_hamn.utils.orch import lock

ROUNDS = 50
HELD_LINE = (
    r"^another hamn orchestration is running: switchover \(run [0-9a-f]{{8}}, pid {pid}, "
    r"since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\); refusing to start failover$"
)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "hamn" / "orchestration.lock")


@pytest.fixture
def sleeper():
    """A live process to hold locks on behalf of; killed and reaped at the end."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def mode(file_path):
    return stat.S_IMODE(os.stat(file_path).st_mode)


def rewrite(file_path, **changes):
    """Edit the stored holder record in place (a record this process could not create)."""
    with open(file_path, encoding="utf-8") as handle:
        record = json.load(handle)
    record.update(changes)
    with open(file_path, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    return record


def wait_for_zombie(pid):
    for _ in range(200):
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never became a zombie")


def test_take_reenter_and_release_by_the_owner(path):
    taken = lock.acquire(path, "switchover")
    holder = taken["holder"]
    assert taken["took_over"] is None and taken["reentrant"] is False
    assert (holder["name"], holder["pid"], holder["pid_start"]) == ("switchover", os.getpid(), lock.owner()[1])
    assert len(holder["token"]) == 32 and holder["host"] and holder["started"] <= time.time()
    assert lock.read(path) == holder
    assert (mode(path), mode(f"{path}.guard"), mode(os.path.dirname(path))) == (0o600, 0o600, 0o700)

    again = lock.acquire(path, "failover")  # same run, whatever the name: the caller decides
    assert again == {"holder": holder, "took_over": None, "reentrant": True}

    assert lock.release(path) is True
    assert not os.path.exists(path)
    assert lock.release(path) is False
    assert [name for name in os.listdir(os.path.dirname(path)) if name.startswith(".")] == []  # no temp files


def test_a_refused_second_run_cannot_release_the_running_one(path, sleeper):
    running = lock.acquire(path, "switchover", pid=sleeper.pid)["holder"]
    with pytest.raises(lock.LockHeld):
        lock.acquire(path, "failover")
    assert lock.release(path) is False  # the refused run's unlock
    assert lock.release_token(path, "0" * 32) is False
    assert lock.release_token(path, "") is False
    assert lock.read(path) == running
    assert lock.release(path, pid=sleeper.pid) is True
    assert lock.read(path) is None


def test_release_token_matches_only_its_token(path, sleeper):
    token = lock.acquire(path, "switchover", pid=sleeper.pid)["holder"]["token"]
    assert lock.release_token(path, token[:8]) is False
    assert lock.release_token(path, token) is True
    assert lock.release_token(path, token) is False  # already gone


def test_a_live_holder_is_refused_until_it_is_dead(path, sleeper):
    running = lock.acquire(path, "switchover", pid=sleeper.pid)["holder"]
    with pytest.raises(lock.LockHeld, match=HELD_LINE.format(pid=sleeper.pid)) as refused:
        lock.acquire(path, "failover")
    assert running["token"][:8] in str(refused.value)
    assert lock.holder_state(path) == {"record": running, "alive": True, "dead_reason": None}

    sleeper.kill()
    sleeper.wait()
    assert lock.holder_state(path)["dead_reason"] == f"pid {sleeper.pid} gone"
    taken = lock.acquire(path, "failover")
    assert taken["took_over"] == running and taken["reentrant"] is False
    assert taken["holder"]["token"] != running["token"]


def test_a_zombie_holder_is_dead(path, sleeper):
    zombie = lock.acquire(path, "switchover", pid=sleeper.pid)["holder"]
    sleeper.kill()  # not reaped: the fixture does that
    wait_for_zombie(sleeper.pid)
    assert lock.holder_state(path)["alive"] is False
    assert lock.holder_state(path)["dead_reason"] == f"pid {sleeper.pid} is a zombie"
    assert lock.acquire(path, "failover")["took_over"] == zombie


def test_a_recycled_pid_is_not_the_holder(path):
    lock.acquire(path, "switchover")
    old = rewrite(path, pid_start=lock.owner()[1] - 1)  # our pid, but an earlier process
    assert lock.holder_state(path)["dead_reason"] == f"pid {os.getpid()} recycled"
    assert lock.release(path) is False
    taken = lock.acquire(path, "failover")
    assert taken["took_over"] == old and taken["reentrant"] is False


def test_a_holder_on_another_host_is_refused(path):
    lock.acquire(path, "switchover")
    other = rewrite(path, host="elsewhere.example")
    with pytest.raises(lock.LockHeld, match=r"pid \d+ on elsewhere\.example, since .*refusing to start failover"):
        lock.acquire(path, "failover")
    state = lock.holder_state(path)
    assert state == {"record": other, "alive": None, "dead_reason": "on another host (elsewhere.example)"}
    assert lock.release(path) is False
    assert lock.read(path) == other


@pytest.mark.parametrize("content", ["{not json", "[]", '{"name": "switchover", "pid": 1}'])
def test_a_corrupt_lock_file_is_refused_and_left_alone(path, content):
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    with pytest.raises(lock.LockHeld, match=rf"{path} is unreadable .*inspect it and remove it by hand"):
        lock.acquire(path, "failover")
    assert lock.release(path) is False
    assert lock.read(path) is None
    state = lock.holder_state(path)
    assert state["record"] is None and "remove it by hand" in state["dead_reason"]
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == content


def test_owner_of_a_process_that_is_gone(sleeper):
    assert lock.owner(sleeper.pid)[0] == sleeper.pid
    sleeper.kill()
    sleeper.wait()
    with pytest.raises(lock.HamnError, match=f"no process with pid {sleeper.pid}"):
        lock.owner(sleeper.pid)


def racer(paths, barrier, results):
    """One contender: each round, start together with the other one and try to take the lock."""
    for index, path in enumerate(paths):
        barrier.wait(timeout=10)
        try:
            lock.acquire(path, "switchover")
            outcome = "won"
        except lock.LockHeld:
            outcome = "held"
        except Exception as exc:  # reported to the test, not lost in the child
            outcome = f"error {exc!r}"
        results.put((index, os.getpid(), outcome))
    # Stay alive until the other one is done too: a winner that exits first is a dead
    # holder, whose lock the other one may rightly take over (seen in the last round
    # on a loaded machine).
    barrier.wait(timeout=30)


def race(paths):
    """Two processes race for each path; returns {round: {pid: outcome}}."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [context.Process(target=racer, args=(paths, barrier, results)) for _ in range(2)]
    for process in racers:
        process.start()
    rounds = defaultdict(dict)
    try:
        for _ in range(2 * len(paths)):
            index, pid, outcome = results.get(timeout=30)
            rounds[index][pid] = outcome
    finally:
        for process in racers:
            process.join(timeout=10)
            if process.is_alive():  # a racer stuck at the barrier: do not leave it behind
                process.kill()
                process.join()
    assert [process.exitcode for process in racers] == [0, 0]
    return rounds


def assert_one_winner_each_round(paths, rounds):
    for index, path in enumerate(paths):
        outcomes = rounds[index]
        assert sorted(outcomes.values()) == ["held", "won"], f"round {index}: {outcomes}"
        winner = next(pid for pid, outcome in outcomes.items() if outcome == "won")
        assert lock.read(path)["pid"] == winner


def test_two_starters_racing_for_a_free_lock_one_wins(tmp_path):
    paths = [str(tmp_path / f"round{index}" / "orchestration.lock") for index in range(ROUNDS)]
    assert_one_winner_each_round(paths, race(paths))


def test_two_starters_racing_to_take_over_a_dead_holder_one_wins(tmp_path, sleeper):
    paths = [str(tmp_path / f"round{index}" / "orchestration.lock") for index in range(ROUNDS)]
    for path in paths:
        lock.acquire(path, "switchover", pid=sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    assert_one_winner_each_round(paths, race(paths))
