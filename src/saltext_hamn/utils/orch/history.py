"""What the master remembers between runs: last statuses seen, orchestration history."""

import json
import os
import time

KEEP = 50


def read_json(path, default=None):
    return _read(path, default)


def write_json(path, data):
    _write(path, data)


def _read(path, default):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def _write(path, data):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def remember_statuses(directory, answers):
    """Keep each node's last answer with its time (a failover reads the dead primary's LSN)."""
    path = os.path.join(directory, "last_status.json")
    known = _read(path, {})
    for node, status in answers.items():
        known[node] = {"seen": time.time(), "status": status}
    _write(path, known)


def last_statuses(directory):
    return _read(os.path.join(directory, "last_status.json"), {})


def load(directory):
    return _read(os.path.join(directory, "history.json"), [])


def append(directory, name, result, summary="", token=None):
    entries = load(directory)
    entry = {"name": name, "result": result, "summary": summary,
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": (token or "")[:8]}
    entries.append(entry)
    _write(os.path.join(directory, "history.json"), entries[-KEEP:])
    return entry
