"""How long does hamn's rejoin of a diverged former primary take, against what an
admin would type by hand? Run on demand, as root: ``make bench-rejoin`` (or
``.venv/bin/python benchmarks/rejoin_bench.py --runs 5``).

Scenario (built once, then restored from a copy before every measured run):
a lab pair of its own (prefix ``rjb``, under /var/tmp/hamn-rjb: namespaces
rjb-w/rjb-mn1/rjb-mn2, real PostgreSQL, no Salt for the node-local part), mn1
primary with ~1 GB of pgbench data (``pgbench -i -s SCALE``) streaming to mn2.
Then a failover with divergence: mn2 is promoted (hamn's promote: pg_promote,
CHECKPOINT, slot for mn1) while mn1 still runs as primary and commits
``--commits`` pgbench transactions that mn2 never gets; mn2 (the new primary)
commits a few of its own; both are stopped and their data dirs copied. Each run
restores both data dirs from that copy, starts mn2, and rejoins the stopped mn1
as standby of mn2 in one of three ways, timed until mn1 streams from mn2:

  hamn       ``saltext_hamn.utils.pg.rewind.rewind`` (what ``salt mn1 hamn.rewind``
             runs on the minion): peer checks, divergence report and copy of the
             diverged WAL, slot, pg_rewind, own config kept, standby config, start,
             streaming, and the wait for the primary's timeline. Per-phase timings.
  rewind     by hand: CHECKPOINT on the new primary, ``pg_rewind --target-pgdata
             --source-server``, standby.signal + primary_conninfo/primary_slot_name
             in postgresql.auto.conf, ``pg_ctl start -w``, poll until streaming;
             also ``pg_rewind`` alone.
  basebackup by hand: ``mv`` the data dir aside, ``pg_basebackup -R -X stream -S
             slot -c fast``, ``pg_ctl start -w``, poll until streaming.

Lab artifact, same for both by-hand methods: the two lab nodes share one
filesystem and keep their config inside the data dir, so the copy pg_rewind /
pg_basebackup bring along (with the other node's socket dir) is replaced by the
node's own config files right after (hamn does the same in its own code).

With ``--salt`` (default) the whole ``salt-run state.orchestrate hamn.rejoin`` is
also timed in the same lab (salt-master in rjb-w, minions in rjb-mn1/rjb-mn2).
Results: medians (min-max) into benchmarks/results.json, section "rejoin".
"""

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

from saltext_hamn.lab import drill
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import NODE_ADDRESSES, LabSpec
from saltext_hamn.utils import config, proc
from saltext_hamn.utils.net.nsenter import entered
from saltext_hamn.utils.pg import connection, lsn, postmaster, promote, rewind

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phases as bench_phases  # noqa: E402  pylint: disable=wrong-import-position
import results  # noqa: E402  pylint: disable=wrong-import-position

BASE_DIR = "/var/tmp/hamn-rjb"
PREFIX = "rjb"
OLD, NEW = "mn1", "mn2"  # the diverged former primary, and the new primary it rejoins
OWN_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf", "hamn.conf",
             "hamn.standby.conf")
POLL = 0.05  # the by-hand methods' streaming poll (hamn's own wait polls every 0.1 s)


def say(message):
    print(f"[rejoin-bench] {message}", flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.spec = LabSpec(prefix=PREFIX, base_dir=BASE_DIR)
        self.lab = Lab(self.spec, out=lambda m: None)
        self.snap = self.spec.lab_dir / "snap"
        self.meta_file = self.snap / "meta.json"

    # ---- helpers ------------------------------------------------------------------
    def cfg(self, node):
        return self.lab.node_cfg(node)

    def cluster(self, node):
        return self.lab.cluster(node)

    def sql(self, node, query, params=None, dbname="postgres"):
        with connection.session(self.cluster(node), dbname) as conn:
            return connection.query(conn, query, params)

    def tool(self, node, name, *args, timeout=3600, env=None):
        """A PostgreSQL client tool run as postgres in ``node``'s namespace."""
        return proc.run(self.cluster(node).tool(name, *args), timeout=timeout, env=env, what=name)

    def pgbench(self, node, *args):
        c = self.cluster(node)
        return self.tool(node, "pgbench", "-h", c.socket_dir, "-p", str(c.port), *args, "bench")

    def peer_conninfo(self, node, **extra):
        cfg, c = self.cfg(node), self.cluster(node)
        peer = config.peer_of(cfg, node)
        return " ".join(f"{k}={v}" for k, v in {
            "host": cfg["nodes"][peer]["address"], "port": cfg["postgres"]["port"],
            "user": cfg["postgres"]["replication"]["user"], "passfile": c.pgpass, **extra}.items())

    def slot(self, node):
        return config.slot_name(self.cfg(node), node)

    # ---- the scenario, built once ---------------------------------------------------
    def snapshot_ok(self):
        try:
            meta = json.loads(self.meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("scale") != self.args.scale or meta.get("commits") != self.args.commits:
            return None
        if not all((self.snap / n / "PG_VERSION").exists() for n in self.spec.nodes):
            return None
        return meta

    def build(self):
        say("building the pair (mn1 primary -> mn2 standby) in namespaces "
            + ", ".join(self.spec.namespaces))
        started = time.monotonic()
        self.lab.up_postgres()
        primary = self.lab.current_primary()
        if primary != OLD:
            raise SystemExit(f"expected {OLD} as primary, found {primary}: run with a fresh lab (no --keep)")
        if not self.sql(OLD, "SELECT 1 FROM pg_database WHERE datname = 'bench'"):
            self.sql(OLD, "CREATE DATABASE bench")
        say(f"loading pgbench scale {self.args.scale} (~{self.args.scale * 15} MB) on {OLD}")
        self.pgbench(OLD, "-i", "-s", str(self.args.scale), "-I", "dtGvp", "-q")
        self.sql(OLD, "CHECKPOINT")
        db_bytes = self.sql(OLD, "SELECT pg_database_size('bench')")[0][0]
        say(f"loaded: database 'bench' {db_bytes / 1e9:.2f} GB after {time.monotonic() - started:.0f}s")
        self.wait_caught_up()
        # The failover with divergence: promote mn2 while mn1 still writes.
        with entered(self.spec.node_ns(NEW)):
            promoted = promote.promote(self.cluster(NEW), self.cfg(NEW), NEW)
        fork_side_lsn = self.sql(OLD, "SELECT pg_current_wal_lsn()::text")[0][0]
        self.pgbench(OLD, "-n", "-c", "1", "-t", str(self.args.commits))
        end_lsn = self.sql(OLD, "SELECT pg_current_wal_lsn()::text")[0][0]
        self.pgbench(NEW, "-n", "-c", "1", "-t", "5")  # the new primary goes on writing
        postmaster.stop(self.cluster(OLD), mode="fast")
        postmaster.stop(self.cluster(NEW), mode="fast")
        say(f"diverged: {NEW} promoted to timeline {promoted['timeline']}; {OLD} committed "
            f"{self.args.commits} pgbench transactions after that ({fork_side_lsn} -> {end_lsn})")
        if self.snap.exists():
            shutil.rmtree(self.snap)
        self.snap.mkdir(parents=True)
        for node in self.spec.nodes:
            copy_tree(self.cluster(node).data_dir, self.snap / node)
        meta = {
            "scale": self.args.scale, "commits": self.args.commits, "database_bytes": db_bytes,
            "data_dir_bytes": {n: du(self.snap / n) for n in self.spec.nodes},
            "new_primary_wal_bytes": du(self.snap / NEW / "pg_wal"),
            "old_primary_wal_after_promotion_bytes": lsn.lag(end_lsn, fork_side_lsn),
            "new_timeline": promoted["timeline"], "built_seconds": round(time.monotonic() - started, 1),
        }
        self.meta_file.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        say(f"scenario saved in {self.snap} after {meta['built_seconds']}s")
        return meta

    def wait_caught_up(self, timeout=600):
        target = self.sql(OLD, "SELECT pg_current_wal_lsn()::text")[0][0]
        with entered(self.spec.node_ns(NEW)):
            promote.wait_for_lsn(self.cluster(NEW), target, timeout=timeout, replayed=True)

    def restore(self):
        """Both data dirs back to the saved scenario; the new primary started, mn1 stopped."""
        for node in self.spec.nodes:
            c = self.cluster(node)
            if postmaster.has_data(c) and postmaster.is_running(c):
                postmaster.stop(c, mode="immediate")
        for node in self.spec.nodes:
            data = Path(self.cluster(node).data_dir)
            # Benchmark scratch only: what earlier runs moved aside or kept is removed
            # here (hamn itself never deletes it; each hamn run is checked to keep it).
            for leftover in data.parent.glob(data.name + ".*"):
                shutil.rmtree(leftover)
            keep = data.parent / "hamn-diverged"
            if keep.exists():
                shutil.rmtree(keep)
            # rsync --delete copies back only what a run changed (a base backup: everything).
            subprocess.run(["rsync", "-a", "--delete", f"{self.snap / node}/", f"{data}/"], check=True)
        os.sync()  # the copy's writeback must not land inside a measured fsync
        postmaster.start(self.cluster(NEW))

    # ---- the three methods ----------------------------------------------------------
    def run_hamn(self):
        phases = bench_phases.Recorder()
        cluster, cfg = self.cluster(OLD), self.cfg(OLD)
        with phases.rewind_path(), entered(self.spec.node_ns(OLD)):
            started = time.monotonic()
            out = rewind.rewind(cluster, cfg, OLD, cfg["postgres"]["version"])
            total = time.monotonic() - started
        report = out.get("divergence") or {}
        if out.get("method") != "pg_rewind" or out["streaming"]["status"] != "streaming":
            raise SystemExit(f"hamn rewind did not rewind: {out}")
        if report.get("commits") != self.args.commits or not report.get("keep_dir"):
            raise SystemExit(f"hamn did not keep the {self.args.commits} diverged commits: {report}")
        kept = os.listdir(report["keep_dir"])
        return {"total": total, "phases": phases.top_level(total), "commands": phases.commands(),
                "divergence": {k: report.get(k) for k in ("commits", "aborts", "wal_bytes", "records",
                                                          "fork_lsn", "local_end_lsn")},
                "kept_files": len(kept), "kept_bytes": du(report["keep_dir"])}

    def run_bare_rewind(self):
        cluster = self.cluster(OLD)
        data = cluster.data_dir
        new = self.cluster(NEW)
        started = time.monotonic()
        self.tool(NEW, "psql", "-X", "-q", "-h", new.socket_dir, "-p", str(new.port), "-d", "postgres",
                  "-c", "CHECKPOINT")
        own = save_files(data)
        t_rewind = time.monotonic()
        self.tool(OLD, "pg_rewind", "--target-pgdata", data,
                  "--source-server", self.peer_conninfo(OLD, dbname="postgres"))
        rewind_only = time.monotonic() - t_rewind
        restore_files(own)
        self.standby_config_by_hand(data)
        self.tool(OLD, "pg_ctl", "start", "-D", data, "-w", "-l", cluster.server_log)
        self.wait_streaming_by_hand()
        total = time.monotonic() - started
        return {"total": total, "pg_rewind": rewind_only}

    def run_bare_basebackup(self):
        cluster = self.cluster(OLD)
        data = cluster.data_dir
        started = time.monotonic()
        own = save_files(data)
        os.rename(data, f"{data}.aside-{time.strftime('%Y%m%dT%H%M%S')}")
        pg = pwd.getpwnam("postgres")
        os.mkdir(data, 0o700)
        os.chown(data, pg.pw_uid, pg.pw_gid)
        t_bb = time.monotonic()
        cfg = self.cfg(OLD)
        self.tool(OLD, "pg_basebackup", "-D", data, "-h", NODE_ADDRESSES[NEW], "-p", str(cfg["postgres"]["port"]),
                  "-U", cfg["postgres"]["replication"]["user"], "-X", "stream", "-S", self.slot(OLD), "-c", "fast",
                  "-R", "--no-password", env={"PGPASSFILE": cluster.pgpass})
        bb_only = time.monotonic() - t_bb
        restore_files({p: v for p, v in own.items() if not p.endswith("postgresql.auto.conf")})
        self.tool(OLD, "pg_ctl", "start", "-D", data, "-w", "-l", cluster.server_log)
        self.wait_streaming_by_hand()
        total = time.monotonic() - started
        return {"total": total, "pg_basebackup": bb_only}

    def standby_config_by_hand(self, data):
        """What the admin appends: standby.signal, primary_conninfo, primary_slot_name."""
        lines = (f"primary_conninfo = '{self.peer_conninfo(OLD, application_name=OLD)}'\n"
                 f"primary_slot_name = '{self.slot(OLD)}'\n")
        with open(os.path.join(data, "postgresql.auto.conf"), "a", encoding="utf-8") as handle:
            handle.write(lines)
        pg = pwd.getpwnam("postgres")
        signal = os.path.join(data, "standby.signal")
        with open(signal, "w", encoding="utf-8"):
            pass
        os.chown(signal, pg.pw_uid, pg.pw_gid)

    def wait_streaming_by_hand(self, timeout=300):
        deadline = time.monotonic() + timeout
        cluster = self.cluster(OLD)
        while time.monotonic() < deadline:
            try:
                with connection.session(cluster) as conn:
                    row = connection.query(conn, "SELECT status FROM pg_stat_wal_receiver")
                if row and row[0][0] == "streaming":
                    return
            except (psycopg2.Error, Exception):  # pylint: disable=broad-except
                pass
            time.sleep(POLL)
        raise SystemExit(f"{OLD} not streaming after {timeout}s")

    # ---- the whole orchestration through Salt ---------------------------------------
    def run_salt(self):
        started = time.monotonic()
        ok, steps = drill.orchestrate(self.spec, "rejoin")
        total = time.monotonic() - started
        if not ok:
            drill.show(say, "rejoin", ok, steps)
            raise SystemExit("salt-run state.orchestrate hamn.rejoin failed")
        reports = list((Path(self.cluster(OLD).data_dir).parent / "hamn-diverged").glob("*/report.json"))
        commits = [json.loads(r.read_text(encoding="utf-8")).get("commits") for r in reports]
        if commits != [self.args.commits]:
            raise SystemExit(f"hamn.rejoin did not keep the {self.args.commits} diverged commits: {commits}")
        return {"total": total, "steps": {ident: seconds for ident, _, seconds, _ in steps}}


def copy_tree(src, dst):
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def du(path):
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def save_files(data):
    saved = {}
    for name in OWN_FILES:
        path = os.path.join(data, name)
        if os.path.isfile(path):
            st = os.stat(path)
            with open(path, "rb") as handle:
                saved[path] = (handle.read(), st.st_mode & 0o777, st.st_uid, st.st_gid)
    return saved


def restore_files(saved):
    for path, (blob, mode, uid, gid) in saved.items():
        with open(path, "wb") as handle:
            handle.write(blob)
        os.chown(path, uid, gid)
        os.chmod(path, mode)


def median_phases(runs):
    names = list(dict.fromkeys(name for r in runs for name in r))
    return {name: results.spread([r.get(name, 0.0) for r in runs]) for name in names}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=int, default=66, help="pgbench scale (66 ~ 1 GB)")
    parser.add_argument("--commits", type=int, default=20, help="diverged transactions on the old primary")
    parser.add_argument("--no-salt", dest="salt", action="store_false",
                        help="skip the whole salt-run state.orchestrate hamn.rejoin runs")
    parser.add_argument("--keep", action="store_true", help="keep the lab and the saved scenario for the next run")
    parser.add_argument("--methods", default="hamn,rewind,basebackup")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds (a by-hand rewind) first")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, PostgreSQL as the postgres user)")
    bench = Bench(args)
    free = shutil.disk_usage("/var/tmp").free
    need = args.scale * 15e6 * 6
    if free < need and not bench.snapshot_ok():
        raise SystemExit(f"/var/tmp has {free / 1e9:.1f} GB free; this scale needs about {need / 1e9:.1f} GB")
    methods = [m for m in args.methods.split(",") if m]
    measured = {m: [] for m in methods}
    salt_runs = []
    try:
        meta = bench.snapshot_ok()
        if meta:
            say(f"reusing the saved scenario in {bench.snap}")
            bench.lab.prepare()
        else:
            bench.lab.down()
            meta = bench.build()
        for _ in range(args.warmup):  # not measured: page cache and disk settle after the build
            bench.restore()
            bench.run_bare_rewind()
        for i in range(args.runs):
            shift = i % len(methods)  # each method goes first in turn (after the heaviest restore)
            for method in methods[shift:] + methods[:shift]:
                bench.restore()
                out = {"hamn": bench.run_hamn, "rewind": bench.run_bare_rewind,
                       "basebackup": bench.run_bare_basebackup}[method]()
                measured[method].append(out)
                extra = "".join(f", {k} {v:.2f}s" for k, v in out.items() if k in ("pg_rewind", "pg_basebackup"))
                say(f"run {i + 1}/{args.runs} {method}: {out['total']:.2f}s until streaming{extra}")
        if args.salt:
            bench.restore()
            say("starting salt-master and minions for the orchestration runs")
            bench.lab.up_salt()
            for i in range(args.runs):
                bench.restore()
                salt_runs.append(bench.run_salt())
                say(f"run {i + 1}/{args.runs} salt-run state.orchestrate hamn.rejoin: {salt_runs[-1]['total']:.2f}s")
        section = summarize(args, meta, measured, salt_runs)
        results.update("rejoin", section)
        print_table(section)
    finally:
        if args.keep:
            say(f"--keep: lab and scenario left in {bench.spec.lab_dir} (hamn-lab down with "
                f"HAMN_LAB_PREFIX={PREFIX} HAMN_LAB_DIR={BASE_DIR} removes them)")
        else:
            bench.lab.down()
    return 0


def summarize(args, meta, measured, salt_runs):
    out = {
        "method": (
            "Lab pair in network namespaces rjb-* (real PostgreSQL 15 as postgres, own socket dirs, "
            "198.51.100.0/24). pgbench -i at the given scale on mn1, streamed to mn2; mn2 promoted by "
            "hamn's promote (pg_promote + CHECKPOINT + slot) while mn1 commits `commits` more pgbench "
            "transactions; the new primary commits 5 of its own; both stopped and their data dirs copied. "
            "Each run restores both copies (rsync -a --delete from the copy, then sync), starts mn2 and times the rejoin of the "
            "stopped mn1 until its WAL receiver streams from mn2. hamn = saltext_hamn.utils.pg.rewind.rewind "
            "(the minion side of hamn.rewind) called in mn1's namespace; rewind = CHECKPOINT on mn2, "
            "pg_rewind --source-server, standby.signal + primary_conninfo/primary_slot_name appended to "
            "postgresql.auto.conf, pg_ctl start -w, poll pg_stat_wal_receiver every 50 ms; basebackup = mv "
            "data dir aside, pg_basebackup -R -X stream -S slot -c fast, pg_ctl start -w, same poll. Both "
            "by-hand methods put back the node's own config files after the tool copied the peer's (the lab "
            "keeps config in the data dir). One unmeasured by-hand rewind first (warm-up). Methods interleaved per run, each going first in turn. salt = the whole salt-run "
            "state.orchestrate hamn.rejoin (services stop, VIP down, hamn.rewind, replication check)."),
        "runs": args.runs,
        "database": {"pgbench_scale": args.scale, "database_bytes": meta["database_bytes"],
                     "data_dir_bytes": meta["data_dir_bytes"],
                     "new_primary_pg_wal_bytes": meta["new_primary_wal_bytes"]},
        "divergence": {"transactions_on_old_primary": args.commits,
                       "old_primary_wal_after_promotion_bytes": meta["old_primary_wal_after_promotion_bytes"]},
    }
    if measured.get("hamn"):
        runs = measured["hamn"]
        out["hamn_seconds"] = results.spread([r["total"] for r in runs])
        out["hamn_phases_seconds"] = median_phases([r["phases"] for r in runs])
        out["hamn_commands_seconds"] = median_phases([r["commands"] for r in runs])
        out["divergence"]["hamn_report"] = runs[0]["divergence"]
        out["divergence"]["kept_files"] = runs[0]["kept_files"]
        out["divergence"]["kept_bytes"] = runs[0]["kept_bytes"]
    if measured.get("hamn"):
        # Everything but the pg_rewind command itself (the same command in both paths, and
        # the part that moves with the shared disk's load).
        out["hamn_outside_pg_rewind_seconds"] = results.spread(
            [r["total"] - r["commands"].get("pg_rewind", 0.0) for r in measured["hamn"]])
    if measured.get("rewind"):
        out["bare_rewind_outside_pg_rewind_seconds"] = results.spread(
            [r["total"] - r["pg_rewind"] for r in measured["rewind"]])
        out["bare_rewind_seconds"] = results.spread([r["total"] for r in measured["rewind"]])
        out["bare_pg_rewind_only_seconds"] = results.spread([r["pg_rewind"] for r in measured["rewind"]])
    if measured.get("basebackup"):
        out["bare_basebackup_seconds"] = results.spread([r["total"] for r in measured["basebackup"]])
        out["bare_pg_basebackup_only_seconds"] = results.spread([r["pg_basebackup"] for r in measured["basebackup"]])
    if salt_runs:
        out["salt_orchestrate_seconds"] = results.spread([r["total"] for r in salt_runs])
        out["salt_orchestrate_steps_seconds"] = median_phases([r["steps"] for r in salt_runs])
    if "hamn_seconds" in out and "bare_rewind_seconds" in out:
        ratio = out["hamn_seconds"]["median"] / out["bare_rewind_seconds"]["median"]
        out["hamn_vs_bare_rewind"] = round(ratio, 2)
        # Per run (same restore, back to back): steadier than the ratio of medians on a shared disk.
        out["hamn_vs_bare_rewind_per_run"] = results.spread(
            [h["total"] / b["total"] for h, b in zip(measured["hamn"], measured["rewind"])], digits=2)
        out["target"] = "hamn <= 1.5 x bare pg_rewind (same span: until streaming)"
        out["target_met"] = ratio <= 1.5
    if "salt_orchestrate_seconds" in out and "hamn_seconds" in out:
        out["salt_overhead_seconds"] = round(out["salt_orchestrate_seconds"]["median"] - out["hamn_seconds"]["median"], 2)
    return out


def print_table(section):
    print()
    print(f"database {section['database']['database_bytes'] / 1e9:.2f} GB, "
          f"{section['divergence']['transactions_on_old_primary']} diverged transactions, runs {section['runs']}")
    for key, label in (("hamn_seconds", "hamn rewind (node-local)"),
                       ("hamn_outside_pg_rewind_seconds", "  hamn without its pg_rewind command"),
                       ("bare_rewind_seconds", "bare pg_rewind path"),
                       ("bare_pg_rewind_only_seconds", "  pg_rewind command alone"),
                       ("bare_rewind_outside_pg_rewind_seconds", "  bare path without the pg_rewind command"),
                       ("bare_basebackup_seconds", "bare pg_basebackup path"),
                       ("bare_pg_basebackup_only_seconds", "  pg_basebackup command alone"),
                       ("salt_orchestrate_seconds", "salt-run state.orchestrate hamn.rejoin")):
        if key in section:
            s = section[key]
            print(f"{label:40s} {s['median']:7.2f} s  ({s['min']:.2f}-{s['max']:.2f})")
    if "hamn_vs_bare_rewind" in section:
        print(f"hamn / bare pg_rewind: {section['hamn_vs_bare_rewind']}x (target <= 1.5x: "
              f"{'met' if section['target_met'] else 'NOT met'}); per run "
              f"{section['hamn_vs_bare_rewind_per_run']['values']}")
    for name, s in (section.get("hamn_phases_seconds") or {}).items():
        print(f"  phase {name:38s} {s['median']:6.3f} s")


if __name__ == "__main__":
    sys.exit(main())
