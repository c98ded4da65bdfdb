"""Create a cluster and put hamn's replication configuration into it."""

import os

from saltext_hamn.utils import fileops
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import conf, postmaster, versions


def initdb(cluster, major, data_checksums=True):
    """initdb an empty data directory (refuses a non-empty one).

    Checksums are asked for explicitly, on or off, so a new cluster is the same on every
    major (PostgreSQL 18 turned them on by default).
    """
    if postmaster.has_data(cluster):
        return False
    if os.path.exists(cluster.data_dir) and os.listdir(cluster.data_dir):
        raise HamnError(f"{cluster.data_dir} is not empty and holds no cluster; move it aside first")
    cluster.run(
        "initdb", "-D", cluster.data_dir, "-U", cluster.superuser,
        "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
        *versions.initdb_checksum_args(major, data_checksums),
        timeout=300,
    )
    return True


def current_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def desired_server_files(cluster, cfg, major, extra_clients=()):
    """{path: (text, mode)}: hamn.conf and the managed blocks of the admin's files."""
    files = {
        os.path.join(cluster.conf_dir, conf.SETTINGS_FILE):
            (conf.render_settings(conf.replication_settings(cfg, cluster, major)), 0o644),
    }
    # Includes go last so hamn's values win over earlier lines of postgresql.conf.
    for name, body, top in (
        ("postgresql.conf", conf.include_lines(), False),
        ("pg_hba.conf", conf.hba_lines(cfg, extra_clients), True),
        ("pg_ident.conf", conf.ident_lines(cfg), False),
    ):
        path = os.path.join(cluster.conf_dir, name)
        files[path] = (conf.with_block(current_text(path) or "", body, top=top), None)  # keep its mode
    return files


def pending(files):
    """Paths of ``files`` ({path: (text, mode)}) whose content differs on disk."""
    return [path for path, (text, _) in files.items() if current_text(path) != text]


def write(files, owner):
    """Write ``files``; return the base names of those that changed."""
    changed = []
    for path, (text, mode) in files.items():
        if mode is None:
            mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
        if fileops.write_atomic(path, text, owner=owner, mode=mode):
            changed.append(os.path.basename(path))
    return changed


def write_server_files(cluster, cfg, major, extra_clients=()):
    """hamn.conf include, pg_hba/pg_ident managed blocks. Returns changed file names."""
    return write(desired_server_files(cluster, cfg, major, extra_clients), cluster.os_user)
