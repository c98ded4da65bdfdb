"""The drill's figures, from what it recorded: plain data in, plain data out.

``build(log)`` turns the drill's log (the writer's acknowledged commits and failed
attempts, the master's run records, the drill's own events and phases, the lag
samples, the ids read back) into the report: one JSON-able dict. ``table`` and
``markdown`` render it. Times are wall-clock (time.time()), shown as seconds since
the drill started.
"""

import re

# A step whose end is worth a marker on the timeline. Steps are read generically
# from the run records: a step missing here still appears in the table.
STEP_MARKERS = {
    "setup-vip-up": "VIP up",
    "vip-up": "VIP moved",
    "promote": "promoted",
    "take": "promoted + VIP moved",  # a failover orchestration: both in one call
    "takeover": "promoted + VIP moved",  # the automatic failover does both in one step
    "switch": "promoted + VIP moved",  # the switchover's handoff, node to node
    "settle": "rejoined",  # the old primary streams from the new one
    "rejoin-old": "rejoined",
}
# Steps that rebuild the old primary as a standby: their comment names the path taken.
REJOIN_STEPS = ("settle", "rejoin-old")
REJOIN_PATHS = (  # (what the comment says, how the report calls it), first match wins
    ("pg_rewind", "pg_rewind"),
    ("pg_basebackup", "fresh base backup (pg_basebackup)"),
    ("restart as standby", "plain restart as standby"),
    ("already streaming", "already a streaming standby (nothing to do)"),
)
# A gap between two acknowledged commits this long, without a failed attempt, is a
# stall (a commit that hung) rather than normal pacing.
STALL_SECONDS = 1.0


# --------------------------------------------------------------------------- writes


def write_outages(acks, failures, started, stopped, stall=STALL_SECONDS):
    """Intervals without acknowledged writes: "failed" when attempts failed inside,
    "stalled" when none failed but no commit came back for ``stall`` seconds.

    An interval runs from the last acknowledged commit before it (or the writer's
    start) to the first one after it (or the writer's stop: then it is ``open``).
    """
    times = sorted(t for _, t in acks)
    fails = sorted(failures)
    edges = [started, *times, stopped]
    outages, f = [], 0
    for i, (a, b) in enumerate(zip(edges, edges[1:])):
        first_failure, count = None, 0
        while f < len(fails) and fails[f] <= b:
            if fails[f] > a or i == 0:
                first_failure = first_failure if first_failure is not None else fails[f]
                count += 1
            f += 1
        if count or b - a >= stall:
            outages.append({"kind": "failed" if count else "stalled", "start": a, "end": b,
                            "seconds": round(b - a, 3), "failed_attempts": count,
                            "first_failure": first_failure, "open": i == len(edges) - 2})
    return outages


def ok_bands(outages, started, stopped):
    """The complement of ``outages`` within the writer's run: [(start, end)] with writes going."""
    bands, cursor = [], started
    for out in sorted(outages, key=lambda o: o["start"]):
        if out["start"] > cursor:
            bands.append((cursor, out["start"]))
        cursor = max(cursor, out["end"])
    if stopped > cursor:
        bands.append((cursor, stopped))
    return bands


def lost_commits(acks, found):
    """Acknowledged commits not read back: [(id, acknowledged at)] in id order."""
    present = set(found)
    return sorted((i, t) for i, t in acks if i not in present)


# --------------------------------------------------------------------------- run records


def run_steps(run):
    """A run record's steps in the order they started: [(name, entry)]."""
    steps = run.get("steps") or {}
    order = [s for s in run.get("order") or [] if s in steps]
    order += [s for s in steps if s not in order]
    return sorted(((s, steps[s]) for s in order), key=lambda item: item[1].get("at") or 0)


def rejoin_path(comment):
    for needle, name in REJOIN_PATHS:
        if needle in (comment or ""):
            return name
    return "unknown"


def diverged_from(comment):
    """What a rejoin step's comment says about diverged commits kept aside, or None."""
    parts = [p.strip() for p in (comment or "").split(";")[1:]]
    said = next((p for p in parts if "diverged" in p or "divergence" in p), None)
    if said is None:
        return None
    kept = re.search(r"kept (\d+) diverged commit", said)
    return {"commits": int(kept.group(1)) if kept else None, "said": said}


# --------------------------------------------------------------------------- the report


def phase_of(phases, start, end=None):
    """The phase an interval overlaps most; an instant (``end`` None) belongs to the
    last phase started at or before it (the time between two phases counts to the first)."""
    if end is None:
        started = [p for p in phases if p["start"] <= start]
        return max(started, key=lambda p: p["start"])["name"] if started else None
    best, best_overlap = None, 0.0
    for phase in phases:
        overlap = min(end, phase["end"]) - max(start, phase["start"])
        if overlap > best_overlap:
            best, best_overlap = phase["name"], overlap
    return best if best is not None else phase_of(phases, start)


def build(log):
    """The report from the drill's ``log`` (see ``scenario.Drill.log``)."""
    t0 = log["started"]
    phases = log.get("phases") or []

    def rel(t):
        return None if t is None else round(t - t0, 3)

    writer = log["writer"]
    outages = write_outages(writer["acks"], writer["failures"], writer["started"], writer["stopped"])
    for out in outages:
        out.update(phase=phase_of(phases, out["start"], out["end"]), t_start=rel(out["start"]),
                   t_end=rel(out["end"]))
    lost = lost_commits(writer["acks"], log.get("found") or [])
    lost_by_phase = {}
    for _, at in lost:
        name = phase_of(phases, at) or "unknown"
        lost_by_phase[name] = lost_by_phase.get(name, 0) + 1

    runs, steps, markers, rejoins, diverged = [], [], [], [], []
    for run in sorted(log.get("runs") or [], key=lambda r: r.get("started") or 0):
        name, token = run.get("name"), (run.get("token") or "")[:8]
        runs.append({"name": name, "run": token, "result": run.get("result"), "summary": run.get("summary"),
                     "started": run.get("started"), "finished": run.get("finished"),
                     "t_start": rel(run.get("started")),
                     "seconds": round(run["finished"] - run["started"], 3) if run.get("finished") else None})
        for step, entry in run_steps(run):
            at, seconds = entry.get("at"), entry.get("seconds")
            steps.append({"run": name, "token": token, "step": step, "state": entry.get("state"),
                          "at": at, "t_start": rel(at), "seconds": seconds, "comment": entry.get("comment", "")})
            if step in STEP_MARKERS and entry.get("state") == "done" and at is not None:
                # A step may say when its moment came (the handoff: when the VIP answered
                # again), which can be well before the step itself returns.
                end = entry.get("moment_at") or at + (seconds or 0)
                markers.append({"label": STEP_MARKERS[step], "at": end, "t": rel(end), "run": name, "step": step})
            if step in REJOIN_STEPS and entry.get("state") == "done":
                comment = entry.get("comment", "")
                rejoins.append({"run": name, "step": step, "path": rejoin_path(comment), "comment": comment})
                said = diverged_from(comment)
                if said:
                    diverged.append({"run": name, **said})
    events = [{**e, "t": rel(e["at"])} for e in log.get("events") or []]
    return {
        "lab": log.get("lab"),
        "postgres": log.get("postgres"),
        "started": t0,
        "finished": log.get("finished"),
        "seconds": round(log["finished"] - t0, 3) if log.get("finished") else None,
        "phases": [{**p, "t_start": rel(p["start"]), "t_end": rel(p["end"])} for p in phases],
        "events": events,
        "runs": runs,
        "steps": steps,
        "markers": sorted(markers + [{"label": e["label"], "at": e["at"], "t": e["t"], "run": None, "step": None}
                                     for e in events if e.get("label")], key=lambda m: m["at"]),
        "writes": {
            "table": writer.get("table"),
            "started": writer["started"], "stopped": writer["stopped"],
            "t_started": rel(writer["started"]), "t_stopped": rel(writer["stopped"]),
            "acknowledged": len(writer["acks"]), "failed_attempts": len(writer["failures"]),
            "read_from": log.get("read_from"),
            "lost": len(lost), "lost_ids": [i for i, _ in lost], "lost_by_phase": lost_by_phase,
            "ok_bands": [[rel(a), rel(b)] for a, b in ok_bands(outages, writer["started"], writer["stopped"])],
        },
        "outages": outages,
        "lag": [{**sample, "t": rel(sample.get("at"))} for sample in log.get("lag") or []],
        "rejoin": rejoins,
        "diverged": diverged,
        "files": dict(log.get("files") or {}),
    }


# --------------------------------------------------------------------------- rendering


def _num(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _short(text, width):
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def sections(report, width=70):
    """[(title, headers, rows)]: the report as tables (``width`` cuts long comments)."""
    steps = []
    for run in report["runs"]:  # its steps, then a total line
        mine = [s for s in report["steps"] if (s["run"], s["token"]) == (run["name"], run["run"])]
        steps += [[s["run"], s["step"], s["state"] or "-", _num(s["t_start"], 1), _num(s["seconds"]),
                   _short(s["comment"], width)]
                  for s in mine if s["state"] != "skipped"]  # skipped ones stay in the JSON
        steps.append([run["name"], "(total)", run["result"] or "-", _num(run["t_start"], 1), _num(run["seconds"]),
                      _short(run["summary"], width)])
    outages = [[str(n), o["phase"] or "-", o["kind"] + (" (until the end)" if o["open"] else ""),
                _num(o["t_start"]), _num(o["t_end"]), _num(o["seconds"]), str(o["failed_attempts"])]
               for n, o in enumerate(report["outages"], 1)]
    w = report["writes"]
    where = f" (read back from {w['read_from']})" if w.get("read_from") else ""
    by_phase = ", ".join(f"{k}: {v}" for k, v in w["lost_by_phase"].items())
    writes = [["acknowledged commits", str(w["acknowledged"])],
              ["failed attempts", str(w["failed_attempts"])],
              ["acknowledged commits lost" + where, str(w["lost"]) + (f" ({by_phase})" if by_phase else "")]]
    lag = [[s.get("before", "-"), f"{s.get('primary')} -> {s.get('standby')}", _num(s.get("t"), 1),
            "-" if s.get("bytes") is None else str(s["bytes"]), _ms(s.get("replay_lag_seconds")),
            s.get("state") or s.get("error") or "-"] for s in report["lag"]]
    rejoin = [[r["run"], r["step"], r["path"], _short(r["comment"], width)] for r in report["rejoin"]]
    diverged = [[d["run"], "-" if d["commits"] is None else str(d["commits"]), _short(d["said"], width)]
                for d in report["diverged"]]
    return [
        ("Steps (from the run records)", ["run", "step", "state", "at s", "seconds", "comment"], steps),
        ("Writes through the VIP", ["what", "count"], writes),
        ("Intervals without acknowledged writes", ["#", "phase", "kind", "from s", "to s", "length s", "failed"],
         outages),
        ("Replication lag before each switch", ["before", "primary -> standby", "at s", "bytes", "replay lag ms",
                                                "state"], lag),
        ("Rejoin path", ["run", "step", "path", "comment"], rejoin),
        ("Diverged commits kept", ["run", "commits", "what hamn reported"],
         diverged or [["-", "0", "none reported"]]),
    ]


def table(report, width=70):
    """The report as plain-text tables."""
    lines = []
    for title, headers, rows in sections(report, width):
        widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
        lines += ["", title]
        for n, row in enumerate([headers, *rows]):
            lines.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if not rows:
            lines.append("  (none)")
    lines.append("")
    lines += _footer(report)
    return "\n".join(lines)


def _footer(report):
    files = report.get("files") or {}
    pg = f" on PostgreSQL {report['postgres']}" if report.get("postgres") else ""
    lines = [f"drill{pg}: {_num(report.get('seconds'), 1)} s, times are seconds since it started"]
    if report.get("error"):
        lines.append(f"drill FAILED: {report['error']} (the figures above cover what ran)")
    for path in files.get("diverged_reports") or []:
        lines.append(f"hamn's report of the diverged commits it kept (copied before the lab went down): {path}")
    if files.get("markdown"):
        lines.append(f"report: {files['markdown']}")
    if files.get("png"):
        lines.append(f"timeline: {files['png']}")
    elif files.get("png_missing"):
        lines.append(f"timeline: not drawn ({files['png_missing']})")
    return lines


def markdown(report):
    """The report as a Markdown document (full comments, the picture linked)."""
    out = [f"# hamn drill, lab `{report.get('lab')}`", ""]
    png = (report.get("files") or {}).get("png")
    if png:
        out += [f"![timeline]({png.rsplit('/', 1)[-1]})", ""]
    for title, headers, rows in sections(report, width=400):
        out += [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
        if not rows:
            out.append("| " + " | ".join(["(none)"] + [""] * (len(headers) - 1)) + " |")
        out.append("")
    out += [line + "  " for line in _footer(report)]
    return "\n".join(out) + "\n"
