"""Names, addresses and paths of one lab; a prefix keeps two labs apart."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

# RFC 5737 documentation range; it only ever exists inside the lab's namespaces.
WITNESS_ADDRESS = "198.51.100.1"
NODE_ADDRESSES = {"mn1": "198.51.100.11", "mn2": "198.51.100.12"}
VIP_ADDRESS = "198.51.100.10"
PREFIXLEN = 24
BRIDGE = "br0"
NODE_IFACE = "eth0"
DEFAULT_BASE = "/var/tmp/hamn-lab"


@dataclass(frozen=True)
class LabSpec:
    prefix: str = "hamnlab"
    base_dir: str = DEFAULT_BASE
    repo_dir: str | None = None
    # PostgreSQL to use when the lab is made: a major ("18") or a bindir; None = newest Debian.
    pg: str | None = None

    def __post_init__(self):
        # Namespace names and veth names must stay short (IFNAMSIZ = 16).
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", self.prefix):
            raise ValueError(
                f"lab prefix {self.prefix!r}: expected 1-10 lowercase letters/digits, starting with a letter"
            )

    @classmethod
    def from_env(cls, prefix=None, pg=None):
        return cls(
            prefix=prefix or os.environ.get("HAMN_LAB_PREFIX", "hamnlab"),
            base_dir=os.environ.get("HAMN_LAB_DIR", DEFAULT_BASE),
            repo_dir=os.environ.get("HAMN_REPO_DIR"),
            pg=pg or os.environ.get("HAMN_PG") or None,
        )

    nodes = tuple(NODE_ADDRESSES)

    @property
    def lab_dir(self):
        return Path(self.base_dir) / self.prefix

    @property
    def witness_ns(self):
        return f"{self.prefix}-w"

    def node_ns(self, node):
        return f"{self.prefix}-{node}"

    @property
    def namespaces(self):
        return [self.witness_ns, *(self.node_ns(n) for n in self.nodes)]

    def node_dir(self, node):
        return self.lab_dir / node

    def veth(self, node):
        return f"v{node}"

    @property
    def states_dir(self):
        """The repo's states/ tree (the master's file_roots)."""
        if self.repo_dir:
            return Path(self.repo_dir) / "states"
        here = Path(__file__).resolve()
        for parent in here.parents:
            if (parent / "states" / "hamn").is_dir() and (parent / "setup.py").is_file():
                return parent / "states"
        return Path.cwd() / "states"
