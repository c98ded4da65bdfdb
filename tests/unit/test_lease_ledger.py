"""The lease ledger: boot-bound, atomic, private, and the takeover's hold on peer renewals."""

import json
import os
import stat
import threading

import pytest

from saltext_hamn.utils.lease import ledger


class Boot:
    def __init__(self, value="boot-a"):
        self.value = value

    def __call__(self):
        return self.value


@pytest.fixture
def boot():
    return Boot()


def test_missing_ledger_is_unarmed(tmp_path, boot):
    data = ledger.Ledger(str(tmp_path), boot).read()
    assert data == ledger.empty("boot-a") and data["enforcing"] is False and data["expiry"] is None


def test_update_writes_atomically_and_privately(tmp_path, boot):
    book = ledger.Ledger(str(tmp_path), boot)
    with book.update() as data:
        data.update(enforcing=True, expiry=123.5)
    path = tmp_path / ledger.LEDGER
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["expiry"] == 123.5
    assert book.read()["enforcing"] is True
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_failed_update_leaves_the_file_alone(tmp_path, boot):
    book = ledger.Ledger(str(tmp_path), boot)
    with book.update() as data:
        data["expiry"] = 10.0
    with pytest.raises(RuntimeError):
        with book.update() as data:
            data["expiry"] = 99.0
            raise RuntimeError("boom")
    assert book.read()["expiry"] == 10.0


def test_another_boot_voids_the_ledger(tmp_path, boot):
    book = ledger.Ledger(str(tmp_path), boot)
    with book.update() as data:
        data.update(enforcing=True, expiry=50.0, renewals={"master": 47.0})
    boot.value = "boot-b"
    assert book.read() == ledger.empty("boot-b")


def test_corrupt_ledger_reads_as_unarmed(tmp_path, boot):
    (tmp_path / ledger.LEDGER).write_text("{not json")
    assert ledger.Ledger(str(tmp_path), boot).read()["enforcing"] is False


def test_hold_peer_reports_the_age_of_the_last_renewal_and_release_clears_it(tmp_path, boot):
    state = str(tmp_path)
    assert ledger.hold_peer(state, clock=lambda: 100.0, read_boot_id=boot) is None  # never renewed
    with ledger.Ledger(state, boot).update() as data:
        data["peer_renew_sent"] = 98.5
    assert ledger.hold_peer(state, clock=lambda: 100.0, read_boot_id=boot) == 1.5
    data = ledger.Ledger(state, boot).read()
    assert data["hold_peer"] is True and data["hold_since"] == 100.0  # first hold's time kept
    ledger.release_peer(state, read_boot_id=boot)
    data = ledger.Ledger(state, boot).read()
    assert data["hold_peer"] is False and data["hold_since"] is None


def test_boottime_clock_and_boot_id_are_real():
    assert ledger.now() > 0 and len(ledger.boot_id()) == 36


def test_concurrent_updates_do_not_lose_writes(tmp_path, boot):
    book = ledger.Ledger(str(tmp_path), boot)

    def bump(sender):
        for _ in range(50):
            with book.update() as data:
                data["renewals"][sender] = data["renewals"].get(sender, 0) + 1

    threads = [threading.Thread(target=bump, args=(name,)) for name in ("master", "mn2", "x")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert book.read()["renewals"] == {"master": 50, "mn2": 50, "x": 50}


def test_a_second_watchdog_exits_or_waits_for_the_first(tmp_path):
    from saltext_hamn.utils.lease import daemon

    first = daemon.take_pid_lock(str(tmp_path))
    assert first is not None
    assert daemon.take_pid_lock(str(tmp_path)) is None  # the beacon's ensure: one runs, exit
    got = []
    waiter = threading.Thread(target=lambda: got.append(daemon.take_pid_lock(str(tmp_path), wait=True)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not got  # systemd's --wait instance: blocked while the first lives
    os.close(first)
    waiter.join(5)
    assert got and got[0] is not None
    os.close(got[0])
