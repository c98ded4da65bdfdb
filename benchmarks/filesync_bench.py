"""How long does hamn's file sync take on a tree of 1,000 files, first run and no-op
re-run, against a bare ``rsync -a`` of the same tree between the same two
namespaces? Run on demand, as root: ``make bench-filesync`` (or
``.venv/bin/python benchmarks/filesync_bench.py --runs 5``).

Setup: two network namespaces of its own (prefix ``rjbf``: rjbf-w with the
bridge, rjbf-mn1 = primary at 198.51.100.11, rjbf-mn2 = standby at .12), an
sshd of its own in rjbf-mn1 (own host key, config, authorized_keys and pid file
under /var/tmp/hamn-rjb/fs), and a generated tree of 1,000 regular files under
the primary's ``/install/postscripts`` (nested directories, mostly small files,
a few of 1-2 MB, modes 0644/0600/0755/0700, a few owners, some symlinks).

Measured (each on an empty standby tree for "first", then again for "no-op"):

* ``hamn rsync``: the standby side of ``hamn.files_synced`` with
  ``hamn:files:transport: rsync`` (``utils/filesync/state.py``): rsync over ssh
  pulling from the primary with hamn's flags, then its check that nothing still
  differs. Run in the standby's namespace. The only stand-ins: ``hamn.status``
  (returns "standby"; the real one queries PostgreSQL) and the source root (the
  lab nodes share one filesystem, so the primary's tree lives under another
  root_dir).
* ``bare rsync``: ``rsync -a -e ssh root@198.51.100.11:<tree>/ <tree>/`` in the
  standby's namespace, with the same ssh (same key, same cipher defaults): the
  fair "bare" equivalent, since ssh is how hamn's rsync transport carries files,
  and an rsync daemon would drop the encryption and authentication hamn pays for.
* ``hamn salt``: the default transport's node-local work, no Salt daemons: the
  primary's ``hamn.files_synced`` (scan and hash, compare with what the master
  holds, ``cp.push`` of new contents and the manifest; the push is a stand-in that
  copies into a master cache dir), the master's ``hamn_files`` ext_pillar for the
  standby (verify and base64 every object), and the standby's
  ``hamn.files_synced`` applying it. Salt's own round trips (state.apply, pillar
  compile and transfer, one cp.push request per file) are not in this figure.

* ``salt lab`` (``--salt-lab``, default on): the same tree under the lab
  pillar's listed ``/etc/xcat/cert`` in a full lab (PostgreSQL pair, salt-master
  in rjbf-w, minions in rjbf-mn1/rjbf-mn2, ``hamn-lab up`` as it is), timed as an
  admin runs it: ``salt mn1 state.apply hamn.files`` then ``salt mn2 state.apply
  hamn.files`` (first: empty standby copy and nothing held by the master; no-op:
  both again).

Both ssh ends are ours: a wrapper ``ssh`` first on PATH adds ``-F`` with a config
of ours (key, known_hosts), so root's own ~/.ssh is never read or written.
Results: medians (min-max) into benchmarks/results.json, section "filesync".
"""

import argparse
import functools
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from saltext_hamn.lab import netns, network, saltd
from saltext_hamn.lab.lab import Lab
from saltext_hamn.lab.spec import NODE_ADDRESSES, LabSpec
from saltext_hamn.utils import proc
from saltext_hamn.utils.filesync import state, store
from saltext_hamn.utils.net.nsenter import entered

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  pylint: disable=wrong-import-position

BASE_DIR = "/var/tmp/hamn-rjb/fs"
PREFIX = "rjbf"
TREE = "/install/postscripts"
SALT_TREE = "/etc/xcat/cert/bench"  # inside a path the lab's pillar lists (hamn:files:paths default)
PRIMARY, STANDBY = "mn1", "mn2"
SSHD = "/usr/sbin/sshd"


def say(message):
    print(f"[filesync-bench] {message}", flush=True)


def make_tree(root, files=1000, seed=10):
    """A deterministic tree of ``files`` regular files (plus dirs and symlinks) under ``root``."""
    rng = random.Random(seed)
    owners = [pwd.getpwnam(n) for n in ("root", "postgres", "nobody") if _exists(n)]
    dirs = [root]
    for i in range(40):  # nested up to 3 levels
        parent = rng.choice([d for d in dirs if len(d.relative_to(root).parts) < 3])
        path = parent / f"d{i:02d}"
        path.mkdir(parents=True)
        os.chmod(path, 0o700 if i % 10 == 9 else 0o755)
        dirs.append(path)
    sizes = ([int(rng.lognormvariate(7, 1.1)) % 16384 + 20 for _ in range(files - 50)]
             + [rng.randint(16 << 10, 256 << 10) for _ in range(47)]
             + [rng.randint(1 << 20, 2 << 20) for _ in range(3)])
    rng.shuffle(sizes)
    total = 0
    for i, size in enumerate(sizes):
        path = rng.choice(dirs) / f"f{i:04d}{rng.choice(['.sh', '.conf', '.pem', '', '.tmpl'])}"
        path.write_bytes(rng.randbytes(size))
        mode = rng.choices([0o644, 0o600, 0o755, 0o640], weights=[70, 15, 10, 5])[0]
        owner = owners[0] if rng.random() < 0.9 else rng.choice(owners)
        os.chown(path, owner.pw_uid, owner.pw_gid)
        os.chmod(path, mode)
        stamp = 1_700_000_000_000_000_000 + rng.randint(0, 10**16)
        os.utime(path, ns=(stamp, stamp))
        total += size
    for i in range(10):
        link = rng.choice(dirs) / f"link{i}"
        os.symlink(f"f{rng.randint(0, files - 1):04d}.sh", link)
    return {"files": files, "dirs": len(dirs), "symlinks": 10, "bytes": total,
            "largest_bytes": max(sizes), "median_file_bytes": sorted(sizes)[len(sizes) // 2]}


def _exists(user):
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


class Bench:
    def __init__(self, args):
        self.args = args
        self.spec = LabSpec(prefix=PREFIX, base_dir=BASE_DIR)
        self.dir = self.spec.lab_dir
        self.ssh_dir = self.dir / "ssh"
        self.sshd = None
        self.env = None
        self.lab = None

    def root(self, node):
        return self.dir / node / "root"

    def files_cfg(self, transport):
        raw = {
            "nodes": {n: {"address": a, "hostname": a} for n, a in NODE_ADDRESSES.items()},
            "initial_primary": PRIMARY,
            "vip": {"address": "198.51.100.10"},
            "postgres": {"replication": {"password": "not-used-here-0"}},
            "files": {"paths": [TREE], "transport": transport,
                      "rsync": {"ssh_user": "root", "ssh_key": str(self.ssh_dir / "id_ed25519")}},
        }
        return raw

    # ---- network and sshd ---------------------------------------------------------
    def up(self):
        if self.args.salt_lab:
            self.lab = Lab(self.spec, out=lambda m: None)
            self.lab.down()
            say("bringing up a full lab (PostgreSQL pair, salt-master, two minions) for the salt transport")
            self.lab.up()
        else:
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True)
            network.build(self.spec)
        self.ssh_dir.mkdir(mode=0o700)
        d = self.ssh_dir
        for name in ("host_ed25519", "id_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"rjbf-{name}", "-f", str(d / name)],
                           check=True)
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        host_key = (d / "host_ed25519.pub").read_text(encoding="utf-8").split()
        (d / "known_hosts").write_text(f"{NODE_ADDRESSES[PRIMARY]} {host_key[0]} {host_key[1]}\n", encoding="utf-8")
        (d / "sshd_config").write_text("\n".join([
            f"ListenAddress {NODE_ADDRESSES[PRIMARY]}", "Port 22", f"HostKey {d / 'host_ed25519'}",
            f"PidFile {d / 'sshd.pid'}", f"AuthorizedKeysFile {d / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "Subsystem sftp internal-sftp", "",
        ]), encoding="utf-8")
        (d / "ssh_config").write_text("\n".join([
            f"Host {NODE_ADDRESSES[PRIMARY]}", f"  IdentityFile {d / 'id_ed25519'}", "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {d / 'known_hosts'}", "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes", "",
        ]), encoding="utf-8")
        bindir = self.dir / "bench-bin"
        bindir.mkdir()
        wrapper = bindir / "ssh"
        wrapper.write_text(f"#!/bin/sh\nexec /usr/bin/ssh -F {d / 'ssh_config'} \"$@\"\n", encoding="utf-8")
        os.chmod(wrapper, 0o755)
        self.env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.sshd = subprocess.Popen(  # pylint: disable=consider-using-with
            ["ip", "netns", "exec", self.spec.node_ns(PRIMARY), SSHD, "-D", "-f", str(d / "sshd_config"),
             "-E", str(d / "sshd.log")], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            probe = self.in_standby(["ssh", "-o", "BatchMode=yes", "-l", "root", NODE_ADDRESSES[PRIMARY], "true"],
                                    check=False)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline or self.sshd.poll() is not None:
                raise SystemExit(f"sshd in {self.spec.node_ns(PRIMARY)} not reachable: {probe.stderr.strip()} "
                                 f"{(d / 'sshd.log').read_text(encoding='utf-8')[-500:] if (d / 'sshd.log').exists() else ''}")
            time.sleep(0.2)
        say(f"sshd up in {self.spec.node_ns(PRIMARY)} at {NODE_ADDRESSES[PRIMARY]}:22 (pid {self.sshd.pid})")

    def down(self):
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.send_signal(signal.SIGTERM)
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
        if self.lab is not None:
            self.lab.down()
        leftovers = [p for ns in self.spec.namespaces if ns in netns.existing() for p in netns.pids(ns)]
        for pid in leftovers:  # only processes inside our own namespaces
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        network.destroy(self.spec)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        try:
            self.dir.parent.rmdir()
        except OSError:
            pass

    def in_standby(self, argv, check=True):
        return subprocess.run(["ip", "netns", "exec", self.spec.node_ns(STANDBY), *argv], env=self.env,
                              capture_output=True, text=True, check=check, timeout=600)

    # ---- the methods ----------------------------------------------------------------
    def clear_standby(self):
        if self.root(STANDBY).exists():
            shutil.rmtree(self.root(STANDBY))
        self.root(STANDBY).mkdir(parents=True)
        os.sync()

    def bare_rsync(self):
        dest = self.root(STANDBY) / TREE.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.in_standby(["rsync", "-a", "-e", "ssh", f"root@{NODE_ADDRESSES[PRIMARY]}:{self.root(PRIMARY)}{TREE}/",
                         f"{dest}/"])
        return time.monotonic() - started

    def hamn_rsync(self):
        """hamn.files_synced on the standby, transport rsync, in the standby's namespace."""
        pillar = {"hamn": {**self.files_cfg("rsync")}}
        pillar["hamn"]["files"]["root_dir"] = str(self.root(STANDBY))
        salt = {"hamn.status": lambda: {"role": "standby", "timeline": 1}}
        original = state.rsync_pull
        state.rsync_pull = functools.partial(original, src_root=str(self.root(PRIMARY)))
        saved_path = os.environ["PATH"]
        os.environ["PATH"] = self.env["PATH"]
        try:
            with entered(self.spec.node_ns(STANDBY)):
                started = time.monotonic()
                ret = state.files_synced("bench", salt=salt, opts={"id": STANDBY}, pillar=pillar, test=False)
                seconds = time.monotonic() - started
        finally:
            state.rsync_pull = original
            os.environ["PATH"] = saved_path
        if ret["result"] is not True:
            raise SystemExit(f"hamn.files_synced (rsync) failed: {ret['comment']}")
        return seconds, ret

    def hamn_salt(self, cache):
        """The default transport, node-local: primary push, master ext_pillar, standby apply."""
        pillars = {}
        for node in (PRIMARY, STANDBY):
            raw = self.files_cfg("salt")
            raw["files"]["root_dir"] = str(self.root(node))
            pillars[node] = {"hamn": raw}

        def pillar_of(node):
            return {**pillars[node], **store.pillar_for(node, pillars[node], str(cache))}

        def push(path, upload_path=None, **_kwargs):
            dest = cache / "minions" / PRIMARY / "files" / upload_path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            return True

        times = {}
        started = time.monotonic()
        primary_salt = {"hamn.status": lambda: {"role": "primary", "timeline": 1}, "cp.push": push,
                        "pillar.items": lambda **_: pillar_of(PRIMARY)}
        ret = state.files_synced("bench", salt=primary_salt, opts={"id": PRIMARY}, pillar=pillar_of(PRIMARY),
                                 test=False)
        times["primary_push"] = time.monotonic() - started
        if ret["result"] is not True:
            raise SystemExit(f"hamn.files_synced (salt, primary) failed: {ret['comment']}")
        started = time.monotonic()
        standby_pillar = pillar_of(STANDBY)
        times["master_pillar"] = time.monotonic() - started
        started = time.monotonic()
        ret = state.files_synced("bench", salt={"hamn.status": lambda: {"role": "standby", "timeline": 1}},
                                 opts={"id": STANDBY}, pillar=standby_pillar, test=False)
        times["standby_apply"] = time.monotonic() - started
        if ret["result"] is not True:
            raise SystemExit(f"hamn.files_synced (salt, standby) failed: {ret['comment']}")
        times["total"] = sum(times.values())
        return times, ret

    # ---- the default transport through Salt itself (full lab) --------------------------
    def salt_apply(self, node):
        cmd = saltd.salt_cmd(self.spec, node, "state.apply", "hamn.files", "--out=json", "--static", "-t", "900")
        started = time.monotonic()
        result = proc.run(cmd, check=False, timeout=1200)
        seconds = time.monotonic() - started
        try:
            ret = next(iter(json.loads(result.stdout)[node].values()))
        except (ValueError, KeyError, StopIteration, AttributeError) as exc:
            raise SystemExit(f"salt {node} state.apply hamn.files gave no result: {result.stdout[-800:]}") from exc
        if ret.get("result") is not True:
            raise SystemExit(f"salt {node} state.apply hamn.files failed: {ret.get('comment')}")
        return seconds, ret

    def salt_lab_reset(self):
        """Standby copy gone, nothing held by the master: the next sync is a first one."""
        copy = self.root(STANDBY) / SALT_TREE.lstrip("/")
        if copy.exists():
            shutil.rmtree(copy)
        for held in (self.dir / "salt").glob(f"**/minions/{PRIMARY}/files/hamn-files"):
            shutil.rmtree(held)

    def salt_ping(self):
        """One Salt round trip (``salt mn1 test.ping``): the fixed cost in each state.apply."""
        started = time.monotonic()
        proc.run(saltd.salt_cmd(self.spec, PRIMARY, "test.ping", "--out=json", "--static", "-t", "30"), timeout=60)
        return time.monotonic() - started

    def salt_lab_round(self):
        out = {"ping": self.salt_ping()}
        for phase in ("first", "noop"):
            push, _ = self.salt_apply(PRIMARY)
            apply, ret = self.salt_apply(STANDBY)
            out[phase] = {"primary": push, "standby": apply, "total": push + apply}
            if phase == "first" and len((ret.get("changes") or {}).get("added") or []) < self.args.files:
                raise SystemExit(f"salt {STANDBY} state.apply hamn.files added too little: {ret.get('comment')}")
        self.check_identical(SALT_TREE)
        return out

    def check_identical(self, tree=TREE):
        """The standby's copy equals the primary's (content, mode, owner, mtime, links)."""
        diff = self.in_standby(["rsync", "-a", "-n", "-i", "--delete", "-c", f"{self.root(PRIMARY)}{tree}/",
                                f"{self.root(STANDBY)}{tree}/"]).stdout.strip()
        if diff:
            raise SystemExit(f"standby differs from the primary after a sync:\n{diff[:2000]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--methods", default="hamn-rsync,bare-rsync,hamn-salt")
    parser.add_argument("--no-salt-lab", dest="salt_lab", action="store_false",
                        help="skip the runs through a full Salt lab (salt mnX state.apply hamn.files)")
    parser.add_argument("--salt-lab-runs", type=int, default=None,
                        help="runs through the Salt lab (default: --runs; a first one takes about a minute)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, sshd, file owners)")
    if not os.path.exists(SSHD):
        raise SystemExit(f"{SSHD} missing: apt-get install openssh-server (make bench-filesync does it)")
    methods = [m for m in args.methods.split(",") if m]
    bench = Bench(args)
    figures = {m: {"first": [], "noop": []} for m in methods}
    salt_parts = {"first": [], "noop": []}
    try:
        bench.up()
        tree = make_tree(bench.root(PRIMARY) / TREE.lstrip("/"), files=args.files)
        say(f"tree: {tree['files']} files, {tree['dirs']} dirs, {tree['symlinks']} symlinks, "
            f"{tree['bytes'] / 1e6:.1f} MB under {PRIMARY}:{TREE}")
        for i in range(args.runs):
            shift = i % len(methods)  # each method goes first in turn
            for method in methods[shift:] + methods[:shift]:
                bench.clear_standby()
                cache = bench.dir / "master-cache"
                if cache.exists():
                    shutil.rmtree(cache)
                for phase in ("first", "noop"):
                    if method == "bare-rsync":
                        seconds = bench.bare_rsync()
                    elif method == "hamn-rsync":
                        seconds, _ = bench.hamn_rsync()
                    else:
                        parts, _ = bench.hamn_salt(cache)
                        seconds = parts["total"]
                        salt_parts[phase].append(parts)
                    figures[method][phase].append(seconds)
                    bench.check_identical()
                say(f"run {i + 1}/{args.runs} {method}: first {figures[method]['first'][-1]:.3f}s, "
                    f"no-op {figures[method]['noop'][-1]:.3f}s")
        salt_lab = []
        if args.salt_lab:
            make_tree(bench.root(PRIMARY) / SALT_TREE.lstrip("/"), files=args.files)
            lab_runs = args.salt_lab_runs or args.runs
            for i in range(lab_runs):
                bench.salt_lab_reset()
                salt_lab.append(bench.salt_lab_round())
                say(f"run {i + 1}/{lab_runs} salt lab (state.apply on {PRIMARY}, then {STANDBY}): first "
                    f"{salt_lab[-1]['first']['total']:.2f}s, no-op {salt_lab[-1]['noop']['total']:.2f}s")
        section = summarize(args, tree, figures, salt_parts, salt_lab)
        results.update("filesync", section)
        print_table(section)
    finally:
        bench.down()
    return 0


def summarize(args, tree, figures, salt_parts, salt_lab):
    out = {
        "method": (
            "Namespaces rjbf-* (198.51.100.0/24), sshd of the bench's own in the primary's namespace; a "
            f"generated tree of {tree['files']} files under {TREE} on the primary. Each run starts from an "
            "empty standby tree: 'first' = first sync, 'noop' = the same sync again right after. hamn-rsync = "
            "the standby side of hamn.files_synced with transport rsync (rsync over ssh with hamn's flags, "
            "then its drift check), run in the standby's namespace; bare-rsync = rsync -a -e ssh "
            "root@primary:tree/ tree/ in the same namespace with the same ssh config; hamn-salt = the salt "
            "transport's node-local work (primary scan+hash+push into a master cache dir, the hamn_files "
            "ext_pillar, standby apply), without Salt's daemons and round trips. After every sync the copy "
            "is checked identical (rsync -a -n -c -i --delete). Methods interleaved per run, each going first in turn."),
        "runs": args.runs,
        "tree": {**tree, "path": TREE},
        "transport_note": (
            "rsync over ssh is hamn's rsync transport itself, so bare rsync over the same ssh is the fair "
            "baseline; an rsync daemon would skip the encryption and authentication hamn pays for."),
    }
    for method, phases in figures.items():
        key = method.replace("-", "_")
        out[f"{key}_first_seconds"] = results.spread(phases["first"])
        out[f"{key}_noop_seconds"] = results.spread(phases["noop"])
    if salt_parts["first"]:
        for phase in ("first", "noop"):
            out[f"hamn_salt_{phase}_parts_seconds"] = {
                part: results.spread([p[part] for p in salt_parts[phase]])
                for part in ("primary_push", "master_pillar", "standby_apply")}
    if salt_lab:
        for phase in ("first", "noop"):
            out[f"salt_lab_{phase}_seconds"] = {
                part: results.spread([r[phase][part] for r in salt_lab]) for part in ("primary", "standby", "total")}
        out["salt_lab_test_ping_seconds"] = results.spread([r["ping"] for r in salt_lab])
        out["salt_lab_note"] = (
            "salt mn1 state.apply hamn.files (primary: scan, cp.push of each new content, re-read of a fresh "
            "pillar) then salt mn2 state.apply hamn.files (pillar with the contents, apply, rescan), each "
            "timed as the salt CLI's wall time from the witness namespace.")
    if "hamn_rsync_noop_seconds" in out and "bare_rsync_noop_seconds" in out:
        ratio = out["hamn_rsync_noop_seconds"]["median"] / out["bare_rsync_noop_seconds"]["median"]
        out["hamn_rsync_vs_bare_noop"] = round(ratio, 2)
        out["hamn_rsync_vs_bare_first"] = round(
            out["hamn_rsync_first_seconds"]["median"] / out["bare_rsync_first_seconds"]["median"], 2)
        out["target"] = "hamn no-op <= 1.5 x bare rsync no-op"
        out["target_met"] = ratio <= 1.5
    if "hamn_salt_noop_seconds" in out and "bare_rsync_noop_seconds" in out:
        out["hamn_salt_vs_bare_noop"] = round(
            out["hamn_salt_noop_seconds"]["median"] / out["bare_rsync_noop_seconds"]["median"], 2)
    return out


def print_table(section):
    print()
    t = section["tree"]
    print(f"tree {t['files']} files / {t['bytes'] / 1e6:.1f} MB, runs {section['runs']}")
    for method in ("hamn_rsync", "bare_rsync", "hamn_salt"):
        for phase in ("first", "noop"):
            key = f"{method}_{phase}_seconds"
            if key in section:
                s = section[key]
                print(f"{method:12s} {phase:6s} {s['median']:7.3f} s  ({s['min']:.3f}-{s['max']:.3f})")
    for phase in ("first", "noop"):
        key = f"salt_lab_{phase}_seconds"
        if key in section:
            s = section[key]
            print(f"salt lab     {phase:6s} {s['total']['median']:7.3f} s  ({s['total']['min']:.3f}-{s['total']['max']:.3f})"
                  f"  [primary {s['primary']['median']:.2f} s + standby {s['standby']['median']:.2f} s]")
    if "hamn_rsync_vs_bare_noop" in section:
        print(f"hamn rsync / bare rsync, no-op: {section['hamn_rsync_vs_bare_noop']}x (target <= 1.5x: "
              f"{'met' if section['target_met'] else 'NOT met'}); first run {section['hamn_rsync_vs_bare_first']}x")


if __name__ == "__main__":
    sys.exit(main())
