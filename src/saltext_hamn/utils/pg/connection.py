"""psycopg2 connections to the local cluster (unix socket, peer auth via ident map)."""

import contextlib

import psycopg2

from saltext_hamn.utils.errors import HamnError


def connect(cluster, dbname="postgres", autocommit=True, timeout=5, statement_timeout_ms=None):
    extra = {"options": f"-c statement_timeout={int(statement_timeout_ms)}"} if statement_timeout_ms else {}
    try:
        conn = psycopg2.connect(
            host=cluster.socket_dir,
            port=cluster.port,
            user=cluster.superuser,
            dbname=dbname,
            connect_timeout=timeout,
            application_name="saltext-hamn",
            **extra,
        )
    except psycopg2.Error as exc:
        raise HamnError(f"cannot connect to PostgreSQL at {cluster.socket_dir}:{cluster.port}: {exc}".strip()) from exc
    conn.autocommit = autocommit
    return conn


@contextlib.contextmanager
def session(cluster, dbname="postgres"):
    conn = connect(cluster, dbname)
    try:
        yield conn
    finally:
        conn.close()


def query(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def scalar(conn, sql, params=None):
    rows = query(conn, sql, params)
    return rows[0][0] if rows else None


def connect_peer(host, port, user, passfile=None, dbname="postgres", timeout=5, physical=False, password=None,
                 application_name="saltext-hamn"):
    """Connect to the other node with the replication role.

    The password comes from ``passfile`` (or ``password``, for a look before the
    password file is written); psycopg2 never echoes it in errors.
    ``physical=True`` opens a replication-protocol connection (slot management).
    """
    kwargs = {"passfile": passfile} if passfile else {"password": password}
    if physical:
        from psycopg2.extras import PhysicalReplicationConnection  # pylint: disable=import-outside-toplevel

        kwargs["connection_factory"] = PhysicalReplicationConnection
    try:
        conn = psycopg2.connect(
            host=host, port=port, user=user, dbname=dbname,
            connect_timeout=timeout, application_name=application_name, **kwargs,
        )
    except psycopg2.Error as exc:
        raise HamnError(f"cannot connect to the peer's PostgreSQL at {host}:{port} as {user}: {str(exc).strip()}") from exc
    if not physical:
        conn.autocommit = True
    return conn
