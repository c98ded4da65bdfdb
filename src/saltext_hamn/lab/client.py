"""A client of the xCAT database that writes through the VIP, as xcatd would.

Used by the tests, the benchmark and the drill to prove that no acknowledged
commit is lost across a switchover and to measure how long writes are impossible.
"""

import threading
import time

import psycopg2

from saltext_hamn.lab.spec import VIP_ADDRESS
from saltext_hamn.utils.pg import connection


class VipWriter(threading.Thread):
    """Insert 1, 2, 3, ... into ``table`` through the VIP; log each acknowledged commit.

    ``ack_times`` are monotonic (for gaps); ``ack_walls`` and ``fail_walls`` are
    wall-clock (time.time()), so they line up with the master's run records.
    """

    def __init__(self, lab, table="hamn_writer", pause=0.005):
        super().__init__(daemon=True)
        self.lab, self.table, self.pause = lab, table, pause
        self.acked, self.ack_times, self.ack_walls, self.errors = [], [], [], 0
        self.fail_walls = []  # when each failed attempt gave up: write-failed intervals
        self.started_wall = self.stopped_wall = None
        self.stop = threading.Event()

    def run(self):
        self.started_wall = time.time()
        conn, n = None, 0
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.lab.client_connect(VIP_ADDRESS)
                    connection.query(conn, f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")
                n += 1
                connection.query(conn, f"INSERT INTO {self.table} VALUES (%s)", (n,))
                self.acked.append(n)  # only after the commit returned
                self.ack_times.append(time.monotonic())
                self.ack_walls.append(time.time())
            except (psycopg2.Error, OSError):
                self.errors += 1
                self.fail_walls.append(time.time())
                conn = None
                time.sleep(0.05)
            time.sleep(self.pause)
        self.stopped_wall = time.time()

    def finish(self, timeout=10):
        self.stop.set()
        self.join(timeout)

    def longest_gap(self, start, end):
        """The longest time between two acknowledged commits around [start, end]."""
        times = [t for t in self.ack_times if start - 1 <= t <= end + 1]
        return max((b - a for a, b in zip(times, times[1:])), default=float("nan"))

    def first_ack_after(self, moment):
        return next((t for t in self.ack_times if t > moment), float("nan"))

    def log(self):
        """What it saw, wall-clock, for the drill report (lists copied: the thread may still append)."""
        return {"table": self.table, "started": self.started_wall, "stopped": self.stopped_wall or time.time(),
                "acks": list(zip(self.acked, self.ack_walls)), "failures": list(self.fail_walls)}
