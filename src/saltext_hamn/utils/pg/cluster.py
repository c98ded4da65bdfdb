"""Where a PostgreSQL cluster lives and how to run its tools."""

import os
from dataclasses import dataclass, field

from saltext_hamn.utils import proc


@dataclass(frozen=True)
class Cluster:
    """One PostgreSQL cluster on this node.

    ``wrap`` is an argv prefix put in front of every server command; the lab uses it
    to run a node's tools inside that node's network namespace (``ip netns exec``).
    """

    bindir: str
    data_dir: str
    port: int = 5432
    socket_dir: str = "/var/run/postgresql"
    os_user: str = "postgres"
    superuser: str = "postgres"
    config_dir: str | None = None
    log_file: str | None = None
    passfile: str | None = None
    wrap: tuple = field(default=())

    @property
    def conf_dir(self):
        """Directory holding postgresql.conf / pg_hba.conf (Debian keeps them in /etc)."""
        return self.config_dir or self.data_dir

    @property
    def server_log(self):
        # pg_ctl needs -l: without it the postmaster inherits our stdout pipe.
        return self.log_file or os.path.join(
            os.path.dirname(self.data_dir.rstrip("/")),
            os.path.basename(self.data_dir.rstrip("/")) + "-hamn.log",
        )

    @property
    def pgpass(self):
        """libpq password file used for replication connections (mode 0600, os_user)."""
        return self.passfile or os.path.join(
            os.path.dirname(self.data_dir.rstrip("/")), ".hamn.pgpass"
        )

    def tool(self, name, *args):
        """argv for a PostgreSQL binary, run as the OS user inside ``wrap``."""
        return [*self.wrap, *proc.as_user(self.os_user, [os.path.join(self.bindir, name), *args])]

    def run(self, name, *args, **kwargs):
        kwargs.setdefault("what", name)
        return proc.run(self.tool(name, *args), **kwargs)


def from_config(cfg, **overrides):
    """Build the local Cluster from a validated hamn config (see utils.config)."""
    pg = cfg["postgres"]
    values = {
        "bindir": pg["bindir"],
        "data_dir": pg["data_dir"],
        "port": pg["port"],
        "socket_dir": pg["socket_dir"],
        "os_user": pg["os_user"],
        "superuser": pg["superuser"],
        "config_dir": pg.get("config_dir"),
        "log_file": pg.get("log_file"),
        "passfile": pg.get("passfile"),
    }
    values.update(overrides)
    return Cluster(**values)
