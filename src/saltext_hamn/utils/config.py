"""The ``hamn:`` pillar schema: defaults, validation and normalization in one place.

Every other part of the extension calls :func:`load` with the raw value of the
pillar key ``hamn`` and only ever reads the dict it returns, so defaults, derived
values and sanity checks live here and nowhere else.

The layout follows saltext-vault: one :data:`DEFAULTS` dict is deep-merged with
the user's pillar, then the merged tree is checked against :data:`SCHEMA` (the
same tree shape, with a small checker callable at each leaf) and a few
cross-key rules run in :func:`_derive`.  Any problem raises
``SaltInvocationError("<key path>: expected ..., got ...")``.  Secret values are
never echoed, only their type.
"""

import copy
import hashlib
import ipaddress
import math
import re
import string

from salt.exceptions import SaltInvocationError

# Files that must never be synced between the nodes: the seed keeps per-node ssh
# trust (authorized_keys, known_hosts) separate, and copying it could lock a node out.
MANDATORY_EXCLUDES = ("authorized_keys", "authorized_keys2", "known_hosts")

# Keys without a default (required) are simply absent; ``None`` marks "unset /
# derived in _derive()".  Lists are replaced, never merged, by the user's value.
DEFAULTS = {
    "vip": {
        "prefix": 24,
        "interface": "eth0",
        "label": None,
        "garp": {"count": 5, "interval": 0.2},
        # RFC 5227's 1-2 s probe window is sized for slow links; a holder on the LAN
        # answers in milliseconds, and every raise of the VIP waits the whole window.
        "probe": {"timeout": 0.3, "attempts": 3,
                  # A switchover's handoff: the old node has said it dropped the VIP, the
                  # probe only guards against a third holder; every millisecond here is a
                  # millisecond in which new connections to the VIP go nowhere.
                  "handoff_timeout": 0.005},
    },
    "postgres": {
        "version": 15,
        "bindir": None,  # derived: /usr/lib/postgresql/<version>/bin
        "data_dir": None,  # derived: /var/lib/postgresql/<version>/main
        "config_dir": None,  # derived: same as data_dir
        "port": 5432,
        "socket_dir": "/var/run/postgresql",
        # None: utils.pg.cluster picks <data_dir>-hamn.log / <data_dir>/../.hamn.pgpass
        "log_file": None,
        "passfile": None,
        "os_user": "postgres",
        "superuser": "postgres",
        "database": "xcatdb",
        "xcat_db_user": "xcatadm",
        # Other hosts (service nodes) allowed to reach the xCAT database (pg_hba, scram).
        "db_clients": [],
        "listen_addresses": "*",
        "auto_rebuild": False,
        # initdb of a new primary: data checksums on (PostgreSQL 18's own default; off
        # before 18 unless asked). Either this or wal_log_hints lets pg_rewind work.
        "data_checksums": True,
        "replication": {
            "user": "replicator",
            "mode": "async",
            # sync only: seconds without a synchronous standby before the primary's
            # watchdog asks the master to let writes through (docs/replication-modes.md).
            "sync_fallback": 2.0,
            "auth_method": "scram-sha-256",
            "slots": {},  # derived per node: hamn_<minion id>
        },
        "wal": {
            "level": "replica",
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "keep_size": "1GB",
            "log_hints": True,
        },
    },
    "lag_limit": {"bytes": "16MB", "seconds": 30},
    "services": {
        "names": ["xcatd", "dhcpd", "named", "conserver"],
        "stop_cmd": ["systemctl", "stop", "{service}"],
        "start_cmd": ["systemctl", "start", "{service}"],
        "status_cmd": ["systemctl", "is-active", "{service}"],
        "service_nodes": {"target": None, "tgt_type": "glob", "names": ["xcatd", "dhcpd"]},
    },
    "hooks": {
        # What the seed runs by hand after a takeover to regenerate node-facing services.
        "post_promotion": [
            {"name": "makedns", "cmd": ["makedns", "-n"]},
            {"name": "makedhcp", "cmd": ["makedhcp", "-a"]},
            {"name": "makeconservercf", "cmd": ["makeconservercf"]},
        ],
        "diskless_reset": {
            "enabled": False,
            "noderange": None,
            "cmd": ["rpower", "{noderange}", "reset"],
        },
    },
    "xcat": {
        "site_cmds": [
            ["chdef", "-t", "site", "master={vip}"],
            ["chdef", "-t", "site", "nameservers={vip}"],
        ],
        "network": None,
        "resolv_conf": "/etc/resolv.conf",
        "nsswitch_conf": "/etc/nsswitch.conf",
    },
    "files": {
        # The seed's "SSL credentials, ssh keys and /etc/hosts" list.
        "paths": [
            "/etc/xcat/ca",
            "/etc/xcat/cert",
            "/etc/xcat/hostkeys",
            "/root/.xcat",
            "/root/.ssh/id*",
            "/etc/hosts",
        ],
        "extra_paths": [],
        "excludes": [],
        "delete": False,
        "backup_dir": "/var/lib/hamn/file-backups",
        "transport": "salt",
        "rsync": {"ssh_user": "root", "ssh_key": None},
        # Prefix under which every listed path, the sync manifest and backup_dir live:
        # / on real nodes, a per-node directory in the lab (its nodes share one filesystem).
        "root_dir": "/",
    },
    # Automatic failover (docs/auto-failover.md): the beacon's interval, the primary's
    # self-fencing lease and the master's timings.
    "heartbeat": {
        "interval": 1.0,
        "misses": 3,
        "auto_failover": True,
        "lease": 3.0,
        "failover_delay": None,  # derived: lease + LEASE_MARGIN
        "lease_port": 7390,
        "lease_key": None,  # derived: from the replication password
        "cooldown": 300,
        "restart_tries": 2,
        "auto_rejoin": False,
        "state_dir": "/var/lib/hamn",
    },
    "fence": {"cmd": None, "timeout": 60},
    "preflight": {"max_clock_offset": 1.0, "install_dir": "/install", "check_install": True},
    "maintenance": False,
}

# Defaults of the items inside lists / free-form mappings (DEFAULTS cannot reach them).
NODE_DEFAULTS = {"hostname": None}  # derived: the minion id
HOOK_DEFAULTS = {"optional": False, "timeout": 600}

_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$")


# --------------------------------------------------------------------------- errors


def _show(value):
    """Render a rejected value for a message: scalars literally, containers by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "...'"
    return _kind(value)


def _show_list(value):
    """A short argv for a message (commands hold no secrets)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + "...]"


def _kind(value):
    """The type of a value without its content (used for secrets and containers)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value else "a str"
    names = {dict: "a mapping", list: "a list", bool: "a bool", int: "an int", float: "a float"}
    return names.get(type(value), f"a {type(value).__name__}")


def _fail(path, expected, value, secret=False, got=None):
    got = got or (_kind(value) if secret else _show(value))
    raise SaltInvocationError(f"{path}: expected {expected}, got {got}")


# --------------------------------------------------------------------------- checkers
# A checker is a callable (value, path) -> normalized value with an ``expected``
# text used in "required" messages.  ``nullable`` checkers also accept null.


class _Check:
    expected = "a value"

    def __init__(self, nullable=False):
        self.nullable = nullable

    def __call__(self, value, path):
        if value is None and self.nullable:
            return None
        return self.check(value, path)

    def fail(self, path, value, expected=None):
        expected = expected or self.expected
        _fail(path, expected + (" or null" if self.nullable else ""), value)


class Str(_Check):
    """A non-empty string, optionally limited to ``choices`` or a regex ``pattern``."""

    def __init__(self, choices=None, pattern=None, what=None, nullable=False):
        super().__init__(nullable)
        self.choices = choices
        self.pattern = re.compile(pattern) if pattern else None
        if what:
            self.expected = what
        elif choices:
            self.expected = "one of: " + ", ".join(choices)
        else:
            self.expected = "a non-empty string"

    def check(self, value, path):
        if not isinstance(value, str) or not value.strip():
            self.fail(path, value)
        if self.choices and value not in self.choices:
            self.fail(path, value)
        if self.pattern and not self.pattern.fullmatch(value):
            self.fail(path, value)
        return value


class Secret(_Check):
    """A password: a non-empty string that is never shown in messages."""

    expected = "a non-empty string"

    def check(self, value, path):
        if not isinstance(value, str) or not value:
            _fail(path, self.expected, value, secret=True)
        # A newline or other control character would break .pgpass and conninfo lines.
        if any(ord(char) < 32 for char in value):
            _fail(path, "a string without control characters", value, secret=True)
        return value


class Int(_Check):
    """An integer (never a bool) within [lo, hi]; ``from_str`` also takes "15"."""

    def __init__(self, lo=None, hi=None, from_str=False, nullable=False):
        super().__init__(nullable)
        self.lo, self.hi, self.from_str = lo, hi, from_str
        if lo is not None and hi is not None:
            self.expected = f"an integer from {lo} to {hi}"
        elif lo is not None:
            self.expected = f"an integer >= {lo}"
        else:
            self.expected = "an integer"

    def check(self, value, path):
        number = value
        if self.from_str and isinstance(value, str) and value.strip().isdigit():
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int):
            self.fail(path, value)
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            self.fail(path, value)
        return number


class Num(_Check):
    """A number (int or float, never a bool) > ``gt`` or >= ``ge``; returned as float."""

    def __init__(self, gt=None, ge=None, what="a number", nullable=False):
        super().__init__(nullable)
        self.gt, self.ge = gt, ge
        self.expected = what + (f" > {gt}" if gt is not None else "") + (
            f" >= {ge}" if ge is not None else ""
        )

    def check(self, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, value)
        if not math.isfinite(value):
            self.fail(path, value)
        if (self.gt is not None and value <= self.gt) or (self.ge is not None and value < self.ge):
            self.fail(path, value)
        return float(value)


class Bool(_Check):
    """A real YAML boolean: 'yes' in quotes is a string and is refused, not guessed."""

    expected = "true or false (a YAML boolean, not a string)"

    def check(self, value, path):
        if not isinstance(value, bool):
            self.fail(path, value)
        return value


class IPv4(_Check):
    """A unicast IPv4 address written as a string; returned in canonical form."""

    expected = "an IPv4 address such as 198.51.100.10"

    def check(self, value, path):
        try:
            address = ipaddress.IPv4Address(value) if isinstance(value, str) else None
        except ValueError:
            address = None
        if address is None or address.is_unspecified or address.is_multicast:
            self.fail(path, value)
        if address.is_loopback or address == ipaddress.IPv4Address("255.255.255.255"):
            self.fail(path, value)
        return str(address)


class IPv4Net(_Check):
    """An IPv4 address or network ('198.51.100.0/24'); returned as a CIDR string."""

    expected = "an IPv4 address or network such as 198.51.100.0/24"

    def check(self, value, path):
        try:
            return str(ipaddress.IPv4Network(value, strict=True)) if isinstance(value, str) else self.fail(path, value)
        except ValueError:
            return self.fail(path, value)


class Size(_Check):
    """Bytes as an int, or a PostgreSQL size string ('512kB', '16MB', '1GB'; 1024-based)."""

    expected = "a size: bytes as an integer or a string like '16MB' (units B, kB, MB, GB, TB)"

    def check(self, value, path):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        match = _SIZE_RE.match(value) if isinstance(value, str) else None
        if not match:
            self.fail(path, value)
        return int(match.group(1)) * _UNITS[match.group(2) or "B"]


class Path(_Check):
    """An absolute path (shell globs allowed where the caller expands them)."""

    expected = "an absolute path"

    def check(self, value, path):
        if not isinstance(value, str) or not value.startswith("/"):
            self.fail(path, value)
        if "\x00" in value or "\n" in value or ".." in value.split("/"):
            self.fail(path, value, "an absolute path without '..' or control characters")
        return value


class Argv(_Check):
    """A command as a list of arguments; never a shell string.

    ``allowed`` placeholders may appear as ``{name}`` inside arguments, the
    ``required`` ones must; anything else in braces is a typo caught here rather
    than a KeyError at failover time (write ``{{`` for a literal brace).
    """

    def __init__(self, allowed=(), required=(), nullable=False):
        super().__init__(nullable)
        self.allowed = set(allowed) | set(required)
        self.required = set(required)
        self.expected = "a list of arguments (no shell strings)"
        if self.required:
            self.expected += " containing " + ", ".join(f"{{{n}}}" for n in sorted(self.required))

    def check(self, value, path):
        if isinstance(value, str):
            _fail(path, f"a list of arguments such as {_show_list(value.split())}, "
                  "not a shell string", value)
        if not isinstance(value, list) or not value:
            self.fail(path, value)
        used = set()
        for index, arg in enumerate(value):
            if isinstance(arg, dict):  # YAML reads an unquoted [x, {service}] as a mapping
                _fail(f"{path}:{index}", "a string (quote '{placeholder}' arguments in YAML)", arg)
            if not isinstance(arg, str) or not arg:
                _fail(f"{path}:{index}", "a non-empty string", arg)
            try:
                fields = {field for _, field, _, _ in string.Formatter().parse(arg)} - {None}
            except ValueError:
                fields = {""}  # unbalanced braces
            if fields - self.allowed:
                allowed = ", ".join(f"{{{n}}}" for n in sorted(self.allowed)) or "none"
                expected = f"only the placeholders {allowed} ('{{{{' for a literal brace)"
                _fail(f"{path}:{index}", expected, arg)
            used |= fields
        if self.required - used:
            _fail(path, self.expected, value, got=_show_list(value))
        return list(value)


class ListOf(_Check):
    """A list whose items are checked by ``item``; ``unique`` rejects repeats."""

    def __init__(self, item, unique=False, nonempty=False, nullable=False):
        super().__init__(nullable)
        self.item, self.unique, self.nonempty = item, unique, nonempty
        self.expected = f"a {'non-empty ' if nonempty else ''}list (items: {_expected(item)})"

    def check(self, value, path):
        if not isinstance(value, list) or (self.nonempty and not value):
            _fail(path, self.expected, value)
        items = [_walk(self.item, item, f"{path}:{index}") for index, item in enumerate(value)]
        if self.unique:
            seen = set()
            for index, item in enumerate(items):
                if item in seen:
                    _fail(f"{path}:{index}", "no duplicates", item)
                seen.add(item)
        return items


class Record(_Check):
    """A mapping with fixed keys inside a list or a free-form mapping, with its own defaults."""

    def __init__(self, spec, defaults, what):
        super().__init__()
        self.spec, self.defaults, self.expected = spec, defaults, what

    def check(self, value, path):
        if not isinstance(value, dict):
            _fail(path, self.expected, value, secret=True)
        return _walk(self.spec, _merge(self.defaults, value), path)


class MapOf(_Check):
    """A free-form mapping (keys are e.g. minion ids) with checked values."""

    def __init__(self, value, size=None, what=None):
        super().__init__()
        self.value, self.size = value, size
        self.expected = what or f"a mapping of names to {_expected(value)}"

    def check(self, value, path):
        if not isinstance(value, dict):
            _fail(path, self.expected, value, secret=True)
        if self.size is not None and len(value) != self.size:
            count = f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
            _fail(path, self.expected, value, got=count)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.strip():
                _fail(path, f"{self.expected} (keys must be non-empty strings)", key)
            out[key] = _walk(self.value, item, f"{path}:{key}")
        return out


def _expected(spec):
    return "a mapping" if isinstance(spec, dict) else getattr(spec, "expected", "a value")


# --------------------------------------------------------------------------- schema

# async: commits never wait; sync: they wait for the standby, which the master may waive
# (never silently) when it is gone; sync_strict: they always wait (utils/lease/sync.py).
REPLICATION_MODES = ("async", "sync", "sync_strict")
SYNC_MODES = ("sync", "sync_strict")

_NAME = r"[a-z_][a-z0-9_]{0,62}"  # PostgreSQL role/database/slot name that needs no quoting
_PG_NAME = Str(pattern=_NAME, what="a PostgreSQL name (lowercase letters, digits, _; max 63)")
_UNIX_USER = Str(pattern=r"[a-z_][a-z0-9_.-]{0,31}", what="a Unix user name")
_UNIT = r"[A-Za-z0-9][A-Za-z0-9:_.@-]*"  # a service / systemd unit name, safe in an argv
_SERVICE_NAMES = ListOf(Str(pattern=_UNIT, what="a service name"), unique=True)
_SECONDS = Num(gt=0, what="a number of seconds")
_PATHS = ListOf(Path(), unique=True)

SCHEMA = {
    "nodes": MapOf(
        Record(
            {
                "address": IPv4(),
                "hostname": Str(pattern=r"[^\s/]+", what="a host name", nullable=True),
            },
            NODE_DEFAULTS,
            "a mapping with keys address, hostname",
        ),
        size=2,
        what="a mapping of exactly two minion ids to {address, hostname}",
    ),
    "initial_primary": Str(what="the minion id of one of the two nodes"),
    "vip": {
        "address": IPv4(),
        "prefix": Int(1, 32),
        "interface": Str(pattern=r"[^\s/:]{1,15}", what="a network interface name (max 15 chars)"),
        "label": Str(
            pattern=r"[^\s/]{1,15}",
            what="an alias label like 'eth0:0' (max 15 chars)",
            nullable=True,
        ),
        "garp": {"count": Int(1, 50), "interval": _SECONDS},
        "probe": {"timeout": _SECONDS, "attempts": Int(1), "handoff_timeout": _SECONDS},
    },
    "postgres": {
        # 10 is the floor, not 9: the mandatory scram-sha-256 auth only exists since PG 10.
        "version": Int(10, from_str=True),
        "bindir": Path(nullable=True),
        "data_dir": Path(nullable=True),
        "config_dir": Path(nullable=True),
        "port": Int(1, 65535),
        "socket_dir": Path(),
        "log_file": Path(nullable=True),
        "passfile": Path(nullable=True),
        "os_user": _UNIX_USER,
        "superuser": _PG_NAME,
        "database": _PG_NAME,
        "xcat_db_user": _PG_NAME,
        "db_clients": ListOf(IPv4Net(), unique=True),
        "listen_addresses": Str(),
        "auto_rebuild": Bool(),
        "data_checksums": Bool(),
        "replication": {
            "user": _PG_NAME,
            "password": Secret(),
            "mode": Str(choices=REPLICATION_MODES),
            "sync_fallback": _SECONDS,
            "auth_method": Str(
                choices=("scram-sha-256",),
                what="scram-sha-256 (required: trust, password and md5 are not accepted)",
            ),
            "slots": MapOf(Str(pattern=_NAME, what="a replication slot name ([a-z0-9_], max 63)")),
        },
        "wal": {
            "level": Str(choices=("replica", "logical")),
            "max_wal_senders": Int(2),
            "max_replication_slots": Int(2),
            "keep_size": Size(),
            "log_hints": Bool(),
        },
    },
    "lag_limit": {"bytes": Size(), "seconds": Num(ge=0, what="a number of seconds")},
    "services": {
        "names": _SERVICE_NAMES,
        "stop_cmd": Argv(required=["service"]),
        "start_cmd": Argv(required=["service"]),
        "status_cmd": Argv(required=["service"]),
        "service_nodes": {
            "target": Str(what="a salt target", nullable=True),
            "tgt_type": Str(choices=("glob", "list", "pcre", "grain", "nodegroup", "compound")),
            "names": _SERVICE_NAMES,
        },
    },
    "hooks": {
        "post_promotion": ListOf(
            Record(
                {
                    "name": Str(),
                    "cmd": Argv(allowed=["vip", "node"]),
                    "optional": Bool(),
                    "timeout": _SECONDS,
                },
                HOOK_DEFAULTS,
                "a mapping with keys name, cmd, optional, timeout",
            )
        ),
        "diskless_reset": {
            "enabled": Bool(),
            "noderange": Str(what="an xCAT noderange", nullable=True),
            "cmd": Argv(required=["noderange"]),
        },
    },
    "xcat": {
        "site_cmds": ListOf(Argv(allowed=["vip"])),
        "network": Str(what="an xCAT network object name", nullable=True),
        "resolv_conf": Path(),
        "nsswitch_conf": Path(),
    },
    "files": {
        "paths": _PATHS,
        "extra_paths": _PATHS,
        "excludes": ListOf(Str(what="a glob pattern")),
        "delete": Bool(),
        "backup_dir": Path(),
        "transport": Str(choices=("salt", "rsync")),
        "rsync": {"ssh_user": _UNIX_USER, "ssh_key": Path(nullable=True)},
        "root_dir": Path(),
    },
    "heartbeat": {
        "interval": _SECONDS,
        "misses": Int(1),
        "auto_failover": Bool(),
        "lease": _SECONDS,
        "failover_delay": Num(gt=0, what="a number of seconds", nullable=True),
        "lease_port": Int(1, 65535),
        "lease_key": Secret(nullable=True),
        "cooldown": Num(ge=0, what="a number of seconds"),
        "restart_tries": Int(0, 10),
        "auto_rejoin": Bool(),
        "state_dir": Path(),
    },
    "fence": {"cmd": Argv(allowed=["node"], nullable=True), "timeout": _SECONDS},
    "preflight": {
        "max_clock_offset": _SECONDS,
        "install_dir": Path(),
        "check_install": Bool(),
    },
    "maintenance": Bool(),
}


# --------------------------------------------------------------------------- engine


def _merge(defaults, value):
    """Deep-merge ``value`` over ``defaults`` into new objects; lists are replaced."""
    if isinstance(defaults, dict) and isinstance(value, dict):
        merged = {key: copy.deepcopy(item) for key, item in defaults.items()}
        for key, item in value.items():
            merged[key] = _merge(defaults[key], item) if key in defaults else copy.deepcopy(item)
        return merged
    return copy.deepcopy(value)


# Keys that existed once: a pillar still setting one is told why it is gone.
REMOVED = {
    "hamn:postgres:service": (
        "this key was removed: it never did anything, hamn starts and stops PostgreSQL with pg_ctl "
        "itself. Delete it from the pillar, and keep the PostgreSQL systemd unit disabled on both nodes "
        "(systemctl disable postgresql postgresql@<version>-main; see docs/execution-module.md)"
    ),
}


def _walk(spec, value, path):
    """Check ``value`` against ``spec`` (a dict of specs or a checker callable)."""
    if not isinstance(spec, dict):
        return spec(value, path)
    if not isinstance(value, dict):
        _fail(path, "a mapping", value, secret=True)
    for key in value:
        if f"{path}:{key}" in REMOVED:
            raise SaltInvocationError(f"{path}:{key}: {REMOVED[f'{path}:{key}']}")
        if key not in spec:
            raise SaltInvocationError(
                f"{path}:{key}: unknown key; expected one of: {', '.join(sorted(spec))}"
            )
    out = {}
    for key, sub in spec.items():
        if key not in value:
            raise SaltInvocationError(f"{path}:{key}: required; expected {_expected(sub)}")
        out[key] = _walk(sub, value[key], f"{path}:{key}")
    return out


def _derive(cfg):
    """Cross-key rules and derived values that a per-key checker cannot see."""
    nodes = cfg["nodes"]
    for node_id, node in nodes.items():
        node["hostname"] = node["hostname"] or node_id
    first, second = sorted(nodes)
    if nodes[first]["address"] == nodes[second]["address"]:
        _fail(f"hamn:nodes:{second}:address", f"an address different from {first}'s",
              nodes[second]["address"])
    if cfg["initial_primary"] not in nodes:
        _fail("hamn:initial_primary", "one of the node ids: " + ", ".join(sorted(nodes)),
              cfg["initial_primary"])

    vip = cfg["vip"]
    if vip["address"] in {node["address"] for node in nodes.values()}:
        _fail("hamn:vip:address", "an address not used by either node", vip["address"])
    if vip["label"] is not None and not vip["label"].startswith(vip["interface"] + ":"):
        _fail("hamn:vip:label", f"a label starting with '{vip['interface']}:' (the vip interface)",
              vip["label"])

    pg = cfg["postgres"]
    pg["bindir"] = pg["bindir"] or f"/usr/lib/postgresql/{pg['version']}/bin"
    pg["data_dir"] = pg["data_dir"] or f"/var/lib/postgresql/{pg['version']}/main"
    pg["config_dir"] = pg["config_dir"] or pg["data_dir"]

    slots = pg["replication"]["slots"]
    for node_id in slots:
        if node_id not in nodes:
            _fail(f"hamn:postgres:replication:slots:{node_id}",
                  "a key that is one of the node ids: " + ", ".join(sorted(nodes)), node_id)
    for node_id in sorted(nodes):
        slots.setdefault(node_id, _default_slot(node_id))
    if len(set(slots.values())) != len(slots):
        _fail("hamn:postgres:replication:slots", "a different slot name for each node",
              ", ".join(sorted(slots.values())))

    hooks = cfg["hooks"]
    names = [hook["name"] for hook in hooks["post_promotion"]]
    for index, name in enumerate(names):
        if name in names[:index]:
            _fail(f"hamn:hooks:post_promotion:{index}:name", "a name no other hook uses", name)
    if hooks["diskless_reset"]["enabled"] and not hooks["diskless_reset"]["noderange"]:
        raise SaltInvocationError(
            "hamn:hooks:diskless_reset:noderange: required when enabled is true; "
            "expected an xCAT noderange, got null"
        )

    _derive_heartbeat(cfg)

    # The mandatory excludes always come last and exactly once, whatever the user listed.
    files = cfg["files"]
    user = [pattern for pattern in files["excludes"] if pattern not in MANDATORY_EXCLUDES]
    files["excludes"] = list(dict.fromkeys(user)) + list(MANDATORY_EXCLUDES)
    return cfg


# What the master adds on top of the lease before it may promote without a fence:
# the watchdog's tick (0.2 s), its self-fence (VIP drop + immediate stop, < 0.3 s)
# and slack for the two clocks' rates.
LEASE_MARGIN = 0.75


def _derive_heartbeat(cfg):
    """The lease must end, and the old primary be fenced, before the failover delay does."""
    hb = cfg["heartbeat"]
    # Salt runs a beacon at most once per loop_interval (1 s) and counts its interval in those.
    if hb["interval"] < 1 or hb["interval"] != int(hb["interval"]):
        _fail("hamn:heartbeat:interval", "a whole number of seconds >= 1 (Salt runs beacons once a second)",
              hb["interval"])
    # Renewals come with the heartbeats: a lease shorter than two of them would
    # expire between two renewals on a healthy pair.
    if hb["lease"] < 2 * hb["interval"] + 0.5:
        _fail("hamn:heartbeat:lease",
              f"at least 2 x heartbeat:interval + 0.5 = {2 * hb['interval'] + 0.5:g} seconds", hb["lease"])
    least = hb["lease"] + LEASE_MARGIN
    if hb["failover_delay"] is None:
        hb["failover_delay"] = least
    elif hb["failover_delay"] < least:
        _fail("hamn:heartbeat:failover_delay",
              f"at least heartbeat:lease + {LEASE_MARGIN:g} = {least:g} seconds (a shorter delay could "
              "promote while the old primary's lease still lets it write)", hb["failover_delay"])
    if hb["lease_port"] == cfg["postgres"]["port"]:
        _fail("hamn:heartbeat:lease_port", "a port other than postgres:port", hb["lease_port"])
    if hb["lease_key"] is None:
        # Both nodes and the master already share the replication password.
        secret = cfg["postgres"]["replication"]["password"]
        hb["lease_key"] = hashlib.sha256(b"hamn-lease\0" + secret.encode()).hexdigest()


def _default_slot(node_id):
    return ("hamn_" + re.sub(r"[^a-z0-9_]", "_", node_id.lower()))[:63]


# --------------------------------------------------------------------------- public API


def load(raw):
    """Validate the raw ``hamn`` pillar value and return a new normalized dict.

    The result has exactly the keys of :data:`DEFAULTS` plus ``nodes`` and
    ``initial_primary``, with every default filled, derived values computed
    (node hostnames, PostgreSQL paths, replication slots), sizes as int bytes,
    seconds as float and the mandatory file excludes appended.  ``raw`` is not
    modified.  Raises SaltInvocationError naming the offending key path.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail("hamn", "a mapping", raw, secret=True)
    return _derive(_walk(SCHEMA, _merge(DEFAULTS, raw), "hamn"))


def node_ids(cfg):
    """The two configured minion ids, sorted."""
    return sorted(cfg["nodes"])


def peer_of(cfg, minion_id):
    """The other node's minion id; refuses a minion that is not one of the pair."""
    if minion_id not in cfg["nodes"]:
        _fail("hamn:nodes", "one of the configured minion ids " + ", ".join(node_ids(cfg)),
              minion_id)
    return next(node for node in node_ids(cfg) if node != minion_id)


def slot_name(cfg, minion_id):
    """The replication slot the primary keeps for standby ``minion_id``."""
    peer_of(cfg, minion_id)  # same membership check and message
    return cfg["postgres"]["replication"]["slots"][minion_id]


def format_argv(argv, **values):
    """Substitute ``{placeholders}`` in each argument; returns a new list (no shell involved)."""
    if isinstance(argv, str) or not isinstance(argv, (list, tuple)):
        raise SaltInvocationError(f"expected a list of arguments, not {_kind(argv)}")
    try:
        return [str(arg).format(**values) for arg in argv]
    except (KeyError, IndexError, ValueError) as exc:
        raise SaltInvocationError(
            f"command {_show_list(list(argv))}: missing or bad placeholder {exc}"
        ) from None


def format_size(nbytes):
    """Render bytes as a PostgreSQL setting with the largest exact unit: 1073741824 -> '1GB'."""
    if nbytes == 0:
        return "0"
    for unit in ("TB", "GB", "MB", "kB"):
        if nbytes % _UNITS[unit] == 0:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return f"{nbytes}B"


def digest(shown):
    """A short fingerprint of a (redacted) config: the master asks a node for its
    config (``hamn.config``) only when this changed since the copy it keeps."""
    import hashlib  # pylint: disable=import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel

    text = json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
