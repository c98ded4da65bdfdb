"""Unit tests for the hamn pillar schema (saltext_hamn.utils.config)."""

import copy
import pathlib

import pytest
import yaml
from salt.exceptions import SaltInvocationError

from saltext_hamn.utils import config

PILLAR_EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "pillar.example"
SECRET = "S3cretPW!"


def minimal():
    """The smallest valid pillar: only the required keys."""
    return {
        "nodes": {"mn1": {"address": "198.51.100.11"}, "mn2": {"address": "198.51.100.12"}},
        "initial_primary": "mn1",
        "vip": {"address": "198.51.100.10"},
        "postgres": {"replication": {"password": SECRET}},
    }


_DELETE = object()


def with_change(path, value):
    """minimal() with ``value`` set at the colon-separated ``path`` (below hamn:)."""
    raw = minimal()
    *parents, last = path.split(":")
    node = raw
    for key in parents:
        node = node.setdefault(int(key) if isinstance(node, list) else key, {})
    if isinstance(node, list):
        node[int(last)] = value
    elif value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


def error_of(raw):
    with pytest.raises(SaltInvocationError) as info:
        config.load(raw)
    return str(info.value)


def test_pillar_example_is_valid():
    raw = yaml.safe_load(PILLAR_EXAMPLE.read_text(encoding="utf-8"))
    assert set(raw) == {"hamn"}  # the schedule example stays commented out
    cfg = config.load(raw["hamn"])
    assert config.node_ids(cfg) == ["mn1", "mn2"]
    assert cfg["vip"]["address"] == "198.51.100.10"
    assert cfg["postgres"]["replication"]["slots"] == {"mn1": "hamn_mn1", "mn2": "hamn_mn2"}


def test_pillar_example_lists_every_key():
    """Every key of the schema appears in the example, so it documents them all."""
    raw = yaml.safe_load(PILLAR_EXAMPLE.read_text(encoding="utf-8"))["hamn"]

    def missing(spec, value, path):
        if not isinstance(spec, dict):
            return []
        out = []
        for key, sub in spec.items():
            if key not in value:
                out.append(f"{path}:{key}")
            else:
                out += missing(sub, value[key], f"{path}:{key}")
        return out

    assert not missing(config.SCHEMA, raw, "hamn")
    for hook in raw["hooks"]["post_promotion"]:
        assert set(hook) == {"name", "cmd", "optional", "timeout"}
    for node in raw["nodes"].values():
        assert set(node) == {"address", "hostname"}


def test_pillar_example_schedule_comment():
    text = PILLAR_EXAMPLE.read_text(encoding="utf-8")
    schedule = "\n".join(
        line[2:] for line in text.splitlines()[text.splitlines().index("# schedule:") :]
    )
    entry = yaml.safe_load(schedule)["schedule"]["hamn_files_sync"]
    assert entry["function"] == "state.apply"
    assert entry["args"] == ["hamn.files"]
    assert entry["minutes"] == 15


def test_defaults_filled():
    cfg = config.load(minimal())
    assert cfg["nodes"]["mn1"] == {"address": "198.51.100.11", "hostname": "mn1"}
    assert cfg["vip"] == {
        "address": "198.51.100.10",
        "prefix": 24,
        "interface": "eth0",
        "label": None,
        "garp": {"count": 5, "interval": 0.2},
        "probe": {"timeout": 0.3, "attempts": 3, "handoff_timeout": 0.005},
    }
    pg = cfg["postgres"]
    assert pg["version"] == 15
    assert pg["bindir"] == "/usr/lib/postgresql/15/bin"
    assert pg["data_dir"] == pg["config_dir"] == "/var/lib/postgresql/15/main"
    assert pg["port"] == 5432 and "service" not in pg and pg["auto_rebuild"] is False
    assert pg["replication"] == {
        "user": "replicator",
        "password": SECRET,
        "mode": "async",
        "sync_fallback": 2.0,
        "auth_method": "scram-sha-256",
        "slots": {"mn1": "hamn_mn1", "mn2": "hamn_mn2"},
    }
    assert pg["wal"]["keep_size"] == 1024**3
    assert cfg["lag_limit"] == {"bytes": 16 * 1024**2, "seconds": 30.0}
    assert cfg["services"]["names"] == ["xcatd", "dhcpd", "named", "conserver"]
    assert cfg["services"]["stop_cmd"] == ["systemctl", "stop", "{service}"]
    assert [hook["name"] for hook in cfg["hooks"]["post_promotion"]] == [
        "makedns",
        "makedhcp",
        "makeconservercf",
    ]
    assert cfg["hooks"]["post_promotion"][0] == {
        "name": "makedns",
        "cmd": ["makedns", "-n"],
        "optional": False,
        "timeout": 600.0,
    }
    assert cfg["xcat"]["site_cmds"][0] == ["chdef", "-t", "site", "master={vip}"]
    assert "/root/.ssh/id*" in cfg["files"]["paths"]
    assert cfg["files"]["excludes"] == list(config.MANDATORY_EXCLUDES)
    hb = dict(cfg["heartbeat"])
    assert len(hb.pop("lease_key")) == 64  # derived from the replication password, never the password
    assert hb == {"interval": 1.0, "misses": 3, "auto_failover": True, "lease": 3.0, "failover_delay": 3.75,
                  "lease_port": 7390, "cooldown": 300.0, "restart_tries": 2, "auto_rejoin": False,
                  "state_dir": "/var/lib/hamn"}
    assert cfg["fence"] == {"cmd": None, "timeout": 60.0}
    assert cfg["maintenance"] is False
    # Same top-level shape as DEFAULTS plus the two keys that have no default.
    assert set(cfg) == set(config.DEFAULTS) | {"nodes", "initial_primary"}


@pytest.mark.parametrize("version", [13, "13"])
def test_derived_paths_follow_version(version):
    cfg = config.load(with_change("postgres:version", version))
    pg = cfg["postgres"]
    assert pg["version"] == 13
    assert pg["bindir"] == "/usr/lib/postgresql/13/bin"
    assert pg["data_dir"] == "/var/lib/postgresql/13/main"
    assert pg["config_dir"] == "/var/lib/postgresql/13/main"


def test_explicit_paths_win():
    raw = minimal()
    raw["postgres"].update(
        {"bindir": "/usr/pgsql-15/bin", "data_dir": "/srv/pg", "config_dir": "/etc/pg"}
    )
    pg = config.load(raw)["postgres"]
    assert pg["bindir"] == "/usr/pgsql-15/bin"
    assert (pg["data_dir"], pg["config_dir"]) == ("/srv/pg", "/etc/pg")


def test_sizes_and_derived_slots():
    raw = minimal()
    raw["nodes"]["MN-1.example"] = raw["nodes"].pop("mn1")
    raw["initial_primary"] = "mn2"
    raw["lag_limit"] = {"bytes": "512kB"}
    raw["postgres"]["wal"] = {"keep_size": 4096}
    raw["postgres"]["replication"]["slots"] = {"mn2": "custom_slot"}
    cfg = config.load(raw)
    assert cfg["lag_limit"]["bytes"] == 512 * 1024
    assert cfg["postgres"]["wal"]["keep_size"] == 4096
    assert config.slot_name(cfg, "MN-1.example") == "hamn_mn_1_example"
    assert config.slot_name(cfg, "mn2") == "custom_slot"


@pytest.mark.parametrize(
    "path, value, key_path, fragment",
    [
        ("vip:adress", "198.51.100.10", "hamn:vip:adress",
         "unknown key; expected one of: address, garp, interface, label, prefix, probe"),
        ("bogus", 1, "hamn:bogus", "unknown key"),
        ("vip:prefix", "abc", "hamn:vip:prefix", "expected an integer from 1 to 32, got 'abc'"),
        ("vip:prefix", 33, "hamn:vip:prefix", "got 33"),
        ("vip:prefix", True, "hamn:vip:prefix", "got true"),
        ("vip:garp:count", 0, "hamn:vip:garp:count", "from 1 to 50"),
        ("vip:probe:timeout", 0, "hamn:vip:probe:timeout", "> 0"),
        ("vip:probe:handoff_timeout", -1, "hamn:vip:probe:handoff_timeout", "> 0"),
        ("postgres:port", 70000, "hamn:postgres:port", "from 1 to 65535"),
        ("postgres:version", "9.6", "hamn:postgres:version", "got '9.6'"),
        ("postgres:version", 9, "hamn:postgres:version", ">= 10"),
        ("nodes:mn2:address", "198.51.100.300", "hamn:nodes:mn2:address", "IPv4"),
        ("vip:address", "198.51.100.11", "hamn:vip:address", "not used by either node"),
        ("vip:address", _DELETE, "hamn:vip:address", "required"),
        ("nodes:mn3", {"address": "198.51.100.13"}, "hamn:nodes", "exactly two"),
        ("nodes", {"mn1": {"address": "198.51.100.11"}}, "hamn:nodes", "got 1 entry"),
        ("nodes:mn2:address", "198.51.100.11", "hamn:nodes:mn2:address", "different"),
        ("nodes:mn2:addr", "198.51.100.12", "hamn:nodes:mn2:addr", "unknown key"),
        ("initial_primary", "mn9", "hamn:initial_primary", "one of the node ids: mn1, mn2"),
        ("postgres:replication:auth_method", "trust", "hamn:postgres:replication:auth_method",
         "scram-sha-256 (required"),
        ("postgres:replication:auth_method", "md5", "hamn:postgres:replication:auth_method",
         "md5 are not accepted"),
        ("services:stop_cmd", "systemctl stop {service}", "hamn:services:stop_cmd",
         "list of arguments"),
        ("services:stop_cmd", ["systemctl", "stop", "xcatd"], "hamn:services:stop_cmd",
         "containing {service}"),
        ("services:start_cmd", ["systemctl", "start", "{servcie}"], "hamn:services:start_cmd:2",
         "only the placeholders {service}"),
        ("services:status_cmd", yaml.safe_load("[systemctl, is-active, {service}]"),
         "hamn:services:status_cmd:2", "quote '{placeholder}' arguments in YAML"),
        ("hooks:post_promotion", [{"name": "x", "cmd": "makedns -n"}],
         "hamn:hooks:post_promotion:0:cmd", "such as ['makedns', '-n'], not a shell string"),
        ("hooks:post_promotion", [{"cmd": ["makedns"]}], "hamn:hooks:post_promotion:0:name",
         "required"),
        ("vip:label", "eth1:0", "hamn:vip:label", "starting with 'eth0:'"),
        ("vip:label", "eth0:abcdefghijklmn", "hamn:vip:label", "max 15"),
        ("lag_limit:bytes", "16 megs", "hamn:lag_limit:bytes", "got '16 megs'"),
        ("postgres:wal:keep_size", "1gb", "hamn:postgres:wal:keep_size", "units B, kB, MB, GB, TB"),
        ("postgres:replication:mode", "synchronous", "hamn:postgres:replication:mode",
         "expected one of: async, sync, sync_strict, got 'synchronous'"),
        ("postgres:replication:sync_fallback", 0, "hamn:postgres:replication:sync_fallback",
         "a number of seconds"),
        ("postgres:replication:password", _DELETE, "hamn:postgres:replication:password",
         "required; expected a non-empty string"),
        ("postgres:replication:slots", {"mn9": "x"}, "hamn:postgres:replication:slots:mn9",
         "node ids"),
        ("postgres:replication:slots", {"mn1": "Bad-Slot"}, "hamn:postgres:replication:slots:mn1",
         "replication slot name"),
        ("maintenance", "yes", "hamn:maintenance", "YAML boolean, not a string), got 'yes'"),
        ("heartbeat:misses", 1.5, "hamn:heartbeat:misses", "integer"),
        ("files:paths", ["etc/hosts"], "hamn:files:paths:0", "absolute path"),
        ("files:transport", "scp", "hamn:files:transport", "one of: salt, rsync"),
        ("services:service_nodes:tgt_type", "regex", "hamn:services:service_nodes:tgt_type",
         "compound"),
        ("hooks:diskless_reset", {"enabled": True}, "hamn:hooks:diskless_reset:noderange",
         "required when enabled"),
        ("fence:cmd", "ipmitool power off", "hamn:fence:cmd", "not a shell string"),
        ("xcat:site_cmds", [["chdef", "-t", "site", "master={vipp}"]], "hamn:xcat:site_cmds:0:3",
         "{vip}"),
        ("vip", None, "hamn:vip", "expected a mapping, got null"),
    ],
)
def test_bad_input_names_key_path(path, value, key_path, fragment):
    message = error_of(with_change(path, value))
    assert message.startswith(key_path + ":"), message
    assert fragment in message, message


def test_bad_top_level():
    assert error_of(["not", "a", "mapping"]).startswith("hamn: expected a mapping")
    assert error_of(None).startswith("hamn:nodes: required")


@pytest.mark.parametrize(
    "path, value",
    [
        ("postgres:replication:pasword", SECRET),
        ("postgres:replication", SECRET),
        ("postgres", SECRET),
        ("nodes:mn2", SECRET),
    ],
)
def test_password_never_in_messages(path, value):
    """A misplaced password (wrong key, or a str where a mapping belongs) is not echoed."""
    message = error_of(with_change(path, value))
    assert SECRET not in message, message


@pytest.mark.parametrize("password", [12345, ["S3cretPW!"], "", "S3cret\nPW!"])
def test_bad_password_is_not_echoed(password):
    message = error_of(with_change("postgres:replication:password", password))
    assert message.startswith("hamn:postgres:replication:password: expected"), message
    assert "12345" not in message and SECRET not in message and "S3cret" not in message


@pytest.mark.parametrize(
    "path, value, key_path",
    [
        ("heartbeat:interval", "soon", "hamn:heartbeat:interval"),
        ("postgres:replication:user", 5, "hamn:postgres:replication:user"),
        ("postgres:replication:pasword", "x", "hamn:postgres:replication:pasword"),
    ],
)
def test_secret_absent_with_unrelated_error(path, value, key_path):
    """The password sits in the same pillar while another key is wrong."""
    message = error_of(with_change(path, value))
    assert message.startswith(key_path + ":"), message
    assert SECRET not in message


def test_mandatory_excludes_always_last():
    raw = minimal()
    raw["files"] = {"excludes": ["known_hosts", "*.bak", "*.bak", "authorized_keys"]}
    cfg = config.load(raw)
    assert cfg["files"]["excludes"] == ["*.bak", *config.MANDATORY_EXCLUDES]
    assert config.MANDATORY_EXCLUDES == ("authorized_keys", "authorized_keys2", "known_hosts")


def test_format_argv():
    cfg = config.load(minimal())
    argv = config.format_argv(cfg["services"]["stop_cmd"], service="xcatd")
    assert argv == ["systemctl", "stop", "xcatd"]
    assert config.format_argv(cfg["xcat"]["site_cmds"][0], vip="198.51.100.10") == [
        "chdef", "-t", "site", "master=198.51.100.10",
    ]
    # A value is one argument, never split or shell-interpreted.
    assert config.format_argv(["echo", "{x}"], x="a b; rm -rf /") == ["echo", "a b; rm -rf /"]
    assert config.format_argv(["printf", "{{literal}}"]) == ["printf", "{literal}"]
    with pytest.raises(SaltInvocationError):
        config.format_argv(["rpower", "{noderange}", "reset"])
    with pytest.raises(SaltInvocationError):
        config.format_argv("systemctl stop {service}", service="xcatd")


def test_helpers():
    cfg = config.load(minimal())
    assert config.node_ids(cfg) == ["mn1", "mn2"]
    assert config.peer_of(cfg, "mn1") == "mn2"
    assert config.peer_of(cfg, "mn2") == "mn1"
    assert config.slot_name(cfg, "mn1") == "hamn_mn1"
    with pytest.raises(SaltInvocationError, match="mn9"):
        config.peer_of(cfg, "mn9")
    with pytest.raises(SaltInvocationError):
        config.slot_name(cfg, "mn9")


@pytest.mark.parametrize(
    "nbytes, text",
    [(0, "0"), (1024**3, "1GB"), (16 * 1024**2, "16MB"), (1536 * 1024, "1536kB"), (1000, "1000B")],
)
def test_format_size(nbytes, text):
    assert config.format_size(nbytes) == text


def test_load_does_not_mutate_input_or_defaults():
    raw = yaml.safe_load(PILLAR_EXAMPLE.read_text(encoding="utf-8"))["hamn"]
    raw["files"]["excludes"] = ["*.swp"]
    del raw["postgres"]["replication"]["slots"]
    del raw["postgres"]["bindir"]
    before = copy.deepcopy(raw)
    defaults_before = copy.deepcopy(config.DEFAULTS)
    cfg = config.load(raw)
    assert raw == before
    assert config.DEFAULTS == defaults_before
    # The result shares no mutable object with the input or the defaults.
    cfg["files"]["excludes"].append("x")
    cfg["services"]["names"].append("x")
    cfg["nodes"]["mn1"]["address"] = "x"
    assert raw == before
    assert config.DEFAULTS == defaults_before
    assert config.load(raw)["services"]["names"] == before["services"]["names"]


@pytest.mark.parametrize("value", [None, "postgresql@15-main"])
def test_removed_postgres_service_key_says_why(value):
    message = error_of(with_change("postgres:service", value))
    assert message.startswith("hamn:postgres:service: this key was removed")
    assert "pg_ctl" in message and "systemctl disable" in message


def test_postgres_service_not_in_pillar_example():
    raw = yaml.safe_load(PILLAR_EXAMPLE.read_text(encoding="utf-8"))["hamn"]
    assert "service" not in raw["postgres"] and "service" not in config.DEFAULTS["postgres"]


@pytest.mark.parametrize(
    "heartbeat, key, expected",
    [
        ({"interval": 2, "lease": 3}, "hamn:heartbeat:lease", "at least 2 x heartbeat:interval + 0.5 = 4.5"),
        ({"lease": 3, "failover_delay": 3.5}, "hamn:heartbeat:failover_delay", "at least heartbeat:lease + 0.75"),
        ({"lease_port": 5432}, "hamn:heartbeat:lease_port", "a port other than postgres:port"),
        ({"interval": 0.5}, "hamn:heartbeat:interval", "a whole number of seconds >= 1"),
    ],
)
def test_lease_timings_that_could_make_two_writers_are_refused(heartbeat, key, expected):
    raw = minimal()
    raw["heartbeat"] = heartbeat
    with pytest.raises(SaltInvocationError) as err:
        config.load(raw)
    assert str(err.value).startswith(key + ": expected " + expected)


def test_lease_key_is_derived_but_never_the_password():
    raw = minimal()
    cfg = config.load(raw)
    assert raw["postgres"]["replication"]["password"] not in cfg["heartbeat"]["lease_key"]
    raw["heartbeat"] = {"lease_key": "own-key"}
    assert config.load(raw)["heartbeat"]["lease_key"] == "own-key"
