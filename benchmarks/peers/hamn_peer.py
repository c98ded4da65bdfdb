"""hamn itself through the same scenario runner, so that one run gives the ratios.

The project's own lab (``saltext_hamn.lab.lab.Lab``, prefix ``peerhamn``, data under
/var/tmp/hamn-peers) armed as ``make bench-auto`` arms it: heartbeat beacon every
1 s, heartbeat reactor, lease watchdogs; shipped defaults except the cooldown (4 s,
so that runs can follow each other) and no fence command (the lease fences). The
client writes through the VIP, as xCAT does. Switchover: ``salt-run
state.orchestrate hamn.switchover``; kill: PostgreSQL + salt-minion SIGKILLed
(``drill.kill_node_services``, as bench-auto), nobody types a failover; rejoin:
the minion started again, ``hamn.rejoin``, ``hamn.resume``.
"""

import time
from pathlib import Path


import auto_failover  # benchmarks/auto_failover.py: wait_armed, heal
from peerlab import BASE_DIR, Peer, say, version_of

from saltext_hamn.lab import drill
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import VIP_ADDRESS, LabSpec
from saltext_hamn.utils.pg import connection


class VipClient:
    """The lab's own client connection: through the VIP, as the xCAT DB user."""

    def __init__(self, lab):
        self.lab = lab

    def client_connect(self, host=None, dbname=None):  # pylint: disable=unused-argument
        return self.lab.client_connect(VIP_ADDRESS, dbname)


class HamnPeer(Peer):
    name = "hamn"

    def __init__(self):
        self.hlab = Lab(LabSpec(prefix="peerhamn", base_dir=BASE_DIR), out=lambda m: None, automation=True)

    def setup(self):
        lab = self.hlab
        lab.down()
        auto_failover.up_armed(lab)  # the same lab as make bench-auto
        primary = lab.current_primary()
        lab.xcat_database(primary)
        user = lab.node_cfg(primary)["postgres"]["xcat_db_user"]
        with connection.session(lab.cluster(primary)) as conn:
            # the bench reads pg_stat_replication through the client to see the pair's health
            connection.query(conn, f'GRANT pg_monitor TO "{user}"')
        auto_failover.wait_armed(lab)

    def client(self):
        return VipClient(self.hlab)

    def primary(self):
        return self.hlab.current_primary()

    def healthy(self, primary=None):
        if self.hlab.current_primary() != primary:
            return False
        auto_failover.wait_armed(self.hlab)
        return True

    def switchover(self):
        ok, steps = drill.orchestrate(self.hlab.spec, "switchover")
        return ok, "; ".join(f"{i}: {r} {c}" for i, r, _, c in steps if r is False)

    def kill(self, node, agent):
        # bench-auto's own kill (it sleeps 0.2 s after the signals; the moment is before).
        pids = drill.kill_node_services(self.hlab.spec, node, names=("postgres", "salt-minion") if agent
                                        else ("postgres",))
        return time.monotonic() - 0.2, pids

    def rejoin(self, node):
        auto_failover.heal(self.hlab, node)

    def settings(self):
        return {"automation": "heartbeat beacon 1 s, heartbeat reactor, lease watchdogs (hamn-lab up defaults)",
                "changed": {"heartbeat.cooldown": 4, "fence.cmd": None},
                "replication": "asynchronous (hamn's default)",
                "client_connects": "through the VIP 198.51.100.10 (connect_timeout=5), as xcatd does"}

    def versions(self):
        repo = Path(__file__).resolve().parents[2]
        return {"saltext_hamn": version_of(["git", "-C", str(repo), "describe", "--always", "--dirty"]),
                "salt": version_of([str(repo / ".venv" / "bin" / "salt-call"), "--version"])}

    def log_tails(self):
        return ""

    def where(self):
        return f"{self.hlab.spec.lab_dir}, namespaces {', '.join(self.hlab.spec.namespaces)}"

    def teardown(self):
        self.hlab.down()
        say(f"{self.hlab.spec.prefix}: lab down (namespaces, processes, {self.hlab.spec.lab_dir})")
