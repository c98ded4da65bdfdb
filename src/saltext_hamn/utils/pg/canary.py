"""The seed's "mkdef testnode / lsdef" replication check, on a dedicated table."""

import time
import uuid

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import connection, standby

TABLE = "hamn_canary"


def create(conn):
    connection.query(
        conn,
        f"CREATE TABLE IF NOT EXISTS {TABLE} (token text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())",
    )


def write(conn):
    """Insert a fresh canary row on the primary; return its token."""
    token = f"canary-{uuid.uuid4()}"
    create(conn)
    connection.query(conn, f"INSERT INTO {TABLE} (token) VALUES (%s)", (token,))
    return token


def present(conn, token):
    try:
        return bool(connection.scalar(conn, f"SELECT 1 FROM {TABLE} WHERE token = %s", (token,)))
    except psycopg2.errors.UndefinedTable:
        return False


def wait_for(connect, token, timeout=10, gone=False):
    """Poll a standby (``connect()`` opens a connection) until the row appears/disappears."""
    deadline = time.monotonic() + timeout
    conn = connect()
    try:
        while True:
            if present(conn, token) != gone:
                return time.monotonic()
            if time.monotonic() >= deadline:
                state = "still visible" if gone else "not visible"
                raise HamnError(f"canary {token} {state} on the standby after {timeout}s")
            time.sleep(0.05)
    finally:
        conn.close()


def remove(conn, token):
    connection.query(conn, f"DELETE FROM {TABLE} WHERE token = %s", (token,))


def verify(cluster, cfg, me, timeout=10):
    """The seed's check end to end: write on this primary, read on the peer, remove.

    Runs on the primary; reads the standby over TCP as the replication role.
    """
    host, port, user = standby.peer_endpoint(cfg, me)
    standby.prepare_access(cluster, cfg)
    with connection.session(cluster) as conn:
        if connection.scalar(conn, "SELECT pg_is_in_recovery()"):
            raise HamnError("this node is a standby; run verify_replication on the primary")
        # Table and grant before the row: the standby replays in commit order, so once
        # it shows the row it has the grant too. (Granting after the insert let a fresh
        # table's first check read the row before the grant: "permission denied".)
        create(conn)
        connection.query(conn, sql.SQL(f"GRANT SELECT ON {TABLE} TO {{}}").format(sql.Identifier(user)))
        token = write(conn)
        started = time.monotonic()

        def peer():
            return connection.connect_peer(host, port, user, cluster.pgpass)

        seen = wait_for(peer, token, timeout=timeout) - started
        remove(conn, token)
        removed = time.monotonic()
        gone = wait_for(peer, token, timeout=timeout, gone=True) - removed
    return {"token": token, "standby": host, "visible_after_ms": round(seen * 1000, 1),
            "removed_after_ms": round(gone * 1000, 1)}
