"""Render PostgreSQL configuration: settings, pg_hba/pg_ident blocks, standby config.

Everything hamn writes into an admin's file sits between BEGIN/END markers so the
admin's own lines survive; settings go into an include file (``hamn.conf``).
"""

import os

BEGIN = "# BEGIN saltext-hamn managed block (changes here are overwritten)"
END = "# END saltext-hamn managed block"
SETTINGS_FILE = "hamn.conf"
STANDBY_FILE = "hamn.standby.conf"
IDENT_MAP = "hamn"


def quote(value):
    """A postgresql.conf value: bools as on/off, numbers bare, strings single-quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def render_settings(settings, header="managed by saltext-hamn; do not edit"):
    lines = [f"# {header}"]
    lines += [f"{key} = {quote(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def with_block(text, body, top=True):
    """Return ``text`` with the managed block replaced by ``body`` (added if absent)."""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}\n" if body.strip() else ""
    lines = text.splitlines(keepends=True)
    if BEGIN + "\n" in lines and END + "\n" in lines:
        start, stop = lines.index(BEGIN + "\n"), lines.index(END + "\n")
        return "".join(lines[:start]) + block + "".join(lines[stop + 1 :])
    if top:
        return block + text
    sep = "" if not text or text.endswith("\n") else "\n"
    return text + sep + block


def include_lines():
    """The lines postgresql.conf needs to read hamn's include files."""
    return f"include_if_exists = '{SETTINGS_FILE}'\ninclude_if_exists = '{STANDBY_FILE}'\n"


def conninfo_value(value):
    """libpq quoting, only where needed (keeps postgresql.conf lines readable)."""
    text = str(value)
    if text and not any(c in text for c in " '\\\t\n"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(**params):
    """A libpq connection string; never put a password here, use ``passfile``."""
    return " ".join(f"{k}={conninfo_value(v)}" for k, v in params.items() if v is not None)


def replication_settings(cfg, cluster, major):
    """postgresql.conf parameters for streaming replication and pg_rewind."""
    pg = cfg["postgres"]
    wal = pg["wal"]
    names = sorted(cfg["nodes"])
    sync = pg["replication"]["mode"] in ("sync", "sync_strict")
    keep_mb = wal["keep_size"] // (1024 * 1024)
    # wal_keep_size replaced wal_keep_segments (16MB each) in PostgreSQL 13.
    keep = {"wal_keep_size": f"{keep_mb}MB"} if major >= 13 else {"wal_keep_segments": max(1, keep_mb // 16)}
    return {
        **keep,
        "listen_addresses": pg["listen_addresses"],
        "port": cluster.port,
        "unix_socket_directories": cluster.socket_dir,
        "wal_level": wal["level"],
        "max_wal_senders": wal["max_wal_senders"],
        "max_replication_slots": wal["max_replication_slots"],
        "hot_standby": True,
        "wal_log_hints": wal["log_hints"],
        "password_encryption": "scram-sha-256",
        # Keepalives every wal_sender_timeout/2: a healthy stream's "last message" age
        # stays well under the lag limit, and a dead primary is noticed in 15 s.
        "wal_sender_timeout": "15s",
        "wal_receiver_timeout": "15s",
        # Each node's application_name is its minion id; a node never streams from
        # itself, so "ANY 1 (both)" always means "the peer" whatever the roles are.
        # Only the value a server starts with: the primary's watchdog sets its own with
        # ALTER SYSTEM (postgresql.auto.conf wins; utils/lease/sync.py).
        "synchronous_standby_names": ("ANY 1 (" + ", ".join(f'"{n}"' for n in names) + ")")
        if sync
        else "",
    }


def hba_lines(cfg, extra_client_addresses=()):
    """pg_hba.conf entries: per node address and the VIP (/32), scram-sha-256 only."""
    pg = cfg["postgres"]
    repl_user = pg["replication"]["user"]
    addresses = [cfg["nodes"][n]["address"] for n in sorted(cfg["nodes"])]
    addresses.append(cfg["vip"]["address"])
    lines = [
        f"local   all          {pg['superuser']:<12} peer map={IDENT_MAP}",
        f"local   replication  {repl_user:<12} scram-sha-256",
        f"local   postgres     {repl_user:<12} scram-sha-256",
    ]
    for addr in addresses:
        lines.append(f"host    replication  {repl_user:<12} {addr}/32  scram-sha-256")
    # pg_rewind and the replication canary need a plain connection to the peer.
    for addr in addresses[:-1]:
        lines.append(f"host    postgres     {repl_user:<12} {addr}/32  scram-sha-256")
    clients = [f"{a}/32" for a in addresses] + [
        c if "/" in c else f"{c}/32" for c in [*pg.get("db_clients", []), *extra_client_addresses]
    ]
    for client in clients:
        lines.append(f"host    {pg['database']:<12} {pg['xcat_db_user']:<12} {client:<18} scram-sha-256")
    return "\n".join(lines) + "\n"


def ident_lines(cfg):
    """Let local root (the salt-minion) connect as the superuser through peer auth."""
    pg = cfg["postgres"]
    users = dict.fromkeys(["root", pg["os_user"]])
    return "".join(f"{IDENT_MAP}  {u:<10} {pg['superuser']}\n" for u in users)


def standby_files(cluster, major, *, primary_host, primary_port, user, slot, application_name):
    """{path: text} that make ``cluster`` a streaming standby of the primary.

    PostgreSQL >= 12 uses standby.signal and GUCs; <= 11 reads recovery.conf.
    """
    info = conninfo(
        host=primary_host,
        port=primary_port,
        user=user,
        passfile=cluster.pgpass,
        application_name=application_name,
        connect_timeout=5,
    )
    settings = {
        "primary_conninfo": info,
        "primary_slot_name": slot,
        "recovery_target_timeline": "latest",
    }
    if int(major) >= 12:
        return {
            os.path.join(cluster.data_dir, "standby.signal"): "",
            os.path.join(cluster.conf_dir, STANDBY_FILE): render_settings(settings),
        }
    return {
        os.path.join(cluster.data_dir, "recovery.conf"): render_settings(
            {"standby_mode": True, **settings}
        ),
    }


def pgpass_line(host, port, user, password):
    def esc(value):
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    # "*" database: the same entry serves replication and pg_rewind/canary connections.
    return f"{esc(host)}:{port}:*:{esc(user)}:{esc(password)}\n"
