"""The replication canary's statement order (the race it must not have is in the
standby's replay, so the order on the primary is what is checked here)."""

import contextlib

from saltext_hamn.utils.pg import canary
from tests import support


class FakeCursor:
    def __init__(self, log):
        self.log, self.description, self._rows = log, None, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement, params=None):
        text = str(statement)
        self.log.append(text)
        self.description, self._rows = (("x",), [(False,)]) if "pg_is_in_recovery" in text else (None, [])

    def fetchall(self):
        return self._rows


class FakeConn:
    def __init__(self):
        self.log = []

    def cursor(self):
        return FakeCursor(self.log)


def test_verify_grants_the_reader_before_it_writes_the_row(monkeypatch):
    conn = FakeConn()
    monkeypatch.setattr(canary.connection, "session", contextlib.contextmanager(lambda *a, **k: (yield conn)))
    monkeypatch.setattr(canary.standby, "prepare_access", lambda *a: None)
    monkeypatch.setattr(canary, "wait_for", lambda *a, **k: 0.0)
    cfg = support.load()
    result = canary.verify(object(), cfg, "mn1", timeout=1)
    assert result["standby"] == "198.51.100.12"
    grant = next(i for i, s in enumerate(conn.log) if "GRANT" in s)
    insert = next(i for i, s in enumerate(conn.log) if s.startswith("INSERT"))
    create = next(i for i, s in enumerate(conn.log) if s.startswith("CREATE TABLE"))
    assert create < grant < insert, conn.log
    assert repr(cfg["postgres"]["replication"]["user"]) in conn.log[grant]
