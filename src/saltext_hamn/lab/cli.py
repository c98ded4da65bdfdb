"""``hamn-lab``: a two-node xCAT HA lab in network namespaces on one root machine."""

import argparse
import json
import os
import sys

from saltext_hamn.lab import drill, saltd
from saltext_hamn.lab.lab import Lab, say
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError


def _parser():
    parser = argparse.ArgumentParser(prog="hamn-lab", description=__doc__)
    parser.add_argument("--prefix", help="name prefix of this lab (env HAMN_LAB_PREFIX, default hamnlab)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build or repair the lab; waits until minions answer and the standby streams")
    sub.add_parser("down", help="remove every namespace, process and directory of the lab")
    sub.add_parser("status", help="show namespaces, PostgreSQL roles, daemons")
    sub.add_parser("demo", help="up, write a canary through the VIP, read it on the standby, down")
    for name in ("salt", "salt-run"):
        p = sub.add_parser(name, help=f"run {name} on the lab master (witness namespace)")
        p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("run-on", help="run a command inside a node's namespace")
    p.add_argument("node")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if os.geteuid() != 0:
        print("hamn-lab: must run as root (network namespaces, the postgres OS user)", file=sys.stderr)
        return 2
    spec = LabSpec.from_env(args.prefix)
    # hamn-lab up/demo arm the automation (heartbeat beacon + reactor); tests opt in.
    lab = Lab(spec, automation=True)
    if args.command == "up":
        lab.up()
    elif args.command == "down":
        lab.down()
        left = lab.leftovers()
        if left:
            say("left behind: " + "; ".join(left))
            return 1
    elif args.command == "status":
        print(json.dumps(lab.status(), indent=2, sort_keys=True))
    elif args.command == "demo":
        return demo(lab)
    elif args.command in ("salt", "salt-run"):
        cmd = saltd.salt_cmd(spec, *args.args, runner=args.command == "salt-run")
        return os.spawnvp(os.P_WAIT, cmd[0], cmd)
    elif args.command == "run-on":
        if args.node not in spec.nodes:
            print(f"hamn-lab: unknown node {args.node!r}; expected one of {', '.join(spec.nodes)}", file=sys.stderr)
            return 2
        cmd = ["ip", "netns", "exec", spec.node_ns(args.node), *args.cmd]
        env = dict(os.environ, **saltd.minion_env(spec, args.node))
        return os.spawnvpe(os.P_WAIT, cmd[0], cmd, env)
    return 0


def demo(lab):
    """The whole drill: setup, switchover, failover after the primary dies, rejoin."""
    spec = lab.spec

    def orchestrate(name):
        say(f"salt-run state.orchestrate hamn.{name}")
        ok, steps = drill.orchestrate(spec, name)
        drill.show(say, name, ok, steps)
        if not ok:
            raise HamnError(f"hamn.{name} failed")

    try:
        lab.prepare()
        lab.up_salt()
        orchestrate("setup")
        say("lab: create the xCAT database and its role (xCAT's own setup, not hamn's)")
        lab.xcat_database(lab.current_primary())
        orchestrate("switchover")
        lab.canary_through_vip(raise_vip=False)
        say("salt-run state.orchestrate hamn.failover   (on a healthy pair: must be refused)")
        ok, steps = drill.orchestrate(spec, "failover")
        if ok:
            raise HamnError("hamn.failover ran on a healthy pair")
        say(f"  refused: {steps[0][3]}")
        primary = lab.current_primary()
        standby = next(n for n in spec.nodes if n != primary)
        say(f"{primary} dies: SIGKILL to its PostgreSQL and its salt-minion; nobody types a command")
        drill.kill_node_services(spec, primary)
        took = drill.wait_primary(lab, standby, timeout=60)
        say(f"  {standby} took over by itself: primary {took:.1f} s after the kill "
            "(heartbeat -> master's rule -> watchdog fence -> promote + VIP)")
        print(proc.run(saltd.salt_cmd(spec, "hamn.status", runner=True), check=False).stdout, flush=True)
        say(f"{primary} is back: its salt-minion starts again")
        saltd.start_minion(spec, primary)
        saltd.wait_minion_ready(spec, primary)
        orchestrate("rejoin")
        token = lab.canary_through_vip(raise_vip=False)
        print(proc.run(saltd.salt_cmd(spec, "hamn.status", runner=True), check=False).stdout, flush=True)
    except HamnError as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        lab.down()
    left = lab.leftovers()
    if left:
        say("left behind: " + "; ".join(left))
        return 1
    say(f"demo complete: setup, switchover, failover and rejoin done; the canary row {token} "
        "written through the VIP on the primary was read on the standby")
    return 0


if __name__ == "__main__":
    sys.exit(main())
