"""Watch the lab pair for two writers: a thread sampling both nodes every 200 ms.

Each sample asks each node's PostgreSQL (over its own unix socket, so a cut link
does not hide a writer) whether it is in recovery, and each node's namespace
whether it holds the VIP. A sample with two writable primaries or two VIP
holders is a violation; fault tests assert there is none, at any instant. The
first node is asked again after the second when both said yes: only then were
both at once (a role or the VIP moving between the two looks is not).
"""

import threading
import time

import psycopg2

from saltext_hamn.lab.spec import NODE_IFACE, VIP_ADDRESS
from saltext_hamn.utils.net import vip

INTERVAL = 0.2


class Sampler:
    def __init__(self, lab, interval=INTERVAL):
        self.lab, self.interval = lab, interval
        self.samples, self.violations = [], []
        self._clusters = {n: lab.cluster(n) for n in lab.spec.nodes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hamn-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def _loop(self):
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _writable(self, node):
        cluster = self._clusters[node]
        try:
            conn = psycopg2.connect(host=cluster.socket_dir, port=cluster.port, user=cluster.superuser,
                                    dbname="postgres", connect_timeout=1)
        except psycopg2.Error:
            return False  # not accepting connections: not a writer
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                return cur.fetchone()[0] is False
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    def _holds_vip(self, node):
        try:
            return vip.held(VIP_ADDRESS, NODE_IFACE, netns=self.lab.spec.node_ns(node))
        except Exception:  # pylint: disable=broad-except
            return False  # namespace or interface gone: holds nothing

    def sample(self):
        nodes = self.lab.spec.nodes
        writable, both_writable = self._bracketed(self._writable, nodes)
        holders, both_hold = self._bracketed(self._holds_vip, nodes)
        sample = (time.time(), writable, holders)
        self.samples.append(sample)
        if both_writable or both_hold:
            self.violations.append(sample)
        return sample

    @staticmethod
    def _bracketed(look, nodes):
        """({node: seen}, both at once?) from looks at the first node, the second, the first again.

        The two nodes cannot be looked at in the same instant (a look takes up to tens of
        ms), and a switchover moves the VIP from one to the other in a few ms: first
        node "yes", second node "yes" is also what a move between the two looks shows.
        Both at once is proven only when the first node still says yes after the
        second did.
        """
        first, second = nodes
        before, other = look(first), look(second)
        after = look(first) if before and other else before
        return {first: after, second: other}, before and other and after

    def writers(self):
        """How many samples saw each node writable (a test's evidence of what happened)."""
        return {n: sum(1 for _, w, _ in self.samples if w[n]) for n in self.lab.spec.nodes}
