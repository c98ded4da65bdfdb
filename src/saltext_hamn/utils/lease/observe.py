"""What the local PostgreSQL is, seen from the watchdog: primary, standby or stopped.

A background thread polls over one persistent unix-socket connection; the watchdog
reads the latest observation and never blocks on PostgreSQL itself (a hung backend
must not delay a self-fence).  An observation older than ``stale_after`` is
reported as role "unknown".

On a primary it also reads ``synchronous_standby_names``, the current WAL position
and ``pg_stat_replication`` (one statement, so a standby's flush position and the
primary's position are of the same moment), and applies the value the watchdog
wants for ``synchronous_standby_names`` (``want_standby_names``) with ALTER SYSTEM
and a reload, on this thread: the watchdog's tick never waits for it.
"""

import logging
import os
import threading
import time

import psycopg2

log = logging.getLogger(__name__)

_QUERY = """
SELECT pg_is_in_recovery(),
       (SELECT status FROM pg_stat_wal_receiver),
       (SELECT sender_host FROM pg_stat_wal_receiver)
"""

# Replication rows before the position: a flush_lsn >= current_lsn then means caught up.
_PRIMARY_QUERY = """
SELECT (SELECT coalesce(json_agg(json_build_object(
            'application_name', application_name, 'state', state, 'sync_state', sync_state,
            'flush_lsn', flush_lsn::text, 'client_addr', host(client_addr))), '[]'::json)
        FROM pg_stat_replication),
       pg_current_wal_lsn()::text,
       current_setting('synchronous_standby_names')
"""
REAPPLY_AFTER = 1.0  # seconds before the same value is written again (a reload takes a moment to show)


def postmaster_alive(data_dir):
    """True when ``postmaster.pid`` names a live process (read directly: no pg_ctl spawn)."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8") as handle:
            pid = int(handle.readline().strip())
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def has_standby_signal(data_dir):
    return any(os.path.exists(os.path.join(data_dir, name)) for name in ("standby.signal", "recovery.conf"))


class PgObserver:
    """``current()`` -> {role, pg_up, receiver_status, sender_host, standby_signal, age,
    standby_names, current_lsn, replication} (the last three on a primary only, else None).

    role: "primary", "standby", "stopped" (no live postmaster) or "unknown" (a live
    postmaster that does not answer, or no fresh observation).
    """

    def __init__(self, cluster, period=0.2, stale_after=1.0, connect_timeout=2):
        self.cluster, self.period, self.stale_after = cluster, period, stale_after
        self.connect_timeout = connect_timeout  # libpq's minimum is 2 s
        self._conn = None
        self._latest = None
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = None
        self._latest_started = float("-inf")  # when the latest observation began
        self.want_standby_names = None  # set by the watchdog; None: leave the setting alone
        self._applied = (None, float("-inf"))  # (value, monotonic time) of the last ALTER SYSTEM

    # ---- one observation -----------------------------------------------------------
    def _connect(self):
        conn = psycopg2.connect(
            host=self.cluster.socket_dir, port=self.cluster.port, user=self.cluster.superuser,
            dbname="postgres", connect_timeout=self.connect_timeout, application_name="hamn-leased",
            options="-c statement_timeout=1000",
        )
        conn.autocommit = True
        return conn

    def observe_once(self):
        data_dir = self.cluster.data_dir
        facts = {"role": "stopped", "pg_up": False, "receiver_status": None, "sender_host": None,
                 "standby_signal": has_standby_signal(data_dir), "standby_names": None,
                 "current_lsn": None, "replication": None}
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            with self._conn.cursor() as cur:
                cur.execute(_QUERY)
                in_recovery, receiver, sender = cur.fetchone()
                facts.update(role="standby" if in_recovery else "primary", pg_up=True,
                             receiver_status=receiver, sender_host=sender)
                if not in_recovery:
                    cur.execute(_PRIMARY_QUERY)
                    rows, current, names = cur.fetchone()
                    facts.update(replication=rows, current_lsn=current, standby_names=names)
                    self._apply_standby_names(cur, names)
        except psycopg2.Error:
            self.close()  # reconnect next time
            if postmaster_alive(data_dir):
                facts["role"] = "unknown"  # starting, stopping or hung: not known to be safe
        return facts

    def _apply_standby_names(self, cur, names):
        """ALTER SYSTEM + reload when the watchdog wants another value (only when it differs)."""
        want = self.want_standby_names
        if want is None or want == names:
            return
        value, at = self._applied
        if value == want and time.monotonic() - at < REAPPLY_AFTER:
            return  # written already; the reload has not reached this session yet
        wlog = logging.getLogger("hamn-leased")
        self._applied = (want, time.monotonic())
        try:
            cur.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (want,))
            cur.execute("SELECT pg_reload_conf()")
        except psycopg2.Error as exc:  # the observation itself stands; tried again after REAPPLY_AFTER
            wlog.warning("setting synchronous_standby_names to %r failed: %s", want, str(exc).strip())
            return
        wlog.info("synchronous_standby_names set to %r (was %r)", want, names)

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None

    # ---- background polling ----------------------------------------------------------
    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            facts = self.observe_once()
            with self._lock:
                self._latest = (time.monotonic(), facts)
                self._latest_started = started
                self._lock.notify_all()
            self._stop.wait(self.period)
        self.close()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="pg-observer", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def refresh(self, timeout=1.0):
        """Wait for an observation begun after this call (e.g. after a fence changed things)."""
        asked = time.monotonic()
        with self._lock:
            self._lock.wait_for(lambda: self._latest_started > asked, timeout)

    def current(self):
        with self._lock:
            latest = self._latest
        if latest is None or time.monotonic() - latest[0] > self.stale_after:
            return {"role": "unknown", "pg_up": None, "receiver_status": None, "sender_host": None,
                    "standby_signal": has_standby_signal(self.cluster.data_dir), "age": None,
                    "standby_names": None, "current_lsn": None, "replication": None}
        at, facts = latest
        return {**facts, "age": round(time.monotonic() - at, 3)}
