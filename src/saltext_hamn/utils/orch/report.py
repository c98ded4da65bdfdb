"""``salt-run hamn.status``: both nodes side by side."""

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
    ("VIP", lambda s: "held" if s.get("vip") else "-"),
    ("services", lambda s: " ".join(f"{k}:{v}" for k, v in (s.get("services") or {}).items()) or None),
    ("maintenance", lambda s: s.get("maintenance")),
)


def table(nodes, answers, history=None):
    """A plain-text table: one column per node, '(unreachable)' where no answer came."""
    cols = []
    for node in nodes:
        status = answers.get(node)
        if isinstance(status, dict):
            cols.append([node] + ["-" if get(status) in (None, "") else str(get(status)) for _, get in ROWS])
        else:
            cols.append([node, "(unreachable)"] + [""] * (len(ROWS) - 1))
    labels = [""] + [label for label, _ in ROWS]
    widths = [max(len(x) for x in labels)] + [max(len(x) for x in col) for col in cols]
    lines = []
    for i, label in enumerate(labels):
        cells = [label.ljust(widths[0])] + [col[i].ljust(widths[j + 1]) for j, col in enumerate(cols)]
        lines.append("  ".join(cells).rstrip())
    last = (history or [None])[-1]
    if last:
        lines.append("")
        lines.append(f"last orchestration: {last.get('name')} {last.get('result')} at {last.get('finished')}"
                     + (f" ({last.get('summary')})" if last.get("summary") else ""))
    return "\n".join(lines)
