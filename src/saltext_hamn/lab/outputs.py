"""Where the drill's report goes: a directory with the log, the report (JSON and
Markdown) and the timeline picture (when matplotlib is there)."""

import json
import time
from pathlib import Path

from saltext_hamn.lab import report as drill_report, timeline
from saltext_hamn.utils.errors import HamnError


def default_dir(spec):
    """A timestamped directory beside the lab (the lab's own directory goes with ``down``)."""
    return Path(spec.base_dir) / f"drill-{spec.prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def save(log, out_dir, say):
    """Write drill-log.json, report.json, report.md and timeline.png into ``out_dir``; returns the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drill-log.json").write_text(json.dumps(log), encoding="utf-8")
    files = {"dir": str(out), "log": str(out / "drill-log.json"), "json": str(out / "report.json"),
             "markdown": str(out / "report.md"), "png": None}
    # hamn's own reports of the diverged history it kept: the lab's copy went with down.
    for kept in log.get("kept") or []:
        path = out / f"diverged-{kept['node']}-{Path(kept['dir']).name}.json"
        path.write_text(json.dumps(kept["report"], indent=2), encoding="utf-8")
        files.setdefault("diverged_reports", []).append(str(path))
    report = drill_report.build({**log, "files": files})
    if timeline.available():
        try:
            report["files"]["png"] = timeline.draw(report, str(out / "timeline.png"))
        except (HamnError, ValueError, OSError) as exc:  # the tables still count without the picture
            report["files"]["png_missing"] = f"drawing failed: {exc}"
    else:
        report["files"]["png_missing"] = timeline.INSTALL_HINT
        say(f"no timeline picture: {timeline.INSTALL_HINT}")
    report["error"] = log.get("error")
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(drill_report.markdown(report), encoding="utf-8")
    return report
