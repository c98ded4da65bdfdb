"""How long is xCAT's database unavailable through the VIP during a planned
switchover and an unplanned failover? Run on demand, as root: ``make bench`` (or
``.venv/bin/python benchmarks/failover_times.py --runs 5``).

Method: a lab of its own (prefix ``hamnbench``, automation not armed, so that
only the typed orchestrations act), set up with ``hamn.setup``. A client in the
witness namespace commits one row every 10 ms through the VIP and records the
time of each acknowledged commit (monotonic and wall clock).

* **switchover** (``salt-run state.orchestrate hamn.switchover``, back and forth):
  the command's wall time, the longest gap between two acknowledged commits, how
  long the VIP was on no node (from the run record), each step's time.
* **failover**: SIGKILL of the primary's PostgreSQL and salt-minion, then at once
  ``salt-run state.orchestrate hamn.failover`` (the lab's fence command powers
  the silent node "off"): kill → first acknowledged commit, and the decision (the
  run record's start, written when hamn_orch.begin has decided) → first commit.
  Then the minion comes back and ``hamn.rejoin`` (not timed).

Every acknowledged commit is read back from the final primary at the end.
Figures: medians over the runs, with min and max; written to
``benchmarks/results.json`` (sections ``switchover`` and ``failover``).
"""

import argparse
import glob
import json
import os
import sys
import time

from saltext_hamn.lab import drill, saltd, scenario
from saltext_hamn.lab.client import VipWriter
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils.pg import connection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402  pylint: disable=wrong-import-position

CLIENT_PAUSE = 0.01  # one commit every 10 ms, as in the measurements of the peers
VERBOSE = False


def timed(lab, name):
    started = time.monotonic()
    ok, steps = drill.orchestrate(lab.spec, name)
    if not ok:
        drill.show(print, name, ok, steps)
        raise SystemExit(f"hamn.{name} failed")
    return started, time.monotonic(), steps


def newest_run(lab, name):
    pattern = str(scenario.master_hamn_dir(lab.spec) / "runs" / "*.json")
    found = []
    for path in glob.glob(pattern):
        try:
            with open(path, encoding="utf-8") as handle:
                run = json.load(handle)
        except (OSError, ValueError):
            continue
        if run.get("name") == name:
            found.append(run)
    return max(found, key=lambda r: r.get("started", 0)) if found else {}


def gap_around(writer, start, end):
    """The longest time between two acknowledged commits from just before ``start`` to after ``end``."""
    times = [t for t in writer.ack_times if start - 1 <= t <= end + 1]
    return max((b - a for a, b in zip(times, times[1:])), default=None)


def first_wall_after(writer, moment):
    return next((t for t in list(writer.ack_walls) if t > moment), None)


def show_steps(lab, name, steps):
    """--verbose: each step with what it said, and where its time went (the run record's timings)."""
    if not VERBOSE:
        return
    drill.show(print, name, True, steps, comments=True)
    for step, entry in newest_run(lab, name).get("steps", {}).items():
        print(f"    {step}: {entry.get('seconds')} s; {entry.get('timings')}")


def switchovers(lab, writer, runs):
    wall, gap, nowhere, steps_by_name = [], [], [], {}
    for i in range(runs):
        start, end, steps = timed(lab, "switchover")
        show_steps(lab, "switchover", steps)
        time.sleep(1.0)
        wall.append(end - start)
        gap.append(gap_around(writer, start, end))
        record = newest_run(lab, "switchover")
        nowhere.append((record.get("steps", {}).get("switch") or {}).get("vip_nowhere_ms"))
        for ident, _, seconds, _ in steps:
            steps_by_name.setdefault(ident, []).append(seconds)
        print(f"switchover {i + 1}: {wall[-1]:.2f} s wall, longest write gap {gap[-1]:.3f} s, "
              f"VIP on no node {nowhere[-1]} ms", flush=True)
    return {"wall_seconds": results.spread(wall), "write_gap_seconds": results.spread(gap),
            "vip_nowhere_ms": results.spread(nowhere),
            "steps_seconds": {k: results.spread(v) for k, v in steps_by_name.items()}}


def failovers(lab, writer, runs):
    first, decided_first, wall = [], [], []
    for i in range(runs):
        victim = lab.current_primary()
        drill.kill_node_services(lab.spec, victim)
        killed, killed_wall = time.monotonic(), time.time()
        _, end, steps = timed(lab, "failover")
        show_steps(lab, "failover", steps)
        time.sleep(1.0)
        record = newest_run(lab, "failover")
        decided = record.get("started")
        ack = first_wall_after(writer, killed_wall)
        first.append(ack - killed_wall if ack else None)
        decided_first.append(ack - decided if ack and decided else None)
        wall.append(end - killed)
        print(f"failover {i + 1}: kill -> first write {first[-1]:.2f} s, decided -> first write "
              f"{decided_first[-1]:.2f} s, kill -> orchestration done {wall[-1]:.2f} s", flush=True)
        saltd.start_minion(lab.spec, victim)
        saltd.wait_minion_ready(lab.spec, victim)
        timed(lab, "rejoin")
    return {"kill_to_first_write_seconds": results.spread(first),
            "decided_to_first_write_seconds": results.spread(decided_first),
            "kill_to_done_seconds": results.spread(wall)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-results", action="store_true", help="print only, leave results.json alone")
    parser.add_argument("--verbose", action="store_true", help="print every orchestration's steps")
    args = parser.parse_args()
    global VERBOSE  # pylint: disable=global-statement
    VERBOSE = args.verbose
    lab = Lab(LabSpec(prefix="hamnbench"), out=lambda m: None)
    lab.down()
    try:
        lab.prepare()
        lab.up_salt()
        timed(lab, "setup")
        lab.xcat_database(lab.current_primary())
        writer = VipWriter(lab, table="bench", pause=CLIENT_PAUSE)
        writer.start()
        time.sleep(1)
        switched = switchovers(lab, writer, args.runs)
        failed = failovers(lab, writer, args.runs)
        writer.finish()
        with connection.session(lab.cluster(lab.current_primary()), "xcatdb") as conn:
            stored = {r[0] for r in connection.query(conn, "SELECT id FROM bench")}
        lost = sorted(set(writer.acked) - stored)
    finally:
        lab.down()
    method = (f"lab prefix hamnbench (namespaces, real PostgreSQL and Salt), client in the witness namespace "
              f"committing one row every {CLIENT_PAUSE * 1000:.0f} ms through the VIP; {args.runs} runs each; "
              "medians with min and max")
    common = {"method": method, "runs": args.runs, "acknowledged_writes": len(writer.acked),
              "acknowledged_lost": len(lost)}
    med = lambda s: s["median"]  # noqa: E731
    print()
    print(f"runs: {args.runs} each; medians (min-max)")
    for label, fig in (("switchover wall time", switched["wall_seconds"]),
                       ("switchover longest write gap", switched["write_gap_seconds"]),
                       ("switchover VIP on no node (ms)", switched["vip_nowhere_ms"]),
                       ("failover kill -> first write", failed["kill_to_first_write_seconds"]),
                       ("failover decided -> first write", failed["decided_to_first_write_seconds"]),
                       ("failover kill -> orchestration done", failed["kill_to_done_seconds"])):
        print(f"  {label:38s} {med(fig)} ({fig['min']}-{fig['max']})")
    print(f"  acknowledged writes {len(writer.acked)}, lost {len(lost)}"
          + (" (async replication: commits not yet streamed when a primary was killed)" if lost else ""))
    if not args.no_results:
        results.update("switchover", {**common, **switched})
        results.update("failover", {**common, **failed})
        print(f"written: {results.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
