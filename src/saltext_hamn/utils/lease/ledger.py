"""The watchdog's persisted state: ``state_dir/lease-ledger.json``.

Times are ``CLOCK_BOOTTIME`` seconds (monotonic, counts suspend, shared by every
process of this boot), stored with the boot id: after a reboot the old times mean
nothing, so a ledger of another boot is void.  Writes go through a temp file and a
rename (mode 0600); read-modify-write happens under an exclusive flock on a
separate, never-renamed lock file, so the watchdog's threads and the takeover
(``hold_peer``) serialize.  No fsync: a power loss changes the boot id anyway.
"""

import contextlib
import copy
import fcntl
import json
import os
import tempfile
import time

LEDGER = "lease-ledger.json"
LOCK = "lease-ledger.lock"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def now():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id():
    with open(BOOT_ID_FILE, encoding="ascii") as handle:
        return handle.read().strip()


def empty(boot):
    """The state of a watchdog that has never been armed: nothing enforced."""
    return {
        "boot_id": boot,
        "enforcing": False,  # set only by the master's renewals
        "expiry": None,  # boottime until which this node may write
        "renewals": {},  # sender -> boottime of its last renewal (t_c)
        "peer_renew_sent": None,  # boottime of this node's last t_r for renewing its peer
        "hold_peer": False,  # the takeover holds: do not renew the peer
        "hold_since": None,
        "fenced": False,
        "fenced_at": None,
        "fence_reason": None,
        # Replication modes (utils/lease/sync.py): the master allowed async; every commit
        # this primary acknowledged is on the standby.
        "sync_released": False,
        "sync_loss_free": False,
    }


def ensure_dir(state_dir):
    os.makedirs(state_dir, mode=0o700, exist_ok=True)


class Ledger:
    def __init__(self, state_dir, read_boot_id=boot_id):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LEDGER)
        self.read_boot_id = read_boot_id

    @contextlib.contextmanager
    def _locked(self, kind):
        ensure_dir(self.state_dir)
        fd = os.open(os.path.join(self.state_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, kind)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _load(self):
        """The ledger of this boot, or an empty one (missing, unreadable or another boot)."""
        boot = self.read_boot_id()
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return empty(boot)
        if not isinstance(data, dict) or data.get("boot_id") != boot:
            return empty(boot)
        return {**empty(boot), **data}

    def _store(self, data):
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".lease-ledger-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self):
        with self._locked(fcntl.LOCK_SH):
            return self._load()

    @contextlib.contextmanager
    def update(self):
        """Yield the ledger for changes; written back (atomically) when changed.

        An exception inside the block leaves the file untouched.
        """
        with self._locked(fcntl.LOCK_EX):
            data = self._load()
            before = copy.deepcopy(data)
            yield data
            if data != before or not os.path.exists(self.path):
                self._store(data)


def hold_peer(state_dir, clock=now, read_boot_id=boot_id):
    """Stop this node's watchdog from renewing its peer; seconds since it last did (None: never).

    Taken under the ledger's lock, which the renewer also holds while it notes its
    ``t_r``: once this returns, no renewal of the peer can start, and every one
    already started is counted in the age returned.
    """
    with Ledger(state_dir, read_boot_id).update() as data:
        if not data["hold_peer"]:
            data["hold_peer"], data["hold_since"] = True, clock()
        sent = data["peer_renew_sent"]
        return None if sent is None else max(0.0, clock() - sent)


def release_peer(state_dir, read_boot_id=boot_id):
    """Let this node's watchdog renew its peer again."""
    with Ledger(state_dir, read_boot_id).update() as data:
        data["hold_peer"], data["hold_since"] = False, None
