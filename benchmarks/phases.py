"""Per-phase timings of hamn code without changing it: module functions are wrapped
for the duration of one measured call, and each call's time is recorded (plus
every external command, by name). The benchmarks use it to say where time goes."""

import contextlib
import time

from saltext_hamn.utils import proc
from saltext_hamn.utils.pg import bootstrap, divergence, postmaster, replication, rewind, standby, status


class Recorder:
    def __init__(self):
        self.calls = []  # (label, depth, seconds), in the order they finished
        self.cmds = []  # (command name, seconds)
        self._depth = 0
        self._undo = []

    def wrap(self, owner, name, label=None):
        original = getattr(owner, name)
        label = label or name

        def timed(*args, **kwargs):
            started = time.monotonic()
            self._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                self.calls.append((label, self._depth, time.monotonic() - started))

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def wrap_commands(self):
        original = proc.run

        def timed(argv, **kwargs):
            started = time.monotonic()
            try:
                return original(argv, **kwargs)
            finally:
                name, seconds = kwargs.get("what") or str(argv[0]), time.monotonic() - started
                self.cmds.append((name, seconds))
                if self._depth == 0:  # a command the measured function runs itself
                    self.calls.append((f"command {name}", 0, seconds))

        proc.run = timed
        self._undo.append((proc, "run", original))

    def restore(self):
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)

    @contextlib.contextmanager
    def rewind_path(self):
        """The phases of ``rewind.rewind`` (top level) and of its configure-and-start."""
        self.wrap_commands()
        for owner, name in (
            (standby, "prepare_access"), (standby, "require_peer_primary"), (status, "collect"),
            (postmaster, "has_data"), (rewind, "rewind_capable"), (postmaster, "stop"), (postmaster, "timeline"),
            (divergence, "assess_or_unknown"), (divergence, "keep"), (replication, "ensure_peer_slot"),
            (rewind, "_save_own_files"), (rewind, "_restore_own_files"), (standby, "configure_and_start"),
            (rewind, "_wait_timeline"), (bootstrap, "write_server_files"), (replication, "write_standby_config"),
            (postmaster, "start"), (replication, "wait_streaming"),
        ):
            self.wrap(owner, name, f"{owner.__name__.rsplit('.', 1)[-1]}.{name}")
        try:
            yield self
        finally:
            self.restore()

    def top_level(self, total=None):
        """Seconds per top-level phase (calls made by the measured function itself), summed by name;
        the steps of configure_and_start are listed too, prefixed with '·'."""
        out = {}
        for label, depth, seconds in self.calls:
            if depth == 0:
                out[label] = out.get(label, 0.0) + seconds
        inner = ("bootstrap.write_server_files", "replication.write_standby_config", "postmaster.start",
                 "replication.wait_streaming")
        for label, depth, seconds in self.calls:
            if depth == 1 and label in inner:
                out["· " + label] = out.get("· " + label, 0.0) + seconds
        if total is not None:
            out["(rest: Python, between phases)"] = total - sum(
                seconds for label, depth, seconds in self.calls if depth == 0)
        return out

    def commands(self):
        """Seconds per external command name (pg_rewind, pg_waldump, pg_ctl, ...), summed."""
        out = {}
        for name, seconds in self.cmds:
            out[name] = out.get(name, 0.0) + seconds
        return out
