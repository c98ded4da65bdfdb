"""The heartbeat payload over fakes: no PostgreSQL, no network."""

import json

import pytest

from saltext_hamn.utils.auto import heartbeat
from saltext_hamn.utils.errors import HamnError
from tests import support

PASSWORD = "Hb-Secret-Pw-4711"
LEASE_KEY = "ab" * 32
MASTER = ("198.51.100.1", 4506)
PEER_MN1 = "198.51.100.12"  # mn2, seen from mn1
PEER_MN2 = "198.51.100.11"
KEYS = {"v", "node", "seq", "at", "role", "pg_up", "timeline", "lsn", "replayed", "lag_bytes", "streaming",
        "vip", "reaches_peer_pg", "reaches_master", "lease", "maintenance", "error"}

PRIMARY = {
    "role": "primary", "running": True, "in_recovery": False, "timeline": 3,
    "current_lsn": "0/3000148", "received_lsn": None, "replayed_lsn": None,
    "lag_bytes": 0, "lag_seconds": 0.0, "wal_receiver": None,
}
STANDBY = {
    "role": "standby", "running": True, "in_recovery": True, "timeline": 3,
    "current_lsn": None, "received_lsn": "0/3000148", "replayed_lsn": "0/3000100", "lag_bytes": 72,
    "wal_receiver": {"status": "streaming", "sender_host": PEER_MN2, "slot": "hamn_mn2", "last_msg_seconds": 0.1},
}
STOPPED = {"role": "stopped", "running": False, "timeline": 3, "current_lsn": None, "received_lsn": None,
           "replayed_lsn": None, "lag_bytes": None, "wal_receiver": None}


def cfg(**extra):
    return support.load(postgres={"replication": {"password": PASSWORD}},
                        heartbeat={"lease_key": LEASE_KEY}, **extra)


@pytest.fixture
def node(monkeypatch):
    """Fakes for the three things a heartbeat reads; tests change ``state``."""
    state = {"info": PRIMARY, "vip": True, "reach": {"reaches_peer_pg": True, "reaches_master": True},
             "calls": []}

    def collect(cluster, **kwargs):
        state["calls"].append(("collect", kwargs))
        if isinstance(state["info"], Exception):
            raise state["info"]
        return dict(state["info"])

    def held(address, interface):
        if isinstance(state["vip"], Exception):
            raise state["vip"]
        return state["vip"]

    def reachable(targets, timeout, netns=None):
        state["calls"].append(("probe", dict(targets), timeout))
        return {name: state["reach"][name] for name in targets}

    monkeypatch.setattr(heartbeat.pg_status, "collect", collect)
    monkeypatch.setattr(heartbeat.vip, "held", held)
    monkeypatch.setattr(heartbeat, "tcp_reachable", reachable)
    return state


def build(me="mn1", lease=lambda cfg, me, netns=None: None, **extra):
    return heartbeat.build(cfg(**extra), me, MASTER, lease=lease)


def test_primary(node):
    payload = build()
    assert set(payload) == KEYS
    assert payload["v"] == 1 and payload["node"] == "mn1" and isinstance(payload["at"], float)
    assert (payload["role"], payload["pg_up"], payload["timeline"]) == ("primary", True, 3)
    assert (payload["lsn"], payload["replayed"], payload["lag_bytes"]) == ("0/3000148", None, 0)
    assert payload["streaming"] is False
    assert (payload["vip"], payload["reaches_peer_pg"], payload["reaches_master"]) == (True, True, True)
    assert (payload["maintenance"], payload["error"], payload["lease"]) == (False, None, None)
    # One bounded local session; the peer's PostgreSQL and the master's ret port probed together.
    assert ("collect", {"timeout": 2, "statement_timeout_ms": 500}) in node["calls"]
    assert ("probe", {"reaches_peer_pg": (PEER_MN1, 5432), "reaches_master": MASTER}, 0.3) in node["calls"]


def test_standby_streaming_from_the_peer(node):
    node["info"], node["vip"] = STANDBY, False
    payload = build("mn2")
    assert (payload["role"], payload["pg_up"], payload["streaming"]) == ("standby", True, True)
    assert (payload["lsn"], payload["replayed"], payload["lag_bytes"]) == ("0/3000148", "0/3000100", 72)
    assert payload["vip"] is False and payload["error"] is None


@pytest.mark.parametrize("receiver", [
    None,  # WAL receiver gone (the primary died)
    {"status": "waiting", "sender_host": PEER_MN2},
    {"status": "streaming", "sender_host": "198.51.100.99"},  # from someone else, not the peer
])
def test_standby_not_streaming_from_the_peer(node, receiver):
    node["info"] = {**STANDBY, "wal_receiver": receiver}
    node["reach"]["reaches_peer_pg"] = False
    payload = build("mn2")
    assert (payload["role"], payload["pg_up"]) == ("standby", True)
    assert payload["streaming"] is False and payload["reaches_peer_pg"] is False


def test_postgres_stopped(node):
    node["info"] = STOPPED
    payload = build()
    assert (payload["role"], payload["pg_up"], payload["timeline"], payload["lsn"]) == ("stopped", False, 3, None)
    assert payload["error"] is None  # a stopped server is a fact, not an error


def test_postgres_running_but_not_answering(node):
    node["info"] = {**STOPPED, "role": "unknown", "running": True, "timeline": None,
                    "error": "cannot connect to PostgreSQL at /run:5432: timeout expired\n"}
    payload = build()
    assert (payload["role"], payload["pg_up"]) == ("unknown", False)
    assert payload["error"] == "postgres: cannot connect to PostgreSQL at /run:5432: timeout expired"


def test_probe_failures(node):
    node["reach"] = {"reaches_peer_pg": False, "reaches_master": False}
    payload = build()
    assert (payload["reaches_peer_pg"], payload["reaches_master"]) == (False, False)
    assert payload["role"] == "primary" and payload["error"] is None


def test_no_master_address_leaves_reaches_master_unknown(node):
    payload = heartbeat.build(cfg(), "mn1", None, lease=lambda *a, **k: None)
    assert payload["reaches_master"] is None and payload["reaches_peer_pg"] is True


def test_exceptions_become_one_error_line_with_what_could_be_read(node):
    node["info"] = RuntimeError("boom\nsecond line")
    node["vip"] = HamnError("interface eth0 not found")

    def lease(cfg, me, netns=None):
        raise OSError("watchdog socket gone")

    payload = build(lease=lease)
    # Unknown stays None, never a False the master's rule would act on.
    assert (payload["role"], payload["pg_up"], payload["vip"], payload["lease"]) == ("unknown", None, None, None)
    assert payload["reaches_peer_pg"] is True and payload["maintenance"] is False  # still read
    assert "\n" not in payload["error"]
    for part in ("postgres: boom second line", "vip: interface eth0 not found", "lease: watchdog socket gone"):
        assert part in payload["error"]


def test_a_bug_in_the_builder_still_gives_a_heartbeat(node, monkeypatch):
    monkeypatch.setattr(heartbeat, "lease_status", lambda *a, **k: None)
    node["info"] = {"running": True}  # an answer without "role": postgres_fields fails
    payload = heartbeat.run(support.pillar(postgres={"replication": {"password": PASSWORD}}), {"id": "mn1"})
    assert set(payload) == KEYS and payload["role"] == "unknown" and payload["pg_up"] is None
    assert payload["error"] == "heartbeat: KeyError: 'role'"


def test_error_is_bounded(node):
    node["info"] = RuntimeError("x" * 5000)
    assert len(build()["error"]) == heartbeat.ERROR_MAX


def test_no_secrets_in_the_payload(node):
    node["info"] = RuntimeError(f"password={PASSWORD} key={LEASE_KEY}")
    lease = {"expires_in": 2.5, "enforced": True, "lease_key": LEASE_KEY, "secret_nonce": "x"}
    payload = build(lease=lambda cfg, me, netns=None: lease)
    text = json.dumps(payload)
    assert PASSWORD not in text and LEASE_KEY not in text
    assert payload["error"] == "postgres: password=**redacted** key=**redacted**"
    assert payload["lease"] == {"expires_in": 2.5, "enforced": True}


def test_lease_is_ensured_and_read_every_run(node):
    seen = []

    def lease(cfg, me, netns=None):
        seen.append(me)
        return {"valid": True}

    assert build(lease=lease)["lease"] == {"valid": True}
    assert build(lease=lease)["lease"] == {"valid": True}
    assert seen == ["mn1", "mn1"]


def test_lease_status_is_none_until_the_lease_module_exists(monkeypatch):
    import builtins  # pylint: disable=import-outside-toplevel

    real_import = builtins.__import__

    def no_lease(name, *args, **kwargs):
        if name.startswith("saltext_hamn.utils.lease"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lease)
    assert heartbeat.lease_status(cfg(), "mn1") is None


def test_maintenance_flag(node):
    assert build(maintenance=True)["maintenance"] is True


def test_seq_increments_per_run(node):
    first, second = build(), build()
    assert second["seq"] == first["seq"] + 1 and second["at"] >= first["at"]


@pytest.mark.parametrize("raw, opts, expected", [
    (None, {"id": "mn1"}, "config: hamn:nodes: required"),
    (support.pillar(), {"id": "mn9"}, "config: hamn:nodes: expected one of the configured minion ids"),
    (support.pillar(vip={"probe": {"timeout": 0}}), {"id": "mn1"}, "config: hamn:vip:probe:timeout"),
])
def test_bad_pillar_still_gives_a_heartbeat(raw, opts, expected):
    payload = heartbeat.run(raw, opts)
    assert set(payload) == KEYS and payload["node"] == opts["id"] and payload["role"] == "unknown"
    assert payload["error"].startswith(expected)
    assert payload["pg_up"] is None and payload["reaches_peer_pg"] is None


def test_run_reads_the_master_from_opts(node, monkeypatch):
    monkeypatch.setattr(heartbeat, "lease_status", lambda *a, **k: None)
    opts = {"id": "mn2", "master": "salt", "master_ip": "198.51.100.1", "master_port": 4506}
    node["info"] = STANDBY
    payload = heartbeat.run(support.pillar(), opts)
    assert payload["node"] == "mn2" and payload["streaming"] is True
    assert ("probe", {"reaches_peer_pg": (PEER_MN2, 5432), "reaches_master": MASTER}, 0.3) in node["calls"]


@pytest.mark.parametrize("opts, expected", [
    ({"master": "198.51.100.1", "master_port": 4506}, ("198.51.100.1", 4506)),
    ({"master": "salt", "master_ip": "198.51.100.7", "master_port": "4510"}, ("198.51.100.7", 4510)),
    ({"master": ["198.51.100.5", "198.51.100.6"]}, ("198.51.100.5", 4506)),
    ({"master": ""}, None),
    ({}, None),
])
def test_master_endpoint(opts, expected):
    assert heartbeat.master_endpoint(opts) == expected
