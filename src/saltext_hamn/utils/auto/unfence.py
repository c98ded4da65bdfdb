"""Bring back, as primary, a node that fenced itself while nobody took its place.

The lease watchdog fences a primary that no renewer reached for ``lease`` seconds.
When both renewers were gone only for a moment (the master restarting while the
nodes' link was cut), nobody promoted the standby: the pair has no writer, and the
fenced node holds every commit it acknowledged. The master then asks for this.

Checked here, when it runs:
- this node's own ledger says its watchdog fenced it (nothing else is "unfenced");
- the peer's PostgreSQL, when it can be asked, runs in recovery; when it cannot
  (down, unreachable, login refused), the caller must vouch (``peer_checked``: the master saw the peer's own fresh
  heartbeat say standby, or its port closed);
- the promotion keeps its lag guard, the VIP its ARP duplicate-address guard.
Started as the standby the fence left, then promoted: the tested promotion path,
and the peer follows the new timeline as it follows any promotion.
"""

import logging
import time

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import ledger as lease_ledger
from saltext_hamn.utils.net import vip
from saltext_hamn.utils.pg import peer as pg_peer, postmaster, promote as pg_promote, status as pg_status

log = logging.getLogger(__name__)


def unfence(cluster, cfg, me, *, peer_checked=False, timeout=60):
    started = time.monotonic()
    info = pg_status.collect(cluster)
    if info["role"] == "primary":
        # A repeated call after a lost return: only the VIP may be missing.
        return {"changed": False, "comment": "already primary", "vip": vip.up(cfg),
                "seconds": round(time.monotonic() - started, 3)}
    led = lease_ledger.Ledger(cfg["heartbeat"]["state_dir"]).read()
    if not led["fenced"]:
        raise HamnError(f"unfence refused: {me}'s lease watchdog did not fence it (it is {info['role']}); "
                        "a standby becomes primary through a failover, not this")
    peer = pg_peer.ask_peer(cluster, cfg, me)
    if peer is not None and not peer["in_recovery"]:
        raise HamnError(f"unfence refused: the peer runs as primary (timeline {peer.get('timeline')})")
    if peer is None and not peer_checked:
        raise HamnError("unfence refused: the peer's PostgreSQL cannot be asked from here and nobody vouched "
                        "that it is not primary (the master passes peer_checked=True)")
    t_start = time.monotonic()
    started_db = postmaster.start(cluster, timeout=timeout)
    t_promote = time.monotonic()
    promoted = pg_promote.promote(cluster, cfg, me, force=False, timeout=timeout)
    t_vip = time.monotonic()
    raised = vip.up(cfg)
    done = time.monotonic()
    log.warning("unfenced: %s resumed as primary (was fenced: %s)", me, led.get("fence_reason"))
    return {"changed": True, "fence_reason": led.get("fence_reason"), "started": started_db,
            "promoted": promoted, "vip": raised, "seconds": round(done - started, 3),
            "start_seconds": round(t_promote - t_start, 3), "promote_seconds": round(t_vip - t_promote, 3),
            "vip_seconds": round(done - t_vip, 3)}
