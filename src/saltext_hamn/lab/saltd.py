"""Plain salt-master / salt-minion daemons for ``hamn-lab`` (tests use pytest-salt-factories)."""

import os
import signal
import sys
import time
from pathlib import Path

import yaml

from saltext_hamn.lab import netns
from saltext_hamn.lab.spec import WITNESS_ADDRESS
from saltext_hamn.utils import proc

READY_LINE = "Minion is ready to receive requests!"


def salt_bin(name):
    return str(Path(sys.executable).parent / name)


def master_conf_dir(spec):
    return spec.lab_dir / "salt" / "etc-master"


def minion_conf_dir(spec, node):
    return spec.lab_dir / "salt" / f"etc-{node}"


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, default_flow_style=False), encoding="utf-8")


def write_configs(spec, automation=False):
    """The lab's master and minion configs; ``automation`` adds the heartbeat beacon and reactor."""
    salt_dir = spec.lab_dir / "salt"
    reactor = [
        # A node failed over while unreachable is demoted on its first contact.
        {"salt/minion/*/start": [str(spec.states_dir / "hamn" / "reactor" / "first_contact.sls")]},
    ]
    if automation:
        # Automatic failover: every heartbeat goes to the master's rule (docs/auto-failover.md).
        reactor.append({"salt/beacon/*/hamn/": [str(spec.states_dir / "hamn" / "reactor" / "heartbeat.sls")]})
    _write(master_conf_dir(spec) / "master", {
        "id": f"{spec.prefix}-master",
        "root_dir": str(salt_dir / "master"),
        "interface": WITNESS_ADDRESS,
        "user": "root",
        "file_roots": {"base": [str(spec.states_dir)]},
        "pillar_roots": {"base": [str(spec.lab_dir / "pillar")]},
        # hamn.files_synced (salt transport): the primary cp.pushes, the ext_pillar hands out.
        "file_recv": True,
        "ext_pillar": [{"hamn_files": {}}],
        "reactor": reactor,
        # Lab only: the two minions are ours. A real master accepts keys by hand.
        "auto_accept": True,
        "log_level_logfile": "info",
    })
    for node in spec.nodes:
        # The heartbeat beacon; its interval = hamn:heartbeat:interval.
        beacons = {"beacons": {"hamn": [{"interval": 1}]}} if automation else {}
        _write(minion_conf_dir(spec, node) / "minion", {
            **beacons,
            "id": node,
            "master": WITNESS_ADDRESS,
            "root_dir": str(salt_dir / node),
            "user": "root",
            "log_level_logfile": "info",
            "acceptance_wait_time": 1,
            "random_reauth_delay": 0,
        })


def log_path(spec, role):
    """Salt prefixes absolute paths with root_dir, so logs stay at their defaults."""
    name = "master" if role == "master" else "minion"
    return spec.lab_dir / "salt" / role / "var" / "log" / "salt" / name


def minion_env(spec, node):
    bin_dir = spec.node_dir(node) / "bin"
    return {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}


def pidfile(spec, role):
    return spec.lab_dir / "salt" / role / "var" / "run" / f"salt-{'master' if role == 'master' else 'minion'}.pid"


def read_pid(path):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


alive = proc.alive


def start_master(spec):
    if alive(read_pid(pidfile(spec, "master")) or -1):
        return False
    proc.run(["ip", "netns", "exec", spec.witness_ns, salt_bin("salt-master"),
              "-c", str(master_conf_dir(spec)), "-d"], timeout=60)
    if not netns.wait_tcp(spec.witness_ns, WITNESS_ADDRESS, 4506, timeout=60):
        raise RuntimeError("salt-master did not open port 4506 within 60s")
    return True


def start_minion(spec, node):
    if alive(read_pid(pidfile(spec, node)) or -1):
        return False
    proc.run(["ip", "netns", "exec", spec.node_ns(node), salt_bin("salt-minion"),
              "-c", str(minion_conf_dir(spec, node)), "-d"], env=minion_env(spec, node), timeout=60)
    return True


def wait_minion_ready(spec, node, timeout=90):
    log = log_path(spec, node)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and READY_LINE in log.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"minion {node} not ready after {timeout}s (see {log})")


def salt_cmd(spec, *args, runner=False):
    exe = salt_bin("salt-run" if runner else "salt")
    return ["ip", "netns", "exec", spec.witness_ns, exe, "-c", str(master_conf_dir(spec)), *args]


def terminate(pids, timeout=15):
    """SIGTERM, wait, then SIGKILL whatever is left."""
    pids = [p for p in pids if p != os.getpid() and alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return pids
