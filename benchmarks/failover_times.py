"""How long is xCAT's database unavailable through the VIP during a switchover and a
failover? Run on demand, as root: ``make bench`` (or ``.venv/bin/python
benchmarks/failover_times.py --runs 5``).

Method: a lab of its own (prefix ``hamnbench``) is set up with ``hamn.setup``. A
client in the witness namespace writes one row every 5 ms through the VIP and
records the time of each acknowledged commit. For each run we measure
  * the orchestration's wall time (``salt-run state.orchestrate ...``),
  * the write outage: the longest gap between two acknowledged commits,
and for the failover also the time from the SIGKILL of the primary's PostgreSQL
and salt-minion to the first acknowledged commit on the new primary. Each failover
is followed by ``hamn.rejoin`` (not timed). Figures are medians over the runs.
"""

import argparse
import statistics
import sys
import time


from saltext_hamn.lab import drill, saltd
from saltext_hamn.lab.client import VipWriter
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils.pg import connection


def timed(lab, name):
    started = time.monotonic()
    ok, steps = drill.orchestrate(lab.spec, name)
    if not ok:
        drill.show(print, name, ok, steps)
        raise SystemExit(f"hamn.{name} failed")
    return started, time.monotonic()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lab = Lab(LabSpec(prefix="hamnbench"), out=lambda m: None)
    lab.down()
    try:
        lab.prepare()
        lab.up_salt()
        timed(lab, "setup")
        lab.xcat_database(lab.current_primary())
        writer = VipWriter(lab, table="bench")
        writer.start()
        time.sleep(1)
        switch_wall, switch_gap, fail_wall, fail_gap, fail_first = [], [], [], [], []
        for i in range(args.runs):
            start, end = timed(lab, "switchover")
            time.sleep(0.5)
            switch_wall.append(end - start)
            switch_gap.append(writer.longest_gap(start, end))
            print(f"switchover {i + 1}: {switch_wall[-1]:.1f}s wall, {switch_gap[-1]:.2f}s without writes", flush=True)
        for i in range(args.runs):
            victim = lab.current_primary()
            drill.kill_node_services(lab.spec, victim)
            killed = time.monotonic()  # after the kill: a commit may land while it is sent
            _, end = timed(lab, "failover")
            time.sleep(0.5)
            fail_wall.append(end - killed)
            fail_first.append(writer.first_ack_after(killed) - killed)
            fail_gap.append(writer.longest_gap(killed, end))
            print(f"failover {i + 1}: {fail_wall[-1]:.1f}s kill->done, first write after {fail_first[-1]:.1f}s",
                  flush=True)
            saltd.start_minion(lab.spec, victim)
            saltd.wait_minion_ready(lab.spec, victim)
            timed(lab, "rejoin")
        writer.finish()
        with connection.session(lab.cluster(lab.current_primary()), "xcatdb") as conn:
            stored = {r[0] for r in connection.query(conn, "SELECT id FROM bench")}
        lost = sorted(set(writer.acked) - stored)
        med = statistics.median
        print()
        print(f"runs: {args.runs} each; medians")
        print(f"switchover wall time          {med(switch_wall):6.1f} s")
        print(f"switchover write outage (VIP) {med(switch_gap):6.2f} s")
        print(f"failover kill -> done         {med(fail_wall):6.1f} s")
        print(f"failover kill -> first write  {med(fail_first):6.1f} s")
        print(f"acknowledged writes           {len(writer.acked)}")
        print(f"acknowledged but lost         {len(lost)}"
              + (" (async replication: commits not yet streamed when the primary was killed)" if lost else ""))
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
