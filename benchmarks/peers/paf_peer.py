"""pg_auto_failover 2.0 (Debian packages) in namespaces of hamn's lab shape (prefix ``paf``).

* ``paf-w``: the monitor (``pg_autoctl create monitor``), PostgreSQL on 198.51.100.1:5432;
  ``pg_autoctl perform switchover`` runs here.
* ``paf-mn1`` / ``paf-mn2``: ``pg_autoctl run`` each, PostgreSQL 15 on <node>:5432.

Default settings (the monitor's health checks, timeouts; two nodes: synchronous
replication ``ANY 1``, candidate priority 50, replication quorum true).
Authentication as pg_auto_failover's security page describes for passwords:
``--auth scram-sha-256``, the ``autoctl_node`` password in the monitor URI, the
replication password in the keeper configuration (and in a passfile for the
standby's first pg_basebackup). We run ``initdb`` ourselves (local ``peer``,
host ``scram-sha-256``) because ``pg_autoctl``'s own initdb uses ``--auth=trust``.
The only ``trust`` line left is the one pg_autoctl 2.0 forces for its health-check
user (``pgautofailover_monitor``, database ``postgres``, from the monitor's /32).
``pg_autoctl`` has no socket-directory option: ``PG_REGRESS_SOCK_DIR`` (with
``PGHOST``) gives each cluster its own, and ``XDG_*`` directories its own state.
"""

import os

from peerlab import CLIENT_DB, CLIENT_USER, PG_BIN, PG_PORT, Peer, PeerLab, version_of, wait_for

MONITOR_DB = "pg_auto_failover"


class PafPeer(Peer):
    name = "pg_auto_failover"
    kill_names = ("postgres", "pg_autoctl")

    def __init__(self):
        self.lab = PeerLab("paf")
        self.passwords = {"autoctl_node": os.urandom(12).hex(), "replication": os.urandom(12).hex()}

    # -- per-node paths and environment --------------------------------------------------
    def home(self, node):
        return self.lab.dir / node

    def pgdata(self, node):
        return self.home(node) / "data"

    def node_env(self, node):
        home = self.home(node)
        return self.lab.env(PG_REGRESS_SOCK_DIR=home / "sock", PGHOST=home / "sock", PGPORT=PG_PORT,
                            XDG_CONFIG_HOME=home / "xdg" / "config", XDG_DATA_HOME=home / "xdg" / "data",
                            XDG_RUNTIME_DIR=home / "xdg" / "run", PGPASSFILE=home / "pgpass")

    @property
    def monitor_uri(self):
        return (f"postgres://autoctl_node:{self.passwords['autoctl_node']}@{self.lab.address('w')}:{PG_PORT}"
                f"/{MONITOR_DB}")

    def prepare(self, node):
        lab = self.lab
        home = lab.mkdir(node)
        for sub in ("sock", "xdg", "xdg/config", "xdg/data", "xdg/run"):
            lab.mkdir(node, sub)
        # the replication password for the standby's first pg_basebackup (and pg_rewind)
        lab.write(home / "pgpass", f"*:{PG_PORT}:*:pgautofailover_replicator:{self.passwords['replication']}\n")

    def initdb(self, node, extra_hba=(), local_as=()):
        """Our own initdb (no trust); ``local_as``: database users the postgres OS user
        may be over the unix socket (peer with a user name map)."""
        pgdata = self.pgdata(node)
        self.lab.run(node, [PG_BIN / "initdb", "-D", pgdata, "-E", "UTF8", "--auth-local=peer",
                            "--auth-host=scram-sha-256"], env=self.node_env(node))
        if local_as:
            hba = pgdata / "pg_hba.conf"
            hba.write_text("".join(f"{line} map=paf\n" if line.startswith("local") and line.endswith("peer")
                                   else f"{line}\n" for line in hba.read_text(encoding="utf-8").splitlines()),
                           encoding="utf-8")
            with open(pgdata / "pg_ident.conf", "a", encoding="utf-8") as ident:
                ident.write("".join(f"paf postgres {user}\n" for user in ("postgres", *local_as)))
        if extra_hba:
            with open(pgdata / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write("".join(f"{line}\n" for line in extra_hba))

    def psql(self, node, sql, dbname="postgres"):
        return self.lab.run(node, [PG_BIN / "psql", "-h", self.home(node) / "sock", "-p", PG_PORT, "-U", "postgres",
                                   "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                            env=self.node_env(node)).stdout.strip()

    # -- lifecycle ---------------------------------------------------------------------
    def setup(self):
        lab = self.lab
        lab.build()
        self.prepare("w")
        # The monitor's own pg_autoctl talks to its database as autoctl_node over the socket.
        self.initdb("w", local_as=("autoctl_node", "autoctl"))
        lab.start("monitor", "w", ["pg_autoctl", "create", "monitor", "--pgdata", self.pgdata("w"),
                                   "--pgport", PG_PORT, "--hostname", lab.address("w"), "--auth", "scram-sha-256",
                                   "--no-ssl", "--pgctl", PG_BIN / "pg_ctl", "--run"],
                  env=self.node_env("w"), cwd=self.home("w"))
        wait_for("pg_auto_failover monitor", lambda: self.psql(
            "w", "SELECT count(*) FROM pgautofailover.formation", MONITOR_DB) == "1", 90, interval=0.5)
        self.psql("w", f"ALTER ROLE autoctl_node PASSWORD '{self.passwords['autoctl_node']}'", MONITOR_DB)
        for node in lab.nodes:
            self.prepare(node)
        # mn1: our own initdb (no trust), with the client's HBA line (pg_auto_failover
        # leaves application rules to us); mn2 gets it through pg_basebackup.
        self.initdb("mn1", [f"host {CLIENT_DB} {CLIENT_USER} 198.51.100.0/24 scram-sha-256"])
        self.create_node("mn1")
        wait_for("mn1 primary", lambda: self.states().get("mn1") == ("single", "single"), 120, interval=0.5)
        # pg_autoctl created its replication user without a password (none was
        # configured yet): give it the one the keepers use.
        self.psql("mn1", f"ALTER ROLE pgautofailover_replicator PASSWORD '{self.passwords['replication']}'")
        self.create_node("mn2")
        wait_for("pg_auto_failover: mn1 primary, mn2 secondary", lambda: self.healthy("mn1"), 180, interval=0.5)
        for stmt in (f"CREATE ROLE {CLIENT_USER} LOGIN PASSWORD '{self.lab.client_password}'",
                     f"CREATE DATABASE {CLIENT_DB} OWNER {CLIENT_USER}", f"GRANT pg_monitor TO {CLIENT_USER}"):
            self.psql("mn1", stmt)

    def create_node(self, node):
        lab = self.lab
        lab.start(f"keeper-{node}", node, [
            "pg_autoctl", "create", "postgres", "--pgdata", self.pgdata(node), "--pgport", PG_PORT,
            "--pgctl", PG_BIN / "pg_ctl", "--name", node, "--hostname", lab.address(node),
            "--auth", "scram-sha-256", "--no-ssl", "--monitor", self.monitor_uri, "--run"],
            env=self.node_env(node), cwd=self.home(node))
        # As pg_auto_failover's security page says: the keeper's replication password,
        # used when this node follows (primary_conninfo). Only once the node registered:
        # a concurrent `config set` races `create` making its state directories.
        wait_for(f"{node} registered", lambda: node in self.states(), 120, interval=0.5)
        wait_for(f"{node} keeper config", lambda: self.lab.run(
            node, ["pg_autoctl", "config", "set", "--pgdata", self.pgdata(node), "replication.password",
                   self.passwords["replication"]], env=self.node_env(node), check=False).returncode == 0,
            60, interval=0.5)

    def rejoin(self, node):
        """Start the killed node's keeper again: the monitor demotes it, it rewinds and follows."""
        self.lab.start(f"keeper-{node}", node, ["pg_autoctl", "run", "--pgdata", self.pgdata(node)],
                       env=self.node_env(node), cwd=self.home(node))

    # -- state -------------------------------------------------------------------------
    def monitor_query(self, sql):
        conn = self.lab.connect(f"host={self.lab.address('w')} port={PG_PORT} dbname={MONITOR_DB} user=autoctl_node",
                                timeout=2, password=self.passwords["autoctl_node"])
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def states(self):
        return {name: (reported, goal) for name, reported, goal in self.monitor_query(
            "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node")}

    def primary(self):
        return next((n for n, (rep, goal) in self.states().items()
                     if rep in ("primary", "single", "wait_primary") and rep == goal), None)

    def healthy(self, primary=None):
        """The monitor's view: ``primary`` (or any node) primary, the other secondary."""
        states = self.states()
        primary = primary or self.primary()
        if primary is None or states.get(primary) != ("primary", "primary"):
            return False
        return states.get(self.lab.other(primary)) == ("secondary", "secondary")

    # -- scenarios ---------------------------------------------------------------------
    def switchover(self):
        result = self.lab.run("w", ["pg_autoctl", "perform", "switchover", "--pgdata", self.pgdata("w")],
                              env=self.node_env("w"), cwd=self.home("w"), check=False, timeout=180)
        return result.returncode == 0, (result.stdout + result.stderr).strip()

    def settings(self):
        monitor = dict(self.monitor_query(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name LIKE 'pgautofailover.%'"))
        formation = self.monitor_query("SELECT formationid, number_sync_standbys FROM pgautofailover.formation")
        nodes = self.monitor_query("SELECT nodename, candidatepriority, replicationquorum FROM pgautofailover.node")
        primary = self.primary()
        sync = self.psql(primary, "SHOW synchronous_standby_names") if primary else None
        return {"monitor": monitor,
                "formation": {f: {"number_sync_standbys": n} for f, n in formation},
                "nodes": {n: {"candidate_priority": c, "replication_quorum": q} for n, c, q in nodes},
                "synchronous_standby_names_on_primary": sync,
                "replication": "synchronous (pg_auto_failover's default for two nodes with replication quorum)",
                "ssl": "off (--no-ssl, as hamn's and Patroni's labs)"}

    def versions(self):
        out = version_of(["pg_autoctl", "--version"])
        return {"pg_autoctl": out.split()[-1] if out else None,
                "package": version_of(["dpkg-query", "-W", "-f", "${Version}", "pg-auto-failover-cli"])}
