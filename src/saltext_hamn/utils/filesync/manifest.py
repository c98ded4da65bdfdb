"""Scan a node's listed trees into manifest entries; compare a manifest with a node.

An entry describes one path, never following a symlink (``lstat`` everywhere)::

    {"path": "/root/.ssh/id_rsa", "type": "file", "mode": 384, "uid": 0, "gid": 0,
     "owner": "root", "group": "root", "mtime_ns": 1700000000123456789,
     "size": 411, "sha256": "..."}

``type`` is ``file``, ``dir`` or ``symlink`` (with ``target``). Sockets, FIFOs and
device nodes are skipped (reported, never synced).
"""

import grp
import hashlib
import os
import pwd
import stat
import time

from saltext_hamn.utils.filesync import paths

FORMAT = 1
TYPES = ("file", "dir", "symlink")
_CHUNK = 1024 * 1024


class Scan:
    """What a node holds under its listed trees."""

    def __init__(self):
        self.entries = {}  # logical path -> entry
        self.excluded = set()  # excluded paths seen (they are never touched)
        self.skipped = []  # (path, why): special files, unreadable entries
        self.parents = {}  # ancestors of the tree roots -> metadata (for creating them)
        self.tops = {}  # pattern -> tree roots it matched

    def holds_excluded(self, path):
        """An excluded path lies below directory ``path``."""
        prefix = path + "/"
        return any(p.startswith(prefix) for p in self.excluded)


def _names(uid, gid):
    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = None
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = None
    return owner, group


def meta(st):
    owner, group = _names(st.st_uid, st.st_gid)
    return {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "owner": owner, "group": group, "mtime_ns": st.st_mtime_ns}


def sha256_file(phys):
    """(sha256, fstat) of a regular file, opened without following a symlink."""
    fd = os.open(phys, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{phys}: not a regular file")
        digest = hashlib.sha256()
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            digest.update(chunk)
        return digest.hexdigest(), st
    finally:
        os.close(fd)


def _entry(path, phys, st, hash_files):
    if stat.S_ISLNK(st.st_mode):
        entry = {"path": path, "type": "symlink", **meta(st), "target": os.readlink(phys)}
        entry["mode"] = 0o777  # meaningless on Linux; fixed so it never differs
        return entry
    if stat.S_ISDIR(st.st_mode):
        return {"path": path, "type": "dir", **meta(st)}
    if stat.S_ISREG(st.st_mode):
        sha = None
        if hash_files:
            sha, st = sha256_file(phys)  # metadata of the very content hashed
        return {"path": path, "type": "file", **meta(st), "size": st.st_size, "sha256": sha}
    return None


def scan(patterns, root_dir, excluder, hash_files=True):
    """Walk the trees matched by ``patterns`` under ``root_dir`` (no symlink is followed)."""
    result = Scan()
    for pattern in patterns:
        tops = paths.expand(pattern, root_dir)
        result.tops[pattern] = tops
        for top in tops:
            for ancestor in paths.ancestors(top):
                if ancestor not in result.parents:
                    try:
                        result.parents[ancestor] = meta(os.stat(paths.physical(root_dir, ancestor)))
                    except OSError:
                        pass
            _walk(result, top, root_dir, excluder, hash_files)
    return result


def _walk(result, path, root_dir, excluder, hash_files):
    if path in result.entries or path in result.excluded:
        return
    if excluder(path):
        result.excluded.add(path)
        return
    phys = paths.physical(root_dir, path)
    try:
        st = os.lstat(phys)
        entry = _entry(path, phys, st, hash_files)
    except FileNotFoundError:
        return  # vanished while scanning
    except OSError as exc:
        result.skipped.append((path, f"unreadable: {exc.strerror or exc}"))
        return
    if entry is None:
        result.skipped.append((path, "not a regular file, directory or symlink"))
        return
    result.entries[path] = entry
    if entry["type"] == "dir":
        try:
            names = sorted(os.listdir(phys))
        except OSError as exc:
            result.skipped.append((path, f"unreadable directory: {exc.strerror or exc}"))
            return
        for name in names:
            _walk(result, f"{path.rstrip('/')}/{name}", root_dir, excluder, hash_files)


def build(scan_result, *, source, timeline, patterns, excludes):
    """The manifest a primary pushes."""
    return {
        "format": FORMAT,
        "source": source,
        "role": "primary",
        "timeline": timeline,
        "generated": time.time(),
        "roots": list(patterns),
        "excludes": list(excludes),
        "parents": dict(sorted(scan_result.parents.items())),
        "entries": [scan_result.entries[p] for p in sorted(scan_result.entries, key=paths.components)],
    }


# --------------------------------------------------------------------------- comparing

_COMPARED = {
    "file": ("sha256", "mode", "uid", "gid", "mtime_ns"),
    "dir": ("mode", "uid", "gid"),  # a directory's mtime moves whenever an entry does
    "symlink": ("target", "uid", "gid"),
}


def wanted_ids(entry):
    """uid/gid on this node: by owner/group name when it exists here, else numeric (like rsync)."""
    uid, gid = entry["uid"], entry["gid"]
    if entry.get("owner"):
        try:
            uid = pwd.getpwnam(entry["owner"]).pw_uid
        except KeyError:
            pass
    if entry.get("group"):
        try:
            gid = grp.getgrnam(entry["group"]).gr_gid
        except KeyError:
            pass
    return uid, gid


def differences(want, have, *, local_ids=True, sha_of=None):
    """What differs between a wanted entry and a held one (empty list: identical).

    ``local_ids`` maps owner/group names to this node's ids (the standby);
    ``sha_of(path)`` hashes a held file whose sha256 was not computed in the scan.
    """
    if have is None:
        return ["missing"]
    if want["type"] != have["type"]:
        return [f"type {have['type']} -> {want['type']}"]
    uid, gid = wanted_ids(want) if local_ids else (want["uid"], want["gid"])
    target = dict(want, uid=uid, gid=gid)
    out = []
    for key in _COMPARED[want["type"]]:
        mine = have.get(key)
        if key == "sha256":
            if want.get("size") != have.get("size"):
                out.append("content")
                continue
            if mine is None and sha_of is not None:
                mine = have["sha256"] = sha_of(have["path"])
        if mine != target.get(key):
            out.append(_describe(key, mine, target.get(key)))
    return out


def _describe(key, old, new):
    if key == "sha256":
        return "content"
    if key == "mode":
        return f"mode {old:04o} -> {new:04o}" if isinstance(old, int) and isinstance(new, int) else "mode"
    if key == "mtime_ns":
        return "mtime"
    if key in ("uid", "gid"):
        return f"{'owner' if key == 'uid' else 'group'} {old} -> {new}"
    return f"{key} {old!r} -> {new!r}"


def compare_manifests(held, new):
    """Entry-level difference between two manifests' entry lists (what the master holds vs now)."""
    old_by = {e["path"]: e for e in held or []}
    new_by = {e["path"]: e for e in new}
    added = sorted((p for p in new_by if p not in old_by), key=paths.components)
    removed = sorted((p for p in old_by if p not in new_by), key=paths.components)
    updated = {}
    for path in sorted(set(old_by) & set(new_by), key=paths.components):
        diff = differences(new_by[path], old_by[path], local_ids=False)
        owner_change = [k for k in ("owner", "group") if new_by[path].get(k) != old_by[path].get(k)]
        diff += [f"{k} name" for k in owner_change]
        if diff:
            updated[path] = ", ".join(diff)
    return added, updated, removed
