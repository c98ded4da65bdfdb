"""One hamn orchestration at a time: a lock file on the master.

The holder is recorded (orchestration name, pid, start time). A lock whose process
is gone, or older than its ttl, is stale and is taken over with a note: a crashed
run never blocks the next one forever.
"""

import json
import os
import time

from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError


class LockHeld(HamnError):
    """Another orchestration holds the lock."""


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def acquire(path, name, ttl, pid=None, now=None):
    """Take the lock for orchestration ``name``; returns {"holder", "took_over"}."""
    pid = pid or os.getpid()
    now = now or time.time()
    holder = {"name": name, "pid": pid, "started": now}
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    current = read(path)
    if current and current.get("pid") == pid and current.get("name") == name:
        return {"holder": current, "took_over": None}  # re-entrant within one run
    if current and proc.alive(current.get("pid", -1)) and now - current.get("started", 0) < ttl:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(current.get("started", 0)))
        raise LockHeld(
            f"another hamn orchestration is running: {current.get('name')} (pid {current.get('pid')}, "
            f"since {since}); refusing to start {name}"
        )
    tmp = f"{path}.{pid}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(holder, handle)
    os.replace(tmp, path)
    if read(path) != holder:  # lost a race with another starter
        raise LockHeld(f"another hamn orchestration took the lock first: {read(path)}")
    return {"holder": holder, "took_over": current}


def release(path, name):
    """Drop the lock if ``name`` holds it; True when released."""
    current = read(path)
    if not current or current.get("name") != name:
        return False
    os.unlink(path)
    return True
