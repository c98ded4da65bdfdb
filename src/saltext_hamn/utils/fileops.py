"""Small, careful file operations: atomic writes and move-aside (never delete)."""

import os
import pwd
import tempfile
import time


def write_atomic(path, text, *, owner=None, mode=0o644):
    """Write ``text`` to ``path`` through a temp file + rename; returns True if changed."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                _chown_chmod(path, owner, mode)
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hamn-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        _chown_chmod(tmp, owner, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _chown_chmod(path, owner, mode):
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, mode)


def move_aside(path, stamp=None):
    """Rename ``path`` to ``path.hamn-<timestamp>`` and return the new name.

    Used instead of deleting a data directory: whatever was there stays recoverable.
    """
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    target = f"{path.rstrip('/')}.hamn-{stamp}"
    suffix = 1
    while os.path.exists(target):
        target = f"{path.rstrip('/')}.hamn-{stamp}-{suffix}"
        suffix += 1
    os.rename(path, target)
    return target


def ensure_private_dir(path, owner):
    """``path`` exists as a 0700 directory owned by ``owner``."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    _chown_chmod(path, owner, 0o700)
