"""The drill's timeline picture (PNG), drawn from the report with matplotlib.

matplotlib is an optional extra (``pip install saltext-hamn[drill]``): without it
``draw`` raises HamnError saying so, and the drill still prints its tables.

One panel per phase of the drill, each with its own time range (a one-second
write outage stays visible next to a two-minute setup): a "writes" lane (green
while commits are acknowledged, red where attempts failed, orange where a commit
hung), a lane per orchestration run with its steps, and a dashed line per marker
(VIP moved, promoted, rejoined, the kill).
"""

from saltext_hamn.utils.errors import HamnError

INSTALL_HINT = "pip install 'saltext-hamn[drill]' (matplotlib) to get the timeline picture"
COLORS = {"ok": "#2ca02c", "failed": "#d62728", "stalled": "#ff7f0e", "marker": "#444444", "event": "#9467bd"}
STEP_COLORS = ("#9ecae1", "#6baed6")  # alternate, so neighbouring steps stay apart
STEP_FAILED = "#fcae91"


def available():
    try:
        import matplotlib  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return True


def _figure_class():
    try:
        from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise HamnError(f"matplotlib is not installed: {INSTALL_HINT}") from exc
    return Figure  # a bare Figure needs no pyplot and no GUI backend: it saves with Agg


def _panels(report):
    phases = [p for p in report.get("phases") or [] if p.get("t_end") is not None]
    if phases:
        return [(p["name"], p["t_start"], p["t_end"]) for p in phases]
    return [("drill", 0.0, report.get("seconds") or 1.0)]


def _overlaps(a, b, lo, hi):
    return a is not None and b is not None and b >= lo and a <= hi


def draw(report, path):
    """Write the timeline of ``report`` (report.build's dict) to ``path`` (PNG); returns path."""
    Figure = _figure_class()  # pylint: disable=invalid-name
    panels = _panels(report)
    runs = report.get("runs") or []
    lanes_per_panel = []
    for _, lo, hi in panels:
        lanes_per_panel.append([r for r in runs if _overlaps(r["t_start"], (r["t_start"] or 0) + (r["seconds"] or 0),
                                                             lo, hi)])
    heights = [1.2 + 0.45 * len(lanes) for lanes in lanes_per_panel]
    fig = Figure(figsize=(12, sum(heights) + 1.2), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (name, lo, hi), lanes in zip(axes, panels, lanes_per_panel):
        _panel(ax, report, name, lo, hi, lanes)
    axes[-1].set_xlabel("seconds since the drill started")
    fig.legend(handles=_legend(), loc="outside lower center", ncols=5, fontsize=8, frameon=False)
    fig.suptitle(f"hamn drill, lab {report.get('lab')}: writes through the VIP, orchestration steps, markers",
                 fontsize=11)
    fig.savefig(path, format="png", dpi=110)
    return path


def _legend():
    from matplotlib.lines import Line2D  # pylint: disable=import-outside-toplevel
    from matplotlib.patches import Patch  # pylint: disable=import-outside-toplevel

    return [Patch(color=COLORS["ok"], label="writes acknowledged"),
            Patch(color=COLORS["failed"], label="writes failed"),
            Patch(color=COLORS["stalled"], label="a commit hung (no error)"),
            Patch(color=STEP_COLORS[1], label="orchestration step"),
            Line2D([], [], color=COLORS["marker"], linestyle="--", label="marker (step end / drill event)")]


def _panel(ax, report, name, lo, hi, runs):
    pad = max(0.5, 0.03 * (hi - lo))
    lo, hi = lo - pad, hi + pad
    labels = ["writes"] + [f"{r['name']} {r['run']}" for r in runs]
    top = len(labels) - 1  # the writes lane on top, runs below in start order
    w = report["writes"]
    ok = [(a, b - a) for a, b in w["ok_bands"] if _overlaps(a, b, lo, hi)]
    ax.broken_barh(ok, (top - 0.35, 0.7), facecolors=COLORS["ok"])
    for out in report.get("outages") or []:
        if _overlaps(out["t_start"], out["t_end"], lo, hi):
            ax.broken_barh([(out["t_start"], out["t_end"] - out["t_start"])], (top - 0.35, 0.7),
                           facecolors=COLORS[out["kind"]])
    steps = report.get("steps") or []
    for lane, run in enumerate(runs):
        y = top - 1 - lane
        mine = [s for s in steps if (s["run"], s["token"]) == (run["name"], run["run"]) and s["t_start"] is not None]
        for n, step in enumerate(mine):
            width = max(step["seconds"] or 0, 0.02 * (hi - lo) / 10)  # instant steps stay visible as slivers
            color = STEP_FAILED if step["state"] == "failed" else STEP_COLORS[n % 2]
            ax.broken_barh([(step["t_start"], width)], (y - 0.3, 0.6), facecolors=color, edgecolors="white",
                           linewidth=0.5)
            if width > 0.07 * (hi - lo):  # room for its name
                ax.text(step["t_start"] + width / 2, y, step["step"], ha="center", va="center", fontsize=7,
                        clip_on=True)
    shown = [m for m in report.get("markers") or [] if m["t"] is not None and lo <= m["t"] <= hi]
    for n, marker in enumerate(shown):
        color = COLORS["event"] if marker["run"] is None else COLORS["marker"]
        ax.axvline(marker["t"], color=color, linestyle="--", linewidth=1)
        # Staggered labels above the lanes, so markers close in time do not overwrite each other.
        ax.text(marker["t"], len(labels) - 0.45 + 0.35 * (n % 2), f" {marker['label']}", color=color,
                fontsize=7, ha="left", va="bottom", clip_on=False)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.6, len(labels) + 0.3)
    ax.set_yticks(range(len(labels)), labels=list(reversed(labels)), fontsize=8)
    ax.set_title(name, loc="left", fontsize=9, fontweight="bold")
    ax.grid(axis="x", linewidth=0.3)
    if w.get("t_started") is not None and hi < w["t_started"]:
        ax.text(lo + pad, top, " the writer starts after this phase", va="center", fontsize=7, color="#888888")
