"""The ``hamn`` beacon as Salt's loader sees it (no minion, no node needed)."""

import pytest
import salt.config
import salt.loader

from saltext_hamn.beacons import hamn as hamn_beacon
from saltext_hamn.utils.auto import heartbeat


@pytest.mark.parametrize("config", [
    [{"interval": 1}],
    [{"interval": 0.5}, {"enabled": True}],
    [],
    [{"interval": 2, "disable_during_state_run": False}, {"_beacon_name": "hamn"}],
])
def test_valid_configs(config):
    assert hamn_beacon.validate(config) == (True, "valid beacon configuration")


@pytest.mark.parametrize("config, message", [
    ({"interval": 1}, "must be a list of mappings"),
    (["interval"], "must be a list of mappings"),
    ([{"interval": 1}, {"intervall": 1}], "unknown option(s) intervall"),
    ([{"interval": 0}], "interval must be a number of seconds > 0, got 0"),
    ([{"interval": "1"}], "interval must be a number of seconds > 0, got '1'"),
    ([{"interval": True}], "interval must be a number of seconds > 0, got True"),
])
def test_invalid_configs(config, message):
    ok, comment = hamn_beacon.validate(config)
    assert ok is False and message in comment


@pytest.fixture
def loaded(tmp_path):
    """Salt's beacon loader over the installed package (the ``salt.loader`` entry point)."""
    opts = salt.config.minion_config(None)
    opts.update(id="mn1", cachedir=str(tmp_path), pillar={"hamn": None}, extension_modules=str(tmp_path / "ext"))
    return salt.loader.beacons(opts, {})


def test_loader_finds_the_beacon_through_the_entry_point(loaded):
    assert "hamn.beacon" in loaded and "hamn.validate" in loaded
    assert loaded["hamn.validate"]([{"interval": 1}])[0] is True


def test_beacon_returns_one_event_even_without_a_pillar(loaded):
    events = loaded["hamn.beacon"]([{"_beacon_name": "hamn"}])
    assert isinstance(events, list) and len(events) == 1
    payload = events[0]
    assert payload["v"] == heartbeat.VERSION and payload["node"] == "mn1" and payload["role"] == "unknown"
    assert payload["error"].startswith("config: hamn:nodes: required")
