"""Patroni and pg_auto_failover measured the way hamn is: same client, same scenarios,
namespaces of the same shape. Run on demand, as root: ``make bench-peers`` (or
``.venv/bin/python benchmarks/peers/bench.py --runs 3 --hamn --tuned``).

For each system (``--hamn``: hamn itself first, so that one run gives the ratios;
``--tuned``: a labeled Patroni variant last): build its lab (``patr-*`` / ``paf-*`` /
``peerhamn-*`` namespaces, data under /var/tmp/hamn-peers), start hamn's client
(``VipWriter``: one row per commit, a write every 10 ms, the time of each
acknowledged commit) in the witness namespace, connected through libpq's multi-host
string with ``target_session_attrs=read-write`` over both node addresses (hamn:
through its VIP); then, N runs each:

* **switchover**: the tool's planned switchover command from the witness; longest
  gap between two acknowledged commits, acknowledged commits lost, the command's
  wall time;
* **kill**: SIGKILL of the primary's PostgreSQL and its agent (patroni /
  pg_autoctl / salt-minion); kill -> first acknowledged commit; then the node re-joined as the
  tool does it (start the agent again), timed until the pair is healthy;
* **pg-kill**: SIGKILL of the primary's PostgreSQL only (agent alive); kill -> first
  acknowledged commit; what the tool did (restart in place or failover); time
  until the pair is healthy again.

Then the lab is torn down (also on failure or Ctrl-C, unless ``--keep``), and the
figures go to ``benchmarks/results.json``, section ``peers``.
"""

import argparse
import math
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import results  # noqa: E402  pylint: disable=wrong-import-position
from peerlab import CLIENT_DB, CLIENT_USER, say, wait_for  # noqa: E402  pylint: disable=wrong-import-position

from saltext_hamn.lab.client import VipWriter  # noqa: E402  pylint: disable=wrong-import-position

TABLE = "bench_peers"


def wait_ack_after(writer, moment, timeout):
    """The time of the first acknowledged commit after ``moment`` (NaN after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while math.isnan(writer.first_ack_after(moment)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return writer.first_ack_after(moment)


def first_write_after_kill(writer, errors, killed, timeout=180):
    """Kill -> the first commit acknowledged on a connection opened after the kill.

    A dying primary can acknowledge an in-flight commit a few ms after the SIGKILL:
    that one is not a write made possible again. So wait for the client's first error
    after the kill (``errors``: the client's error count just before it), and take the
    first acknowledgement after it."""
    deadline = time.monotonic() + timeout
    while writer.errors == errors and time.monotonic() < deadline:
        time.sleep(0.005)
    return wait_ack_after(writer, time.monotonic(), max(0.0, deadline - time.monotonic())) - killed


def pair(peer, client):
    """(primary, streaming standbys) as PostgreSQL itself shows them through the client."""
    conn = client.client_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT host(inet_server_addr()), ARRAY(SELECT host(client_addr) FROM pg_stat_replication"
                        " WHERE state = 'streaming')")
            primary_addr, standbys = cur.fetchone()
    finally:
        conn.close()
    by_addr = {peer.address(n): n for n in peer.nodes}
    # through a VIP (hamn) the server address is the VIP: ask the system which node holds it
    primary = by_addr.get(primary_addr) or peer.primary()
    return primary, sorted(by_addr.get(a, a) for a in standbys)


def wait_healthy(peer, client, timeout=240, primary=None):
    """Seconds until a healthy pair: one writable primary (``primary`` if given), the
    other node streaming from it, and the tool's own view agreeing."""
    started = time.monotonic()

    def check():
        now, standbys = pair(peer, client)
        if primary and now != primary:
            return None
        return now if standbys == [peer.other(now)] and peer.healthy(now) else None

    wait_for(f"{peer.name}: a healthy pair", check, timeout, interval=0.25)
    return time.monotonic() - started


class Losses:
    """Acknowledged commits missing on the current primary, counted as they appear."""

    def __init__(self, client, writer):
        self.client, self.writer, self.seen = client, writer, 0

    def new(self):
        acked = set(self.writer.acked)  # before the read: each of these was acknowledged before it
        conn = self.client.client_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT id FROM {TABLE}")
                present = {row[0] for row in cur.fetchall()}
        finally:
            conn.close()
        lost = len(acked - present)
        new, self.seen = lost - self.seen, lost
        return new


def run_system(peer, runs, fig):
    say(f"{peer.name}: building the lab")
    started = time.monotonic()
    peer.setup()
    say(f"{peer.name}: pair up in {time.monotonic() - started:.1f} s, primary {peer.primary()}")
    client = peer.client()
    writer = VipWriter(client, table=TABLE, pause=0.01)
    writer.start()
    if math.isnan(wait_ack_after(writer, time.monotonic(), 30)):
        raise RuntimeError(f"{peer.name}: the client never wrote")
    time.sleep(2)
    losses = Losses(client, writer)
    try:
        for i in range(runs):
            old = peer.primary()
            start = time.monotonic()
            ok, out = peer.switchover()
            end = time.monotonic()
            if not ok:
                raise RuntimeError(f"{peer.name}: switchover failed: {out}")
            after = wait_ack_after(writer, end, 60)
            healthy = wait_healthy(peer, client, primary=peer.other(old))
            gap = writer.longest_gap(start, after)
            fig["switchover_gap"].append(gap)
            fig["switchover_command"].append(end - start)
            fig["switchover_lost"].append(losses.new())
            say(f"{peer.name} switchover {i + 1}: {old} -> {peer.primary()}, command {end - start:.2f} s, "
                f"longest gap {gap:.2f} s, lost {fig['switchover_lost'][-1]}, healthy {healthy:.1f} s later")
            time.sleep(2)
        for i in range(runs):
            old = peer.primary()
            errors = writer.errors
            killed, pids = peer.kill(old, agent=True)
            first = first_write_after_kill(writer, errors, killed)
            new = pair(peer, client)[0]
            rejoin_start = time.monotonic()
            peer.rejoin(old)
            wait_healthy(peer, client, primary=peer.other(old))
            rejoin = time.monotonic() - rejoin_start
            fig["kill_first_write"].append(first)
            fig["kill_rejoin"].append(rejoin)
            fig["kill_lost"].append(losses.new())
            say(f"{peer.name} kill {i + 1}: {len(pids)} processes of {old} SIGKILLed; first write after "
                f"{first:.2f} s on {new}; rejoined healthy in {rejoin:.1f} s; lost {fig['kill_lost'][-1]}")
            time.sleep(2)
        for i in range(runs):
            old = peer.primary()
            errors = writer.errors
            killed, pids = peer.kill(old, agent=False)
            first = first_write_after_kill(writer, errors, killed)
            new = pair(peer, client)[0]
            wait_healthy(peer, client, primary=new)
            healthy = time.monotonic() - killed
            outcome = "restart in place" if new == old else "failover"
            fig["pg_kill_first_write"].append(first)
            fig["pg_kill_healthy"].append(healthy)
            fig["pg_kill_outcome"].append(outcome)
            fig["pg_kill_lost"].append(losses.new())
            say(f"{peer.name} pg-kill {i + 1}: postgres of {old} SIGKILLed ({len(pids)} processes); {outcome}; "
                f"first write after {first:.2f} s; healthy {healthy:.1f} s after the kill; "
                f"lost {fig['pg_kill_lost'][-1]}")
            time.sleep(2)
    finally:
        writer.finish()
    fig["acked"] = len(writer.acked)
    fig["client_errors"] = writer.errors
    return {"settings": peer.settings(), "versions": peer.versions()}


def empty_figures():
    return {k: [] for k in ("switchover_gap", "switchover_command", "switchover_lost", "kill_first_write",
                            "kill_rejoin", "kill_lost", "pg_kill_first_write", "pg_kill_healthy",
                            "pg_kill_outcome", "pg_kill_lost")}


def section(fig, meta, runs):
    outcomes = fig["pg_kill_outcome"]
    return {
        **meta,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "acknowledged_commits": fig.get("acked"),
        "client_errors": fig.get("client_errors"),
        "switchover": {
            "longest_gap_s": results.spread(fig["switchover_gap"]),
            "lost_commits": results.spread(fig["switchover_lost"]),
            "command_s": results.spread(fig["switchover_command"]),
        },
        "kill_postgres_and_agent": {
            "first_write_s": results.spread(fig["kill_first_write"]),
            "lost_commits": results.spread(fig["kill_lost"]),
            "rejoin_to_healthy_s": results.spread(fig["kill_rejoin"]),
        },
        "kill_postgres_only": {
            "first_write_s": results.spread(fig["pg_kill_first_write"]),
            "lost_commits": results.spread(fig["pg_kill_lost"]),
            "kill_to_healthy_s": results.spread(fig["pg_kill_healthy"]),
            "outcome": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        },
    }


RATIO_FIGURES = {"switchover_longest_gap": ("switchover", "longest_gap_s"),
                 "switchover_command": ("switchover", "command_s"),
                 "kill_first_write": ("kill_postgres_and_agent", "first_write_s"),
                 "pg_kill_first_write": ("kill_postgres_only", "first_write_s")}


def ratios(systems):
    """Each system's median over hamn's median, figure by figure (same run, same machine)."""
    out = {}
    for name, data in systems.items():
        if name == "hamn":
            continue
        out[name] = {}
        for figure, (scenario, key) in RATIO_FIGURES.items():
            mine, hamn = data[scenario][key]["median"], systems["hamn"][scenario][key]["median"]
            out[name][figure] = round(mine / hamn, 2) if mine is not None and hamn else None
    return out


def peers(names):
    out = []
    for name in names:
        if name == "patroni":
            from patroni_peer import PatroniPeer  # pylint: disable=import-outside-toplevel
            out.append(PatroniPeer())
        elif name == "hamn":
            from hamn_peer import HamnPeer  # pylint: disable=import-outside-toplevel
            out.append(HamnPeer())
        elif name == "patroni_tuned":
            from patroni_peer import PatroniPeer, TUNED  # pylint: disable=import-outside-toplevel
            out.append(PatroniPeer(dcs=TUNED, name="patroni_tuned"))
        elif name == "pg_auto_failover":
            from paf_peer import PafPeer  # pylint: disable=import-outside-toplevel
            out.append(PafPeer())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (default 3)")
    parser.add_argument("--only", choices=("hamn", "patroni", "pg_auto_failover", "patroni_tuned"), action="append",
                        help="measure only this system (repeatable; default: patroni and pg_auto_failover)")
    parser.add_argument("--hamn", action="store_true",
                        help="also hamn itself (its own lab, armed as bench-auto), first: ratios from one run")
    parser.add_argument("--tuned", action="store_true",
                        help="also a labeled Patroni variant with the lowest DCS timings it accepts")
    parser.add_argument("--keep", action="store_true", help="leave the labs up for debugging (no teardown)")
    parser.add_argument("--no-results", action="store_true", help="do not write benchmarks/results.json")
    args = parser.parse_args()
    # a SIGTERM (make's or timeout's) tears the lab down like Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    systems = {}
    failed = {}
    names = args.only or ["patroni", "pg_auto_failover"]
    if args.hamn and "hamn" not in names:
        names.insert(0, "hamn")
    if args.tuned and "patroni_tuned" not in names:
        names.append("patroni_tuned")
    for peer in peers(names):
        fig = empty_figures()
        try:
            meta = run_system(peer, args.runs, fig)
            systems[peer.name] = section(fig, meta, args.runs)
        except (KeyboardInterrupt, SystemExit):
            say("interrupted: tearing down")
            raise
        except Exception as exc:  # pylint: disable=broad-except
            say(f"{peer.name}: FAILED: {exc}")
            print(peer.log_tails(), flush=True)
            failed[peer.name] = str(exc)[-1000:]
        finally:
            if args.keep:
                say(f"{peer.name}: kept (--keep): {peer.where()}")
            else:
                peer.teardown()
    if systems and not args.no_results:
        # --only: the other system keeps its last figures (each says when it was measured).
        measured = set(systems)
        kept = results.load().get("peers", {}).get("systems", {})
        systems = {**{k: v for k, v in kept.items() if k not in systems}, **systems}
        data = {
            "method": {
                "client": ("hamn's VipWriter (src/saltext_hamn/lab/client.py) in the witness namespace: one row "
                           "per commit, a write every 10 ms, the time of each acknowledged commit"),
                "client_connects": {
                    "patroni, pg_auto_failover": (
                        f"libpq multi-host: host=198.51.100.11,198.51.100.12 port=5432,5432 dbname={CLIENT_DB} "
                        f"user={CLIENT_USER} target_session_attrs=read-write connect_timeout=1 (per host), "
                        "scram-sha-256 password"),
                    "hamn": "through the VIP 198.51.100.10:5432 as the xCAT DB user, connect_timeout=5, "
                            "scram-sha-256 password"},
                "runs_per_scenario": args.runs,
                "kill": "SIGKILL of every process named postgres and of the agent (patroni / pg_autoctl / "
                        "salt-minion) in the primary's namespace; first write = first commit acknowledged "
                        "after the client's first error following the kill",
                "pg_kill": "SIGKILL of every process named postgres in the primary's namespace (agent alive)",
            },
            "systems": systems,
        }
        if "hamn" in measured:  # ratios only from one run
            data["ratios_to_hamn"] = ratios({k: v for k, v in systems.items() if k in measured})
        if failed:
            data["failed"] = failed
        results.update("peers", data)
        say(f"figures written to {results.RESULTS} (section peers)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
