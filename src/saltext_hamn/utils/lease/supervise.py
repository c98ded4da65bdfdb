"""Keep ``hamn-leased`` running: called every second by the beacon, so cheap when all is well.

The daemon is started detached (its own session, no pipes to the caller) so it
outlives the salt-minion, even a SIGKILLed one.  Whether it runs is read from its
pid lock, not from the process table: no process is spawned when nothing changed.
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.lease import ledger as lease_ledger
from saltext_hamn.utils.lease.daemon import LOGFILE, PIDFILE
from saltext_hamn.utils.lease.watchdog import STATUS

CONFIG = "lease.json"
START_WAIT = 10.0  # seconds for a fresh daemon to take its pid lock (imports take ~0.5 s)
STOP_WAIT = 5.0


def _path(cfg, name):
    return os.path.join(cfg["heartbeat"]["state_dir"], name)


def running_pid(cfg):
    """The pid of the daemon holding the lock, or None when no daemon runs."""
    try:
        fd = os.open(_path(cfg, PIDFILE), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1  # locked, pid not written yet
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _write_config(cfg, me):
    """Write the daemon's config when its content changed (0600); True when written."""
    text = json.dumps({"node": me, "cfg": cfg}, sort_keys=True, indent=1)
    path = _path(cfg, CONFIG)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return True


def command(cfg, netns=None):
    """The daemon's argv (the running interpreter: the console script may not be on PATH)."""
    argv = [sys.executable, "-m", "saltext_hamn.utils.lease.daemon", "--config", _path(cfg, CONFIG)]
    if netns:
        return ["ip", "netns", "exec", netns, *argv, "--netns", netns]
    return argv


def _start(cfg, netns):
    state_dir = cfg["heartbeat"]["state_dir"]
    with open(os.devnull, "rb") as devnull, open(_path(cfg, LOGFILE), "ab") as logfile:
        os.chmod(_path(cfg, LOGFILE), 0o600)
        child = subprocess.Popen(  # pylint: disable=consider-using-with  # detached on purpose
            command(cfg, netns), stdin=devnull, stdout=logfile, stderr=logfile, cwd=state_dir,
            start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        pid = running_pid(cfg)
        if pid and pid > 0:
            return pid
        if child.poll() is not None and running_pid(cfg) is None:
            raise HamnError(f"hamn-leased exited at once (code {child.returncode}); see {_path(cfg, LOGFILE)}")
        time.sleep(0.05)
    raise HamnError(f"hamn-leased did not start within {START_WAIT:g}s; see {_path(cfg, LOGFILE)}")


def ensure(cfg, me, netns=None):
    """Make sure this node's watchdog runs with ``cfg``; ``{running, pid, started, restarted}``."""
    lease_ledger.ensure_dir(cfg["heartbeat"]["state_dir"])
    changed = _write_config(cfg, me)
    pid = running_pid(cfg)
    restarted = False
    if pid is not None and changed:
        stop(cfg)
        pid, restarted = None, True
    started = pid is None
    if started:
        pid = _start(cfg, netns)
    return {"running": True, "pid": pid, "started": started, "restarted": restarted}


def stop(cfg, timeout=STOP_WAIT):
    """SIGTERM the watchdog (which does not fence), SIGKILL after ``timeout``; its pid or None."""
    pid = running_pid(cfg)
    if pid is None or pid <= 0:
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if running_pid(cfg) is None:
                return pid
            time.sleep(0.05)
    raise HamnError(f"hamn-leased (pid {pid}) still holds {_path(cfg, PIDFILE)} after SIGKILL")


def read_status(cfg):
    """The watchdog's last ``lease-status.json`` plus ``age`` (seconds since written); None if absent."""
    path = _path(cfg, STATUS)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        age = time.time() - os.stat(path).st_mtime
    except (OSError, ValueError):
        return None
    data["age"] = round(max(age, 0.0), 3)
    return data
