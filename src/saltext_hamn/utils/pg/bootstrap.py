"""Create a cluster and put hamn's replication configuration into it."""

import os

from saltext_hamn.utils import fileops
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.pg import conf, postmaster


def initdb(cluster):
    """initdb an empty data directory (refuses a non-empty one)."""
    if postmaster.has_data(cluster):
        return False
    if os.path.exists(cluster.data_dir) and os.listdir(cluster.data_dir):
        raise HamnError(f"{cluster.data_dir} is not empty and holds no cluster; move it aside first")
    cluster.run(
        "initdb", "-D", cluster.data_dir, "-U", cluster.superuser,
        "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
        timeout=300,
    )
    return True


def _edit(path, body, owner, top):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    return fileops.write_atomic(path, conf.with_block(text, body, top=top), owner=owner, mode=0o600)


def write_server_files(cluster, cfg, major, extra_clients=()):
    """hamn.conf include, pg_hba/pg_ident managed blocks. Returns changed file names."""
    owner = cluster.os_user
    changed = []
    settings = conf.render_settings(conf.replication_settings(cfg, cluster, major))
    if fileops.write_atomic(os.path.join(cluster.conf_dir, conf.SETTINGS_FILE), settings, owner=owner, mode=0o644):
        changed.append(conf.SETTINGS_FILE)
    # Includes go last so hamn's values win over earlier lines of postgresql.conf.
    for name, body, top in (
        ("postgresql.conf", conf.include_lines(), False),
        ("pg_hba.conf", conf.hba_lines(cfg, extra_clients), True),
        ("pg_ident.conf", conf.ident_lines(cfg), False),
    ):
        if _edit(os.path.join(cluster.conf_dir, name), body, owner, top):
            changed.append(name)
    return changed
