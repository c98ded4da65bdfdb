"""``hamn-leased --config FILE [--netns NAME]``: the lease watchdog of one node.

FILE is JSON ``{"node": id, "cfg": <validated hamn config>}`` (0600: it holds the
lease key and the replication password, which are never logged).  One instance per
state_dir: an exclusive flock on ``state_dir/lease.pid`` is held for the process's
life.  SIGTERM ends it cleanly and does not fence.
"""

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
import threading

from saltext_hamn.utils.lease import ledger as lease_ledger
from saltext_hamn.utils.lease.observe import PgObserver
from saltext_hamn.utils.lease.server import LeaseServer
from saltext_hamn.utils.lease.watchdog import Watchdog
from saltext_hamn.utils.net.nsenter import setns

PIDFILE = "lease.pid"
LOGFILE = "lease.log"
log = logging.getLogger("hamn-leased")


def take_pid_lock(state_dir, wait=False):
    """The open pid file, exclusively locked; None when another instance holds it
    (``wait``: block until it is gone instead)."""
    fd = os.open(os.path.join(state_dir, PIDFILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def enter_netns(name):
    """Move this (still single-threaded) process into ``name`` unless it is there already."""
    target = f"/run/netns/{name}"
    if os.stat(target).st_ino == os.stat("/proc/self/ns/net").st_ino:
        return
    fd = os.open(target, os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


def setup_logging(state_dir):
    handler = logging.FileHandler(os.path.join(state_dir, LOGFILE), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run(node, cfg, netns=None, stop=None):
    """Serve and tick until ``stop`` is set."""
    stop = stop or threading.Event()
    watchdog = Watchdog(cfg, node, netns=None)  # already inside the namespace
    observer = PgObserver(watchdog.cluster, period=watchdog.tick_period)
    watchdog.observer = observer
    server = LeaseServer(watchdog, watchdog.address, watchdog.port)
    observer.start()
    server.start()
    log.info("hamn-leased %s started (pid %s%s, lease %gs)", node, os.getpid(),
             f", netns {netns}" if netns else "", watchdog.lease)
    try:
        while not stop.is_set():
            try:
                watchdog.tick()
            except Exception:  # pylint: disable=broad-except  # keep guarding; say what broke
                log.exception("tick failed")
            stop.wait(watchdog.tick_period)
    finally:
        server.stop()
        observer.stop()
        log.info("hamn-leased %s stopped", node)


def _load(path):
    with open(path, encoding="utf-8") as handle:
        loaded = json.load(handle)
    return loaded["node"], loaded["cfg"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hamn-leased", description="hamn self-fencing lease watchdog")
    parser.add_argument("--config", required=True, help="JSON file {node, cfg} (mode 0600)")
    parser.add_argument("--netns", help="network namespace to run in (the lab)")
    parser.add_argument("--wait", action="store_true",
                        help="when another instance runs (one the beacon started), wait and take over when it "
                             "ends instead of exiting (for systemd's Restart=always)")
    args = parser.parse_args(argv)
    state_dir = _load(args.config)[1]["heartbeat"]["state_dir"]
    lease_ledger.ensure_dir(state_dir)
    lock = take_pid_lock(state_dir, wait=args.wait)
    if lock is None:
        print(f"hamn-leased: one already runs for {state_dir}", flush=True)
        return 0
    node, cfg = _load(args.config)  # again: it may have changed while this one waited
    if args.netns:
        enter_netns(args.netns)
    setup_logging(state_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        run(node, cfg, args.netns, stop)
    finally:
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
