"""Automatic failover with the shipped defaults: how soon can xCAT write again, and
does anything fail over when it should not? Run on demand, as root:
``make bench-auto`` (or ``.venv/bin/python benchmarks/auto_failover.py --runs 5``).

Method: a lab of its own (prefix ``hamnauto``) armed like ``hamn-lab up``
(heartbeat beacon every 1 s, heartbeat reactor, lease watchdogs), set up with
``hamn.setup``; shipped defaults except the cooldown (4 s, so that runs can
follow each other) and no fence command (the lease is what fences). A client in
the witness namespace commits one row every 10 ms through the VIP and records the
time of each acknowledged commit.

* **kill**: SIGKILL of the primary's PostgreSQL and salt-minion; nobody types
  anything. Measured: kill → first acknowledged commit through the VIP, and from
  the automatic run's record its parts: detection (kill → the master's decision),
  proof (the watchdog's fence), the takeover call (Salt round trip) with the
  promotion and the VIP inside it. Then ``hamn.rejoin`` and ``hamn.resume`` (not
  timed).
* **pg-kill**: SIGKILL of the primary's PostgreSQL only: restarted in place.
  Measured: kill → first acknowledged commit.
* **no-failover faults**: the link between the nodes cut, the master↔primary link
  cut, the salt-master stopped, each for 8 s: counted failovers (must be 0).

Figures are medians of the runs, with min–max.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time

import yaml

from saltext_hamn.lab import drill, netns, saltd
from saltext_hamn.lab.client import VipWriter
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import NODE_ADDRESSES, WITNESS_ADDRESS, LabSpec
from saltext_hamn.utils import proc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402  pylint: disable=wrong-import-position


def salt_run_json(lab, *args):
    result = proc.run(saltd.salt_cmd(lab.spec, *args, "--out=json", runner=True), check=False, timeout=120)
    return json.loads(result.stdout)


def wait_armed(lab, timeout=90):
    primary = lab.current_primary()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        auto = salt_run_json(lab, "hamn.automation")
        node = (auto.get("nodes") or {}).get(primary) or {}
        # A lease shown "enforced" is the last status seen; renewed_ago says the master renews
        # it now (a restarted master's reactor starts seconds after the master itself).
        renewed = node.get("renewed_ago")
        if (auto.get("state") == "armed" and str(node.get("lease")).startswith("enforced")
                and renewed is not None and renewed < 2):
            return
        time.sleep(0.5)
    raise SystemExit("the automation did not arm")


def run_record(lab, token):
    path = lab.spec.lab_dir / "salt" / "master" / "var" / "cache" / "salt" / "master" / "hamn" / "runs" / f"{token}.json"
    return json.loads(path.read_text())


def heal(lab, old):
    saltd.start_minion(lab.spec, old)
    saltd.wait_minion_ready(lab.spec, old)
    ok, steps = drill.orchestrate(lab.spec, "rejoin")
    if not ok:
        drill.show(print, "rejoin", ok, steps)
        raise SystemExit("rejoin failed")
    salt_run_json(lab, "hamn.resume")
    wait_armed(lab)


def failovers(lab):
    return [e for e in salt_run_json(lab, "hamn.automation").get("history") or [] if e.get("name") == "auto-failover"]


def med(values):
    return f"{statistics.median(values):6.2f} s  ({min(values):.2f}–{max(values):.2f})"


def up_armed(lab):
    """The lab as this benchmark runs it (also benchmarks/peers' hamn): armed like
    hamn-lab up, shipped defaults except a 4 s cooldown and no fence command (the
    lease fences), then hamn.setup."""
    lab.prepare()
    pillar = lab.spec.lab_dir / "pillar" / "hamn.sls"
    data = yaml.safe_load(pillar.read_text())
    data["hamn"]["heartbeat"] = {"cooldown": 4}
    data["hamn"]["fence"]["cmd"] = None
    pillar.write_text(yaml.safe_dump(data))
    lab.up_salt()
    ok, steps = drill.orchestrate(lab.spec, "setup")
    if not ok:
        drill.show(print, "setup", ok, steps)
        raise SystemExit("setup failed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-results", action="store_true", help="print only, leave results.json alone")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the daemons' and watchdogs' logs here at the end")
    args = parser.parse_args()
    lab = Lab(LabSpec(prefix="hamnauto"), out=lambda m: None, automation=True)
    lab.down()
    figures = {"kill_first_write": [], "decided_first_write": [], "detect": [], "prove": [], "takeover_call": [],
               "promote": [], "vip": [], "pg_kill_first_write": []}
    false_failovers = 0
    try:
        up_armed(lab)
        lab.xcat_database(lab.current_primary())
        wait_armed(lab)
        writer = VipWriter(lab, table="bench_auto", pause=0.01)
        writer.start()
        time.sleep(1)
        for i in range(args.runs):
            old = lab.current_primary()
            before = len(failovers(lab))
            kill_wall = time.time()
            drill.kill_node_services(lab.spec, old)
            # kill_node_services sleeps 0.2 s after its SIGKILLs: a commit acknowledged
            # before the kill must not count as the first one after it.
            killed = time.monotonic() - 0.2
            drill.wait_primary(lab, "mn2" if old == "mn1" else "mn1", timeout=60)
            time.sleep(1)
            first = writer.first_ack_after(killed) - killed
            done = failovers(lab)
            if len(done) <= before or done[-1]["result"] != "done":
                raise SystemExit(f"run {i + 1}: no automatic failover recorded: {done[-1:]}")
            run = run_record(lab, lab_run_token(lab, done[-1]["run"]))
            take = run.get("takeover") or {}
            parts = {"detect": run["started"] - kill_wall, "prove": run["steps"]["prove"]["seconds"],
                     "takeover_call": run["steps"]["takeover"]["seconds"],
                     "promote": take.get("promote_seconds"), "vip": take.get("vip_seconds")}
            figures["kill_first_write"].append(first)
            first_index = next(i for i, t in enumerate(writer.ack_times) if t > killed)
            figures["decided_first_write"].append(writer.ack_walls[first_index] - run["started"])
            for key, value in parts.items():
                figures[key].append(value)
            print(f"kill {i + 1}: first write after {first:.2f} s; " +
                  ", ".join(f"{k} {v:.2f}" for k, v in parts.items()), flush=True)
            heal(lab, old)
        for i in range(args.runs):
            primary = lab.current_primary()
            drill.kill_node_services(lab.spec, primary, names=("postgres",))
            killed = time.monotonic() - 0.2  # as above
            deadline = time.monotonic() + 30
            while math.isnan(writer.first_ack_after(killed)) and time.monotonic() < deadline:
                time.sleep(0.1)  # NaN until a commit after the kill
            time.sleep(1)
            first = writer.first_ack_after(killed) - killed
            figures["pg_kill_first_write"].append(first)
            print(f"pg-kill {i + 1}: first write after {first:.2f} s (still {lab.current_primary()})", flush=True)
            wait_armed(lab)
        for i in range(args.runs):
            before = len(failovers(lab))
            primary = lab.current_primary()
            standby = "mn2" if primary == "mn1" else "mn1"
            for name, cut, heal_cut in _no_failover_faults(lab, primary, standby):
                cut()
                time.sleep(8)
                heal_cut()
                wait_armed(lab)
                now = len(failovers(lab))
                false_failovers += now - before
                before = now
                print(f"no-failover {i + 1} {name}: failovers {false_failovers} so far", flush=True)
        writer.finish()
        print()
        print(f"runs: {args.runs} each; median (min–max)")
        print(f"kill (PG + minion) -> first write     {med(figures['kill_first_write'])}")
        for key in ("decided_first_write", "detect", "prove", "takeover_call", "promote", "vip"):
            print(f"  {key:<35} {med(figures[key])}")
        print(f"PG kill -> first write (restart)      {med(figures['pg_kill_first_write'])}")
        print(f"false failovers over {3 * args.runs} no-failover faults: {false_failovers}")
        if not args.no_results:
            results.update("auto_failover", {
                "method": ("lab prefix hamnauto armed like hamn-lab up (heartbeat every 1 s, reactor, lease "
                           "watchdogs), shipped defaults except cooldown 4 s and no fence command; client commits "
                           f"every 10 ms through the VIP; {args.runs} runs; medians with min and max"),
                "runs": args.runs, "false_failovers": false_failovers, "no_failover_faults": 3 * args.runs,
                **{f"{k}_seconds": results.spread(v) for k, v in figures.items()}})
            print(f"written: {results.RESULTS}")
    finally:
        if args.keep_logs:
            keep_logs(lab, args.keep_logs)
        lab.down()
    return 0


def keep_logs(lab, target):
    os.makedirs(target, exist_ok=True)
    for pattern in ("salt/*/var/log/salt/*", "*/lease/lease.log", "*/postgresql.log"):
        for path in lab.spec.lab_dir.glob(pattern):
            shutil.copyfile(path, os.path.join(target, str(path.relative_to(lab.spec.lab_dir)).replace("/", "_")))


def lab_run_token(lab, short):
    runs = lab.spec.lab_dir / "salt" / "master" / "var" / "cache" / "salt" / "master" / "hamn" / "runs"
    return next(p.stem for p in runs.glob(f"{short}*.json"))


def _no_failover_faults(lab, primary, standby):
    def route(ns, address, action):
        netns.ip("-n", ns, "route", action, "blackhole", f"{address}/32")

    def cut_nodes():
        route(lab.spec.node_ns(primary), NODE_ADDRESSES[standby], "add")
        route(lab.spec.node_ns(standby), NODE_ADDRESSES[primary], "add")

    def heal_nodes():
        route(lab.spec.node_ns(primary), NODE_ADDRESSES[standby], "del")
        route(lab.spec.node_ns(standby), NODE_ADDRESSES[primary], "del")

    def cut_master():
        route(lab.spec.node_ns(primary), WITNESS_ADDRESS, "add")
        route(lab.spec.witness_ns, NODE_ADDRESSES[primary], "add")

    def heal_master():
        route(lab.spec.node_ns(primary), WITNESS_ADDRESS, "del")
        route(lab.spec.witness_ns, NODE_ADDRESSES[primary], "del")

    def stop_master():
        saltd.terminate([saltd.read_pid(saltd.pidfile(lab.spec, "master"))])

    def start_master():
        saltd.start_master(lab.spec)

    return [("nodes cut", cut_nodes, heal_nodes), ("master-primary cut", cut_master, heal_master),
            ("master stopped", stop_master, start_master)]


if __name__ == "__main__":
    sys.exit(main())
