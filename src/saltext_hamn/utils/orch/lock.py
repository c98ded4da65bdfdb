"""One hamn orchestration at a time: a lock file on the master, owned by its run.

Check-and-take is one step across processes: every change of the lock file (and the
read that decides it) happens under an exclusive ``flock`` on ``<path>.guard``. The
guard is a separate file that is never removed or replaced, because a flock belongs
to an inode: locking the lock file itself would not survive its replacement or
removal (a waiter would wake up holding a lock on a file nobody else sees). The lock
file is written to a temp file in the same directory and renamed over, so a reader
without the guard (``read``, ``holder_state``) sees the old record or the new one,
never half of one.

A run is its process: (pid, start time of that pid, host). Pids are recycled; the
start time (field 22 of /proc/PID/stat) tells a new process with an old pid apart.

A holder is *provably dead* when it is on this host and its pid is gone, is a zombie,
or now belongs to a process with another start time. Only such a lock is taken over.
A live holder is never timed out, however old, and a holder on another host cannot be
checked from here: both are refused, naming the running orchestration. A lock file
that cannot be parsed is refused too: a human decides.
"""

import contextlib
import fcntl
import json
import os
import secrets
import socket
import tempfile
import time

from saltext_hamn.utils.errors import HamnError

RECORD_FIELDS = {"name": str, "token": str, "pid": int, "pid_start": int, "host": str, "started": (int, float)}
DEAD_STATES = ("Z", "X")  # zombie, dead: exited, only the process table entry is left


class LockHeld(HamnError):
    """Another orchestration holds the lock, or its lock file cannot be trusted."""


class LockCorrupt(LockHeld):
    """The lock file exists but holds no valid record."""

    def __init__(self, path, problem):
        super().__init__(
            f"hamn lock file {path} is unreadable ({problem}); if no hamn orchestration is "
            "running, inspect it and remove it by hand"
        )


def owner(pid=None):
    """``(pid, pid_start)`` of process ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    stat = _process_stat(pid)
    if stat is None:
        raise HamnError(f"no process with pid {pid}")
    return pid, stat[1]


def read(path):
    """The holder record, or None when there is no lock or its file is unreadable."""
    try:
        return _load(path)
    except LockCorrupt:
        return None


def holder_state(path):
    """For status displays: ``{"record", "alive", "dead_reason"}``.

    ``alive`` is None when there is no record or it cannot be checked (another host);
    an unreadable lock file gives ``record`` None with the problem in ``dead_reason``.
    """
    try:
        record = _load(path)
    except LockCorrupt as exc:
        return {"record": None, "alive": None, "dead_reason": str(exc)}
    if record is None:
        return {"record": None, "alive": None, "dead_reason": None}
    alive, reason = _judge(record)
    return {"record": record, "alive": alive, "dead_reason": reason}


def acquire(path, name, *, pid=None):
    """Take the lock for orchestration ``name`` on behalf of process ``pid`` (default: this one).

    Returns ``{"holder": record, "took_over": previous record or None, "reentrant": bool}``.
    Re-entrant for the process that holds it (whatever ``name``); takes over the lock of
    a provably dead holder; raises LockHeld otherwise.
    """
    pid, pid_start = owner(pid)
    with _guarded(path):
        current = _load(path)
        if current and _is_run(current, pid, pid_start):
            return {"holder": current, "took_over": None, "reentrant": True}
        if current and _judge(current)[0] is not False:
            raise LockHeld(_held_message(current, name))
        holder = _new_record(name, pid, pid_start)
        _write(path, holder)
    return {"holder": holder, "took_over": current, "reentrant": False}


def release(path, *, pid=None):
    """Remove the lock if process ``pid`` (default: this one) holds it; True when removed."""
    pid = os.getpid() if pid is None else pid
    stat = _process_stat(pid)
    if stat is None:
        return False  # a process that is gone cannot prove it is the holder
    return _remove_if(path, lambda record: _is_run(record, pid, stat[1]))


def release_token(path, token):
    """Remove the lock if its run token is ``token`` (a run resumed by another process)."""
    return _remove_if(path, lambda record: bool(token) and record["token"] == token)


def _new_record(name, pid, pid_start):
    return {
        "name": name,
        "token": secrets.token_hex(16),
        "pid": pid,
        "pid_start": pid_start,
        "host": socket.gethostname(),
        "started": time.time(),
    }


def _is_run(record, pid, pid_start):
    return (record["pid"], record["pid_start"], record["host"]) == (pid, pid_start, socket.gethostname())


def _judge(record):
    """``(alive, dead_reason)`` of the holder: True/None, False/why, or None/why for another host."""
    if record["host"] != socket.gethostname():
        return None, f"on another host ({record['host']})"
    pid = record["pid"]
    stat = _process_stat(pid)
    if stat is None:
        return False, f"pid {pid} gone"
    state, start = stat
    if state in DEAD_STATES:
        return False, f"pid {pid} is a zombie"
    if start != record["pid_start"]:
        return False, f"pid {pid} recycled"
    return True, None


def _process_stat(pid):
    """``(state letter, start time)`` of ``pid``; None when there is no such process."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as handle:
            # The command name (field 2) may hold spaces and ")": split after its last ")".
            # There, field 3 (state) is item 0, so field 22 (start time) is item 19.
            after_name = handle.read().rsplit(")", 1)[1].split()
        return after_name[0], int(after_name[19])
    except (OSError, IndexError, ValueError):
        return None


def _held_message(record, wanted):
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started"]))
    where = "" if record["host"] == socket.gethostname() else f" on {record['host']}"
    return (
        f"another hamn orchestration is running: {record['name']} (run {record['token'][:8]}, "
        f"pid {record['pid']}{where}, since {since}); refusing to start {wanted}"
    )


def _remove_if(path, is_ours):
    if not os.path.exists(path):
        return False  # nothing to release: do not create the directory or guard for it
    with _guarded(path):
        try:
            current = _load(path)
        except LockCorrupt:
            return False
        if current is None or not is_ours(current):
            return False
        os.unlink(path)
        return True


@contextlib.contextmanager
def _guarded(path):
    """Hold the exclusive flock on ``<path>.guard`` (creating it and the directory)."""
    os.makedirs(_directory(path), mode=0o700, exist_ok=True)
    guard = os.open(f"{path}.guard", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield
    finally:
        os.close(guard)  # closing the descriptor drops the flock


def _load(path):
    """The validated record; None when there is no lock file; LockCorrupt when unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockCorrupt(path, exc.strerror) from exc
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise LockCorrupt(path, f"not JSON: {exc}") from exc
    problem = _record_problem(record)
    if problem:
        raise LockCorrupt(path, problem)
    return record


def _record_problem(record):
    if not isinstance(record, dict):
        return "not a holder record"
    for field, kind in RECORD_FIELDS.items():
        value = record.get(field)
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"no valid {field!r}"
    return None


def _write(path, record):
    """Replace the lock file with ``record`` in one rename (mkstemp creates it 0600)."""
    handle, tmp = tempfile.mkstemp(dir=_directory(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(record, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _directory(path):
    return os.path.dirname(os.path.abspath(path))
