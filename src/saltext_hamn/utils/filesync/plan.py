"""What the standby must do to match a primary's manifest (never trusting it blindly).

Every manifest entry is checked before it can be written: a canonical absolute
path, inside one of the trees *both* nodes list, not excluded on either node,
below a parent the manifest itself says is a directory, with sane field values.
Anything else is refused with a reason and never touched.
"""

import re

from saltext_hamn.utils.filesync import manifest, paths

_SHA = re.compile(r"[0-9a-f]{64}")


class Plan:
    def __init__(self):
        self.add = []  # manifest entries missing here
        self.update = []  # (manifest entry, held entry, [what differs])
        self.remove = []  # held entries the primary does not have (delete: true)
        self.kept = []  # paths only here, kept (delete: false, or they hold excluded files)
        self.refused = []  # (path, why): manifest entries never written
        self.ignored = 0  # manifest entries excluded on this node

    @property
    def empty(self):
        return not (self.add or self.update or self.remove)

    def changes(self):
        out = {}
        if self.add:
            out["added"] = [e["path"] for e in self.add]
        if self.update:
            out["updated"] = {want["path"]: ", ".join(diff) for want, _, diff in self.update}
        if self.remove:
            out["removed"] = [e["path"] for e in self.remove]
        return out


def check_entry(entry):
    """Raise BadPath unless ``entry`` is a well-formed manifest entry."""
    if not isinstance(entry, dict):
        raise paths.BadPath("manifest entry is not a mapping")
    path = paths.validate(entry.get("path"))
    kind = entry.get("type")
    if kind not in manifest.TYPES:
        raise paths.BadPath(f"{path}: unknown type {kind!r}")
    for key in ("uid", "gid", "mtime_ns"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise paths.BadPath(f"{path}: bad {key} {value!r}")
    mode = entry.get("mode")
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise paths.BadPath(f"{path}: bad mode {mode!r}")
    for key in ("owner", "group"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?", value)):
            raise paths.BadPath(f"{path}: bad {key} name")
    if kind == "file":
        if not isinstance(entry.get("sha256"), str) or not _SHA.fullmatch(entry["sha256"]):
            raise paths.BadPath(f"{path}: bad sha256")
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise paths.BadPath(f"{path}: bad size")
    if kind == "symlink":
        target = entry.get("target")
        if not isinstance(target, str) or not target or "\x00" in target:
            raise paths.BadPath(f"{path}: bad symlink target")
    return path


def common_roots(mine, theirs):
    """Patterns both nodes list: only there may the standby write or remove."""
    theirs = {paths.normalize(p) for p in theirs or [] if isinstance(p, str) and p.startswith("/")}
    return [p for p in mine if p in theirs]


def needs_content(entry, have, diff):
    """Writing ``entry`` needs its bytes (not just a chmod/chown/utime)."""
    if entry["type"] != "file":
        return False
    return have is None or "content" in diff or have["type"] != "file"


def make(pmanifest, held, *, roots, excluder, delete, sha_of, has_content=None):
    """Compare the primary's manifest with the standby's scan ``held``.

    ``roots`` are the patterns both nodes list; ``excluder`` already includes the
    primary's excludes; ``held`` was scanned with the same roots and excluder.
    ``has_content(sha256)`` tells whether the bytes of a file are at hand (a file
    whose bytes are not is refused, and its old copy left alone).
    """
    plan = Plan()
    wanted = {}
    for raw in pmanifest.get("entries") or []:
        try:
            path = check_entry(raw)
        except paths.BadPath as exc:
            plan.refused.append((raw.get("path") if isinstance(raw, dict) else None, str(exc)))
            continue
        top = paths.tree_root(path, roots)
        if top is None:
            plan.refused.append((path, "outside the paths this node lists"))
            continue
        if excluder.within(path, top):
            plan.ignored += 1
            continue
        wanted[path] = (raw, top)
    # Every entry below the tree root needs its parent listed as a directory: a
    # manifest saying "x is a symlink" and "x/y is a file" would write through the link.
    for path in sorted(wanted, key=paths.components):
        entry, top = wanted[path]
        if path != top:
            parent = path.rsplit("/", 1)[0]
            if parent not in wanted or wanted[parent][0]["type"] != "dir":
                plan.refused.append((path, "its parent is not a directory in the manifest"))
                del wanted[path]
    for path in sorted(wanted, key=paths.components):
        entry, _ = wanted[path]
        have = held.entries.get(path)
        diff = manifest.differences(entry, have, sha_of=sha_of) if have is not None else ["missing"]
        if diff and has_content is not None and needs_content(entry, have, diff) \
                and not has_content(entry["sha256"]):
            plan.refused.append((path, "the master holds no verified copy of its content"))
            continue
        if have is None:
            plan.add.append(entry)
            continue
        if diff:
            if have["type"] == "dir" and entry["type"] != "dir" and held.holds_excluded(path):
                plan.refused.append((path, "would replace a directory that holds excluded files"))
                continue
            plan.update.append((entry, have, diff))
    replaced = {want["path"] for want, have, _ in plan.update if have["type"] == "dir" != want["type"]}
    for path in sorted(held.entries, key=paths.components):
        if path in wanted or any(path.startswith(r + "/") for r in replaced):
            continue
        if any(path == r or path.startswith(r + "/") for r, _ in plan.refused if r):
            continue  # a refused entry's old copy stays as it is
        entry = held.entries[path]
        if not delete or (entry["type"] == "dir" and held.holds_excluded(path)):
            plan.kept.append(path)
        else:
            plan.remove.append(entry)
    return plan
