"""A fake master for the file sync: cp.push into a cache dir, the hamn_files ext_pillar on it.

Runs ``hamn.files_synced``'s logic for two nodes whose files live under their own
``root_dir``, with the real manifest, store (ext_pillar) and apply code; only the
Salt channel and ``hamn.status`` are stand-ins.
"""

import os
import shutil

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
