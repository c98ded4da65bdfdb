"""The lab's pillar: one common ``hamn`` tree plus per-node paths.

Both lab nodes share one filesystem, so each needs its own data/socket dirs; on
real hosts the common tree alone is enough.
"""

import os
import secrets

import yaml

from saltext_hamn.lab.spec import NODE_ADDRESSES, NODE_IFACE, PREFIXLEN, VIP_ADDRESS, WITNESS_ADDRESS
from saltext_hamn.utils import config
from saltext_hamn.utils.pg.cluster import from_config


def node_postgres(spec, node):
    d = spec.node_dir(node)
    return {
        "data_dir": str(d / "pgdata"),
        "socket_dir": str(d / "run"),
        "log_file": str(d / "postgresql.log"),
        "passfile": str(d / "pgpass"),
    }


def node_root(spec, node):
    """Each lab node's own "/" for synced and xCAT files (the nodes share one filesystem)."""
    return spec.node_dir(node) / "root"


def node_overrides(spec, node):
    """The per-node part of the lab pillar."""
    root = node_root(spec, node)
    return {
        "postgres": node_postgres(spec, node),
        "files": {"root_dir": str(root)},
        # The lease watchdog's ledger, status and pid file: one per node.
        "heartbeat": {"state_dir": str(spec.node_dir(node) / "lease")},
        "xcat": {"resolv_conf": str(root / "etc" / "resolv.conf"),
                 "nsswitch_conf": str(root / "etc" / "nsswitch.conf")},
    }


def common(spec, password, pg):
    """``pg``: the lab's PostgreSQL, {"major": 18, "bindir": ...} (see lab.pgbin)."""
    return {
        # No DNS in the lab: the "host names" are the addresses, which resolve without a lookup.
        "nodes": {n: {"address": a, "hostname": a} for n, a in NODE_ADDRESSES.items()},
        "initial_primary": "mn1",
        "vip": {"address": VIP_ADDRESS, "prefix": PREFIXLEN, "interface": NODE_IFACE, "label": f"{NODE_IFACE}:0"},
        # The witness plays the compute-node/service-node client of the xCAT DB.
        "postgres": {"version": pg["major"], "bindir": pg["bindir"], "db_clients": [WITNESS_ADDRESS], "auto_rebuild": True,
                     "replication": {"password": password}},
        "preflight": {"check_install": False},
        # "Power off" for the lab: kills everything in the node's namespace, drops the VIP.
        "fence": {"cmd": [str(spec.lab_dir / "bin" / "fence"), "{node}"]},
    }


def node_config(spec, node, password, pg):
    """The validated config a node's minion will see (common tree + its own paths)."""
    raw = common(spec, password, pg)
    for key, value in node_overrides(spec, node).items():
        raw[key] = {**raw.get(key, {}), **value}
    return config.load(raw)


def cluster(spec, node, cfg):
    """The node's Cluster, its tools run inside the node's namespace."""
    return from_config(cfg, wrap=("ip", "netns", "exec", spec.node_ns(node)))


def write_tree(spec, password, pg):
    """Write top.sls, hamn.sls and hamn_<node>.sls for the lab master (mode 0600)."""
    root = spec.lab_dir / "pillar"
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "top.sls": {"base": {"*": ["hamn"], **{n: [f"hamn_{n}"] for n in spec.nodes}}},
        "hamn.sls": {"hamn": common(spec, password, pg)},
        **{f"hamn_{n}.sls": {"hamn": node_overrides(spec, n)} for n in spec.nodes},
    }
    for name, data in files.items():
        path = root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=True)
    return root


def new_secret():
    return secrets.token_urlsafe(18)

