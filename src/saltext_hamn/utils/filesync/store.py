"""The master side of the ``salt`` transport: what a node pushed, handed to its peer.

A primary pushes (``cp.push``) into the master's cache::

    <cachedir>/minions/<id>/files/hamn-files/manifest.json
    <cachedir>/minions/<id>/files/hamn-files/objects/<sha256>    one per distinct content

Objects are named by their content hash, so a half-received or stale upload can
never pass for the current one: every object is hashed again here and only a
match is handed out. The manifest is pushed last.

:func:`pillar_for` builds the ``hamn_files`` pillar of a minion:

* ``own``: what the master holds of *this* node's pushes (its manifest and the
  verified objects): a primary compares with it to push only what changed;
* ``manifest`` / ``contents``: the peer's manifest and the verified content of its
  regular files (base64 by sha256): a standby applies them. Pillar data is
  encrypted for each minion, so a key only ever travels to the node it is for.
"""

import base64
import hashlib
import json
import logging
import os
import re
import stat
import time

from salt.exceptions import SaltInvocationError

from saltext_hamn.utils import config
from saltext_hamn.utils.filesync import transport

log = logging.getLogger(__name__)

_SHA = re.compile(r"[0-9a-f]{64}")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # content handed out in one pillar
GC_AGE = 3600  # unreferenced objects older than this are removed
_MAX_MANIFEST = 64 * 1024 * 1024
_verified = {}  # object path -> (ino, size, mtime_ns, ok): hash each upload once


def upload_dir(cachedir, minion_id):
    if not isinstance(minion_id, str) or not minion_id or "/" in minion_id or minion_id in (".", "..") \
            or "\x00" in minion_id:
        raise ValueError(f"not a usable minion id: {minion_id!r}")
    return os.path.join(cachedir, "minions", minion_id, "files", transport.UPLOAD_DIR)


def _read_nofollow(path, limit):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        if st.st_size > limit:
            raise OSError(f"{path}: {st.st_size} bytes, more than {limit}")
        chunks = []
        while True:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def read_manifest(directory, minion_id):
    """(manifest, error) of what ``minion_id`` pushed; (None, None) when nothing was."""
    path = os.path.join(directory, transport.MANIFEST_NAME)
    try:
        data, _ = _read_nofollow(path, _MAX_MANIFEST)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{minion_id}: unreadable manifest: {exc}"
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError:
        return None, f"{minion_id}: manifest is not complete JSON (an upload in progress?)"
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("entries"), list):
        return None, f"{minion_id}: manifest has an unknown format"
    if doc.get("source") != minion_id:
        return None, f"{minion_id}: manifest names {doc.get('source')!r} as its source"
    return doc, None


def object_ok(directory, sha):
    """The object exists and its content hashes to its name."""
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        return False
    path = os.path.join(directory, "objects", sha)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _verified.get(path)
    if cached and cached[0] == key:
        return cached[1]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    digest = hashlib.sha256()
    try:
        while True:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            digest.update(chunk)
    finally:
        os.close(fd)
    ok = digest.hexdigest() == sha
    _verified[path] = (key, ok)
    return ok


def read_object(directory, sha):
    data, _ = _read_nofollow(os.path.join(directory, "objects", sha), 1 << 40)
    if hashlib.sha256(data).hexdigest() != sha:
        raise OSError(f"object {sha[:12]} changed while reading")
    return data


def _file_shas(doc):
    return sorted({e.get("sha256") for e in doc.get("entries", [])
                   if isinstance(e, dict) and e.get("type") == "file" and isinstance(e.get("sha256"), str)})


def collect_garbage(directory, doc, now=None):
    """Remove objects no longer referenced by the current manifest (older than GC_AGE)."""
    objects = os.path.join(directory, "objects")
    if doc is None or not os.path.isdir(objects):
        return []
    keep = set(_file_shas(doc))
    now = now or time.time()
    removed = []
    for name in os.listdir(objects):
        path = os.path.join(objects, name)
        try:
            if name not in keep and now - os.lstat(path).st_mtime > GC_AGE:
                os.unlink(path)
                _verified.pop(path, None)
                removed.append(name)
        except OSError:
            continue
    return removed


def _tighten(cachedir, minion_id, create=True):
    """cp.push writes with the master's umask (0644 files in 0755 dirs): create the
    node's upload dirs 0700 before its first push and keep them so."""
    hamn_dir = upload_dir(cachedir, minion_id)
    for path in (os.path.dirname(hamn_dir), hamn_dir):
        try:
            if create and not os.path.lexists(path):
                os.makedirs(path, mode=0o700, exist_ok=True)
            if os.path.isdir(path) and not os.path.islink(path) and stat.S_IMODE(os.lstat(path).st_mode) & 0o077:
                os.chmod(path, 0o700)
        except OSError as exc:
            log.warning("hamn_files: cannot make %s private: %s", path, exc)


def _timeline(doc):
    value = (doc or {}).get("timeline")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def pillar_for(minion_id, pillar, cachedir, max_bytes=DEFAULT_MAX_BYTES):
    """The ``hamn_files`` pillar of ``minion_id`` ({} when it is not a hamn node)."""
    raw = (pillar or {}).get("hamn")
    if raw is None:
        return {}
    try:
        cfg = config.load(raw)
        if minion_id not in cfg["nodes"]:
            return {}
        peer = config.peer_of(cfg, minion_id)
    except SaltInvocationError as exc:
        log.error("hamn_files: no file sync pillar for %s: invalid hamn pillar: %s", minion_id, exc)
        return {}
    out = {"node": minion_id, "source": peer, "transport": cfg["files"]["transport"],
           "own": {"manifest": None, "objects": []}, "manifest": None, "contents": {},
           "missing": [], "errors": []}
    if cfg["files"]["transport"] != "salt":
        return {"hamn_files": out}
    try:
        mine, peers = upload_dir(cachedir, minion_id), upload_dir(cachedir, peer)
    except ValueError as exc:
        out["errors"].append(str(exc))
        return {"hamn_files": out}
    _tighten(cachedir, minion_id)  # this node exists (it asks): ready for its first push
    _tighten(cachedir, peer, create=False)

    own, error = read_manifest(mine, minion_id)
    if error:
        out["errors"].append(error)
    if own is not None:
        out["own"] = {"manifest": own, "objects": [s for s in _file_shas(own) if object_ok(mine, s)]}
        collect_garbage(mine, own)

    theirs, error = read_manifest(peers, peer)
    if error:
        out["errors"].append(error)
    if theirs is None:
        return {"hamn_files": out}
    out["manifest"] = theirs
    if own is not None and _timeline(own) > _timeline(theirs):
        # This node pushed on a later timeline than the peer: the peer's copy is from
        # an older era and must never flow back. Send no content.
        out["errors"].append(f"{peer}'s manifest is from timeline {_timeline(theirs)}, older than "
                             f"this node's own pushes (timeline {_timeline(own)}): not handed out")
        out["stale"] = True
        return {"hamn_files": out}
    total = 0
    for sha in _file_shas(theirs):
        if not object_ok(peers, sha):
            out["missing"].append(sha)
            continue
        try:
            data = read_object(peers, sha)
        except OSError as exc:
            out["errors"].append(str(exc))
            out["missing"].append(sha)
            continue
        total += len(data)
        if total > max_bytes:
            out["contents"] = {}
            out["errors"].append(
                f"{peer}'s files hold more than {max_bytes} bytes, too much for a pillar: "
                "use hamn:files:transport: rsync for large trees (or raise max_bytes of the ext_pillar)")
            out["missing"] = _file_shas(theirs)
            break
        out["contents"][sha] = base64.b64encode(data).decode("ascii")
    return {"hamn_files": out}
