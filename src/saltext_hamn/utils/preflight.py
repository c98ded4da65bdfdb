"""Pre-flight checks: the seed's "Configuration Requirements" on one node.

:func:`run` reports this node's versions (PostgreSQL, OS, xCAT) and a list of
checks, each ``{"name", "ok", "reason"}``; :func:`compare` takes two nodes'
reports and checks that their versions are identical (the seed requires the same
OS, xCAT and database versions on both management nodes).

Every ``check_*`` function is small, takes its inputs as arguments (so tests can
inject paths, clocks and resolvers) and never raises: an unexpected error becomes
``ok=False`` with the error as reason.

The clock rule:

1. with ``reference_time`` (epoch seconds, e.g. the salt-master's clock taken when
   the orchestration started) the check passes when
   ``|now - reference_time| <= preflight:max_clock_offset``;
2. without it, ``timedatectl show -p NTPSynchronized --value`` decides: ``yes``
   passes, ``no`` fails (the seed asks for synchronized clocks, and the system
   says they are not);
3. when neither is available the check passes with the reason "not checked", so a
   host without systemd is not blocked by a check nobody could run.
"""

import ipaddress
import os
import re
import shutil
import socket
import tempfile
import time

from saltext_hamn.utils import config, proc
from saltext_hamn.utils.errors import CommandFailed
from saltext_hamn.utils.pg import postmaster, rewind
from saltext_hamn.utils.pg import versions as pg_versions

#: Version value of something installed whose version could not be read.
UNKNOWN = "unknown"
#: PostgreSQL programs hamn needs in ``postgres:bindir``.
REQUIRED_BINARIES = ("pg_ctl", "pg_basebackup", "pg_rewind")
#: Keys of :func:`run`'s ``versions`` compared by :func:`compare`.
VERSION_KEYS = ("postgres", "os", "xcat")
_TIMEOUT = 30


def _check(name, ok, reason):
    return {"name": name, "ok": bool(ok), "reason": reason}


def _guard(name, func, *args, **kwargs):
    """Call a check function; any exception becomes a failed check naming the error."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:  # pylint: disable=broad-except
        return _check(name, False, f"check error: {type(exc).__name__}: {exc}")


def _first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _error_text(exc):
    """A one-line description of a failed command (CommandFailed or OSError)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------- versions


def read_postgres_version(bindir, timeout=_TIMEOUT):
    """'15.10' from ``<bindir>/postgres --version`` (the whole line if not parseable)."""
    result = proc.run([os.path.join(bindir, "postgres"), "--version"], timeout=timeout,
                      what="postgres --version")
    line = _first_line(result.stdout)
    version = pg_versions.version_in(line)
    if version:
        return version
    if not line:
        raise ValueError("postgres --version printed nothing")
    return line


def read_os_version(path="/etc/os-release"):
    """PRETTY_NAME from os-release, else 'ID VERSION_ID'."""
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key] = value.strip().strip("'\"")
    if values.get("PRETTY_NAME"):
        return values["PRETTY_NAME"]
    joined = " ".join(v for v in (values.get("ID"), values.get("VERSION_ID")) if v)
    if not joined:
        raise ValueError(f"{path} has neither PRETTY_NAME nor ID/VERSION_ID")
    return joined


def read_xcat_version(lsxcatd=None, timeout=_TIMEOUT):
    """xCAT's version from ``lsxcatd -v`` ('2.16.5'), or None when lsxcatd is not on PATH.

    Raises CommandFailed when lsxcatd exists but fails (it asks the running xcatd).
    """
    lsxcatd = lsxcatd or shutil.which("lsxcatd")
    if not lsxcatd:
        return None
    result = proc.run([lsxcatd, "-v"], timeout=timeout, what="lsxcatd -v")
    text = result.stdout or ""
    match = re.search(r"Version\s+(\S+)", text)
    if match:
        return match.group(1)
    return _first_line(text) or UNKNOWN


def _version_check(name, reader, *args):
    """(version, check) for one reader; errors give UNKNOWN and a failed check."""
    label = name.split("_")[0]
    try:
        version = reader(*args)
    except (CommandFailed, OSError, ValueError) as exc:
        reason = f"cannot read the {label} version: {_error_text(exc)}"
        if label == "xcat":
            reason += " (lsxcatd asks the running xcatd)"
        return UNKNOWN, _check(name, False, reason)
    except Exception as exc:  # pylint: disable=broad-except
        return UNKNOWN, _check(name, False, f"check error: {type(exc).__name__}: {exc}")
    if version is None:
        return None, _check(name, True, "xCAT not installed (no lsxcatd on PATH); not compared")
    if version == UNKNOWN:
        return UNKNOWN, _check(name, False, f"the {label} version tool printed no version")
    return version, _check(name, True, f"{label} {version}")


# --------------------------------------------------------------------------- checks


def check_postgres_major(installed, configured, data_dir):
    """The binaries' major is the pillar's ``postgres:version`` and the data dir's PG_VERSION.

    ``installed``: what ``postgres --version`` said ("18.6"); the pillar's version picks
    the server settings written, and a data dir of another major will not start.
    """
    major = pg_versions.major_of(installed)
    if major is None:
        return _check("postgres_major", False, f"cannot tell the major of the installed PostgreSQL ({installed})")
    problems = []
    if major != configured:
        problems.append(f"the pillar's hamn:postgres:version is {configured}")
    on_disk = pg_versions.data_dir_major(data_dir)
    if on_disk is not None and on_disk != major:
        problems.append(f"{data_dir} was made by PostgreSQL {on_disk} (PG_VERSION); "
                        "upgrade it (pg_upgrade) or point bindir at that major")
    if problems:
        return _check("postgres_major", False, f"the binaries are PostgreSQL {major}, but " + "; ".join(problems))
    where = f", as is {data_dir}" if on_disk is not None else ""
    return _check("postgres_major", True, f"PostgreSQL {major} as configured{where}")


def check_postgres_bin(bindir, required=REQUIRED_BINARIES):
    """``bindir`` holds executable pg_ctl, pg_basebackup and pg_rewind."""
    missing = [
        name for name in required
        if not (os.path.isfile(os.path.join(bindir, name))
                and os.access(os.path.join(bindir, name), os.X_OK))
    ]
    if missing:
        return _check("postgres_bin", False,
                      f"missing or not executable in {bindir}: {', '.join(missing)}")
    return _check("postgres_bin", True, f"{bindir} has {', '.join(required)}")


def check_subnet(address, vip, prefix, peer_address=None):
    """This node (and the peer) in the VIP's network: DHCP broadcasts must reach both."""
    network = ipaddress.IPv4Interface(f"{vip}/{prefix}").network
    outside = [
        f"{label} {addr}"
        for label, addr in (("this node", address), ("peer", peer_address))
        if addr is not None and ipaddress.IPv4Address(addr) not in network
    ]
    if outside:
        return _check("subnet", False,
                      f"not in the VIP's network {network} (VIP {vip}/{prefix}): {', '.join(outside)}")
    members = f"this node {address}" + (f" and peer {peer_address}" if peer_address else "")
    return _check("subnet", True, f"{members} in the VIP's network {network}")


def check_peer_resolves(hostname, expected_address=None, resolver=socket.getaddrinfo):
    """The peer's host name resolves; the reason says whether to the configured address."""
    try:
        infos = resolver(hostname, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, socket.herror, OSError, UnicodeError) as exc:
        return _check("peer_resolves", False, f"{hostname} does not resolve: {exc}")
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        return _check("peer_resolves", False, f"{hostname} resolves to no address")
    reason = f"{hostname} resolves to {', '.join(addresses)}"
    if expected_address is not None:
        if expected_address in addresses:
            reason += f" (includes the configured address {expected_address})"
        else:
            reason += f" (not the configured address {expected_address})"
    return _check("peer_resolves", True, reason)


def ntp_synchronized(timeout=10):
    """True/False from timedatectl's NTPSynchronized, or None when it cannot tell."""
    try:
        result = proc.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                          timeout=timeout, check=False)
    except (CommandFailed, OSError):
        return None
    value = result.stdout.strip().lower()
    if result.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


def check_clock(max_offset, reference_time=None, now=None, ntp=ntp_synchronized):
    """See the module doc for the rule. ``now``/``ntp`` are injectable for tests."""
    if reference_time is not None:
        now = time.time() if now is None else now
        offset = now - float(reference_time)
        text = f"offset {offset:+.3f}s from the reference time (limit {max_offset:g}s)"
        return _check("clock", abs(offset) <= max_offset, text)
    synced = ntp()
    if synced is True:
        return _check("clock", True, "no reference time given; timedatectl: NTP-synchronized")
    if synced is False:
        return _check("clock", False,
                      "no reference time given; timedatectl: clock NOT NTP-synchronized")
    return _check("clock", True,
                  "no reference time given and timedatectl cannot tell; not checked")


def check_install_dir(path, enabled=True, ismount=os.path.ismount, stat=os.stat):
    """``path`` is a mount point, writable and owned root:root (nobody:nobody breaks xCAT)."""
    if not enabled:
        return _check("install_dir", True, f"{path}: not checked (preflight:check_install is false)")
    if not os.path.isdir(path):
        return _check("install_dir", False, f"{path} does not exist or is not a directory")
    problems = []
    if not ismount(path):
        problems.append("not a mount point")
    info = stat(path)
    if (info.st_uid, info.st_gid) != (0, 0):
        problems.append(f"owned by {info.st_uid}:{info.st_gid}, not root:root "
                        "(xCAT installation fails on a nobody:nobody /install)")
    try:
        handle, probe = tempfile.mkstemp(prefix=".hamn-preflight-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        problems.append(f"not writable ({exc.strerror or exc})")
    if problems:
        return _check("install_dir", False, f"{path}: " + "; ".join(problems))
    return _check("install_dir", True, f"{path}: mounted, writable, owned by root:root")


parse_controldata = postmaster.parse_controldata


def rewind_check_from_controldata(values, log_hints_configured=False):
    """wal_log_hints on or data checksums on (pg_rewind needs one of them)."""
    ok, reason = rewind.capability(values)
    if ok:
        return _check("rewind_ready", True, reason + "; pg_rewind can resync this node")
    if log_hints_configured and values:
        reason += " (hamn's settings enable wal_log_hints: restart PostgreSQL after applying them)"
    return _check("rewind_ready", False, reason)


def check_rewind_ready(cluster, log_hints_configured=False):
    """Read ``pg_controldata`` of the cluster; no cluster yet passes (hamn sets wal_log_hints)."""
    if not postmaster.has_data(cluster):
        return _check("rewind_ready", True, "no cluster yet; hamn's settings enable wal_log_hints")
    try:
        values = postmaster.controldata(cluster)
    except (CommandFailed, OSError) as exc:
        return _check("rewind_ready", False, f"pg_controldata failed: {_error_text(exc)}")
    return rewind_check_from_controldata(values, log_hints_configured)


# --------------------------------------------------------------------------- run / compare


def run(cfg, node_id, cluster, reference_time=None, os_release="/etc/os-release"):
    """Versions and checks of this node (``node_id``); see the module doc.

    Returns ``{"node", "versions": {"postgres", "os", "xcat"}, "checks": [...],
    "ok"}``. ``versions`` values are strings, ``"unknown"`` when unreadable, and
    ``xcat`` is None when xCAT is not installed. Raises SaltInvocationError only for
    a ``node_id`` that is not one of the configured nodes.
    """
    peer_id = config.peer_of(cfg, node_id)
    node, peer = cfg["nodes"][node_id], cfg["nodes"][peer_id]
    pre = cfg["preflight"]

    versions, checks = {}, []
    for key, name, reader, args in (
        ("postgres", "postgres_version", read_postgres_version, (cluster.bindir,)),
        ("os", "os_version", read_os_version, (os_release,)),
        ("xcat", "xcat_version", read_xcat_version, ()),
    ):
        versions[key], check = _version_check(name, reader, *args)
        checks.append(check)

    checks += [
        _guard("postgres_bin", check_postgres_bin, cluster.bindir),
        _guard("postgres_major", check_postgres_major, versions["postgres"],
               cfg["postgres"]["version"], cluster.data_dir),
        _guard("subnet", check_subnet, node["address"], cfg["vip"]["address"],
               cfg["vip"]["prefix"], peer["address"]),
        _guard("peer_resolves", check_peer_resolves, peer["hostname"], peer["address"]),
        _guard("clock", check_clock, pre["max_clock_offset"], reference_time),
        _guard("install_dir", check_install_dir, pre["install_dir"], pre["check_install"]),
        _guard("rewind_ready", check_rewind_ready, cluster,
               cfg["postgres"]["wal"]["log_hints"]),
    ]
    return {
        "node": node_id,
        "versions": versions,
        "checks": checks,
        "ok": all(check["ok"] for check in checks),
    }


def compare(reports):
    """Checks ``same_postgres_version``, ``same_os_version``, ``same_xcat_version``.

    ``reports``: the :func:`run` results of the nodes, as a list or as a
    {minion id: result} mapping (what ``salt.function`` returns). A node whose
    result is not a report (e.g. an error string) or whose version is "unknown"
    fails the comparison; xCAT absent (None) on every node passes.
    """
    if isinstance(reports, dict):
        items = [(str(node), report) for node, report in sorted(reports.items())]
    else:
        items = [
            (str(report.get("node", f"#{index}")) if isinstance(report, dict) else f"#{index}", report)
            for index, report in enumerate(reports or [])
        ]
    checks = []
    for key in VERSION_KEYS:
        name = f"same_{key}_version"
        if len(items) < 2:
            checks.append(_check(name, False, f"need two preflight reports, got {len(items)}"))
            continue
        bad = [node for node, report in items
               if not isinstance(report, dict) or not isinstance(report.get("versions"), dict)]
        if bad:
            checks.append(_check(name, False, f"no preflight report from {', '.join(bad)}"))
            continue
        values = {node: report["versions"].get(key) for node, report in items}
        shown = ", ".join(f"{node}: {value if value is not None else 'not installed'}"
                          for node, value in values.items())
        unknown = [node for node, value in values.items() if value == UNKNOWN]
        if unknown:
            checks.append(_check(name, False, f"{key} version unknown on {', '.join(unknown)}; "
                                 f"cannot compare ({shown})"))
        elif len(set(values.values())) == 1:
            checks.append(_check(name, True, f"identical ({shown})"))
        elif key == "postgres" and len({pg_versions.major_of(v) for v in values.values()}) > 1:
            checks.append(_check(name, False, f"PostgreSQL majors differ ({shown}): streaming replication "
                                 "and pg_rewind need one major on both nodes"))
        else:
            checks.append(_check(name, False, f"{key} versions differ ({shown})"))
    return checks
