"""The heartbeat: what each node's ``hamn`` beacon tells the master every interval.

The payload is the contract the master's runner reads (docs/auto-failover.md)::

    {"v": 1, "node", "seq", "at", "role", "pg_up", "timeline", "lsn", "replayed",
     "lag_bytes", "streaming", "vip", "reaches_peer_pg", "reaches_master", "lease",
     "maintenance", "error"}

A value that could not be read is None (never a guessed False: the master's rule
acts on ``pg_up is False`` and ``reaches_peer_pg is False``), and ``error`` says
why in one line. :func:`run` never raises: a silent node looks dead to the master.

Cheap by design, because a beacon runs on the minion's event loop: one local
PostgreSQL session over the unix socket, two non-blocking TCP connects waited on
together, one netlink read; ~10 ms when all is well, at most ~0.3 s more when a
probed address does not answer.
"""

import itertools
import logging
import select
import socket
import threading
import time

from saltext_hamn.utils import config
from saltext_hamn.utils.net import vip
from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import cluster as pg_cluster, status as pg_status

log = logging.getLogger(__name__)

VERSION = 1
PROBE_TIMEOUT = 0.3  # a TCP connect on the LAN takes < 1 ms; a dead host never answers
PG_CONNECT_TIMEOUT = 2  # seconds, libpq's minimum; the unix socket answers at once unless the server hangs
PG_STATEMENT_TIMEOUT_MS = 500
ERROR_MAX = 300
REDACTED = "**redacted**"
_SECRET_WORDS = ("key", "secret", "password", "passwd", "token")

# Kept here, not in the beacon module: Salt reloads loader modules on every pillar
# refresh, this module stays imported for the minion process's life.
_SEQ = itertools.count(1)


def blank(node):
    """A payload with nothing read yet (every fact None, no error)."""
    return {
        "v": VERSION, "node": node, "seq": next(_SEQ), "at": time.time(),
        "role": "unknown", "pg_up": None, "timeline": None, "lsn": None, "replayed": None,
        "lag_bytes": None, "streaming": None, "vip": None, "reaches_peer_pg": None,
        "reaches_master": None, "lease": None, "maintenance": None, "error": None,
    }


def run(raw_pillar, opts, netns=None):
    """The beacon's payload from the raw ``hamn`` pillar and the minion's opts."""
    node = opts.get("id")
    try:
        cfg = config.load(raw_pillar)
        config.peer_of(cfg, node)  # refuses a minion that is not one of hamn:nodes
    except Exception as exc:  # pylint: disable=broad-except
        return _failed(node, f"config: {exc}")
    try:
        return build(cfg, node, master_endpoint(opts), netns=netns)
    except Exception as exc:  # pylint: disable=broad-except
        # A bug here must not silence the node: the master would take it for dead.
        log.warning("hamn heartbeat failed", exc_info=True)
        return _failed(node, _redact(f"heartbeat: {type(exc).__name__}: {exc}", cfg))


def _failed(node, error):
    payload = blank(node)
    payload["error"] = one_line(error)[:ERROR_MAX]
    return payload


def build(cfg, me, master, netns=None, cluster=None, lease=None):
    """The payload of node ``me``; ``master`` is ``(host, port)`` of its ret port (or None).

    ``cluster`` overrides the one from the config (the lab wraps its tools in the
    node's namespace); ``lease`` replaces :func:`lease_status` (tests).
    """
    payload = blank(me)
    errors = []

    def part(what, read, *args, **kwargs):
        try:
            return read(*args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            log.debug("hamn heartbeat: reading %s failed", what, exc_info=True)
            errors.append(f"{what}: {one_line(exc)}")
            return None

    peer_address = cfg["nodes"][config.peer_of(cfg, me)]["address"]
    # pyroute2's sync API runs its own asyncio loop and fails inside the minion's
    # running one: the netlink read gets a thread, overlapping the rest.
    vip_read = _Background(_vip_held, cfg["vip"]["address"], cfg["vip"]["interface"], netns)
    info = part("postgres", pg_status.collect, cluster or pg_cluster.from_config(cfg),
                timeout=PG_CONNECT_TIMEOUT, statement_timeout_ms=PG_STATEMENT_TIMEOUT_MS)
    if info is not None:
        payload.update(postgres_fields(info, peer_address))
        if info.get("error"):
            errors.append(f"postgres: {one_line(info['error'])}")
    targets = {"reaches_peer_pg": (peer_address, cfg["postgres"]["port"])}
    if master:
        targets["reaches_master"] = master
    reached = part("probes", tcp_reachable, targets, PROBE_TIMEOUT, netns=netns)
    if reached is not None:
        payload.update(reached)
    payload["lease"] = _public(part("lease", lease or lease_status, cfg, me, netns=netns))
    payload["vip"] = part("vip", vip_read.result)
    payload["maintenance"] = cfg["maintenance"]
    payload["error"] = _redact("; ".join(errors), cfg)[:ERROR_MAX] or None
    return payload


def postgres_fields(info, peer_address):
    """The payload's PostgreSQL facts from ``utils.pg.status.collect``'s answer.

    ``lsn`` is where this node's WAL ends: the primary's current position, the
    standby's received one; ``lag_bytes`` is the standby's received-but-not-replayed
    WAL, or on a primary the largest replay lag of its standbys.
    """
    role = info["role"]
    receiver = info.get("wal_receiver") or {}
    return {
        "role": role,
        "pg_up": role in ("primary", "standby"),
        "timeline": info.get("timeline"),
        "lsn": {"primary": info.get("current_lsn"), "standby": info.get("received_lsn")}.get(role),
        "replayed": info.get("replayed_lsn") if role == "standby" else None,
        "lag_bytes": info.get("lag_bytes"),
        "streaming": (role == "standby" and receiver.get("status") == "streaming"
                      and receiver.get("sender_host") == peer_address),
    }


def tcp_reachable(targets, timeout=PROBE_TIMEOUT, netns=None):
    """``{name: (host, port)}`` -> ``{name: bool}``: plain TCP connects (no data sent),
    all started at once and waited on together for at most ``timeout`` seconds."""
    results, pending = {}, {}
    poller = select.poll()
    try:
        with entered(netns):
            for name, (host, port) in targets.items():
                sock = _start_connect(host, port)
                if sock is None:
                    results[name] = False
                else:
                    pending[sock.fileno()] = (name, sock)
                    poller.register(sock, select.POLLOUT)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                name, sock = pending.pop(fd)
                poller.unregister(fd)
                results[name] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                sock.close()
    finally:
        for name, sock in pending.values():
            results[name] = False  # no answer in time
            sock.close()
    return results


def _start_connect(host, port):
    """A non-blocking socket connecting to ``host:port``; None when it failed at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError:
        return None
    sock.setblocking(False)
    try:
        sock.connect(address)
    except BlockingIOError:
        return sock  # in progress: poll says when it is done
    except OSError:
        sock.close()
        return None
    return sock


def _vip_held(address, interface, netns):
    # Entering the namespace ourselves: pyroute2's own netns= costs ~10 ms more a call.
    with entered(netns):
        return vip.held(address, interface)


def master_endpoint(opts):
    """``(host, port)`` of the master's ret port from the minion's opts, or None."""
    host = opts.get("master_ip") or opts.get("master")
    if isinstance(host, (list, tuple)):
        host = host[0] if host else None
    if not host or not isinstance(host, str):
        return None
    return host, int(opts.get("master_port") or 4506)


def lease_status(cfg, me, netns=None):
    """Keep this node's lease watchdog running and return its status (None: not installed)."""
    try:
        from saltext_hamn.utils.lease import supervise  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None  # wired once the lease branch (utils.lease.supervise) is merged
    supervise.ensure(cfg, me, netns=netns)
    return supervise.read_status(cfg)


def one_line(value):
    """An error as one line of text."""
    return " ".join(str(value).split())


def _redact(text, cfg):
    for secret in (cfg["postgres"]["replication"]["password"], cfg["heartbeat"]["lease_key"]):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _public(status):
    """The watchdog's status without anything that looks like a secret."""
    if not isinstance(status, dict):
        return status
    return {k: v for k, v in status.items() if not any(word in str(k).lower() for word in _SECRET_WORDS)}


class _Background:
    """``read(*args, **kwargs)`` on a short-lived thread; :meth:`result` waits for it."""

    def __init__(self, read, *args, **kwargs):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(read, args, kwargs),
                                        name="hamn-heartbeat", daemon=True)
        self._thread.start()

    def _run(self, read, args, kwargs):
        try:
            self._value = read(*args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            self._error = exc

    def result(self, timeout=2.0):
        """The value; re-raises the thread's exception, TimeoutError when it is still busy."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"no answer within {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self._value
