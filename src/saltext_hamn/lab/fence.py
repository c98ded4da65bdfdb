"""The lab's fence command: "power off" a node (stands in for IPMI / xCAT rpower off).

It SIGKILLs every process in the node's namespace and removes the VIP from its
interface, so the node neither serves nor answers ARP any more, as a powered-off
host would. The master runs it through ``salt-run hamn.fence`` (hamn:fence:cmd).
"""

import os

from saltext_hamn.lab.spec import NODE_IFACE, PREFIXLEN, VIP_ADDRESS

_SCRIPT = """#!/bin/sh
# hamn-lab fence: power off a lab node (lab only; a real pillar names IPMI or rpower).
node="$1"
case "$node" in {nodes}) ;; *) echo "fence: unknown node '$node'" >&2; exit 2 ;; esac
ns="{prefix}-$node"
printf '%s\\tfence\\t%s\\n' "$(date +%s.%N)" "$node" >> '{log}'
for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
ip -n "$ns" addr del {vip}/{prefixlen} dev {iface} 2>/dev/null
exit 0
"""


def install(spec):
    bin_dir = spec.lab_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "fence"
    path.write_text(_SCRIPT.format(nodes="|".join(spec.nodes), prefix=spec.prefix, log=spec.lab_dir / "fence.log",
                                   vip=VIP_ADDRESS, prefixlen=PREFIXLEN, iface=NODE_IFACE), encoding="utf-8")
    os.chmod(path, 0o755)
    return path


def fenced(spec):
    """Nodes fenced so far, in order."""
    log = spec.lab_dir / "fence.log"
    return [line.split("\t")[2] for line in log.read_text().splitlines()] if log.exists() else []
