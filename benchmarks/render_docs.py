"""docs/benchmarks.md from benchmarks/results.json: the figures of the last real run of
each benchmark, never typed by hand. ``make bench`` (and ``make bench-peers``) end
with it; run it alone with ``.venv/bin/python benchmarks/render_docs.py``.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402  pylint: disable=wrong-import-position

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

# Documented defaults of the anchors (their manuals), not our measurements of them.
ANCHORS = [
    ("Patroni", "ttl 30 s, loop_wait 10 s, retry_timeout 10 s: the leader key expires up to 30 s after the "
                "primary dies, a replica acts at its next loop"),
    ("repmgr", "reconnect_attempts 6 × reconnect_interval 10 s: ~60 s before repmgrd promotes"),
    ("pg_auto_failover", "the monitor's health checks and timeouts: ~20–30 s from failure to promotion"),
    ("keepalived (VIP only, VRRP)", "advert_int 1 s; a backup takes over after 3 missed adverts plus skew: ~3.5 s"),
]


def fig(section, key, unit="s", digits=2):
    """'median (min–max) unit' of one spread, or '—'."""
    spread = (section or {}).get(key) or {}
    if spread.get("median") is None:
        return "—"
    fmt = f"{{:.{digits}f}}"
    return (f"{fmt.format(spread['median'])} {unit} ({fmt.format(spread['min'])}–{fmt.format(spread['max'])}, "
            f"{spread['runs']} runs)")


def median(section, key):
    return ((section or {}).get(key) or {}).get("median")


def verdict(value, limit):
    if value is None:
        return "not measured"
    return "**met**" if value <= limit else "**not met**"


def machine_line(section):
    m = (section or {}).get("machine") or {}
    v = m.get("versions") or {}
    return (f"{m.get('cpus')} cores, {m.get('memory_gib')} GiB, {m.get('os')}, kernel {m.get('kernel')}; "
            f"Python {v.get('python')}, Salt {v.get('salt')}, {v.get('postgresql')}")


def hamn_table(res):
    sw, fo, auto = res.get("switchover"), res.get("failover"), res.get("auto_failover")
    rj, fs = res.get("rejoin"), res.get("filesync")
    rows = [
        ("planned switchover: longest gap between two acknowledged commits through the VIP",
         fig(sw, "write_gap_seconds"), "≤ 1.0 s", verdict(median(sw, "write_gap_seconds"), 1.0)),
        ("planned switchover: acknowledged commits lost",
         str(sw.get("acknowledged_lost")) if sw else "—", "0",
         verdict(sw.get("acknowledged_lost") if sw else None, 0)),
        ("`salt-run state.orchestrate hamn.switchover` wall time",
         fig(sw, "wall_seconds"), "≤ 4 s", verdict(median(sw, "wall_seconds"), 4.0)),
        ("· the VIP on no node during the handoff", fig(sw, "vip_nowhere_ms", "ms", 1), "", ""),
        ("automatic failover, decided → first acknowledged commit",
         fig(auto, "decided_first_write_seconds"), "≤ 1.0 s",
         verdict(median(auto, "decided_first_write_seconds"), 1.0)),
        ("automatic failover, PostgreSQL + minion SIGKILLed → first commit",
         fig(auto, "kill_first_write_seconds"), "≤ 3 s", verdict(median(auto, "kill_first_write_seconds"), 3.0)),
        ("· detection (kill → the master's decision)", fig(auto, "detect_seconds"), "", ""),
        ("· the takeover call (Salt round trip, promotion, VIP, checkpoint)", fig(auto, "takeover_call_seconds"), "", ""),
        ("only PostgreSQL SIGKILLed → first commit (restarted in place)", fig(auto, "pg_kill_first_write_seconds"),
         "", ""),
        ("false failovers over the no-failover faults",
         f"{auto.get('false_failovers')} of {auto.get('no_failover_faults')}" if auto else "—", "0",
         verdict(auto.get("false_failovers") if auto else None, 0)),
        ("failover typed by hand (`hamn.failover` right after the kill), decided → first commit",
         fig(fo, "decided_to_first_write_seconds"), "", ""),
        ("· kill → first commit", fig(fo, "kill_to_first_write_seconds"), "", ""),
        ("rejoin of the diverged ~1 GB primary, hamn (node-local, until streaming)", fig(rj, "hamn_seconds"),
         "≤ 1.5 × bare pg_rewind",
         f"{verdict(rj.get('hamn_vs_bare_rewind') if rj else None, 1.5)} ({rj.get('hamn_vs_bare_rewind')}×)"
         if rj else "not measured"),
        ("· bare pg_rewind by hand, until streaming", fig(rj, "bare_rewind_seconds"), "", ""),
        ("· bare pg_basebackup by hand, until streaming", fig(rj, "bare_basebackup_seconds"), "", ""),
        ("· `state.orchestrate hamn.rejoin`", fig(rj, "salt_orchestrate_seconds"), "", ""),
        ("file sync of 1,000 files, no-op re-run, hamn (rsync transport)", fig(fs, "hamn_rsync_noop_seconds"),
         "≤ 1.5 × bare rsync",
         f"{verdict(fs.get('hamn_rsync_vs_bare_noop') if fs else None, 1.5)} ({fs.get('hamn_rsync_vs_bare_noop')}×)"
         if fs else "not measured"),
        ("· bare `rsync -a` over ssh, no-op", fig(fs, "bare_rsync_noop_seconds"), "", ""),
        ("· hamn salt transport, node-local, no-op", fig(fs, "hamn_salt_noop_seconds"), "", ""),
        ("· hamn salt transport through Salt (`state.apply` on both nodes), no-op",
         fig((fs or {}).get("salt_lab_noop_seconds"), "total") if fs and fs.get("salt_lab_noop_seconds") else "—",
         "", ""),
        ("· first run: hamn rsync / bare rsync", f"{fig(fs, 'hamn_rsync_first_seconds')} / "
                                                 f"{fig(fs, 'bare_rsync_first_seconds')}", "", ""),
    ]
    lines = ["| what | median (min–max, runs) | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


PEERS_INTRO = """One run, one machine: hamn, Patroni 4.1.5 (Raft DCS, controller in the witness)
and pg_auto_failover 2.0 (monitor in the witness), each in namespaces of hamn's
lab shape (a witness with the bridge, two node namespaces at .11/.12), measured
with the same client (hamn's `VipWriter`, a write every 10 ms from the witness,
one row per commit) and the same scenarios: planned switchover; PostgreSQL and the
agent (salt-minion / patroni / pg_autoctl) SIGKILLed on the primary; PostgreSQL
alone SIGKILLed. The client reaches hamn through its VIP, and Patroni and
pg_auto_failover through libpq's multi-host string
(`host=198.51.100.11,198.51.100.12 target_session_attrs=read-write`), as each
documents. Each tool at its documented defaults (Patroni: ttl 30, loop_wait 10,
retry_timeout 10, asynchronous; pg_auto_failover: synchronous with two nodes,
`node_considered_unhealthy_timeout` 20 s, `primary_demote_timeout` 30 s; hamn:
`make bench-auto`'s settings); the tuned Patroni row is a labelled variant (the
lowest DCS timings it accepts), not the comparison. "first write" counts from the
client's first error after the kill. Method, settings, versions and caveats:
`benchmarks/peers/README.md`."""


def peers_table(res):
    peers = res.get("peers")
    if not peers:
        return "Not run yet: `make bench-peers`."
    systems = peers.get("systems") or {}
    lines = ["| system | switchover: longest write gap | switchover command | kill PostgreSQL + agent → first "
             "commit | … → healthy pair again | kill PostgreSQL only → first commit | lost |",
             "|---|---|---|---|---|---|---|"]
    for name, data in systems.items():
        sw = data.get("switchover") or {}
        kill = data.get("kill_postgres_and_agent") or {}
        pg = data.get("kill_postgres_only") or {}
        lost = sum(int(((d or {}).get("lost_commits") or {}).get("max") or 0) for d in (sw, kill, pg))
        outcome = ", ".join(f"{k} ×{v}" for k, v in (pg.get("outcome") or {}).items())
        lines.append(f"| {name} | {fig(sw, 'longest_gap_s')} | {fig(sw, 'command_s')} | "
                     f"{fig(kill, 'first_write_s')} | {fig(kill, 'rejoin_to_healthy_s')} | {fig(pg, 'first_write_s')}"
                     f"{' (' + outcome + ')' if outcome else ''} | {lost} |")
    ratios = peers.get("ratios_to_hamn") or {}
    ratio_lines = [f"| {name} | {r.get('switchover_longest_gap')} | {r.get('switchover_command')} | "
                   f"{r.get('kill_first_write')} | {r.get('pg_kill_first_write')} |" for name, r in ratios.items()]
    out = PEERS_INTRO + "\n\n" + "\n".join(lines)
    if ratio_lines:
        out += ("\n\nRatios, the peer's median over hamn's median in the same run (> 1: hamn is faster):\n\n"
                "| peer | switchover gap | switchover command | kill → first commit | PostgreSQL kill → first commit |\n"
                "|---|---|---|---|---|\n" + "\n".join(ratio_lines))
    hamn_when = (systems.get("hamn") or {}).get("measured_at")
    return out + (f"\n\nMeasured {peers.get('measured_at')} (hamn's row {hamn_when}) on {machine_line(peers)}.")


def render(res):
    sections = [s for s in ("switchover", "failover", "auto_failover", "rejoin", "filesync") if s in res]
    when = ", ".join(f"{s} {res[s].get('measured_at')}" for s in sections)
    methods = "\n".join(f"- **{s}**: {res[s].get('method')}" for s in sections if res[s].get("method"))
    anchors = "\n".join(f"| {a} | {b} |" for a, b in ANCHORS)
    first = res.get(sections[0]) if sections else {}
    return f"""# Benchmarks: a real run

Generated from `benchmarks/results.json` by `benchmarks/render_docs.py` (every figure
comes from the last run of `make bench`, `make bench-auto` and `make bench-peers`;
nothing here is typed by hand). Medians over the runs, with min–max and the number
of runs. Method details and what each figure means: `benchmarks/README.md`.

Machine: {machine_line(first)}. Measured: {when}.

## hamn against the issue's targets

{hamn_table(res)}

How each was measured:

{methods}

What bounds the figures that miss their target, and where the time goes, is in
`benchmarks/README.md` (per-step timings: every orchestration step records its
observation and each minion call in the run record, `timings`).

## The peers, same client, same machine, one run

{peers_table(res)}

## The anchors' documented defaults (their manuals, not our measurements)

| system | documented default behaviour |
|---|---|
{anchors}
"""


def main():
    DOC.write_text(render(results.load()), encoding="utf-8")
    print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
