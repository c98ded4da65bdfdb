"""Carry out a :class:`~saltext_hamn.utils.filesync.plan.Plan` on the standby.

* Regular files: a temp file in the same directory (created 0600, O_EXCL,
  O_NOFOLLOW), content, fchown, fchmod, mtime, fsync, rename over the old name,
  fsync of the directory. Readers see the old or the new file, never a mix, and a
  private key is never readable by others in between.
* Symlinks: a temp link + rename; the link is created as it was, never followed.
* Directories: created 0700, then owner and mode; existing ones get owner/mode.
* Metadata-only updates go through a descriptor opened with O_NOFOLLOW.
* Nothing is written through a symlink inside a listed tree: before each write
  the parents from the tree root down are checked with lstat.
* Removed paths, and whatever a type change replaces, are moved (never deleted)
  into ``<backup_dir>/<timestamp>/<path>``.
"""

import contextlib
import os
import secrets
import shutil
import stat
import time

from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.filesync import manifest, paths


class ApplyError(HamnError):
    pass


class Applier:
    def __init__(self, root_dir, backup_dir, parents=None, stamp=None):
        self.root_dir = root_dir
        self.backup_root = paths.physical(root_dir, paths.normalize(backup_dir))
        self.parents = parents or {}
        self.stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
        self._backup_dir = None
        self.touched_dirs = set()
        self.errors = []  # (path, why)

    def phys(self, path):
        return paths.physical(self.root_dir, path)

    # ---------------------------------------------------------------- safety

    def _check_parents(self, path, top):
        """Every directory from the tree root down to ``path``'s parent is a real directory."""
        probe = path.rsplit("/", 1)[0] or "/"
        chain = []
        while len(probe) >= len(top) and probe != "/":
            chain.append(probe)
            if probe == top:
                break
            probe = probe.rsplit("/", 1)[0] or "/"
        for parent in chain:
            st = os.lstat(self.phys(parent))
            if not stat.S_ISDIR(st.st_mode):
                raise ApplyError(f"{parent} is not a directory (a symlink is never written through)")

    def _ensure_ancestors(self, top):
        """Create missing ancestors of a tree root with the primary's metadata (mkdir -p)."""
        if not os.path.isdir(self.root_dir):
            os.makedirs(self.root_dir, mode=0o755)
        for ancestor in paths.ancestors(top):
            phys = self.phys(ancestor)
            if os.path.isdir(phys):
                continue
            if os.path.lexists(phys):
                raise ApplyError(f"{ancestor} exists and is not a directory")
            info = self.parents.get(ancestor) or {}
            os.mkdir(phys, 0o700)
            uid, gid = manifest.wanted_ids({"uid": 0, "gid": 0, **info}) if info else (0, 0)
            os.chown(phys, uid, gid)
            os.chmod(phys, info.get("mode", 0o755))

    # ---------------------------------------------------------------- backup

    def backup_dir(self):
        if self._backup_dir is None:
            os.makedirs(self.backup_root, mode=0o700, exist_ok=True)
            os.chmod(self.backup_root, 0o700)
            target = os.path.join(self.backup_root, self.stamp)
            suffix = 1
            while os.path.lexists(target):
                target = os.path.join(self.backup_root, f"{self.stamp}-{suffix}")
                suffix += 1
            os.mkdir(target, 0o700)
            self._backup_dir = target
        return self._backup_dir

    def move_aside(self, path):
        """Move ``path`` (file, link or whole directory) into this run's backup dir."""
        dest = os.path.join(self.backup_dir(), path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        try:
            os.rename(self.phys(path), dest)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: backup dir on another file system
                raise
            shutil.move(self.phys(path), dest, copy_function=shutil.copy2)
        return dest

    # ---------------------------------------------------------------- writes

    def _tmp_name(self, phys):
        return os.path.join(os.path.dirname(phys), f"{paths.TEMP_PREFIX}{secrets.token_hex(6)}.tmp")

    @contextlib.contextmanager
    def _replacing(self, phys):
        """Yield a temp name next to ``phys``; rename it over ``phys`` when the block
        succeeds, remove it when it fails; then fsync the directory."""
        tmp = self._tmp_name(phys)
        try:
            yield tmp
            os.replace(tmp, phys)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        self._fsync_dir(os.path.dirname(phys))

    def write_file(self, entry, data):
        phys = self.phys(entry["path"])
        uid, gid = manifest.wanted_ids(entry)
        with self._replacing(phys) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchown(fd, uid, gid)
                os.fchmod(fd, entry["mode"])  # after chown: chown clears set-id bits
                os.fsync(fd)
                os.utime(fd, ns=(time.time_ns(), entry["mtime_ns"]))
            finally:
                os.close(fd)

    def write_symlink(self, entry):
        phys = self.phys(entry["path"])
        uid, gid = manifest.wanted_ids(entry)
        with self._replacing(phys) as tmp:
            os.symlink(entry["target"], tmp)
            os.lchown(tmp, uid, gid)
            os.utime(tmp, ns=(time.time_ns(), entry["mtime_ns"]), follow_symlinks=False)

    def make_dir(self, entry):
        phys = self.phys(entry["path"])
        uid, gid = manifest.wanted_ids(entry)
        os.mkdir(phys, 0o700)
        os.chown(phys, uid, gid, follow_symlinks=False)
        os.chmod(phys, entry["mode"])
        self.touched_dirs.add(entry["path"])

    def fix_metadata(self, entry):
        """Owner, mode and mtime of an existing file/dir/link, without following links."""
        phys = self.phys(entry["path"])
        uid, gid = manifest.wanted_ids(entry)
        if entry["type"] == "symlink":
            os.lchown(phys, uid, gid)
            os.utime(phys, ns=(time.time_ns(), entry["mtime_ns"]), follow_symlinks=False)
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if entry["type"] == "dir" else 0)
        fd = os.open(phys, flags)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, entry["mode"])
            if entry["type"] == "file":
                os.utime(fd, ns=(os.fstat(fd).st_atime_ns, entry["mtime_ns"]))
        finally:
            os.close(fd)
        if entry["type"] == "dir":
            self.touched_dirs.add(entry["path"])

    @staticmethod
    def _fsync_dir(phys_dir):
        fd = os.open(phys_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---------------------------------------------------------------- the plan

    def run(self, plan, roots, content_of):
        """Apply ``plan``; returns (added, updated, removed) lists of what was done.

        ``content_of(sha256)`` returns a file's bytes. A failing entry is recorded in
        ``errors`` and the rest goes on (each write is atomic on its own).
        """
        done_add, done_update, done_remove = [], {}, []
        removed_tops = []
        for entry in plan.remove:  # parents before children: a moved dir takes its subtree
            path = entry["path"]
            if any(path.startswith(top + "/") for top in removed_tops):
                done_remove.append(path)
                continue
            try:
                top = paths.tree_root(path, roots)
                self._check_parents(path, top)
                if entry["type"] == "dir" and not os.path.islink(self.phys(path)):
                    removed_tops.append(path)
                self.move_aside(path)
                self.touched_dirs.add(path.rsplit("/", 1)[0])
                done_remove.append(path)
            except OSError as exc:
                self.errors.append((path, f"could not move it to the backup dir: {exc}"))
        work = [(e, None, ["missing"]) for e in plan.add] + list(plan.update)
        work.sort(key=lambda item: paths.components(item[0]["path"]))
        for entry, have, diff in work:
            path = entry["path"]
            try:
                self._one(entry, have, diff, roots, content_of)
            except (OSError, ApplyError) as exc:
                self.errors.append((path, str(exc)))
                continue
            if have is None:
                done_add.append(path)
            else:
                done_update[path] = ", ".join(diff)
            self.touched_dirs.add(path.rsplit("/", 1)[0])
        return done_add, done_update, done_remove

    def _one(self, entry, have, diff, roots, content_of):
        path = entry["path"]
        top = paths.tree_root(path, roots)
        if path == top:
            self._ensure_ancestors(top)
        self._check_parents(path, top)
        phys = self.phys(path)
        # What is there now (the scan may be stale): lstat, never follow.
        try:
            st = os.lstat(phys)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "other"
        except FileNotFoundError:
            kind = None
        if kind == "dir" and entry["type"] != "dir":
            self.move_aside(path)  # a directory cannot be renamed over: keep it in the backup
            kind = None
        elif kind is not None and kind != "dir" and entry["type"] == "dir":
            self.move_aside(path)
            kind = None
        if entry["type"] == "dir":
            if kind is None:
                self.make_dir(entry)
            else:
                self.fix_metadata(entry)
        elif entry["type"] == "symlink":
            if kind == "symlink" and os.readlink(phys) == entry["target"]:
                self.fix_metadata(entry)
            else:
                self.write_symlink(entry)
        else:
            if have is not None and have["type"] == "file" and diff and "content" not in diff \
                    and not any(d.startswith("type") for d in diff):
                self.fix_metadata(entry)
            else:
                self.write_file(entry, content_of(entry["sha256"]))

    def restore_dir_times(self, entries):
        """Directories this run changed get the primary's mtime back (deepest first)."""
        by_path = {e["path"]: e for e in entries if e["type"] == "dir"}
        for path in sorted(self.touched_dirs, key=lambda p: -len(paths.components(p))):
            entry = by_path.get(path)
            if entry is None:
                continue
            try:
                fd = os.open(self.phys(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.utime(fd, ns=(os.fstat(fd).st_atime_ns, entry["mtime_ns"]))
            finally:
                os.close(fd)
