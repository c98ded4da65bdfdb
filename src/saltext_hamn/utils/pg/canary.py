"""The seed's "mkdef testnode / lsdef" replication check, on a dedicated table."""

import time
import uuid

import psycopg2

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import connection

TABLE = "hamn_canary"


def write(conn):
    """Insert a fresh canary row on the primary; return its token."""
    token = f"canary-{uuid.uuid4()}"
    connection.query(
        conn,
        f"CREATE TABLE IF NOT EXISTS {TABLE} (token text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())",
    )
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
