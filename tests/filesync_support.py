"""A fake master for the file sync: cp.push into a cache dir, the hamn_files ext_pillar on it.

Runs ``hamn.files_synced``'s logic for two nodes whose files live under their own
``root_dir``, with the real manifest, store (ext_pillar) and apply code; only the
Salt channel and ``hamn.status`` are stand-ins.
"""

import os
import shutil
import stat

from saltext_hamn.utils.filesync import state, store
from tests import support


class FakeMaster:
    def __init__(self, base, **files):
        self.base = base
        self.cachedir = str(base / "cache")
        self.pushes = []
        self.refuse = False
        self.pillars = {n: support.pillar(files={"root_dir": str(self.root(n)), **files}) for n in ("mn1", "mn2")}

    def root(self, node):
        return self.base / node

    def cp_push(self, node):
        def push(path, upload_path=None, **_kwargs):
            if self.refuse:
                return False
            dest = os.path.join(self.cachedir, "minions", node, "files", upload_path.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(path, dest)
            self.pushes.append((node, upload_path))
            return True
        return push

    def pillar(self, node):
        raw = {"hamn": self.pillars[node]}
        return {**raw, **store.pillar_for(node, raw, self.cachedir)}

    def apply(self, node, role, timeline=1, test=False, status_error=None):
        def status():
            if status_error:
                raise status_error
            return {"role": role, "timeline": timeline}

        salt = {"hamn.status": status, "cp.push": self.cp_push(node), "pillar.items": lambda **_: self.pillar(node)}
        return state.files_synced("hamn-files", salt=salt, opts={"id": node}, pillar=self.pillar(node), test=test)


def put(root, rel, text=None, mode=0o644, owner=None, link=None, mtime=None):
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if link is not None:
        os.symlink(link, path)
        return path
    if text is None:
        path.mkdir(exist_ok=True)
    else:
        path.write_text(text)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))
    return path


def snapshot(root, skip=("authorized_keys", "known_hosts", ".edit.swp")):
    """Everything a sync must preserve, per logical path."""
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            logical = "/" + os.path.relpath(path, root)
            if name in skip or name.endswith(".swp") or logical.startswith("/var"):
                continue
            st = os.lstat(path)
            item = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                    "type": stat.S_IFMT(st.st_mode)}
            if stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                item["mtime_ns"] = st.st_mtime_ns
                with open(path, "rb") as handle:
                    item["content"] = handle.read()
            out[logical] = item
    return out
