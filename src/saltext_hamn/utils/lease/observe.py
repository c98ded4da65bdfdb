"""What the local PostgreSQL is, seen from the watchdog: primary, standby or stopped.

A background thread polls over one persistent unix-socket connection; the watchdog
reads the latest observation and never blocks on PostgreSQL itself (a hung backend
must not delay a self-fence).  An observation older than ``stale_after`` is
reported as role "unknown".
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
    """``current()`` -> {role, pg_up, receiver_status, sender_host, standby_signal, age}.

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
                 "standby_signal": has_standby_signal(data_dir)}
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            with self._conn.cursor() as cur:
                cur.execute(_QUERY)
                in_recovery, receiver, sender = cur.fetchone()
            facts.update(role="standby" if in_recovery else "primary", pg_up=True,
                         receiver_status=receiver, sender_host=sender)
        except psycopg2.Error:
            self.close()  # reconnect next time
            if postmaster_alive(data_dir):
                facts["role"] = "unknown"  # starting, stopping or hung: not known to be safe
        return facts

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
                    "standby_signal": has_standby_signal(self.cluster.data_dir), "age": None}
        at, facts = latest
        return {**facts, "age": round(time.monotonic() - at, 3)}
