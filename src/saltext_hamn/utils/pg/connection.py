"""psycopg2 connections to the local cluster (unix socket, peer auth via ident map)."""

import contextlib

import psycopg2

from saltext_hamn.utils.errors import HamnError


def connect(cluster, dbname="postgres", autocommit=True, timeout=5):
    try:
        conn = psycopg2.connect(
            host=cluster.socket_dir,
            port=cluster.port,
            user=cluster.superuser,
            dbname=dbname,
            connect_timeout=timeout,
            application_name="saltext-hamn",
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
