"""Run records and the master's record of the pair, kept in the master's cache dir.

* ``runs/<token>.json``: one orchestration run: its plan, each step's state as it
  happens, and its result. A run whose record has no result and whose process is
  gone is *unfinished*: the next run resumes it (``decide.resume``).
* ``record.json``: who the master made primary last, and the nodes it deposed
  while they could not be told (fenced): their first contact demotes them.

Writes are atomic (temp file + rename) so a master killed mid-write leaves the old
or the new content, never half of it.
"""

import os
import time

from saltext_hamn.utils.orch import history
from saltext_hamn.utils.orch.observation import UnfinishedRun

KEEP_RUNS = 30


_read = history.read_json
_write = history.write_json


def runs_dir(directory):
    return os.path.join(directory, "runs")


def run_path(directory, token):
    return os.path.join(runs_dir(directory), f"{token}.json")


def start(directory, token, name, plan, pid=None):
    run = {"token": token, "name": name, "pid": pid or os.getpid(), "started": time.time(), "plan": plan,
           "steps": {}, "order": [], "result": None, "fenced": [], "promoted": False, "handover_lsn": None}
    _write(run_path(directory, token), run)
    _prune(directory)
    return run


def load(directory, token):
    return _read(run_path(directory, token))


def save(directory, run):
    _write(run_path(directory, run["token"]), run)


def step_started(directory, run, step):
    run["steps"][step] = {"state": "started", "at": time.time()}
    if step not in run["order"]:
        run["order"].append(step)
    save(directory, run)


def step_ended(directory, run, step, state, comment="", details=None, **facts):
    """``facts`` are the run's (later steps read them), ``details`` this step's own."""
    entry = run["steps"].setdefault(step, {"at": time.time()})
    entry.update(state=state, comment=comment, seconds=round(time.time() - entry["at"], 3))
    entry.update(details or {})
    run.update(facts)
    save(directory, run)


def finish(directory, run, result, summary=""):
    run.update(result=result, summary=summary, finished=time.time())
    save(directory, run)


def last_step(run):
    return run["order"][-1] if run.get("order") else None


def _all(directory):
    try:
        names = [n for n in os.listdir(runs_dir(directory)) if n.endswith(".json")]
    except OSError:
        return []
    found = [_read(os.path.join(runs_dir(directory), n)) for n in names]
    return sorted((r for r in found if isinstance(r, dict)), key=lambda r: r.get("started", 0))


def unfinished(directory, live_token=None):
    """The newest run, when it has no result and is not the live lock holder's run.

    Only the newest run can be unfinished: a run that starts after it either
    resumed it or found it finished.
    """
    run = newest(directory)
    if not run or run.get("result") is not None or run["token"] == live_token:
        return None
    plan = run.get("plan") or {}
    return UnfinishedRun(name=plan.get("orchestration") or run["name"], token=run["token"],
                         old=plan.get("old"), new=plan.get("new"),
                         last_step=last_step(run), promoted=bool(run.get("promoted")),
                         fenced=list(run.get("fenced") or []), handover_lsn=run.get("handover_lsn"))


def supersede(directory, token, by):
    """Mark an unfinished run as taken over by a resuming run ``by``."""
    run = load(directory, token)
    if run and run.get("result") is None:
        finish(directory, run, "resumed", f"resumed by run {by[:8]}")


def newest(directory):
    runs = _all(directory)
    return runs[-1] if runs else None


def _prune(directory):
    for run in _all(directory)[:-KEEP_RUNS]:
        try:
            os.unlink(run_path(directory, run["token"]))
        except OSError:
            pass


# --------------------------------------------------------------------------- the master's record


def record_path(directory):
    return os.path.join(directory, "record.json")


def record(directory):
    return _read(record_path(directory), {}) or {}


def promoted(directory, new, old, token, fenced):
    """``new`` became primary; ``old`` is deposed when it could not be demoted itself."""
    rec = record(directory)
    deposed = rec.get("deposed") or {}
    deposed.pop(new, None)
    if fenced:
        deposed[old] = {"at": time.time(), "run": token, "by": new}
    rec.update(primary=new, since=time.time(), run=token, deposed=deposed)
    _write(record_path(directory), rec)
    return rec


def rejoined(directory, node):
    """``node`` streams from the primary now: no longer deposed."""
    rec = record(directory)
    if node in (rec.get("deposed") or {}):
        rec["deposed"].pop(node)
        _write(record_path(directory), rec)
    return rec


def observed_primary(directory, node):
    """Set the record's primary from a verified observation (setup, first use)."""
    rec = record(directory)
    if rec.get("primary") != node:
        rec.update(primary=node, since=time.time())
        _write(record_path(directory), rec)
    return rec
