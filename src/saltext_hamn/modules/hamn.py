"""Execution module ``hamn``: node-local steps of an xCAT HA management node pair.

Thin loader layer: argument handling and pillar lookup here, logic in
``saltext_hamn.utils``. Failures raise CommandExecutionError (a non-zero retcode,
which orchestrate's onfail/failhard see); bad arguments raise SaltInvocationError.
"""

import copy
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import saltext_hamn
from saltext_hamn.utils import config as hamn_config

try:
    import psycopg2  # noqa: F401
    import pyroute2  # noqa: F401

    from saltext_hamn.utils import handoff, preflight as pre, services
    from saltext_hamn.utils.auto import takeover as auto_takeover, unfence as auto_unfence
    from saltext_hamn.utils.net import vip
    from saltext_hamn.utils.pg import canary, cluster as pg_cluster, demote as pg_demote, peer as pg_peer, postmaster
    from saltext_hamn.utils.pg import promote as pg_promote, rewind as pg_rewind, standby, status as pg_status

    _MISSING = None
except ImportError as exc:  # pragma: no cover - depends on the host
    _MISSING = str(exc)

__virtualname__ = "hamn"

REDACTED = "**redacted**"


def __virtual__():
    if _MISSING:
        return False, f"hamn: missing Python dependency ({_MISSING}); pip install saltext-hamn"
    return __virtualname__


# pylint: disable=undefined-variable
def _cfg():
    return hamn_config.load(__pillar__.get("hamn"))


def _me(cfg):
    me = __opts__["id"]
    if me not in cfg["nodes"]:
        raise SaltInvocationError(
            f"hamn:nodes: this minion ({me}) is not one of the configured nodes ({', '.join(sorted(cfg['nodes']))})"
        )
    return me


def _local(cfg):
    return pg_cluster.from_config(cfg)


# pylint: enable=undefined-variable


def config():
    """
    Return this node's validated ``hamn`` pillar with defaults filled in.

    Secrets are redacted. Raises SaltInvocationError naming the key path when the
    pillar is wrong, or when this minion is not one of ``hamn:nodes``, so this is
    also the quickest pillar check.

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.config
    """
    cfg = _cfg()
    _me(cfg)
    return _redacted(cfg)


def _redacted(cfg):
    shown = copy.deepcopy(cfg)
    shown["postgres"]["replication"]["password"] = REDACTED
    shown["heartbeat"]["lease_key"] = REDACTED
    return shown


def version():
    """
    Return the saltext-hamn version installed on this minion.

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.version
    """
    return saltext_hamn.__version__


def status():
    """
    This node's role and replication state: role (primary/standby/stopped/unknown),
    running, in recovery, timeline, current/received/replayed LSN, lag in bytes and
    seconds, connected standbys, slots, whether it holds the VIP, maintenance flag,
    and ``peer_postgres``: whether the peer's PostgreSQL port accepts a TCP
    connection from here (``{"reachable": bool, "seconds": float}``, plus ``error``
    when not; a plain connect with a 0.5 s timeout, no login, no SQL).

    Cheap and read-only: safe to call every second.

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.status
    """
    started = time.monotonic()
    cfg = _cfg()
    me = _me(cfg)
    info = pg_status.collect(_local(cfg))
    info.update(node=me, peer=hamn_config.peer_of(cfg, me), maintenance=cfg["maintenance"],
                vip=_vip_held(cfg), peer_postgres=pg_peer.probe_peer(cfg, me), time=time.time(),
                config_digest=hamn_config.digest(_redacted(cfg)))
    info["seconds"] = round(time.monotonic() - started, 3)
    return info


def _vip_held(cfg):
    try:
        return vip.held(cfg["vip"]["address"], cfg["vip"]["interface"])
    except Exception:  # pylint: disable=broad-except
        return None  # status never fails for the VIP; vip_status says why


def promote(force=False, primary_lsn=None, timeout=60):
    """
    Promote the local standby to primary.

    Refuses when the standby lags more than ``hamn:lag_limit`` (bytes or seconds)
    unless ``force=True``. ``primary_lsn`` is the primary's last known WAL position
    (from the orchestration); with it the lag is what a promotion would lose.
    Checkpoints after promotion so the new timeline is in pg_control, and creates
    the replication slot for the peer. Idempotent on a primary.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.promote
        salt mn2 hamn.promote primary_lsn=0/3000148
        salt mn2 hamn.promote force=True
    """
    force, timeout = _bool(force, "force"), _seconds(timeout, "timeout")
    cfg = _cfg()
    return pg_promote.promote(_local(cfg), cfg, _me(cfg), force=force,
                              primary_lsn=None if primary_lsn is None else str(primary_lsn), timeout=timeout)


def takeover(peer_fenced=False, primary_lsn=None, force=False, handoff=False, timeout=60):
    """
    Automatic failover, on the standby: promote it and raise the VIP in one call.

    Refuses unless this node is a running standby and the old primary's
    PostgreSQL does not accept connections from here. Stops this node's watchdog
    from renewing the old primary's lease and, unless ``peer_fenced=True`` (the
    master proved the old primary fenced), waits until the last renewal it gave
    is ``hamn:heartbeat:failover_delay`` old. Keeps the lag guard of
    ``hamn.promote`` (``primary_lsn``: the old primary's last known position)
    and the ARP guard of ``hamn.vip_up`` (``force=True`` accepts lag past the
    limit, as for ``hamn.promote``). ``handoff=True``: the old primary's watchdog
    fenced it keeping the VIP; it is asked to release it and the VIP is taken at
    once (else the full ARP probe decides). Also the failover orchestration's
    ``take`` step.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.takeover peer_fenced=True primary_lsn=0/3000148
    """
    peer_fenced, force = _bool(peer_fenced, "peer_fenced"), _bool(force, "force")
    handoff, timeout = _bool(handoff, "handoff"), _seconds(timeout, "timeout")
    cfg = _cfg()
    return auto_takeover.takeover(_local(cfg), cfg, _me(cfg), peer_fenced=peer_fenced, force=force, handoff=handoff,
                                  primary_lsn=None if primary_lsn is None else str(primary_lsn), timeout=timeout)


def unfence(peer_checked=False, timeout=60):
    """
    Bring this node back as primary after its lease watchdog fenced it while
    nobody took its place (the automation's "unfence" decision).

    Refuses unless this node's watchdog fenced it, and unless the peer's
    PostgreSQL runs in recovery, or does not answer from here and the caller
    vouches with ``peer_checked=True`` (the master does, after seeing the peer's
    own heartbeat say standby). Starts PostgreSQL (as the standby the fence
    left), promotes it with the lag guard of ``hamn.promote``, raises the VIP.
    Idempotent on a primary (only re-announces the VIP).

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.unfence
    """
    peer_checked, timeout = _bool(peer_checked, "peer_checked"), _seconds(timeout, "timeout")
    cfg = _cfg()
    return auto_unfence.unfence(_local(cfg), cfg, _me(cfg), peer_checked=peer_checked, timeout=timeout)


def stop_db(mode="fast", timeout=60):
    """
    Stop PostgreSQL cleanly and return the shutdown checkpoint LSN (from pg_control),
    so a switchover can wait until the standby has received it.

    Boot-safe: unless PostgreSQL runs here as a standby, the standby config
    pointing at the peer (standby.signal, ``hamn.standby.conf``) is written first,
    so any later start (``pg_ctl start``, systemd at boot, ``hamn.start_db``) comes
    up read-only. To make the node primary again, ``hamn.promote`` it.
    Returns ``changed``, ``was_running``, ``lsn`` (None when pg_control shows no
    clean shutdown), ``state`` (pg_control's cluster state) and ``boot_safe``.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.stop_db
        salt mn1 hamn.stop_db mode=smart
    """
    if mode not in ("smart", "fast", "immediate"):
        raise SaltInvocationError(f"mode: expected smart, fast or immediate, got {mode!r}")
    timeout = _seconds(timeout, "timeout")
    cfg = _cfg()
    return pg_demote.stop(_local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], mode=mode, timeout=timeout)


def demote(timeout=60):
    """
    Take this node out of the primary role for good: write the standby config
    pointing at the peer (standby.signal, ``hamn.standby.conf`` with
    primary_conninfo, this node's slot, recovery_target_timeline latest), then stop
    PostgreSQL fast and clean. Any later start, by hamn, by hand or by systemd at
    boot, comes up read-only as a standby of the peer.

    Idempotent; works on a running primary or standby, a stopped node and a
    crashed one (then ``state`` is "in production" and ``lsn`` None: there was no
    clean shutdown). Returns ``changed``, ``was_running``, ``was_role``, ``lsn``
    (the shutdown checkpoint, for the standby to reach before a promotion),
    ``state``, ``boot_safe`` and ``standby_signal`` (its path).

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.demote
        salt mn1 hamn.demote timeout=120
    """
    timeout = _seconds(timeout, "timeout")
    cfg = _cfg()
    return pg_demote.demote(_local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], timeout=timeout)


def release_primary(timeout=60):
    """
    A switchover's first step on the old primary: stop the cluster services, then
    PostgreSQL boot-safe, as ``hamn.demote`` (``lsn`` is the shutdown checkpoint
    the new primary must hold). A node already running as a standby is left alone.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.release_primary
    """
    timeout = _seconds(timeout, "timeout")
    cfg = _cfg()
    return _steps(handoff.release_primary, _local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], timeout=timeout)


def release_vip(run, timeout=20):
    """
    A switchover's handoff on the old primary (stopped boot-safe): wait until the
    peer is primary and ready, drop the VIP at once and tell the peer over its
    PostgreSQL, then start PostgreSQL here as the peer's standby. ``run`` is the
    orchestration run's id (hex); the peer runs ``hamn.take_over`` with the same.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.release_vip run=0123456789abcdef
    """
    timeout = _seconds(timeout, "timeout")
    cfg = _cfg()
    return handoff.release_vip(_local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], _run_id(run), timeout=timeout)


def take_over(run, lsn=None, force=False, timeout=20):
    """
    A switchover's handoff on the new primary: check this standby holds ``lsn``
    (the old primary's shutdown checkpoint) and the peer does not run as primary,
    promote (lag guard; ``force`` overrides), then take the VIP the moment the peer
    says it dropped it (``hamn.release_vip`` with the same ``run``), with the ARP
    guard. Without the peer's word within ``timeout`` the full ARP probe decides.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.take_over run=0123456789abcdef lsn=0/3000148
    """
    force, timeout = _bool(force, "force"), _seconds(timeout, "timeout")
    if lsn is not None:
        lsn = str(lsn)
    cfg = _cfg()
    return handoff.take_over(_local(cfg), cfg, _me(cfg), _run_id(run), lsn=lsn, force=force, timeout=timeout)


def settle_primary():
    """
    After a switchover on the new primary: CHECKPOINT (pg_control records the new
    timeline), start the cluster services, run the post-promotion commands.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.settle_primary
    """
    cfg = _cfg()
    return _steps(handoff.settle_primary, _local(cfg), cfg, _me(cfg))


def follow(timeout=3600):
    """
    After a switchover on the old primary: wait until it streams from the new
    primary on its timeline (it was started as standby by ``hamn.release_vip``);
    otherwise rejoin it with ``hamn.rewind`` (fallback: base backup).

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.follow
    """
    timeout = _seconds(timeout, "timeout")
    cfg = _cfg()
    return handoff.follow(_local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], timeout=timeout)


def _run_id(run):
    text = str(run)
    if not text or len(text) > 32 or any(c not in "0123456789abcdef" for c in text):
        raise SaltInvocationError(f"run: expected the orchestration run's id (hex digits), got {run!r}")
    return text


def start_db(timeout=60):
    """
    Start PostgreSQL (idempotent) and return this node's status. A node stopped
    by ``hamn.stop_db`` or ``hamn.demote`` starts as a standby (standby.signal);
    ``hamn.promote`` makes it primary.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.start_db
    """
    cfg = _cfg()
    cluster = _local(cfg)
    changed = postmaster.start(cluster, timeout=_seconds(timeout, "timeout"))
    return {"changed": changed, **pg_status.collect(cluster)}


def wait_for_lsn(lsn, timeout=60, replayed=False):
    """
    On the standby, wait until ``lsn`` has been received (or replayed, with
    ``replayed=True``); raise after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.wait_for_lsn 0/3000148 timeout=30
    """
    timeout, replayed = _seconds(timeout, "timeout"), _bool(replayed, "replayed")
    cfg = _cfg()
    return pg_promote.wait_for_lsn(_local(cfg), str(lsn), timeout=timeout, replayed=replayed)


def basebackup(force=False, timeout=3600):
    """
    Make this node a standby of the peer from a fresh base backup: the existing
    data directory is moved aside with a timestamp (never deleted), pg_basebackup
    streams from the peer through this node's replication slot, the standby config
    is written, PostgreSQL started, and the call returns once it streams.
    Refuses on a running primary unless ``force=True``.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.basebackup
    """
    force, timeout = _bool(force, "force"), _seconds(timeout, "timeout")
    cfg = _cfg()
    return standby.rebuild(_local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], force=force, timeout=timeout)


def rewind(fallback=False, timeout=3600):
    """
    Rejoin this former primary as standby of the peer with pg_rewind, keeping this
    node's own configuration files; then standby config, start, wait for streaming
    on the primary's timeline. With ``fallback=True`` a node that cannot be
    rewound is rebuilt with ``hamn.basebackup`` instead.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.rewind fallback=True
    """
    fallback, timeout = _bool(fallback, "fallback"), _seconds(timeout, "timeout")
    cfg = _cfg()
    return pg_rewind.rewind(_local(cfg), cfg, _me(cfg), cfg["postgres"]["version"], fallback=fallback,
                            timeout=timeout)


def verify_replication(timeout=10):
    """
    Write a canary row on this primary, wait until the standby shows it, remove it
    and wait until it is gone there too (the seed's mkdef/lsdef testnode check).

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.verify_replication
    """
    cfg = _cfg()
    return canary.verify(_local(cfg), cfg, _me(cfg), timeout=_seconds(timeout, "timeout"))


def vip_up(force=False):
    """
    Raise the VIP on this node: probe it with ARP first and refuse when another
    host answers (``force=True`` overrides), add it through netlink with the
    configured prefix and alias label (never persistent: a reboot forgets it), then
    announce it with gratuitous ARPs. Idempotent (re-announces when already held).

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.vip_up
    """
    return vip.up(_cfg(), force=_bool(force, "force"))


def vip_down():
    """
    Remove the VIP from this node (idempotent).

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.vip_down
    """
    return vip.down(_cfg())


def vip_status():
    """
    Whether this node holds the VIP, with the interface, prefix and label in use.

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.vip_status
    """
    return vip.status(_cfg())


def services_stop(names=None):
    """
    Stop the configured cluster services (``hamn:services:names``, in that order)
    with ``hamn:services:stop_cmd``. ``names`` limits it to some of them. A failing
    stop raises with the results so far.

    CLI Example:

    .. code-block:: bash

        salt mn1 hamn.services_stop
        salt mn1 hamn.services_stop names=xcatd,dhcpd
    """
    return _steps(services.stop_services, _cfg(), names)


def services_start(names=None):
    """
    Start the configured cluster services, in reverse stop order.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.services_start
    """
    return _steps(services.start_services, _cfg(), names)


def services_status():
    """
    State of each configured cluster service (active/inactive/unknown).

    CLI Example:

    .. code-block:: bash

        salt '*' hamn.services_status
    """
    return services.service_states(_cfg())


def run_hooks(which="post_promotion"):
    """
    Run a configured command list in order: ``post_promotion`` (default: makedns -n,
    makedhcp -a, makeconservercf), ``site`` (site table master/nameservers = VIP) or
    ``diskless_reset`` (rpower <noderange> reset, when enabled). A failing step
    stops the sequence with an error naming it, unless marked optional.

    CLI Example:

    .. code-block:: bash

        salt mn2 hamn.run_hooks
        salt mn2 hamn.run_hooks which=site
    """
    cfg = _cfg()
    return _steps(services.run_hooks, cfg, which, node=_me(cfg))


def preflight(reference_time=None):
    """
    The seed's configuration requirements on this node: PostgreSQL/OS/xCAT
    versions (compare both nodes' output), node and VIP in one subnet, peer name
    resolution, clock offset (against ``reference_time``, an epoch from the
    master, when given), /install mounted, writable and root:root, pg_rewind
    readiness. Returns every check with ok and a reason; never fails for a check.

    CLI Example:

    .. code-block:: bash

        salt 'mn*' hamn.preflight
    """
    cfg = _cfg()
    return pre.run(cfg, _me(cfg), _local(cfg), reference_time=reference_time)


def _steps(func, *args, **kwargs):
    """Run a step sequence; a failure carries the steps so far in its message."""
    try:
        return func(*args, **kwargs)
    except services.StepFailed as exc:
        done = ", ".join(f"{s['name']}={s['retcode']}" for s in exc.steps)
        raise CommandExecutionError(f"{exc} (steps: {done})") from exc


def _bool(value, name):
    if isinstance(value, bool):
        return value
    raise SaltInvocationError(f"{name}: expected True or False, got {value!r}")


def _seconds(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SaltInvocationError(f"{name}: expected a positive number of seconds, got {value!r}")
    return value


def lease_ensure():
    """
    Make sure this node's lease watchdog ``hamn-leased`` runs with the current
    pillar (started detached, restarted when the configuration changed; cheap
    when all is well). Returns ``running``, ``pid``, ``started``, ``restarted``.

    CLI Example:

    .. code-block:: bash

        salt 'mn*' hamn.lease_ensure
    """
    from saltext_hamn.utils.lease import supervise  # pylint: disable=import-outside-toplevel

    cfg = _cfg()
    try:
        return supervise.ensure(cfg, _me(cfg))
    except OSError as exc:
        raise CommandExecutionError(f"cannot start hamn-leased: {exc}") from exc


def lease_status():
    """
    The lease watchdog's last status: role, enforcing, lease_left, renewal ages,
    fenced, hold_peer, peer_renewing, pid, and ``age`` (seconds since written;
    more than a second or two means the watchdog is not running). On a primary,
    ``sync`` shows the replication mode's state (docs/replication-modes.md):
    standby_names, sync_standby_streaming, wants_async, loss_free.

    CLI Example:

    .. code-block:: bash

        salt 'mn*' hamn.lease_status
    """
    from saltext_hamn.utils.lease import supervise  # pylint: disable=import-outside-toplevel

    cfg = _cfg()
    _me(cfg)
    status = supervise.read_status(cfg)
    if status is None:
        raise CommandExecutionError(
            f"no lease status in {cfg['heartbeat']['state_dir']}: hamn-leased has not run (hamn.lease_ensure starts it)"
        )
    return status
