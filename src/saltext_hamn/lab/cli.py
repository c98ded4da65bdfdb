"""``hamn-lab``: a two-node xCAT HA lab in network namespaces on one root machine."""

import argparse
import json
import os
import sys

from saltext_hamn.lab import outputs, report, saltd, scenario
from saltext_hamn.lab.lab import Lab, say
from saltext_hamn.lab.spec import LabSpec
from saltext_hamn.utils.errors import HamnError


PG_HELP = ("PostgreSQL for a new lab: a major (15, 18) or a bindir (env HAMN_PG; default: the newest "
           "under /usr/lib/postgresql); an existing lab keeps the one it was made with")


def _parser():
    parser = argparse.ArgumentParser(prog="hamn-lab", description=__doc__)
    parser.add_argument("--prefix", help="name prefix of this lab (env HAMN_LAB_PREFIX, default hamnlab)")
    parser.add_argument("--pg", help=PG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build or repair the lab; waits until minions answer and the standby streams")
    up.add_argument("--pg", help=PG_HELP, default=argparse.SUPPRESS)
    sub.add_parser("down", help="remove every namespace, process and directory of the lab")
    sub.add_parser("status", help="show namespaces, PostgreSQL roles, daemons")
    for name, text in (("demo", "the drill with its report as tables: setup, switchover, the primary killed, "
                                "automatic failover, rejoin; a client writes through the VIP all along; down"),
                       ("drill", "the same, for machines too: --json prints the figures as one JSON document")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--pg", help=PG_HELP, default=argparse.SUPPRESS)
        p.add_argument("--out", help="directory for the report, the Markdown and the timeline picture "
                       "(default: a timestamped directory beside the lab)")
        if name == "drill":
            p.add_argument("--json", action="store_true", help="one JSON document on stdout, progress on stderr")
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
    spec = LabSpec.from_env(args.prefix, args.pg)
    # hamn-lab up/demo arm the automation (heartbeat beacon + reactor); tests opt in.
    lab = Lab(spec, automation=True)
    try:
        return _dispatch(args, spec, lab)
    except HamnError as exc:
        print(f"hamn-lab: {exc}", file=sys.stderr)
        return 1


def _dispatch(args, spec, lab):
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
    elif args.command in ("demo", "drill"):
        return run_drill(spec, args.out, as_json=getattr(args, "json", False))
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


def run_drill(spec, out_dir=None, as_json=False):
    """The drill in a fresh lab, torn down after; its report printed and saved."""
    stream = sys.stderr if as_json else sys.stdout

    def progress(message):
        print(f"[hamn-lab] {message}", file=stream, flush=True)

    lab = Lab(spec, out=progress, automation=True)
    drill = scenario.Drill(lab, progress)
    error = None
    try:
        drill.run()
    except HamnError as exc:
        error = str(exc)
        progress(f"drill failed: {exc}")
    finally:
        log = drill.collect(error)  # before down: the run records and the rows live in the lab
        lab.down()
    saved = outputs.save(log, out_dir or outputs.default_dir(spec), progress)
    left = lab.leftovers()
    if left:
        progress("left behind: " + "; ".join(left))
    if as_json:
        print(json.dumps(saved, indent=2))
    else:
        print(report.table(saved), flush=True)
    if error is None and not left:
        progress("drill complete: setup, switchover, refused failover, automatic failover and rejoin done")
    return 1 if error or left else 0


if __name__ == "__main__":
    sys.exit(main())
