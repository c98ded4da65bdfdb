"""Start, stop and inspect the postmaster with pg_ctl / pg_controldata."""

import os
import re
import signal
import time

from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError

PG_CTL_RUNNING = 0
PG_CTL_NO_DATA_DIR = 4
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def has_data(cluster):
    return os.path.isfile(os.path.join(cluster.data_dir, "PG_VERSION"))


def lock_pid(cluster):
    """The pid in postmaster.pid, or None."""
    try:
        with open(os.path.join(cluster.data_dir, "postmaster.pid"), encoding="utf-8") as handle:
            return int(handle.readline().strip())
    except (OSError, ValueError):
        return None


def is_running(cluster):
    result = cluster.run("pg_ctl", "status", "-D", cluster.data_dir, check=False, timeout=30)
    if result.returncode != PG_CTL_RUNNING:
        return False
    # pg_ctl asks kill(pid, 0), which a killed postmaster not yet reaped (a zombie) passes.
    pid = lock_pid(cluster)
    return pid is None or proc.alive(pid)


def _wait_reaped(cluster, timeout):
    """A killed postmaster stays a zombie until its parent reaps it, and PostgreSQL refuses
    to start while the pid in postmaster.pid exists at all: wait for it to go."""
    pid = lock_pid(cluster)
    deadline = time.monotonic() + timeout
    while pid is not None and os.path.exists(f"/proc/{pid}") and not proc.alive(pid):
        if time.monotonic() > deadline:
            raise HamnError(f"the killed postmaster (pid {pid}) is still a zombie after {timeout}s: "
                            "its parent does not reap it")
        time.sleep(0.02)


def start(cluster, timeout=60, wait=True):
    """Start the server and wait until it accepts connections (idempotent).

    ``wait=False`` returns once the postmaster is launched (whoever needs it up
    checks that itself): pg_ctl's own wait polls every 100 ms.
    """
    if is_running(cluster):
        return False
    _wait_reaped(cluster, timeout)
    cluster.run(
        "pg_ctl", "start", "-D", cluster.data_dir, *(("-w", "-t", str(timeout)) if wait else ("-W",)),
        "-l", cluster.server_log, timeout=timeout + 10,
    )
    return True


def stop(cluster, mode="fast", timeout=60):
    """Stop the server cleanly; return the shutdown checkpoint LSN from pg_control.

    A switchover waits until the standby has received this LSN: then nothing the old
    primary acknowledged can be missing on the new one.
    """
    if mode not in STOP_SIGNALS:
        raise HamnError(f"unknown stop mode {mode!r}")
    if is_running(cluster):
        # pg_ctl stop sends the same signal but looks for the end every 100 ms; a
        # switchover's write gap is measured in those.
        pid = lock_pid(cluster)
        try:
            os.kill(pid, STOP_SIGNALS[mode])
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        pidfile = os.path.join(cluster.data_dir, "postmaster.pid")
        while os.path.exists(pidfile) and proc.alive(pid):
            if time.monotonic() > deadline:
                raise HamnError(f"PostgreSQL (pid {pid}) did not stop ({mode}) within {timeout}s")
            time.sleep(0.005)
    return controldata(cluster).get("Latest checkpoint location")


def parse_controldata(text):
    """pg_controldata output as {key: value}."""
    data = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            data[key.strip()] = value.strip()
    return data


def controldata(cluster):
    """pg_controldata of the cluster as a dict (e.g. 'Database cluster state')."""
    # LC_ALL=C: the keys are translated in other locales.
    return parse_controldata(cluster.run("pg_controldata", "-D", cluster.data_dir, timeout=30,
                                         env={"LC_ALL": "C"}).stdout)


def timeline(cluster):
    """Timeline recorded in pg_control (moves only after a checkpoint on a promoted node)."""
    value = controldata(cluster).get("Latest checkpoint's TimeLineID")
    return int(value) if value and re.fullmatch(r"\d+", value) else None


def restart(cluster, timeout=60):
    cluster.run("pg_ctl", "restart", "-D", cluster.data_dir, "-m", "fast", "-w", "-t", str(timeout),
                "-l", cluster.server_log, timeout=timeout + 10)
