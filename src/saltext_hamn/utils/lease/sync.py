"""Replication modes on the primary: who owns ``synchronous_standby_names`` and when it may go.

The primary's watchdog owns the setting (``ALTER SYSTEM`` + ``pg_reload_conf()``
over its local socket, only when the running value differs):

- ``async``: empty; commits never wait.  Never loss-free (the master uses its lag limit).
- ``sync``: ``FIRST 1 ("<peer>")`` (the standby's application_name is its minion
  id).  When no standby has been ``streaming`` with ``sync_state = 'sync'`` for
  ``postgres:replication:sync_fallback`` seconds, the watchdog does *not* clear it:
  it reports ``wants_async``.  Only a renew from the master with
  ``args.allow_async = true`` (sent while ``wants_async`` is reported) releases it:
  the ledger notes "not loss-free" first, then the setting is emptied.  Without
  the master's consent writes keep waiting.  When the standby streams again and has
  flushed the primary's current LSN (one observation), the setting comes back;
  once the standby is seen ``sync`` again the pair is loss-free again.
- ``sync_strict``: the setting always stays; commits wait while the standby is away.

``loss_free`` (persisted in the ledger) means: every commit this primary
acknowledged is on the standby, so a failover loses nothing.  It becomes true only
when the standby is seen in ``sync`` with the setting in effect, and false when
the setting is released, when it is found not in effect on a running primary (a
new primary, a mode switch, a hand edit), in ``async``, and whenever the node is
seen as a standby (a new primary period starts not loss-free).  It survives
watchdog restarts, not a reboot (another boot id voids the ledger: not loss-free
until the standby is seen in sync again).

Everything here is pure; the watchdog feeds it observations and applies results.
"""

from saltext_hamn.utils.pg import lsn

ASYNC, SYNC, STRICT = "async", "sync", "sync_strict"
SYNC_MODES = (SYNC, STRICT)


def standby_names(mode, peer):
    """The ``synchronous_standby_names`` a primary of ``mode`` runs with, its peer standing by."""
    return f'FIRST 1 ("{peer}")' if mode in SYNC_MODES else ""


def peer_row(observed, peer):
    """The peer's row of ``pg_stat_replication`` (its application_name is its minion id), or None."""
    for row in observed.get("replication") or ():
        if row.get("application_name") == peer:
            return row
    return None


def is_sync_streaming(row):
    return bool(row) and row.get("state") == "streaming" and row.get("sync_state") == "sync"


def caught_up(row, current_lsn):
    """The standby streams and has flushed the primary's current position (same observation)."""
    return (bool(row) and row.get("state") == "streaming"
            and lsn.at_least(row.get("flush_lsn"), current_lsn))


class Decision:
    """What one tick decided: ``want`` (names to apply; None: leave the setting alone),
    ``book`` (ledger changes), ``lost_since`` (carry to the next tick), ``view`` (status)."""

    __slots__ = ("want", "book", "lost_since", "wants_async", "in_effect", "streaming", "names")

    def __init__(self, want=None, book=None, lost_since=None, wants_async=False, in_effect=False,
                 streaming=False, names=None):
        self.want, self.book, self.lost_since = want, book or {}, lost_since
        self.wants_async, self.in_effect, self.streaming, self.names = wants_async, in_effect, streaming, names


def decide(mode, fallback, peer, observed, book, lost_since, now):
    """One step of the state machine.

    ``observed``: the watchdog's observation (role, standby_names, current_lsn,
    replication rows); ``book``: the ledger (``sync_released``, ``sync_loss_free``);
    ``lost_since``: when the synchronous standby was found missing (None: it was not);
    ``now``: monotonic seconds.
    """
    role = observed.get("role")
    if role == "standby":
        # A new primary period (after a promotion) starts not loss-free and not released.
        return Decision(book={"sync_released": False, "sync_loss_free": False})
    if role != "primary" or observed.get("standby_names") is None:
        return Decision()  # stopped, unknown, or no fresh look: touch nothing, keep the book
    names = observed["standby_names"]
    row = peer_row(observed, peer)
    streaming = is_sync_streaming(row)
    wanted = standby_names(mode, peer)
    if mode not in SYNC_MODES:
        return Decision(want=wanted, book={"sync_released": False, "sync_loss_free": False},
                        in_effect=names == wanted, streaming=streaming, names=names)
    released = mode == SYNC and book.get("sync_released", False)
    if released:
        if caught_up(row, observed.get("current_lsn")):
            # Back and level with us: wait for it again (loss-free once seen in sync).
            return Decision(want=wanted, book={"sync_released": False, "sync_loss_free": False},
                            lost_since=now, streaming=streaming, names=names)
        return Decision(want="", book={"sync_loss_free": False}, streaming=streaming, names=names)
    book_changes = {"sync_released": False} if book.get("sync_released") else {}
    in_effect = names == wanted
    if in_effect and streaming:
        book_changes["sync_loss_free"] = True
        return Decision(want=wanted, book=book_changes, in_effect=True, streaming=True, names=names)
    if not in_effect:
        book_changes["sync_loss_free"] = False  # commits may have been acknowledged without it
    lost_since = now if lost_since is None else lost_since
    wants_async = mode == SYNC and now - lost_since >= fallback
    return Decision(want=wanted, book=book_changes, lost_since=lost_since, wants_async=wants_async,
                    in_effect=in_effect, streaming=streaming, names=names)


def view(mode, decision, book):
    """The status's ``sync`` block of a primary (None elsewhere), from the tick's decision and
    the ledger as it is now (a consent noted since the tick shows at once)."""
    if decision is None or decision.names is None:
        return None
    released = mode == SYNC and book.get("sync_released", False)
    return {
        "mode": mode,
        "standby_names": decision.names,
        "sync_standby_streaming": decision.streaming,
        "wants_async": decision.wants_async and not released,
        "loss_free": (mode in SYNC_MODES and decision.in_effect and not released
                      and bool(book.get("sync_loss_free"))),
    }


def consent_applies(mode, decision):
    """A master's ``allow_async`` is acted on only in ``sync`` while ``wants_async`` is reported."""
    return mode == SYNC and decision is not None and decision.wants_async


def failover_loss_free(mode, status):
    """For the master's rule: would failing over from this primary lose nothing?

    ``status`` is the primary's watchdog status as the master last saw it (a renew's
    answer or the heartbeat's ``lease``).  Returns None in ``async`` (not applicable:
    use the lag limit), else True only when that status is a primary's, of the same
    mode, and says ``loss_free``.  In ``sync`` an automatic failover needs True; in
    ``sync_strict`` it is True whenever the setting is in effect and the standby has
    been seen in sync since it was put in place (false only right after a promotion
    or a switch from async, before the standby caught up) -- no lag limit is needed
    when True.  No status, another mode, a standby's status: False.
    """
    if mode not in SYNC_MODES:
        return None
    if not isinstance(status, dict):
        return False
    block = status.get("sync")
    if status.get("role") != "primary" or not isinstance(block, dict) or block.get("mode") != mode:
        return False
    return block.get("loss_free") is True
