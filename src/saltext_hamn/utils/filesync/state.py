"""The logic of the ``hamn.files_synced`` state (the loader function is a thin wrapper).

The node's *current* role decides what happens, so a failover flips the direction
with no pillar edit:

* primary (``salt`` transport): scan the listed trees, push what the master does
  not hold yet (content objects, then the manifest) with ``cp.push``, re-read the
  master's copy through a fresh pillar and fail if it still differs. Nothing on the
  primary's listed paths is ever written. "Not in recovery" alone is not trusted:
  when ``hamn.status`` says the peer's PostgreSQL port answers, the peer is asked,
  and if it runs as primary too (split brain) nothing is pushed and the state fails.
* standby: make the listed trees match the primary's manifest (``salt``: from the
  ``hamn_files`` pillar; ``rsync``: pulled over ssh), then scan again and fail if
  anything still differs. A manifest from an older timeline than the one this
  standby follows (an old primary's leftovers) is never applied.
* stopped / unknown role, or maintenance: nothing is touched; the comment says why.
"""

import base64
import hashlib
import json
import os
import time

from salt.exceptions import SaltInvocationError

from saltext_hamn.utils import config, proc
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.filesync import apply as fapply
from saltext_hamn.utils.filesync import manifest, paths
from saltext_hamn.utils.filesync import plan as fplan
from saltext_hamn.utils.filesync import transport
from saltext_hamn.utils.pg import cluster as pg_cluster
from saltext_hamn.utils.pg import peer as pg_peer

NO_PILLAR = ("no hamn_files pillar: the master needs 'ext_pillar: [{hamn_files: {}}]' and "
             "'file_recv: True' for the salt transport (docs/file-sync.md)")
LOCAL_MANIFEST = paths.SYNC_DIR + "/manifest.json"
_LIST_MAX = 10


def _plain(value):
    """Pillar values are Salt 3008 MaskedDict/MaskedList: plain copies for returns and JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _short(items):
    items = list(items)
    text = ", ".join(items[:_LIST_MAX])
    return text + (f" (+{len(items) - _LIST_MAX} more)" if len(items) > _LIST_MAX else "")


class _Done(Exception):
    """Early end of the state with a finished return."""


class Run:
    """One state run: config, role, pillar and the return being built."""

    def __init__(self, name, salt, opts, pillar, test):
        self.ret = {"name": name, "result": True, "changes": {}, "comment": ""}
        self.salt, self.opts, self.test = salt, opts, bool(test)
        self.pillar = pillar or {}
        self.notes = []

    def finish(self, comment, result=True, changes=None):
        self.ret["comment"] = " ".join([comment, *self.notes]).strip()
        self.ret["result"] = result
        if changes:
            self.ret["changes"] = changes
        raise _Done()


def files_synced(name, *, salt, opts, pillar, test):
    """Salt state return for ``hamn.files_synced`` (see the module docstring)."""
    run = Run(name, salt, opts, pillar, test)
    try:
        _files_synced(run)
    except _Done:
        pass
    return run.ret


def _files_synced(run):
    try:
        cfg = config.load(_plain(run.pillar.get("hamn")))
    except SaltInvocationError as exc:
        run.finish(f"invalid hamn pillar: {exc}", False)
    me = run.opts["id"]
    if me not in cfg["nodes"]:
        run.finish(f"this minion ({me}) is not one of the hamn nodes ({', '.join(sorted(cfg['nodes']))})", False)
    peer = config.peer_of(cfg, me)
    if cfg["maintenance"]:
        run.finish("maintenance is on (hamn:maintenance): files are neither pushed nor applied")
    try:
        status = run.salt["hamn.status"]()
    except Exception as exc:  # pylint: disable=broad-except
        run.finish(f"cannot tell this node's role, nothing synced: hamn.status failed: {exc}", False)
    role = status.get("role")
    try:
        if role == "primary":
            _refuse_split_brain(run, cfg, me, status)
            if cfg["files"]["transport"] == "rsync":
                run.finish(f"{me} is the primary: with the rsync transport the standby {peer} pulls; "
                           "nothing to do here")
            _primary(run, cfg, me, status)
        elif role == "standby":
            if cfg["files"]["transport"] == "rsync":
                _standby_rsync(run, cfg, me, peer)
            _standby_salt(run, cfg, me, peer, status)
        run.finish(f"{me} is neither primary nor standby (role {role!r}): files are neither pushed "
                   "nor applied until its role is clear")
    except (OSError, HamnError, ValueError) as exc:
        run.finish(f"file sync failed: {exc}", False)


# --------------------------------------------------------------------------- primary


def _refuse_split_brain(run, cfg, me, status):
    """Fail when the peer runs as primary too. Asked only when ``hamn.status`` found
    its PostgreSQL port open; an unreachable peer changes nothing (the master decides)."""
    if not (status.get("peer_postgres") or {}).get("reachable"):
        return
    clash = pg_peer.split_brain(pg_cluster.from_config(cfg), cfg, me, status.get("timeline"))
    if clash:
        run.finish(f"refused to sync files as primary: {clash}", False)


def _primary(run, cfg, me, status):
    files = cfg["files"]
    root_dir = files["root_dir"]
    hf = _plain(run.pillar.get("hamn_files"))
    if not isinstance(hf, dict) or not isinstance(hf.get("own"), dict):
        run.finish(NO_PILLAR, False)
    roots, excl = paths.configured_roots(files), paths.excluder_for(files)
    scan = manifest.scan(roots, root_dir, excl)
    for path, why in scan.skipped:
        run.notes.append(f"skipped {path}: {why}.")
    new = manifest.build(scan, source=me, timeline=status.get("timeline"), patterns=roots, excludes=excl.patterns)
    held_doc = hf["own"].get("manifest")
    held_objects = set(hf["own"].get("objects") or [])
    added, updated, removed = manifest.compare_manifests((held_doc or {}).get("entries"), new["entries"])
    objects = {}
    for entry in new["entries"]:
        if entry["type"] == "file" and entry["sha256"] not in held_objects:
            objects.setdefault(entry["sha256"], entry)
    old_tl = (held_doc or {}).get("timeline")
    header_changed = held_doc is None or old_tl != new["timeline"] or \
        held_doc.get("roots") != new["roots"] or held_doc.get("excludes") != new["excludes"]
    counts = f"{len(new['entries'])} entries, timeline {new['timeline']}"
    if not (added or updated or removed or objects or header_changed):
        run.finish(f"{me} is the primary: the master holds its current manifest ({counts}); nothing to push")
    pushed = {}
    if added:
        pushed["added"] = added
    if updated:
        pushed["updated"] = updated
    if removed:
        pushed["removed"] = removed
    if old_tl != new["timeline"]:
        pushed["timeline"] = f"{old_tl} -> {new['timeline']}"
    if objects:
        pushed["objects"] = len(objects)
    changes = {"pushed": pushed}
    if run.test:
        run.finish(f"{me} is the primary: would push its manifest ({counts}) and {len(objects)} file(s) "
                   "to the master", None, changes)
    started = time.monotonic()
    for sha, entry in objects.items():
        phys = paths.physical(root_dir, entry["path"])
        if not run.salt["cp.push"](phys, upload_path=transport.object_upload_path(sha)):
            size_mb = entry["size"] / 1024 / 1024
            run.finish(f"cp.push of {entry['path']} was refused: the master needs 'file_recv: True' and "
                       f"'file_recv_max_size' above {size_mb:.1f} (MB)", False)
    local = paths.physical(root_dir, LOCAL_MANIFEST)
    _write_private(local, json.dumps(new, sort_keys=True, indent=1).encode("utf-8"))
    if not run.salt["cp.push"](local, upload_path=transport.manifest_upload_path()):
        run.finish("cp.push of the manifest was refused: the master needs 'file_recv: True'", False)
    seconds = time.monotonic() - started
    # Re-read: what does the master hold now? (a fresh pillar, compiled by the master)
    fresh = _fresh_pillar(run.salt)
    own = (fresh.get("hamn_files") or {}).get("own") or {}
    doc = own.get("manifest") or {}
    still = manifest.compare_manifests(doc.get("entries"), new["entries"])
    lost = sorted(set(objects) - set(own.get("objects") or []))
    if any(still) or lost or doc.get("timeline") != new["timeline"]:
        what = _short([*still[0], *still[1], *still[2]] + [f"object {s[:12]}" for s in lost]) or "timeline"
        run.finish(f"{me} is the primary: after pushing, the master's copy still differs ({what}); "
                   "a file changed during the push or the upload failed: run it again", False, changes)
    run.finish(f"{me} is the primary: pushed its manifest ({counts}) and {len(objects)} file(s) to the "
               f"master in {seconds:.2f}s", True, changes)


def _fresh_pillar(salt):
    """A pillar freshly compiled by the master, with real values (Salt 3008 masks
    pillar.items output unless asked not to; older Salt has no such argument)."""
    try:
        fresh = salt["pillar.items"](unmask=True)
    except TypeError:
        fresh = salt["pillar.items"]()
    return _plain(fresh) or {}


def _write_private(phys, data):
    directory = os.path.dirname(phys)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = os.path.join(directory, f"{paths.TEMP_PREFIX}{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, phys)


# --------------------------------------------------------------------------- standby (salt)


def _standby_salt(run, cfg, me, peer, status):
    files = cfg["files"]
    hf = _plain(run.pillar.get("hamn_files"))
    if not isinstance(hf, dict) or "manifest" not in hf:
        run.finish(NO_PILLAR, False)
    for error in hf.get("errors") or []:
        run.notes.append(f"master: {error}.")
    pm = hf.get("manifest")
    if not pm:
        run.finish(f"{me} is the standby: {peer} has not pushed a manifest yet (apply hamn.files on "
                   f"{peer}); nothing applied")
    if pm.get("source") != peer or pm.get("role") != "primary":
        run.finish(f"refused: the manifest in the pillar is from {pm.get('source')!r} as "
                   f"{pm.get('role')!r}, expected the peer {peer} as primary", False)
    their_tl, my_tl = pm.get("timeline"), status.get("timeline")
    if hf.get("stale") or not isinstance(their_tl, int) or not isinstance(my_tl, int) or their_tl < my_tl:
        run.finish(f"{me} is the standby on timeline {my_tl}, {peer}'s pushed manifest is from timeline "
                   f"{their_tl}: an older primary's copy is never applied; waiting for {peer} to push")
    contents = hf.get("contents") or {}
    result = standby_apply(pm, files, contents, test=run.test)
    _finish_standby(run, me, peer, result, f"{peer}'s manifest ({len(pm.get('entries') or [])} entries, "
                    f"timeline {their_tl})")


def _content_getter(contents):
    def content_of(sha):
        data = base64.b64decode(contents[sha])
        if hashlib.sha256(data).hexdigest() != sha:
            raise fapply.ApplyError(f"content {sha[:12]} does not match its hash")
        return data
    return content_of


def standby_apply(pm, files, contents, *, test, stamp=None):
    """Make this node's listed trees match manifest ``pm`` (or, with ``test``, say what differs).

    Returns a dict: ``changes``, ``refused``, ``errors``, ``kept``, ``drift`` (what
    still differs after applying), ``ignored``.
    """
    root_dir = files["root_dir"]
    roots = fplan.common_roots(paths.configured_roots(files), pm.get("roots"))
    excl = paths.excluder_for(files).union(pm.get("excludes"))

    def plan_now():
        held = manifest.scan(roots, root_dir, excl, hash_files=False)
        return fplan.make(pm, held, roots=roots, excluder=excl, delete=files["delete"],
                          sha_of=lambda p: manifest.sha256_file(paths.physical(root_dir, p))[0],
                          has_content=lambda sha: sha in contents)

    plan = plan_now()
    out = {"refused": plan.refused, "errors": [], "kept": plan.kept, "drift": None, "ignored": plan.ignored}
    if test or plan.empty:
        out["changes"] = plan.changes()
        return out
    applier = fapply.Applier(root_dir, files["backup_dir"], parents=pm.get("parents") or {}, stamp=stamp)
    added, updated, removed = applier.run(plan, roots, _content_getter(contents))
    applier.restore_dir_times([e for e in pm.get("entries") or [] if isinstance(e, dict)])
    out["errors"] = applier.errors
    out["changes"] = {k: v for k, v in (("added", added), ("updated", updated), ("removed", removed)) if v}
    if applier._backup_dir:  # pylint: disable=protected-access
        out["backup_dir"] = applier._backup_dir  # pylint: disable=protected-access
    after = plan_now()
    failed = {path for path, _ in applier.errors}
    drift = after.changes()
    out["drift"] = drift if any(drift.values()) else None
    out["failed"] = sorted(failed)
    return out


def _finish_standby(run, me, peer, result, source):
    changes = result["changes"]
    for path, why in result["refused"]:
        run.notes.append(f"refused {path}: {why}.")
    for path, why in result["errors"]:
        run.notes.append(f"failed {path}: {why}.")
    if result["kept"]:
        run.notes.append(f"only here, kept (delete is false or they hold excluded files): "
                         f"{_short(result['kept'])}.")
    counts = ", ".join(f"{len(v)} {k}" for k, v in changes.items())
    bad = bool(result["refused"] or result["errors"])
    if run.test:
        if changes:
            run.finish(f"{me} is the standby: differs from {source}: {counts} (test mode, nothing "
                       "written)", False if bad else None, changes)
        run.finish(f"{me} is the standby: identical to {source}", not bad)
    if result.get("drift"):
        drift = result["drift"]
        listed = _short([*drift.get("added", []), *drift.get("updated", {}), *drift.get("removed", [])])
        run.finish(f"{me} is the standby: still differs from {source} after applying: {listed}", False,
                   changes)
    if not changes:
        run.finish(f"{me} is the standby: identical to {source}", not bad)
    if result.get("backup_dir"):
        run.notes.append(f"previous copies moved to {result['backup_dir']}.")
    run.finish(f"{me} is the standby: now matches {source}: {counts}", not bad, changes)


# --------------------------------------------------------------------------- standby (rsync)


def rsync_pull(files, *, host, src_root=None, test, stamp=None, timeout=3600):
    """Pull every listed path with rsync; with ``test`` only a dry run. Returns (changes, errors).

    ``host`` None copies from ``src_root`` on this machine (tests); otherwise the
    primary's address over ssh as ``files:rsync:ssh_user``.
    """
    root_dir = files["root_dir"]
    src_root = src_root or root_dir
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    backup = paths.physical(root_dir, paths.normalize(files["backup_dir"])) + "/" + stamp
    excl = paths.excluder_for(files)
    added, updated, removed, errors = [], [], [], []
    for pattern in paths.configured_roots(files):
        sources = transport.rsync_sources(pattern, src_root, host)
        for source in sources:
            argv = transport.rsync_argv(
                source, src_root=src_root, dst_root=root_dir, excludes=excl.patterns, delete=files["delete"],
                backup_dir=backup, host=host, ssh_user=files["rsync"]["ssh_user"],
                ssh_key=files["rsync"]["ssh_key"], dry_run=test)
            if not test:
                transport.ensure_dest_parent(source, root_dir)
            elif not os.path.isdir(paths.physical(root_dir, source.rsplit("/", 1)[0] or "/")):
                added.append(source)
                continue
            result = proc.run(argv, check=False, timeout=timeout, what="rsync")
            if result.returncode == 23 and "No such file or directory" in result.stderr and not result.stdout.strip():
                continue  # not on the primary: nothing to copy
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()
                errors.append((source, f"rsync exit {result.returncode}: {detail[-1] if detail else 'no output'}"))
            a, u, r = transport.parse_itemized(result.stdout, source)
            added += a
            updated += u
            removed += r
    changes = {k: v for k, v in (("added", added), ("updated", updated), ("removed", removed)) if v}
    return changes, errors


def _standby_rsync(run, cfg, me, peer):
    files = cfg["files"]
    host = cfg["nodes"][peer]["address"]
    changes, errors = rsync_pull(files, host=host, test=run.test)
    for path, why in errors:
        run.notes.append(f"failed {path}: {why}.")
    counts = ", ".join(f"{len(v)} {k}" for k, v in changes.items())
    if run.test:
        run.finish(f"{me} is the standby: differs from {peer} ({host}) over rsync: {counts} (test mode)"
                   if changes else f"{me} is the standby: identical to {peer} ({host}) over rsync",
                   False if errors else (None if changes else True), changes)
    if errors:
        run.finish(f"{me} is the standby: rsync from {peer} ({host}) failed", False, changes)
    if not changes:
        # The pull compared every listed file with the primary's and had nothing to do:
        # a dry-run pass now would only repeat that comparison over a second ssh
        # connection (it doubled a no-op run). After a pull that changed something,
        # the check below still runs.
        run.finish(f"{me} is the standby: identical to {peer} ({host}) over rsync", True)
    drift, errors = rsync_pull(files, host=host, test=True)
    if drift or errors:
        listed = _short([*drift.get("added", []), *drift.get("updated", []), *drift.get("removed", [])])
        run.finish(f"{me} is the standby: still differs from {peer} after rsync: {listed or errors}", False,
                   changes)
    run.finish(f"{me} is the standby: {'now matches' if changes else 'identical to'} {peer} ({host}) over "
               f"rsync{': ' + counts if counts else ''}", True, changes)
