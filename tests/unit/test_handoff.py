"""The switchover handoff's pure parts: the words it exchanges and when the VIP is free."""

import pytest

from saltext_hamn.states import hamn_orch
from saltext_hamn.utils import handoff
from saltext_hamn.utils.errors import HamnError


def test_the_words_carry_the_run_and_fit_an_application_name():
    run = "0123456789abcdef"
    assert handoff.marker(run) == "hamn-handoff-0123456789abcdef"
    released = handoff.marker(run, "released-0a1b2c3d4e5f")
    assert released.endswith("-released-0a1b2c3d4e5f") and len(released) <= 63  # NAMEDATALEN - 1
    for bad in ("", "ABC", "12;drop", "x" * 8):
        with pytest.raises(HamnError, match="run token's hex"):
            handoff.marker(bad)


@pytest.mark.parametrize("holders, dropped, free", [
    (["0a:1b:2c:3d:4e:5f"], "0a1b2c3d4e5f", True),  # only the old node held it, and dropped it
    ([], "0a1b2c3d4e5f", True),  # the survey missed its answer: still only the old node's
    ([], "none", True),  # nobody held it
    (["0a:1b:2c:3d:4e:5f"], "none", False),  # someone held it, and it was not the old node
    (["99:99:99:99:99:99"], "0a1b2c3d4e5f", False),  # a third host answered the survey
])
def test_the_vip_is_taken_without_a_full_probe_only_when_nobody_else_held_it(holders, dropped, free):
    assert handoff._proven_free(holders, dropped) is free  # pylint: disable=protected-access


def test_an_orchestration_step_fails_with_one_line_and_never_raises(monkeypatch):
    monkeypatch.setattr(hamn_orch, "__opts__", {"cachedir": "/nonexistent"}, raising=False)

    def refused(master, orchestration):  # pylint: disable=unused-argument
        raise HamnError("switchover refused: mn2 lags\nNext: wait")

    def broken(master, orchestration):  # pylint: disable=unused-argument
        raise TypeError("unexpected keyword")

    ret = hamn_orch._state("begin", refused, "switchover")  # pylint: disable=protected-access
    assert ret["result"] is False and ret["comment"] == "Next: wait"
    ret = hamn_orch._state("begin", broken, "switchover")  # pylint: disable=protected-access
    assert ret["result"] is False and "internal error (TypeError" in ret["comment"]
    ret = hamn_orch._state("begin", lambda m, o: f"run: {o}", "switchover")  # pylint: disable=protected-access
    assert ret["result"] is True and ret["changes"] == {"return": "run: switchover"}


class FakeClaim:
    """The new node's VIP handles: survey answers, whether the full probe hears anyone."""

    def __init__(self, survey, full=()):
        self.survey_answers, self.full_answers, self.taken = list(survey), list(full), False
        self.address = "198.51.100.10"

    def __call__(self, cfg, netns=None):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def held(self):
        return False

    def survey(self):
        return self.survey_answers

    def full_probe(self):
        return self.full_answers

    def take(self):
        self.taken = True
        return {"changed": True}


OLD_MAC = "0a:1b:2c:3d:4e:5f"


THIRD = "99:99:99:99:99:99"


@pytest.mark.parametrize("survey, released_mac, full, outcome, asks", [
    ([OLD_MAC], OLD_MAC, [], True, "once"),  # the fenced old node held it and released it: taken at once
    ([OLD_MAC], None, [], False, "until the deadline"),  # its watchdog did not answer: the full probe found nobody
    ([OLD_MAC], None, [OLD_MAC], "in use", "until the deadline"),  # ... or found it still there: refused
    ([THIRD], OLD_MAC, [THIRD], "in use", "once"),  # a third host answered
    ([OLD_MAC, THIRD], OLD_MAC, [], "several hosts", "never"),
    # The 5 ms survey heard nobody (a busy host), the full probe hears the old node: it is asked then.
    ([], OLD_MAC, [OLD_MAC], True, "once"),
    ([], None, [OLD_MAC], "in use", "until the deadline"),
    ([], OLD_MAC, [THIRD], "in use", "once"),  # the holder is not the node that released
    ([], OLD_MAC, [], False, "never"),  # nobody holds it: taken after the full probe, nobody asked
])
def test_an_automatic_takeover_takes_the_vip_from_the_fenced_node_only_on_its_word(
        monkeypatch, survey, released_mac, full, outcome, asks):
    from saltext_hamn.utils.auto import takeover  # pylint: disable=import-outside-toplevel
    from saltext_hamn.utils.lease import protocol  # pylint: disable=import-outside-toplevel
    from tests import support  # pylint: disable=import-outside-toplevel

    claim = FakeClaim(survey, full)
    monkeypatch.setattr(takeover.handover, "Claim", claim)
    asked = []

    def exchange(host, port, key, op, sender, args=None, timeout=0.5):  # pylint: disable=unused-argument
        asked.append((host, op, sender))
        if released_mac is None:
            raise HamnError("lease watchdog at 198.51.100.11:7999: no answer within 1s")
        return {"vip_released": True, "mac": released_mac}

    monkeypatch.setattr(protocol, "exchange", exchange)
    monkeypatch.setattr(takeover, "RELEASE_SECONDS", 0.3)  # a silent watchdog is asked again for this long
    cfg = support.load()
    if isinstance(outcome, str):
        with pytest.raises(HamnError, match=outcome):
            takeover.take_from_fenced_peer(cfg, "mn2")
        assert not claim.taken
    else:
        got = takeover.take_from_fenced_peer(cfg, "mn2")
        assert claim.taken and got["released_by_peer"] is outcome
    assert set(asked) <= {(cfg["nodes"]["mn1"]["address"], "release-vip", "mn2")}
    assert {"never": len(asked) == 0, "once": len(asked) == 1, "until the deadline": len(asked) > 1}[asks], asked
