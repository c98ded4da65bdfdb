"""Start, stop and inspect the postmaster with pg_ctl / pg_controldata."""

import os
import re

from saltext_hamn.utils.errors import HamnError

PG_CTL_RUNNING = 0
PG_CTL_NO_DATA_DIR = 4


def has_data(cluster):
    return os.path.isfile(os.path.join(cluster.data_dir, "PG_VERSION"))


def is_running(cluster):
    result = cluster.run("pg_ctl", "status", "-D", cluster.data_dir, check=False, timeout=30)
    return result.returncode == PG_CTL_RUNNING


def start(cluster, timeout=60):
    """Start the server and wait until it accepts connections (idempotent)."""
    if is_running(cluster):
        return False
    cluster.run(
        "pg_ctl", "start", "-D", cluster.data_dir, "-w", "-t", str(timeout),
        "-l", cluster.server_log, timeout=timeout + 10,
    )
    return True


def stop(cluster, mode="fast", timeout=60):
    """Stop the server cleanly; return the shutdown checkpoint LSN from pg_control.

    A switchover waits until the standby has received this LSN: then nothing the old
    primary acknowledged can be missing on the new one.
    """
    if mode not in ("smart", "fast", "immediate"):
        raise HamnError(f"unknown stop mode {mode!r}")
    if is_running(cluster):
        cluster.run(
            "pg_ctl", "stop", "-D", cluster.data_dir, "-m", mode, "-w", "-t", str(timeout),
            timeout=timeout + 10,
        )
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
