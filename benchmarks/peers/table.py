"""Print the ``peers`` section of benchmarks/results.json as the Markdown table of
benchmarks/peers/README.md and docs/benchmarks.md: ``python benchmarks/peers/table.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import results  # noqa: E402  pylint: disable=wrong-import-position

ROWS = [
    ("switchover: longest gap between two acknowledged commits", "switchover", "longest_gap_s", "s"),
    ("switchover: command wall time", "switchover", "command_s", "s"),
    ("switchover: acknowledged commits lost", "switchover", "lost_commits", ""),
    ("kill (PostgreSQL + agent SIGKILLed) → first acknowledged commit", "kill_postgres_and_agent", "first_write_s", "s"),
    ("kill: acknowledged commits lost", "kill_postgres_and_agent", "lost_commits", ""),
    ("kill: rejoin (agent started again) → healthy pair", "kill_postgres_and_agent", "rejoin_to_healthy_s", "s"),
    ("pg-kill (PostgreSQL only) → first acknowledged commit", "kill_postgres_only", "first_write_s", "s"),
    ("pg-kill → healthy pair", "kill_postgres_only", "kill_to_healthy_s", "s"),
    ("pg-kill: acknowledged commits lost", "kill_postgres_only", "lost_commits", ""),
]
ORDER = ("hamn", "patroni", "pg_auto_failover", "patroni_tuned")
TITLES = {"hamn": "hamn", "patroni": "Patroni 4.1.5 (defaults)", "pg_auto_failover": "pg_auto_failover 2.0 (defaults)",
          "patroni_tuned": "Patroni, tuned (ttl 20, loop_wait 1, retry_timeout 3)"}


def cell(spread, unit):
    if not spread or spread.get("median") is None:
        return "—"
    if unit:
        return f"**{spread['median']:.2f} {unit}** ({spread['min']:.2f}–{spread['max']:.2f})"
    return f"{spread['median']:g} ({spread['min']:g}–{spread['max']:g})"


def table(section):
    systems = section.get("systems", {})
    names = [n for n in ORDER if n in systems] + [n for n in systems if n not in ORDER]
    lines = ["| what | " + " | ".join(TITLES.get(n, n) for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, scenario, key, unit in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(systems[n][scenario][key], unit) for n in names) + " |")
    lines.append("| pg-kill: what the tool did | " + " | ".join(
        ", ".join(f"{o} ×{c}" for o, c in systems[n]["kill_postgres_only"]["outcome"].items()) for n in names) + " |")
    lines.append("| acknowledged commits (whole run of the system) | " + " | ".join(
        str(systems[n].get("acknowledged_commits")) for n in names) + " |")
    runs = sorted({systems[n]["runs"] for n in names})
    out = "\n".join(lines)
    out += (f"\n\nMedian **(min–max)** of {'/'.join(map(str, runs))} runs per scenario; measured "
            f"{section.get('measured_at')} on {section.get('machine', {}).get('cpus')} CPUs, "
            f"{section.get('machine', {}).get('os')}.")
    ratios = section.get("ratios_to_hamn")
    if ratios:
        keys = ("switchover_longest_gap", "switchover_command", "kill_first_write", "pg_kill_first_write")
        out += "\n\nRatios to hamn (median over hamn's median, same run):\n\n"
        out += "| system | " + " | ".join(k.replace("_", " ") for k in keys) + " |\n"
        out += "|---|" + "---|" * len(keys) + "\n"
        for name in names:
            if name in ratios:
                out += f"| {TITLES.get(name, name)} | " + " | ".join(
                    f"{ratios[name][k]:g}×" if ratios[name].get(k) is not None else "—" for k in keys) + " |\n"
    return out


if __name__ == "__main__":
    print(table(results.load().get("peers", {})))
