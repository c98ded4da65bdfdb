"""Run the hamn orchestrations in the lab and report them a line per step."""

import json
import os
import signal
import time

from saltext_hamn.lab import netns, saltd
from saltext_hamn.utils import proc
from saltext_hamn.utils.errors import HamnError


def orchestrate(spec, name, test=False, pillar=None, timeout=900):
    """``salt-run state.orchestrate hamn.<name>`` on the lab master.

    Returns (ok, steps) with steps as [(state id, result, seconds, comment)] in run order.
    """
    args = ["state.orchestrate", f"hamn.{name}", "--out=json"]
    if test:
        args.append("test=True")
    if pillar:
        args.append("pillar=" + json.dumps(pillar))
    result = proc.run(saltd.salt_cmd(spec, *args, runner=True), check=False, timeout=timeout)
    try:
        data = json.loads(result.stdout)
    except ValueError as exc:
        raise HamnError(f"state.orchestrate hamn.{name} gave no JSON: {result.stdout[-500:]} {result.stderr[-500:]}") from exc
    states = next(iter(data.get("data", {}).values()), {})
    if isinstance(states, list):  # render errors come back as a list of strings
        return False, [("render", False, 0.0, "; ".join(map(str, states)))]
    steps = []
    for ret in sorted(states.values(), key=lambda r: r.get("__run_num__", 0)):
        comment = ret.get("comment", "")
        returned = (ret.get("changes") or {}).get("return")
        if isinstance(returned, dict) and returned.get("error"):
            returned = returned["error"]  # the hamn runner's one-line failure
        if isinstance(returned, str) and returned.strip() and ret.get("result") is not None:
            comment = returned.strip().splitlines()[-1]
        steps.append((ret.get("__id__"), ret.get("result"), round(ret.get("duration", 0) / 1000, 2), comment))
    ok = data.get("retcode", 0) == 0 and all(r is not False for _, r, _, _ in steps)
    return ok, steps


def show(say, name, ok, steps, comments=False):
    """One line per step; ``comments`` adds what each step said (only failures otherwise)."""
    skipped = 0
    for ident, result, seconds, comment in steps:
        if comment.startswith("One or more requisite failed"):
            skipped += 1  # after the step that failed: listed as one line below
            continue
        mark = {True: "ok  ", None: "... ", False: "FAIL"}[result]
        line = f"  {mark} {ident} ({seconds:.2f}s)"
        if result is False or comments:
            line += f": {comment}"
        say(line)
    if skipped:
        say(f"  (the {skipped} later steps did not run)")
    say(f"hamn.{name}: {'done' if ok else 'FAILED'}")


def kill_node_services(spec, node, names=("postgres", "salt-minion")):
    """SIGKILL the named processes in a node's namespace (the 'primary dies' drill)."""
    killed = []
    for pid in netns.pids(spec.node_ns(node)):
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
                comm = handle.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read().decode(errors="replace")
        except OSError:
            continue
        if comm in names or any(n in cmd for n in names):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    time.sleep(0.2)
    return killed


def wait_primary(lab, node, timeout=60, watch=None):
    """Seconds until ``node`` runs as primary *and* holds the VIP (HamnError after ``timeout``).

    ``watch()``, when given, runs at every look (a test records what the automation decided meanwhile).
    """
    from saltext_hamn.utils.net import vip  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    spec = lab.spec
    cfg = lab.node_cfg(node)
    while time.monotonic() - started < timeout:
        try:
            writable = lab.current_primary() == node
            holds = vip.held(cfg["vip"]["address"], cfg["vip"]["interface"], netns=spec.node_ns(node))
        except Exception:  # pylint: disable=broad-except
            writable = holds = False
        if writable and holds:
            return time.monotonic() - started
        if watch is not None:
            watch()
        time.sleep(0.1)
    raise HamnError(f"{node} did not take over within {timeout}s (salt-run hamn.status says why)")
