"""The two transports.

``salt`` (default): the primary pushes its manifest and the content of its regular
files to the master with ``cp.push`` (``file_recv: True`` on the master); the
master's ``hamn_files`` ext_pillar hands them to the standby inside its pillar,
which Salt encrypts for that minion alone. No ssh trust between the nodes.

``rsync``: the standby pulls each listed path from the primary with rsync over
ssh (needs the standby to log in to the primary, as root to read root's keys).
Built as an argument list, run without a shell.
"""

import os

from saltext_hamn.utils.filesync import paths

UPLOAD_DIR = "hamn-files"  # under the master's <cachedir>/minions/<id>/files/
MANIFEST_NAME = "manifest.json"


def object_upload_path(sha256):
    return f"/{UPLOAD_DIR}/objects/{sha256}"


def manifest_upload_path():
    return f"/{UPLOAD_DIR}/{MANIFEST_NAME}"


# --------------------------------------------------------------------------- rsync

RSYNC_FLAGS = [
    "--recursive", "--links", "--perms", "--times", "--owner", "--group",
    "--devices", "--specials",
    "--itemize-changes", "--out-format=%i %n%L",
]


def rsync_excludes(pattern, excludes):
    """rsync ``--exclude`` rules for one listed ``pattern``.

    The transfer root is the pattern's parent directory. Basename patterns apply as
    they are; absolute patterns inside the transfer root are anchored to it; other
    absolute patterns cannot match in this transfer and are dropped.
    """
    base = pattern.rsplit("/", 1)[0] or "/"
    prefix = base.rstrip("/") + "/"
    out = []
    for exc in excludes:
        if "/" not in exc:
            out.append(exc)
        elif exc.startswith(prefix):
            out.append("/" + exc[len(prefix):])
        elif not exc.startswith("/"):
            out.append(exc)
    for internal in (paths.TEMP_PREFIX + "*",):
        out.append(internal)
    return list(dict.fromkeys(out))


def rsync_argv(pattern, *, src_root, dst_root, excludes, delete, backup_dir=None, host=None,
               ssh_user="root", ssh_key=None, dry_run=False, rsync="rsync"):
    """The argument list that makes ``pattern`` on the standby a copy of the primary's.

    Links are copied as links (``--links``, never ``-L``/``--copy-links``, so a link
    pointing out of the tree is not followed); owner/group by name like the salt
    transport; ``--delete`` with ``--backup --backup-dir`` only when ``delete``.
    ``host`` None copies from ``src_root`` locally (tests); otherwise over ssh
    with BatchMode (no password prompt ever).
    """
    pattern = paths.normalize(pattern)
    base = pattern.rsplit("/", 1)[0] or "/"
    argv = [rsync, *RSYNC_FLAGS]
    if dry_run:
        argv.append("--dry-run")
    for rule in rsync_excludes(pattern, excludes):
        argv.append(f"--exclude={rule}")
    if delete:
        if not backup_dir:
            raise ValueError("delete needs a backup dir")
        argv += ["--delete", "--backup", f"--backup-dir={backup_dir.rstrip('/')}{base if base != '/' else ''}"]
    if host:
        ssh = ["ssh", "-o", "BatchMode=yes", "-l", ssh_user]
        if ssh_key:
            ssh += ["-i", ssh_key]
        argv += ["-e", " ".join(ssh)]
        source = f"{host}:{paths.physical(src_root, pattern)}"
    else:
        source = paths.physical(src_root, pattern)
        if paths.has_magic(pattern):
            raise ValueError("a local rsync source cannot be a glob: expand it first")
    dest = paths.physical(dst_root, base).rstrip("/") + "/"
    argv += ["--", source, dest]
    return argv


def parse_itemized(output, pattern):
    """(added, updated, removed) logical paths from ``--itemize-changes`` output."""
    base = (pattern.rsplit("/", 1)[0] or "/").rstrip("/")
    added, updated, removed = [], [], []
    for line in output.splitlines():
        if len(line) < 13 or line[11] != " ":
            continue
        flags, name = line[:11], line[12:]
        if " -> " in name and flags[1] == "L":
            name = name.split(" -> ", 1)[0]
        name = name.rstrip("/")
        if name in ("", "."):
            continue
        path = f"{base}/{name}"
        if flags.startswith("*deleting"):
            removed.append(path)
        elif "+++++++++" in flags:
            added.append(path)
        elif flags[0] in "<>ch." and (flags[0] != "." or flags[2:].strip(". ")):
            updated.append(path)
    return added, updated, removed


def rsync_sources(pattern, src_root, host):
    """Local runs expand the glob here; remote globs are expanded by the remote rsync."""
    if host or not paths.has_magic(pattern):
        return [pattern]
    return paths.expand(pattern, src_root)


def ensure_dest_parent(pattern, dst_root):
    """rsync creates only the last directory of a destination: make the rest (0755)."""
    base = pattern.rsplit("/", 1)[0] or "/"
    os.makedirs(paths.physical(dst_root, base), mode=0o755, exist_ok=True)
