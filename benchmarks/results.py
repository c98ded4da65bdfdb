"""``benchmarks/results.json``: every figure of ``make bench`` / ``make bench-peers``.

One section per benchmark (``switchover``, ``failover``, ``rejoin``, ``filesync``,
``peers``, ...); each run of a benchmark replaces its own section and leaves the
others, so the file always holds the latest run of each, with the machine and
versions it ran on.
"""

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def spread(values, digits=3):
    """Median, min, max and the raw values of one figure over the runs."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "runs": 0, "values": []}
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": len(values),
            "values": [round(v, digits) for v in values]}


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
    except OSError:
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def machine():
    """What the figures were measured on."""
    mem = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            mem = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    distro = None
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            distro = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line).get(
                "PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    try:
        import salt.version  # pylint: disable=import-outside-toplevel
        versions["salt"] = salt.version.__version__
    except ImportError:
        pass
    try:
        import pyroute2  # pylint: disable=import-outside-toplevel
        versions["pyroute2"] = getattr(pyroute2, "__version__", None)
    except ImportError:
        pass
    try:  # the one the lab ran: HAMN_PG (15 unless told), see saltext_hamn/lab/pgbin.py
        from saltext_hamn.lab import pgbin  # pylint: disable=import-outside-toplevel
        versions["postgresql"] = pgbin.choose().describe()
    except Exception:  # pylint: disable=broad-except
        versions["postgresql"] = None
    versions["rsync"] = _first_line(["rsync", "--version"])
    return {"cpus": os.cpu_count(), "memory_gib": mem, "kernel": platform.release(), "os": distro,
            "versions": versions}


def load(path=RESULTS):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def update(section, data, path=RESULTS):
    """Replace ``section`` of results.json with ``data`` (plus when and on what)."""
    results = load(path)
    results[section] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **data}
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return results[section]
