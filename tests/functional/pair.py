"""One node of a functional test's PostgreSQL pair (a module lab): its config, its
cluster, and library calls run inside its network namespace."""

from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import connection, status


class Node:
    def __init__(self, lab, name):
        self.lab, self.name = lab, name
        self.cfg = lab.node_cfg(name)
        self.cluster = lab.cluster(name)
        self.major = self.cfg["postgres"]["version"]
        self.ns = lab.spec.node_ns(name)

    def call(self, fn, *args, **kwargs):
        with entered(self.ns):
            return fn(self.cluster, *args, **kwargs)

    def status(self):
        return status.collect(self.cluster)

    def sql(self, query, params=None, dbname="postgres"):
        with connection.session(self.cluster, dbname) as conn:
            return connection.query(conn, query, params)


def fixtures(letter, dirname, node_class=Node):
    """Module-scoped ``lab``, ``mn1`` and ``mn2`` fixtures for a test module's own pair:
    ``lab, mn1, mn2 = pair.fixtures("d", "func-diverge")``."""
    import pytest  # pylint: disable=import-outside-toplevel

    from tests.support import own_lab  # pylint: disable=import-outside-toplevel

    @pytest.fixture(scope="module")
    def lab(lab_spec):
        with own_lab(lab_spec, letter, dirname) as made:
            made.up_postgres()
            yield made

    @pytest.fixture(scope="module")
    def mn1(lab):  # pylint: disable=redefined-outer-name
        return node_class(lab, "mn1")

    @pytest.fixture(scope="module")
    def mn2(lab):  # pylint: disable=redefined-outer-name
        return node_class(lab, "mn2")

    return lab, mn1, mn2
