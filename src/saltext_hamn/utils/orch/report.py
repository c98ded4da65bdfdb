"""``salt-run hamn.status``: both nodes side by side, the alarms, the run."""

ROWS = (
    ("role", lambda s: s.get("role")),
    ("postgres running", lambda s: s.get("running")),
    ("timeline", lambda s: s.get("timeline")),
    ("current LSN", lambda s: s.get("current_lsn")),
    ("received LSN", lambda s: s.get("received_lsn")),
    ("replayed LSN", lambda s: s.get("replayed_lsn")),
    ("lag bytes", lambda s: s.get("lag_bytes")),
    ("lag seconds", lambda s: s.get("lag_seconds")),
    ("wal receiver", lambda s: (s.get("wal_receiver") or {}).get("status")),
    ("streaming to", lambda s: ", ".join(x["name"] for x in s.get("standbys", [])) or None),
    ("reaches peer PG", lambda s: (s.get("peer_postgres") or {}).get("reachable")),
    ("VIP", lambda s: "held" if s.get("vip") else "-"),
    ("services", lambda s: " ".join(f"{k}:{v}" for k, v in (s.get("services") or {}).items()) or None),
    ("maintenance", lambda s: s.get("maintenance")),
)


def _column(view):
    if view.status is not None:
        port = {True: "open", False: "closed", None: "-"}[view.pg_port_open]
        cells = ["-" if get(view.status) in (None, "") else str(get(view.status)) for _, get in ROWS]
        return [view.name, *cells, port]
    what = "(error)" if view.error is not None else "(unreachable)"
    port = {True: "open", False: "closed", None: "-"}[view.pg_port_open]
    return [view.name, what] + [""] * (len(ROWS) - 1) + [port]


def automation_lines(auto):
    """The automation's state (armed/paused/cooldown), last decision, heartbeat age and lease per node."""
    if not auto:
        return []
    lines = [f"automation: {auto['state']}"]
    decision = auto.get("decision")
    if decision:
        lines.append(f"last decision: {decision.get('code')}: {decision.get('reason')}")
    for node, facts in sorted((auto.get("nodes") or {}).items()):
        age = facts.get("heartbeat_age")
        shown = "never" if age is None else f"{age:.1f} s ago"
        loss = {True: "; loss-free", False: "; NOT loss-free"}.get(facts.get("loss_free"), "")
        lines.append(f"{node}: heartbeat {shown}; lease {facts.get('lease')}{loss}")
    if auto.get("rejoin_failed"):
        lines.append(f"automatic rejoin failed: {auto['rejoin_failed'].get('error')} "
                     "(fix it, then salt-run hamn.resume)")
    return lines


def table(obs, alarms=(), run_line=None, auto=None):
    """A plain-text table, one column per node, then alarms, the run line and the automation."""
    cols = [_column(obs.node(n)) for n in obs.names]
    labels = [""] + [label for label, _ in ROWS] + ["PG port (master)"]
    widths = [max(len(x) for x in labels)] + [max(len(x) for x in col) for col in cols]
    lines = []
    for i, label in enumerate(labels):
        cells = [label.ljust(widths[0])] + [col[i].ljust(widths[j + 1]) for j, col in enumerate(cols)]
        lines.append("  ".join(cells).rstrip())
    for view in obs.nodes.values():
        if view.error is not None:
            lines.append(f"{view.name}: {view.error}")
    lines.append("")
    if alarms:
        for alarm in alarms:
            lines.append(f"ALARM {alarm['code']}: {alarm['message']} -> {alarm['action']}")
    else:
        lines.append("no alarms")
    if run_line:
        lines.append(run_line)
    lines.extend(automation_lines(auto))
    return "\n".join(lines)
