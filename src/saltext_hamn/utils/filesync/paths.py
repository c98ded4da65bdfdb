"""Path rules shared by both nodes and both transports.

*Logical* paths are what the pillar lists and what a manifest carries
(``/etc/xcat/cert/ca.pem``); the *physical* path on a node is the logical path
under ``hamn:files:root_dir`` (``/`` on real nodes, a per-node directory in the
lab). Globs are matched component by component (``*`` never crosses ``/``) and
also match names starting with a dot, on both nodes alike.
"""

import fnmatch
import os
import re

from saltext_hamn.utils.config import MANDATORY_EXCLUDES

_MAGIC = re.compile(r"[*?[]")
# Where this extension keeps its own files on a node (under root_dir): never synced.
SYNC_DIR = "/var/lib/hamn/sync"
# Temporary names used by the atomic writes; never synced, whatever the lists say.
TEMP_PREFIX = ".hamn-sync."


class BadPath(ValueError):
    """A path from a manifest (or a pillar) that must not be written."""


def normalize(path):
    """A pillar path in canonical form: absolute, single slashes, no trailing slash."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadPath(f"{path!r}: not an absolute path")
    return "/" + "/".join(part for part in path.split("/") if part)


def validate(path):
    """Refuse anything but a canonical absolute path without '..', '.' or control chars."""
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise BadPath(f"{path!r}: not an absolute path below /")
    if any(ord(char) < 32 for char in path):
        raise BadPath(f"{path!r}: control characters in the path")
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise BadPath(f"{path!r}: not a canonical path ('..', '.' or '//' in it)")
    return path


def components(path):
    return [part for part in path.split("/") if part]


def physical(root_dir, path):
    """The node's real path of logical ``path`` under ``root_dir``."""
    root = normalize(root_dir)
    return path if root == "/" else root + path


def has_magic(pattern):
    return bool(_MAGIC.search(pattern))


def match_top(path, pattern):
    """The prefix of ``path`` that matches ``pattern`` (its tree root), or None."""
    want, have = components(pattern), components(path)
    if len(have) < len(want):
        return None
    if all(fnmatch.fnmatchcase(h, w) for h, w in zip(have, want)):
        return "/" + "/".join(have[: len(want)])
    return None


def tree_root(path, patterns):
    """The tree root of ``path`` under the first pattern it falls in, or None."""
    for pattern in patterns:
        top = match_top(path, pattern)
        if top is not None:
            return top
    return None


def expand(pattern, root_dir):
    """Logical paths that exist on this node (lexists) and match ``pattern``.

    Literal components are joined, glob components are matched against the
    directory listing (hidden names included); a final symlink counts as itself.
    """
    found = ["/"]
    parts = components(pattern)
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        nxt = []
        for base in found:
            prefix = base.rstrip("/")
            if has_magic(part):
                try:
                    names = sorted(os.listdir(physical(root_dir, base)))
                except OSError:
                    continue
                nxt += [f"{prefix}/{name}" for name in names if fnmatch.fnmatchcase(name, part)]
            else:
                nxt.append(f"{prefix}/{part}")
        found = [p for p in nxt if (os.path.lexists if last else os.path.isdir)(physical(root_dir, p))]
    return sorted(set(found)) if parts else []


class Excluder:
    """Decides what is never synced (and never touched on the standby).

    A pattern excludes a path when it matches its basename or the whole logical
    path (fnmatch); the mandatory excludes (authorized_keys, authorized_keys2,
    known_hosts), the extension's own state dir, the backup dir and leftover temp
    files are always excluded.
    """

    def __init__(self, patterns=(), prefixes=()):
        self.patterns = list(dict.fromkeys([*patterns, *MANDATORY_EXCLUDES]))
        self.prefixes = [normalize(p) for p in (SYNC_DIR, *prefixes)]

    def __call__(self, path):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(TEMP_PREFIX):
            return True
        if any(path == p or path.startswith(p + "/") for p in self.prefixes):
            return True
        return any(fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(path, pat) for pat in self.patterns)

    def within(self, path, top):
        """``path`` or one of its ancestors down to (and including) ``top`` is excluded."""
        probe = path
        while True:
            if self(probe):
                return True
            if probe == top or len(probe) <= len(top):
                return False
            probe = probe.rsplit("/", 1)[0] or "/"

    def union(self, other_patterns):
        """A copy that also excludes ``other_patterns`` (the primary's own list)."""
        copy = Excluder(self.patterns + [p for p in other_patterns or [] if isinstance(p, str)])
        copy.prefixes = list(self.prefixes)
        return copy


def configured_roots(files_cfg):
    """The listed patterns of ``hamn:files`` (paths + extra_paths), canonical, in order."""
    return list(dict.fromkeys(normalize(p) for p in [*files_cfg["paths"], *files_cfg["extra_paths"]]))


def excluder_for(files_cfg):
    return Excluder(files_cfg["excludes"], prefixes=[files_cfg["backup_dir"]])


def ancestors(path):
    """Ancestors of a logical path, from the top down, without / and the path itself."""
    parts = components(path)
    return ["/" + "/".join(parts[:n]) for n in range(1, len(parts))]
