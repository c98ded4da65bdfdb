"""Patroni 4.1.5 (Raft DCS) in namespaces of hamn's lab shape (prefix ``patr``).

* ``patr-w``: ``patroni_raft_controller`` (the third Raft member), 198.51.100.1:5010;
  ``patronictl`` runs here too.
* ``patr-mn1`` / ``patr-mn2``: one Patroni each (its own Raft member on
  <node>:5010, REST API on <node>:8008), PostgreSQL 15 on <node>:5432, its own
  unix socket directory.

Settings: Patroni's documented defaults for the DCS timing (ttl 30, loop_wait 10,
retry_timeout 10, maximum_lag_on_failover 1 MiB, asynchronous replication), plus
``use_pg_rewind: true`` (as in Patroni's sample configurations) so that a killed
primary can rejoin. scram-sha-256 everywhere; no ``trust`` line.
"""

import os

import yaml

from peerlab import (CLIENT_DB, CLIENT_USER, PEERS_VENV, PG_BIN, PG_PORT, Peer, PeerLab, version_of,
                     wait_for)

RAFT_PORT = 5010
API_PORT = 8008
SCOPE = "peers"

# The documented defaults, written out so that results.json says what ran.
DCS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576}
# A labeled variant (``--tuned``), not the comparison: the lowest values Patroni accepts
# (it raises ttl < 20, loop_wait < 1, retry_timeout < 3), keeping loop_wait + 2 *
# retry_timeout <= ttl as its documentation requires.
TUNED = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}


class PatroniPeer(Peer):
    name = "patroni"
    kill_names = ("postgres", "patroni")

    def __init__(self, dcs=None, name="patroni"):
        self.name = name
        self.lab = PeerLab("patr")
        self.dcs = dict(DCS, **(dcs or {}))
        secret = os.urandom(12).hex
        self.passwords = {"superuser": secret(), "replication": secret(), "rewind": secret()}

    # -- configuration -----------------------------------------------------------------
    def raft_addr(self, node):
        return f"{self.lab.address(node)}:{RAFT_PORT}"

    def node_config(self, node):
        lab = self.lab
        home = lab.dir / node
        addr = lab.address(node)
        hba = [
            "local all postgres peer",
            f"host all postgres {addr}/32 scram-sha-256",  # Patroni's own local connection
            "host replication replicator 198.51.100.0/24 scram-sha-256",
            "host all rewinder 198.51.100.0/24 scram-sha-256",
            f"host {CLIENT_DB} {CLIENT_USER} 198.51.100.0/24 scram-sha-256",
        ]
        return {
            "scope": SCOPE,
            "name": node,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"{addr}:{API_PORT}", "connect_address": f"{addr}:{API_PORT}"},
            "raft": {
                "data_dir": str(home / "raft"),
                "self_addr": self.raft_addr(node),
                "partner_addrs": [self.raft_addr(n) for n in ("w", lab.other(node))],
            },
            "bootstrap": {
                "dcs": {**self.dcs, "postgresql": {"use_pg_rewind": True}},
                "initdb": [{"encoding": "UTF8"}, {"auth-local": "peer"}, {"auth-host": "scram-sha-256"}],
            },
            "postgresql": {
                "listen": f"{addr}:{PG_PORT}",
                "connect_address": f"{addr}:{PG_PORT}",
                "data_dir": str(home / "data"),
                "bin_dir": str(PG_BIN),
                "pgpass": str(home / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": self.passwords["superuser"]},
                    "replication": {"username": "replicator", "password": self.passwords["replication"]},
                    "rewind": {"username": "rewinder", "password": self.passwords["rewind"]},
                },
                "parameters": {"unix_socket_directories": str(home / "sock"), "password_encryption": "scram-sha-256"},
                "pg_hba": hba,
            },
        }

    def ctl_config(self):
        return {"scope": SCOPE, "raft": {"partner_addrs": [self.raft_addr(n) for n in ("w", *self.lab.nodes)]}}

    # -- lifecycle ---------------------------------------------------------------------
    def setup(self):
        lab = self.lab
        lab.build()
        w = lab.mkdir("w")
        lab.mkdir("w", "raft")
        lab.write(w / "controller.yml", yaml.safe_dump(
            {"raft": {"self_addr": self.raft_addr("w"), "partner_addrs": [self.raft_addr(n) for n in lab.nodes],
                      "data_dir": str(w / "raft")}}))
        lab.write(w / "ctl.yml", yaml.safe_dump(self.ctl_config()))
        lab.start("raft-controller", "w", [PEERS_VENV / "bin" / "patroni_raft_controller", w / "controller.yml"],
                  cwd=w)
        for node in lab.nodes:
            home = lab.mkdir(node)
            for sub in ("raft", "sock"):
                lab.mkdir(node, sub)
            lab.write(home / "patroni.yml", yaml.safe_dump(self.node_config(node)))
        # mn1 first, so that it bootstraps the cluster; then mn2 clones it.
        self.start_node("mn1")
        wait_for("mn1 leader", lambda: self.roles().get("mn1") == "leader", 90)
        self.start_node("mn2")
        wait_for("patroni: mn2 streaming", lambda: self.healthy("mn1"), 120)
        self.create_client_db("mn1")

    def start_node(self, node):
        home = self.lab.dir / node
        # Patroni's working directory must be readable by postgres, or bootstrap hangs.
        self.lab.start(f"patroni-{node}", node, [PEERS_VENV / "bin" / "patroni", home / "patroni.yml"], cwd=home)

    def create_client_db(self, primary):
        sock = self.lab.dir / primary / "sock"
        sql = [f"CREATE ROLE {CLIENT_USER} LOGIN PASSWORD '{self.lab.client_password}'",
               f"CREATE DATABASE {CLIENT_DB} OWNER {CLIENT_USER}",
               # the bench reads pg_stat_replication through the client to see the pair's health
               f"GRANT pg_monitor TO {CLIENT_USER}"]
        for stmt in sql:
            self.lab.run(primary, [PG_BIN / "psql", "-h", sock, "-p", PG_PORT, "-U", "postgres", "-d", "postgres",
                                   "-v", "ON_ERROR_STOP=1", "-qc", stmt])

    # -- state -------------------------------------------------------------------------
    def cluster(self):
        """Patroni's /cluster view, asked of whichever node answers."""
        last = None
        for node in self.lab.nodes:
            try:
                return self.lab.http_json(f"http://{self.lab.address(node)}:{API_PORT}/cluster", timeout=2)
            except OSError as exc:
                last = exc
        raise last

    def roles(self):
        return {m["name"]: m["role"] for m in self.cluster().get("members", [])}

    def primary(self):
        return next((n for n, r in self.roles().items() if r == "leader"), None)

    def healthy(self, primary=None):
        """Patroni's view: ``primary`` (or any node) the running leader, the other a
        streaming replica."""
        members = {m["name"]: m for m in self.cluster().get("members", [])}
        leader = next((n for n, m in members.items() if m["role"] == "leader" and m["state"] == "running"), None)
        if leader is None or (primary and leader != primary):
            return False
        replica = members.get(self.lab.other(leader)) or {}
        return replica.get("role") == "replica" and replica.get("state") == "streaming"

    # -- scenarios ---------------------------------------------------------------------
    def switchover(self):
        """``patronictl switchover --force`` from the witness; returns (ok, output)."""
        primary = self.primary()
        candidate = self.lab.other(primary)
        result = self.lab.run("w", [PEERS_VENV / "bin" / "patronictl", "-c", self.lab.dir / "w" / "ctl.yml",
                                    "switchover", SCOPE, "--primary", primary, "--candidate", candidate, "--force"],
                              check=False, cwd=self.lab.dir / "w", timeout=180)
        return result.returncode == 0, (result.stdout + result.stderr).strip()

    def rejoin(self, node):
        """Start the killed node's Patroni again: it rewinds and follows by itself."""
        self.start_node(node)

    def settings(self):
        conf = self.lab.http_json(f"http://{self.lab.address(self.primary())}:{API_PORT}/config")
        return {"variant": "documented defaults" if self.name == "patroni" else f"tuned: {TUNED}",
                "dcs": "raft (pysyncobj): patroni_raft_controller in the witness namespace + one member per Patroni",
                "dynamic_config": conf, "replication": "asynchronous (Patroni's default)"}

    def versions(self):
        out = version_of([PEERS_VENV / "bin" / "python", "-c",
                          "import patroni, pysyncobj, psycopg2, importlib.metadata as m;"
                          "print(m.version('patroni'), m.version('pysyncobj'), m.version('psycopg2-binary'))"])
        patroni, pysyncobj, psycopg2 = (out or "? ? ?").split()
        return {"patroni": patroni, "pysyncobj": pysyncobj, "psycopg2_binary": psycopg2}
