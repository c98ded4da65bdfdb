"""The standby's half of an automatic failover, in one minion call: checks, lease wait,
promotion, VIP.

One call instead of two saves a Salt round trip on the write path. Everything the
promotion relies on is checked here, when it runs:
- this node is a running standby;
- the old primary's PostgreSQL does not accept connections from here;
- no renewal this node gave the old primary's lease can still be running: the
  watchdog's renewals are held first (so none can slip in), then, unless the
  master proved the old primary fenced, the call waits until the last one is
  ``failover_delay`` old.
The promotion keeps its lag guard, and the VIP its ARP duplicate-address guard.
"""

import logging
import time

from saltext_hamn.utils import config
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.net import handover, vip
from saltext_hamn.utils.pg import peer as pg_peer, promote as pg_promote, status as pg_status

log = logging.getLogger(__name__)

RELEASE_SECONDS = 5.0  # how long the old primary's watchdog gets to release the VIP


def _lease_ledger():
    from saltext_hamn.utils.lease import ledger  # pylint: disable=import-outside-toplevel

    return ledger


def takeover(cluster, cfg, me, *, peer_fenced, primary_lsn=None, force=False, timeout=60, sleep=time.sleep,
             handoff=False):
    started = time.monotonic()
    role = pg_status.collect(cluster)["role"]
    if role != "standby":
        raise HamnError(f"takeover refused: {me} is {role}, not a running standby")
    reach = pg_peer.probe_peer(cfg, me)
    if reach["reachable"]:
        raise HamnError("takeover refused: the old primary's PostgreSQL still accepts connections from here")
    ledger = _lease_ledger()
    state_dir = cfg["heartbeat"]["state_dir"]
    since = ledger.hold_peer(state_dir)
    waited = 0.0
    try:
        if not peer_fenced and since is not None:
            waited = max(0.0, cfg["heartbeat"]["failover_delay"] - since)
            if waited:
                log.info("takeover: waiting %.2f s until the lease this node last renewed has surely run out", waited)
                sleep(waited)
        t_promote = time.monotonic()
        promoted = pg_promote.promote(cluster, cfg, me, force=force, primary_lsn=primary_lsn, timeout=timeout,
                                      checkpoint=False)
        t_vip = time.monotonic()
        # The VIP answers once added; the later gratuitous ARP rounds need not hold up the call.
        raised = take_from_fenced_peer(cfg, me) if handoff else vip.up(cfg, announce_later=True)
    finally:
        ledger.release_peer(state_dir)
    t_checkpoint = time.monotonic()
    # After the VIP: pg_rewind of the old primary later needs the new timeline in pg_control.
    checkpoint = pg_promote.checkpoint(cluster)
    done = time.monotonic()
    return {"promoted": promoted, "vip": raised, "checkpoint": checkpoint, "lease_waited": round(waited, 3),
            "seconds": round(done - started, 3), "promote_seconds": round(t_vip - t_promote, 3),
            "vip_seconds": round(t_checkpoint - t_vip, 3), "checkpoint_seconds": round(done - t_checkpoint, 3)}


def take_from_fenced_peer(cfg, me, netns=None):
    """The VIP from an old primary its watchdog fenced with the VIP kept (``keep_vip``).

    Survey the VIP (while the old node still holds it, only it may answer), ask its
    watchdog to release it (authenticated; refused unless that node is fenced),
    then add it at once. Without that answer, or when the survey saw another MAC,
    the full ARP probe decides, as for any raise; when that probe finds one holder
    the quick survey missed (a busy host), the fenced peer is asked then, and the
    VIP taken when the holder was that peer.
    """
    with handover.Claim(cfg, netns) as claim:
        if claim.held():
            return {**claim.take(), "released_by_peer": None}
        holders = claim.survey()
        if len(holders) > 1:
            raise HamnError(f"the VIP {claim.address} is answered by several hosts ({', '.join(holders)}): "
                            "not taking it; find the other holder")
        if holders and _released_by_peer(cfg, me, holders):
            return {**claim.take(), "released_by_peer": True}
        answers = claim.full_probe()
        if len(answers) == 1 and not holders and _released_by_peer(cfg, me, answers):
            return {**claim.take(), "released_by_peer": True}
        if answers:
            raise HamnError(f"VIP {claim.address} is in use: answered by {', '.join(answers)}; not adding it")
        return {**claim.take(), "released_by_peer": False}


def _released_by_peer(cfg, me, holders):
    """Ask the peer's watchdog to drop the VIP (up to RELEASE_SECONDS); True when it did and
    its MAC is every MAC that answered for the VIP."""
    from saltext_hamn.utils.lease import protocol  # pylint: disable=import-outside-toplevel

    peer, hb = config.peer_of(cfg, me), cfg["heartbeat"]
    deadline = time.monotonic() + RELEASE_SECONDS
    while True:
        try:
            answer = protocol.exchange(cfg["nodes"][peer]["address"], hb["lease_port"], hb["lease_key"],
                                       "release-vip", me, {}, timeout=1.0)
            break
        except HamnError as exc:
            # Busy (its own tick fencing) or gone: a few tries, then the full probe.
            if time.monotonic() >= deadline:
                log.warning("takeover: %s did not release the VIP (%s); probing it fully", peer, exc)
                return False
            time.sleep(0.1)
    return set(holders) <= {str(answer.get("mac", "")).lower()}
