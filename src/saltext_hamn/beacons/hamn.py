"""Beacon ``hamn``: this node's heartbeat for the master's automatic failover.

Every run fires one event ``salt/beacon/<minion id>/hamn/`` whose data is the
payload of :mod:`saltext_hamn.utils.auto.heartbeat` (role, LSNs, VIP, whether the
peer's PostgreSQL and the master answer, the lease watchdog's status). It reads
the same ``hamn`` pillar as the execution module.

Configure it on both nodes (minion config or pillar), with the interval equal to
``hamn:heartbeat:interval`` (the master counts a node silent after
``heartbeat:misses`` missed intervals):

.. code-block:: yaml

    beacons:
      hamn:
        - interval: 1

A beacon runs on the minion's event loop: a run takes ~10 ms when all is well
and never raises (a problem becomes the payload's ``error``). Salt counts the
interval in units of the minion's ``loop_interval``: leave that at its default, 1.
"""

try:
    import psycopg2  # noqa: F401
    import pyroute2  # noqa: F401

    from saltext_hamn.utils.auto import heartbeat

    _MISSING = None
except ImportError as exc:  # pragma: no cover - depends on the host
    _MISSING = str(exc)

__virtualname__ = "hamn"

# Options Salt's beacon machinery itself reads (salt/beacons/__init__.py).
_SALT_OPTIONS = {"interval", "enabled", "run_once", "disable_during_state_run", "beacon_module"}


def __virtual__():
    if _MISSING:
        return False, f"hamn beacon: missing Python dependency ({_MISSING}); pip install saltext-hamn"
    return __virtualname__


def validate(config):
    """
    Check the beacon's own configuration: a list of one-key mappings with only
    Salt's generic options; ``interval`` a number of seconds > 0.

    The ``hamn`` pillar is not checked here: a beacon that fails validation does
    not run at all, and the master would take the silence for a dead node. A bad
    pillar shows up in every heartbeat's ``error`` instead.
    """
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "hamn beacon: configuration must be a list of mappings, e.g. [{interval: 1}]"
    merged = {}
    for item in config:
        merged.update(item)
    unknown = sorted(key for key in merged if key not in _SALT_OPTIONS and not str(key).startswith("_"))
    if unknown:
        return False, (f"hamn beacon: unknown option(s) {', '.join(map(str, unknown))}; "
                       f"expected only {', '.join(sorted(_SALT_OPTIONS))}")
    interval = merged.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        return False, f"hamn beacon: interval must be a number of seconds > 0, got {interval!r}"
    return True, "valid beacon configuration"


def beacon(config):
    """
    One heartbeat of this node (see :mod:`saltext_hamn.utils.auto.heartbeat`).

    .. code-block:: yaml

        beacons:
          hamn:
            - interval: 1
    """
    del config  # nothing to configure beyond the interval Salt handles
    # pylint: disable=undefined-variable
    return [heartbeat.run(__pillar__.get("hamn"), __opts__)]
