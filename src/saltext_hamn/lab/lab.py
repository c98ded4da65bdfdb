"""Bring a two-node lab up, report on it, tear it down."""

import json
import os
import pwd
import shutil
import time

import psycopg2

from saltext_hamn.lab import fence, netns, network, pgbin, pillar, recorders, saltd
from saltext_hamn.lab.spec import NODE_ADDRESSES, NODE_IFACE, VIP_ADDRESS
from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import supervise as lease_supervise
from saltext_hamn.utils.net import vip
from saltext_hamn.utils.pg import canary, connection, postmaster, replica, replication


def say(message):
    print(f"[hamn-lab] {message}", flush=True)


class Lab:
    def __init__(self, spec, out=say, automation=False):
        self.spec = spec
        self.say = out
        # Heartbeat beacon + reactor: the pair fails over by itself (hamn-lab up; tests opt in).
        self.automation = automation

    # ---- state kept between commands -------------------------------------------
    @property
    def state_file(self):
        return self.spec.lab_dir / "lab.json"

    def _secrets(self):
        if self.state_file.exists():
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        chosen = pgbin.choose(self.spec.pg)
        state = {
            "replication_password": pillar.new_secret(),
            "xcat_db_password": pillar.new_secret(),
            # Chosen once, when the lab is made: its data dirs belong to this major.
            "postgres": {"major": chosen.major, "bindir": chosen.bindir, "version": chosen.version,
                         "origin": chosen.origin},
        }
        self.say(f"postgres: {chosen.describe()}")
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        return state

    def _check_same_postgres(self, pg):
        """A lab keeps the PostgreSQL it was made with; asking for another is an error, not a switch."""
        wanted = self.spec.pg
        if wanted and str(wanted) not in (str(pg["major"]), pg["bindir"]):
            raise HamnError(f"lab '{self.spec.prefix}' runs PostgreSQL {pg['major']} ({pg['bindir']}); "
                            f"asked for {wanted}: take it down first (hamn-lab down)")

    @property
    def postgres(self):
        """The lab's PostgreSQL: {"major", "bindir", "version", "origin"}."""
        return self._secrets()["postgres"]

    def node_cfg(self, node):
        state = self._secrets()
        return pillar.node_config(self.spec, node, state["replication_password"], state["postgres"])

    def cluster(self, node):
        return pillar.cluster(self.spec, node, self.node_cfg(node))

    # ---- up ----------------------------------------------------------------------
    def up(self):
        """Everything, with replication built by the hamn.replica_configured state via Salt."""
        started = time.monotonic()
        self.say(f"bringing up lab '{self.spec.prefix}' in {self.spec.lab_dir}")
        self.prepare()
        self.up_salt()
        roles = self.replication(via_salt=True)
        self.say(f"lab up in {time.monotonic() - started:.1f}s: primary {roles['primary']}, "
                 f"standby {roles['standby']} streaming")
        return roles

    def up_postgres(self):
        """Network, dirs and the PostgreSQL pair, without Salt (for test fixtures)."""
        self.prepare()
        return self.replication(via_salt=False)

    def prepare(self):
        """Network, node directories, recorders and the pillar files."""
        spec = self.spec
        if not self.state_file.exists():
            pgbin.choose(spec.pg)  # an unusable PostgreSQL stops the lab before anything is made
        spec.lab_dir.mkdir(parents=True, exist_ok=True)
        for path in (spec.lab_dir.parent, spec.lab_dir):
            os.chmod(path, 0o755)  # the postgres user must reach its data dirs
        state = self._secrets()
        self._check_same_postgres(state["postgres"])
        network.build(spec)
        self.say(f"network: namespaces {', '.join(spec.namespaces)} joined by a bridge in {spec.witness_ns}")
        for node in spec.nodes:
            self._prepare_node_dirs(node)
        fence.install(spec)
        pillar.write_tree(spec, state["replication_password"], state["postgres"])

    def replication(self, via_salt):
        """Primary first, then the standby, each by hamn.replica_configured's logic."""
        primary = self.current_primary() or self.node_cfg("mn1")["initial_primary"]
        standby = next(n for n in self.spec.nodes if n != primary)
        for node in (primary, standby):
            changes = self._replica_state(node) if via_salt else self._replica_library(node)
            role = next(iter(changes), None)
            if role:
                summary = "; ".join(f"{k}: {v}" for k, v in changes[role].items())
                self.say(f"{node}: hamn.replica_configured as {role}: {summary}")
            if node == primary:
                self.xcat_database(node)
        row = replication.wait_streaming(self.cluster(standby), timeout=60)
        self.say(f"{standby}: standby streaming from {row['sender_host']} via slot {row['slot']}")
        return {"primary": primary, "standby": standby}

    def _replica_library(self, node):
        cfg, cluster = self.node_cfg(node), self.cluster(node)
        with netns.entered(self.spec.node_ns(node)):
            role, _ = replica.discover_role(cluster, cfg, node)
            return {role: replica.converge(cluster, cfg, node, role, dry_run=False)}

    def _replica_state(self, node):
        cmd = saltd.salt_cmd(self.spec, node, "state.single", "hamn.replica_configured", "name=replication",
                             "--out=json", "--static", "-t", "300")
        result = proc.run(cmd, check=False, timeout=360)
        try:
            ret = next(iter(json.loads(result.stdout)[node].values()))
        except (ValueError, KeyError, StopIteration, AttributeError, TypeError) as exc:
            raise HamnError(f"{node}: hamn.replica_configured gave no result: {result.stdout.strip()[-500:]}") from exc
        if ret.get("result") is not True:
            raise HamnError(f"{node}: hamn.replica_configured failed: {ret.get('comment')}")
        return ret.get("changes") or {}

    def xcat_database(self, node):
        """Lab only: the xCAT DB and its role, as xCAT's own setup would create them."""
        cfg = self.node_cfg(node)
        pg = cfg["postgres"]
        with connection.session(self.cluster(node)) as conn:
            replication.ensure_role(conn, pg["xcat_db_user"], self._secrets()["xcat_db_password"])
            replication.ensure_database(conn, pg["database"], pg["xcat_db_user"])

    def up_salt(self):
        """Plain salt-master in the witness, a salt-minion per node; waits for test.ping."""
        spec = self.spec
        saltd.write_configs(spec, automation=self.automation)
        if saltd.start_master(spec):
            self.say("salt-master started in the witness namespace")
        for node in spec.nodes:
            if saltd.start_minion(spec, node):
                self.say(f"salt-minion {node} started in {spec.node_ns(node)}")
        for node in spec.nodes:
            saltd.wait_minion_ready(spec, node)
        self._wait_ping()

    def _prepare_node_dirs(self, node):
        d = self.spec.node_dir(node)
        pg = pwd.getpwnam("postgres")
        d.mkdir(parents=True, exist_ok=True)
        for sub, mode in (("run", 0o755), ("pgdata", 0o700)):
            path = d / sub
            path.mkdir(exist_ok=True)
            os.chown(path, pg.pw_uid, pg.pw_gid)
            os.chmod(path, mode)
        log = d / "postgresql.log"
        log.touch()
        os.chown(log, pg.pw_uid, pg.pw_gid)
        recorders.install(d)
        etc = pillar.node_root(self.spec, node) / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        # What a freshly installed node has before the setup adjusts name resolution.
        for name, text in (("resolv.conf", "search cluster.example\n"),
                           ("nsswitch.conf", "passwd: files\nhosts: files myhostname dns\n")):
            if not (etc / name).exists():
                (etc / name).write_text(text, encoding="utf-8")

    def _wait_ping(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            result = proc.run(saltd.salt_cmd(self.spec, "*", "test.ping", "--out=json", "--static", "-t", "10"),
                              check=False, timeout=60)
            try:
                answers = json.loads(result.stdout or "{}")
            except ValueError:
                answers = {}
            if all(answers.get(n) is True for n in self.spec.nodes):
                self.say("minions answer: " + ", ".join(self.spec.nodes))
                return
            if time.monotonic() > deadline:
                raise HamnError(f"minions did not answer test.ping within {timeout}s: {result.stdout.strip()}")
            time.sleep(1)

    # ---- queries -------------------------------------------------------------------
    def current_primary(self):
        """The node whose PostgreSQL runs and is not in recovery (None if none)."""
        for node in self.spec.nodes:
            if self._in_recovery(node) is False:
                return node
        return None

    def _in_recovery(self, node):
        cluster = self.cluster(node)
        if not (postmaster.has_data(cluster) and postmaster.is_running(cluster)):
            return None
        with connection.session(cluster) as conn:
            return connection.scalar(conn, "SELECT pg_is_in_recovery()")

    def status(self):
        spec, present = self.spec, netns.existing()
        report = {"namespaces": {ns: ns in present for ns in spec.namespaces}, "nodes": {}}
        if not spec.lab_dir.exists():
            report["state"] = "down"
            return report
        report["master"] = saltd.alive(saltd.read_pid(saltd.pidfile(spec, "master")) or -1)
        if self.state_file.exists():
            pg = self.postgres
            report["postgres"] = f"{pg['version']} ({pg['origin']}, {pg['bindir']})"
        for node in spec.nodes:
            info = {"minion": saltd.alive(saltd.read_pid(saltd.pidfile(spec, node)) or -1)}
            try:
                recovery = self._in_recovery(node)
                info["postgres"] = "stopped" if recovery is None else ("standby" if recovery else "primary")
                if recovery:
                    with connection.session(self.cluster(node)) as conn:
                        rows = connection.query(conn, "SELECT status, sender_host FROM pg_stat_wal_receiver")
                        info["wal_receiver"] = rows[0][0] if rows else None
                info["vip"] = vip.held(VIP_ADDRESS, NODE_IFACE, netns=spec.node_ns(node)) if spec.node_ns(node) in present else False
            except (HamnError, psycopg2.Error) as exc:
                info["error"] = str(exc)
            report["nodes"][node] = info
        report["state"] = "up" if all(report["namespaces"].values()) else "partial"
        return report

    # ---- canary through the VIP -------------------------------------------------------
    def client_connect(self, host, dbname=None):
        """Connect as the xCAT DB user from the witness namespace (a compute-node view)."""
        cfg = self.node_cfg("mn1")
        with netns.entered(self.spec.witness_ns):
            conn = psycopg2.connect(
                host=host, port=cfg["postgres"]["port"], dbname=dbname or cfg["postgres"]["database"],
                user=cfg["postgres"]["xcat_db_user"], password=self._secrets()["xcat_db_password"],
                connect_timeout=5,
            )
        conn.autocommit = True
        return conn

    def canary_through_vip(self, timeout=10, raise_vip=True):
        """Write a canary through the VIP, read it on the standby; ``raise_vip`` puts the
        VIP on the primary first (the orchestrations do that themselves)."""
        primary = self.current_primary()
        standby = next(n for n in self.spec.nodes if n != primary)
        cfg = self.node_cfg(primary)
        v = cfg["vip"]
        raised = vip.up(cfg, netns=self.spec.node_ns(primary)) if raise_vip else {"changed": False}
        if raised["changed"]:
            self.say(f"{primary}: VIP {v['address']}/{v['prefix']} up on {v['label']} "
                     f"(ARP probe: free; {raised['garp_sent']} gratuitous ARPs)")
        conn = self.client_connect(v["address"])
        try:
            token = canary.write(conn)
            self.say(f"canary row {token} written through the VIP {v['address']} on {primary}")
            started = time.monotonic()
            canary.wait_for(lambda: self.client_connect(NODE_ADDRESSES[standby]), token, timeout=timeout)
            elapsed = (time.monotonic() - started) * 1000
            self.say(f"canary row {token} read on the standby {standby} ({NODE_ADDRESSES[standby]}) after {elapsed:.0f} ms")
            canary.remove(conn, token)
        finally:
            conn.close()
        return token

    # ---- down ------------------------------------------------------------------------
    def down(self):
        spec = self.spec
        self.say(f"tearing down lab '{spec.prefix}'")
        if spec.lab_dir.exists():
            # Watchdogs first: they run detached (own session) and would outlive the minions.
            # Any left anyway are found below by namespace, and by the test session's leak
            # check by their config path under the lab directory.
            for node in spec.nodes:
                try:
                    if lease_supervise.stop(self.node_cfg(node)):
                        self.say(f"{node}: hamn-leased stopped")
                except (HamnError, OSError, ValueError) as exc:
                    self.say(f"{node}: could not stop hamn-leased cleanly ({exc})")
            for node in spec.nodes:
                try:
                    cluster = self.cluster(node)
                    if postmaster.has_data(cluster) and postmaster.is_running(cluster):
                        postmaster.stop(cluster, mode="fast", timeout=20)
                        self.say(f"{node}: PostgreSQL stopped")
                except (HamnError, OSError, ValueError, RuntimeError) as exc:
                    self.say(f"{node}: could not stop PostgreSQL cleanly ({exc}); killing")
            daemons = [saltd.read_pid(saltd.pidfile(spec, r)) for r in ("master", *spec.nodes)]
            saltd.terminate([p for p in daemons if p])
        present = netns.existing()
        leftovers = [p for ns in spec.namespaces if ns in present for p in netns.pids(ns)]
        if leftovers:
            self.say(f"stopping {len(leftovers)} remaining lab processes")
            saltd.terminate(leftovers, timeout=10)
        network.destroy(spec)
        if spec.lab_dir.exists():
            shutil.rmtree(spec.lab_dir)
        try:
            spec.lab_dir.parent.rmdir()  # the base dir too, unless another lab lives there
        except OSError:
            pass
        self.say("lab down: namespaces, processes and directories removed")

    def leftovers(self):
        """What of this lab still exists (empty when fully down)."""
        present = netns.existing()
        found = [f"netns {ns}" for ns in self.spec.namespaces if ns in present]
        if self.spec.lab_dir.exists():
            found.append(f"dir {self.spec.lab_dir}")
        found += [f"process {pid}: {cmd}" for pid, cmd in processes_under(self.spec.lab_dir)]
        return found


def processes_under(directory):
    """Live processes whose command line or working directory is inside ``directory``.

    Postgres children rename themselves, but keep the data dir as their cwd.
    """
    marker = str(directory)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if not saltd.alive(int(pid)):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if marker in cmd or cwd.startswith(marker):
            found.append((int(pid), cmd[:120]))
    return found
