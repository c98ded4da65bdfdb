"""Stand-ins for xCAT's commands and the services' control tool.

xCAT (xcatd, makedns, ...) cannot be installed here. Each node of the lab gets a
``bin/`` directory, first on its salt-minion's PATH, with small scripts of those
names. Every call is appended to ``recorder.log`` (time, command, arguments) so
tests can check which ran and in what order. ``fail/<name>`` holding an exit code
makes that command fail; ``slow/<name>`` holding seconds makes it take that long. ``systemctl`` keeps per-service state in ``services/``.
"""

import os
from pathlib import Path

XCAT_COMMANDS = (
    "makedns", "makedhcp", "makeconservercf", "chdef", "lsdef", "mkdef", "rmdef",
    "rpower", "lsxcatd", "restartxcatd",
)

_COMMON = """#!/bin/sh
# hamn-lab recorder standing in for '{name}' (xCAT is not installed in the lab).
dir='{node_dir}'
name=$(basename "$0")
printf '%s\\t%s\\t%s\\n' "$(date +%s.%N)" "$name" "$*" >> "$dir/recorder.log"
if [ -f "$dir/slow/$name" ]; then
    sleep "$(cat "$dir/slow/$name")"
fi
if [ -f "$dir/fail/$name" ]; then
    echo "$name: simulated failure (lab)" >&2
    exit "$(cat "$dir/fail/$name" 2>/dev/null || echo 1)"
fi
"""

_SYSTEMCTL = """
verb=$1; unit=${{2%.service}}
state="$dir/services/$unit"
case "$verb" in
    start|restart) echo active > "$state" ;;
    stop) echo inactive > "$state" ;;
    is-active) [ "$(cat "$state" 2>/dev/null)" = active ] && {{ echo active; exit 0; }}; echo inactive; exit 3 ;;
esac
exit 0
"""


_LSXCATD = """
case "$1" in -v|-a) echo "Version 2.16.5 (hamn-lab recorder, not xCAT)" ;; esac
exit 0
"""
_EXTRA = {"systemctl": _SYSTEMCTL.format(), "lsxcatd": _LSXCATD}


def install(node_dir):
    """Write the recorder scripts for one node; returns the bin directory."""
    node_dir = Path(node_dir)
    bin_dir = node_dir / "bin"
    for sub in (bin_dir, node_dir / "fail", node_dir / "slow", node_dir / "services"):
        sub.mkdir(parents=True, exist_ok=True)
    for name in (*XCAT_COMMANDS, "systemctl"):
        body = _COMMON.format(name=name, node_dir=node_dir)
        body += _EXTRA.get(name, "exit 0\n")
        path = bin_dir / name
        path.write_text(body, encoding="utf-8")
        os.chmod(path, 0o755)
    (node_dir / "recorder.log").touch()
    return bin_dir


def set_delay(node_dir, name, seconds):
    """Make ``name`` take ``seconds`` on that node (None: as fast as it is)."""
    path = Path(node_dir) / "slow" / name
    if seconds is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(seconds), encoding="utf-8")


def calls(node_dir):
    """[(command, args)] recorded on one node, oldest first."""
    path = Path(node_dir) / "recorder.log"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        _, name, args = line.split("\t", 2)
        rows.append((name, args))
    return rows


def set_failure(node_dir, name, code=1):
    path = Path(node_dir) / "fail" / name
    if code is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(str(code), encoding="utf-8")
