"""Replication role, slots, base backup and streaming checks."""

import base64
import hashlib
import hmac
import os
import time

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from saltext_hamn.utils import fileops
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import conf, connection, postmaster


def ensure_role(conn, user, password, *, replication=False):
    """Create or update a login role; the password is sent as a SCRAM verifier.

    The verifier is computed client-side, so the clear text never reaches the
    server's statement log.
    """
    verifier = encrypt_password(password, user, conn, "scram-sha-256")
    exists = connection.scalar(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
    verb = "ALTER" if exists else "CREATE"
    attrs = "LOGIN REPLICATION" if replication else "LOGIN"
    connection.query(
        conn,
        sql.SQL(verb + " ROLE {} WITH " + attrs + " PASSWORD %s").format(sql.Identifier(user)),
        (verifier,),
    )
    return verb.lower() + "d"


# What pg_rewind needs on the source server, granted instead of superuser.
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def grant_rewind(conn, user):
    for function in REWIND_FUNCTIONS:
        connection.query(conn, sql.SQL("GRANT EXECUTE ON FUNCTION " + function + " TO {}").format(sql.Identifier(user)))


def ensure_peer_slot(host, port, user, passfile, slot):
    """Create ``slot`` on the peer over the replication protocol; True when created."""
    conn = connection.connect_peer(host, port, user, passfile, physical=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE_REPLICATION_SLOT {sql.Identifier(slot).as_string(conn)} PHYSICAL RESERVE_WAL")
        return True
    except psycopg2.errors.DuplicateObject:
        return False
    finally:
        conn.close()


def ensure_database(conn, name, owner):
    if connection.scalar(conn, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
        return False
    connection.query(
        conn, sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
    )
    return True


def ensure_slot(conn, slot):
    """Create the physical replication slot if missing; True when created."""
    if connection.scalar(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)):
        return False
    connection.query(conn, "SELECT pg_create_physical_replication_slot(%s)", (slot,))
    return True


def write_pgpass(cluster, host, port, user, password):
    fileops.write_atomic(
        cluster.pgpass, conf.pgpass_line(host, port, user, password), owner=cluster.os_user, mode=0o600
    )


def basebackup(cluster, *, host, port, user, slot, timeout=3600):
    """pg_basebackup from the primary into an empty data dir (moves an old one aside).

    Returns the path the previous data dir was moved to, or None.
    """
    moved = None
    if os.path.exists(cluster.data_dir) and os.listdir(cluster.data_dir):
        if postmaster.is_running(cluster):
            raise HamnError(f"refusing to replace {cluster.data_dir}: PostgreSQL is running on it")
        moved = fileops.move_aside(cluster.data_dir)
    # pg_basebackup runs as the OS user, which may not create dirs in the parent.
    fileops.ensure_private_dir(cluster.data_dir, cluster.os_user)
    cluster.run(
        "pg_basebackup",
        "-D", cluster.data_dir,
        "-h", host, "-p", str(port), "-U", user,
        "-X", "stream", "-S", slot, "-c", "fast", "--no-password",
        env={"PGPASSFILE": cluster.pgpass},
        timeout=timeout,
    )
    return moved


def write_standby_config(cluster, major, **kwargs):
    for path, text in conf.standby_files(cluster, major, **kwargs).items():
        fileops.write_atomic(path, text, owner=cluster.os_user, mode=0o600)


def wait_streaming(cluster, timeout=60):
    """Wait until this standby's WAL receiver is streaming; return its row."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with connection.session(cluster) as conn:
                rows = connection.query(
                    conn, "SELECT status, sender_host, slot_name FROM pg_stat_wal_receiver"
                )
            if rows and rows[0][0] == "streaming":
                return {"status": rows[0][0], "sender_host": rows[0][1], "slot": rows[0][2]}
            last = rows[0][0] if rows else "no WAL receiver"
        except (HamnError, psycopg2.Error) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise HamnError(f"standby at {cluster.data_dir} not streaming after {timeout}s (last: {last})")


def scram_matches(verifier, password):
    """True when the stored SCRAM-SHA-256 ``verifier`` is for ``password`` (RFC 5802/7677).

    Lets a state tell "password unchanged" from "update it" without ever sending or
    logging the clear text.
    """
    try:
        method, rest = verifier.split("$", 1)
        params, keys = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        if method != "SCRAM-SHA-256":
            return False
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        computed_stored = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
        computed_server = base64.b64encode(hmac.new(salted, b"Server Key", "sha256").digest()).decode()
    except (AttributeError, ValueError, TypeError):
        return False
    return hmac.compare_digest(computed_stored, stored_key) and hmac.compare_digest(computed_server, server_key)


def role_state(conn, user, password):
    """'missing', 'ok', or what differs ('password', 'attributes') for the replication role."""
    rows = connection.query(
        conn, "SELECT rolpassword, rolreplication, rolcanlogin FROM pg_authid WHERE rolname = %s", (user,)
    )
    if not rows:
        return "missing"
    verifier, can_replicate, can_login = rows[0]
    if not (can_replicate and can_login):
        return "attributes"
    return "ok" if verifier and scram_matches(verifier, password) else "password"


def rewind_grants_missing(conn, user):
    return [f for f in REWIND_FUNCTIONS
            if not connection.scalar(conn, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (user, f))]


def slot_exists(conn, slot):
    return bool(connection.scalar(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)))
