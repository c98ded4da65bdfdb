"""What every peer's lab shares: namespaces of hamn's lab shape, daemons run as
``postgres`` inside them, the kills, the client, and the teardown.

The network is hamn's own (``saltext_hamn.lab.network.build`` with a prefix of
our own): ``<prefix>-w`` holds the bridge ``br0`` (198.51.100.1/24),
``<prefix>-mn1`` / ``<prefix>-mn2`` a veth ``eth0`` at .11 / .12. Nothing is added
to the root namespace. Data under ``/var/tmp/hamn-peers/<prefix>``.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psycopg2

from saltext_hamn.lab import netns, network
from saltext_hamn.lab.spec import NODE_ADDRESSES, WITNESS_ADDRESS, LabSpec
from saltext_hamn.utils import proc

BASE_DIR = "/var/tmp/hamn-peers"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 5432
REPO = Path(__file__).resolve().parents[2]
PEERS_VENV = Path(os.environ.get("HAMN_PEERS_VENV", REPO / ".venv-peers"))

# The client: its own role and database on every system, password auth from the witness.
CLIENT_USER = "bench"
CLIENT_DB = "bench"


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class PeerLab:
    """Namespaces, directories and daemons of one peer's lab (prefix ``patr`` or ``paf``)."""

    def __init__(self, prefix):
        self.spec = LabSpec(prefix=prefix, base_dir=BASE_DIR)
        self.dir = self.spec.lab_dir
        self.daemons = {}  # name -> Popen
        pw = pwd.getpwnam("postgres")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        # Fresh per lab; only in files readable by root and postgres.
        self.client_password = os.urandom(12).hex()

    # -- names -----------------------------------------------------------------------
    nodes = ("mn1", "mn2")

    def ns(self, node):
        return self.spec.witness_ns if node == "w" else self.spec.node_ns(node)

    @staticmethod
    def address(node):
        return WITNESS_ADDRESS if node == "w" else NODE_ADDRESSES[node]

    def other(self, node):
        return "mn2" if node == "mn1" else "mn1"

    # -- build / tear down -------------------------------------------------------------
    def build(self):
        self.teardown(quiet=True)
        network.build(self.spec)
        self.dir.mkdir(parents=True, exist_ok=True)
        Path(BASE_DIR).chmod(0o755)
        self.dir.chmod(0o755)

    def mkdir(self, *parts, mode=0o700):
        path = self.dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    def write(self, path, text, mode=0o600):
        path = Path(path)
        path.write_text(text, encoding="utf-8")
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    def log_tails(self, lines=15):
        """The last lines of every daemon log of this lab (shown when something failed)."""
        out = []
        for log in sorted(self.dir.glob("*.log")):
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            out.append(f"--- {log}\n" + "\n".join(text))
        return "\n".join(out)

    def teardown(self, quiet=False):
        """Kill everything in this lab's namespaces, delete them and the lab directory."""
        for name in self.spec.namespaces:
            if name in netns.existing():
                kill_pids(netns.pids(name))
        for popen in self.daemons.values():
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.daemons.clear()
        network.destroy(self.spec)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.rmdir(BASE_DIR)  # only when no other lab of ours is left in it
        except OSError:
            pass
        if not quiet:
            say(f"{self.spec.prefix}: namespaces, processes and {self.dir} removed")

    # -- processes ---------------------------------------------------------------------
    def env(self, **extra):
        env = {"PATH": f"{PEERS_VENV}/bin:{PG_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": "/var/lib/postgresql",
               "USER": "postgres", "LOGNAME": "postgres", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def argv(self, node, argv):
        """``argv`` inside ``node``'s namespace as the postgres OS user, in one process
        (``ip netns exec`` and ``setpriv`` both exec: the daemon keeps the pid we see)."""
        return ["ip", "netns", "exec", self.ns(node), "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "--", *[str(a) for a in argv]]

    def start(self, name, node, argv, env=None, cwd=None):
        log = open(self.dir / f"{name}.log", "ab")  # pylint: disable=consider-using-with
        popen = subprocess.Popen(self.argv(node, argv), stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env or self.env(), cwd=cwd or self.dir,
                                 start_new_session=True)
        log.close()
        self.daemons[name] = popen
        return popen

    def run(self, node, argv, env=None, timeout=120, check=True, cwd=None):
        result = subprocess.run(self.argv(node, argv), capture_output=True, text=True, env=env or self.env(),
                                cwd=cwd or self.dir, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv[:4]))} on {node} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def kill(self, node, names):
        """SIGKILL the processes of ``node``'s namespace whose command name is in
        ``names`` (``/proc/PID/comm``: ``postgres`` for the postmaster and all its
        backends); returns the moment the last signal went out (monotonic)."""
        pids = [pid for pid in netns.pids(self.ns(node)) if comm(pid) in names]
        kill_pids(pids, wait=False)
        return time.monotonic(), pids

    # -- clients -----------------------------------------------------------------------
    def connect(self, dsn, timeout=5, **kwargs):
        """psycopg2 connection opened from the witness namespace."""
        with netns.entered(self.spec.witness_ns):
            conn = psycopg2.connect(dsn, connect_timeout=timeout, **kwargs)
        conn.autocommit = True
        return conn

    def http_json(self, url, method="GET", timeout=5):
        """An HTTP request from the witness namespace (Patroni's REST API)."""
        with netns.entered(self.spec.witness_ns):
            req = urllib.request.Request(url, method=method)
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # nosec: lab address only
                return json.loads(resp.read().decode() or "null")


class Peer:
    """What the benchmark asks of a system; Patroni and pg_auto_failover run in a PeerLab."""

    name = "?"
    lab = None
    kill_names = ("postgres",)  # plus the agent's command name

    nodes = PeerLab.nodes
    other = PeerLab.other
    address = staticmethod(PeerLab.address)

    def client(self):
        return MultiHostClient(self.lab, self.lab.client_password)

    def kill(self, node, agent):
        """SIGKILL PostgreSQL (and the agent when ``agent``) on ``node``: (moment, pids)."""
        return self.lab.kill(node, self.kill_names if agent else ("postgres",))

    def log_tails(self):
        return self.lab.log_tails()

    def where(self):
        return f"{self.lab.dir}, namespaces {', '.join(self.lab.spec.namespaces)}"

    def teardown(self):
        self.lab.teardown()


class MultiHostClient:
    """What ``VipWriter`` needs of a lab (``client_connect``), for a system without a
    VIP: libpq's multi-host string with ``target_session_attrs=read-write`` over both
    node addresses, as Patroni and pg_auto_failover document for clients."""

    def __init__(self, lab, password):
        self.lab = lab
        hosts = ",".join(NODE_ADDRESSES[n] for n in lab.nodes)
        self.dsn = (f"host={hosts} port={PG_PORT},{PG_PORT} dbname={CLIENT_DB} user={CLIENT_USER} "
                    f"target_session_attrs=read-write")
        self.password = password

    def client_connect(self, host=None, dbname=None):  # pylint: disable=unused-argument
        # connect_timeout=1: libpq applies it per host, then tries the next one.
        return self.lab.connect(self.dsn, timeout=1, password=self.password)


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def kill_pids(pids, wait=True, timeout=15):
    me = os.getpid()
    pids = [p for p in pids if p != me]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while wait and any(proc.alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for(what, check, timeout, interval=0.2):
    """Poll ``check()`` until it returns a true value; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # pylint: disable=broad-except
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout} s" + (f" (last error: {last})" if last else ""))


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout
    except OSError:
        return None
    return out.strip().splitlines()[0] if out.strip() else None
