"""Network namespaces for the lab: create, enter, list processes, delete.

Everything is created inside namespaces this module makes; the root namespace gets
nothing (the bridge lives in the witness namespace).
"""

import os
import socket
import time

from saltext_hamn.utils import proc
from saltext_hamn.utils.net.nsenter import entered, setns  # noqa: F401  (re-exported)


def ip(*args, check=True):
    return proc.run(["ip", *args], check=check, timeout=30, what="ip " + " ".join(args[:3]))


def existing():
    out = ip("netns", "list").stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def add(name):
    if name not in existing():
        ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def delete(name):
    if name in existing():
        ip("netns", "del", name)


def pids(name):
    result = ip("netns", "pids", name, check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def link_exists(name, ifname):
    return ip("-n", name, "link", "show", ifname, check=False).returncode == 0


def sysctl(name, key, value):
    proc.run(["ip", "netns", "exec", name, "sysctl", "-qw", f"{key}={value}"], timeout=30)


def enter_for_good(name):
    """Move the calling thread into ``name`` and return an fd to come back with."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)
    return home


def leave(home_fd):
    setns(home_fd)
    os.close(home_fd)


def wait_tcp(name, host, port, timeout=30):
    """Wait until ``host:port`` accepts TCP connections from inside namespace ``name``."""
    deadline = time.monotonic() + timeout
    while True:
        with entered(name):
            sock = socket.socket()
        sock.settimeout(1)
        try:
            sock.connect((host, port))
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        finally:
            sock.close()
