"""The cluster services and the commands run around a takeover, as ordered steps.

The seed's failover section stops xcatd and dhcpd on the old primary and, on the
new one, restarts the daemons and then regenerates the node-facing services by
hand (``makedns``, ``makedhcp -a``, ``makeconservercf``), after pointing the
site table at the virtual IP (``chdef -t site master=<vip>``).  This module runs
those commands from the validated pillar (:mod:`saltext_hamn.utils.config`):

* :func:`stop_services` / :func:`start_services` -- ``services:names`` in
  configured order / in reverse, with ``services:stop_cmd`` / ``start_cmd``;
* :func:`service_states` -- ``services:status_cmd`` per service;
* :func:`run_hooks` -- ``hooks:post_promotion``, ``xcat:site_cmds`` (+ the
  network object's tftpserver) or ``hooks:diskless_reset``.

Every runner returns a list of step dicts in execution order::

    {"name": "makedhcp", "argv": ["makedhcp", "-a"], "retcode": 0,
     "stdout": "...", "stderr": "", "seconds": 0.012, "optional": False}

A failing step that is not optional raises :class:`StepFailed` carrying the steps
run so far (the failed one last); later steps are not run.  A failing optional
step is recorded and the sequence goes on.  A timeout counts as a failure with
retcode -1, a missing command as 127.  Commands are argument lists run without a
shell; only the argv is logged, never the environment.
"""

import logging
import time

from salt.exceptions import SaltInvocationError

from saltext_hamn.utils import config, proc
from saltext_hamn.utils.errors import CommandFailed, HamnError

log = logging.getLogger(__name__)

#: Seconds allowed to one stop/start/status/site/diskless command (hooks have their own).
COMMAND_TIMEOUT = 300
#: Characters of stdout/stderr kept per step (the tail: errors come last).
OUTPUT_LIMIT = 4000
#: Values of ``which`` accepted by :func:`run_hooks`.
HOOK_KINDS = ("post_promotion", "site", "diskless_reset")


class StepFailed(HamnError):
    """A mandatory step of a sequence failed; ``.steps`` holds the results so far."""

    def __init__(self, step, steps):
        self.step = step
        self.steps = list(steps)
        detail = _last_line(step["stderr"]) or _last_line(step["stdout"]) or "no error output"
        super().__init__(f"{step['name']} failed (exit {step['retcode']}): {detail}")


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _trim(text, limit=OUTPUT_LIMIT):
    text = text or ""
    if len(text) <= limit:
        return text
    return "...[trimmed]\n" + text[-limit:]


def run_step(name, argv, *, timeout=COMMAND_TIMEOUT, optional=False):
    """Run one command and return its step dict; never raises for the command's failure."""
    argv = [str(arg) for arg in argv]
    log.info("hamn: step %s: %s", name, argv)
    started = time.monotonic()
    try:
        result = proc.run(argv, timeout=timeout, check=False, what=name)
        retcode, stdout, stderr = result.returncode, result.stdout, result.stderr
    except CommandFailed as exc:  # timeout (-1) or command not found (127)
        retcode, stdout, stderr = exc.returncode, "", exc.stderr
    except OSError as exc:  # e.g. not executable
        retcode, stdout, stderr = 126, "", f"cannot run {argv[0]}: {exc.strerror or exc}"
    step = {
        "name": name,
        "argv": argv,
        "retcode": retcode,
        "stdout": _trim(stdout),
        "stderr": _trim(stderr),
        "seconds": round(time.monotonic() - started, 3),
        "optional": bool(optional),
    }
    if retcode != 0:
        log.warning("hamn: step %s failed (exit %s)%s", name, retcode,
                    " [optional, continuing]" if optional else "")
    return step


def run_sequence(plan):
    """Run ``plan`` ([{name, argv, timeout, optional}]) in order; see the module doc."""
    steps = []
    for item in plan:
        step = run_step(item["name"], item["argv"], timeout=item.get("timeout", COMMAND_TIMEOUT),
                        optional=item.get("optional", False))
        steps.append(step)
        if step["retcode"] != 0 and not step["optional"]:
            raise StepFailed(step, steps)
    return steps


# --------------------------------------------------------------------------- services


def _selected(cfg, names):
    """The configured service names, limited to ``names`` (kept in configured order)."""
    configured = list(cfg["services"]["names"])
    if names is None:
        return configured
    if isinstance(names, str):  # salt CLI: names=xcatd,dhcpd
        names = [name.strip() for name in names.split(",") if name.strip()]
    if not isinstance(names, (list, tuple, set)):
        raise SaltInvocationError(f"names: expected a list of service names, got {type(names).__name__}")
    unknown = [str(name) for name in names if name not in configured]
    if unknown:
        raise SaltInvocationError(
            f"names: not configured in hamn:services:names: {', '.join(unknown)} "
            f"(configured: {', '.join(configured) or 'none'})"
        )
    wanted = set(names)
    return [name for name in configured if name in wanted]


def _service_plan(cfg, names, key, verb):
    cmd = cfg["services"][key]
    return [
        {"name": f"{verb} {name}", "argv": config.format_argv(cmd, service=name)}
        for name in names
    ]


def stop_services(cfg, names=None):
    """Stop the configured services in ``services:names`` order (or the subset ``names``).

    Stopping a stopped service is fine (``systemctl stop`` is idempotent). Returns
    the step list; raises StepFailed at the first failure.
    """
    return run_sequence(_service_plan(cfg, _selected(cfg, names), "stop_cmd", "stop"))


def start_services(cfg, names=None):
    """Start the configured services in reverse ``services:names`` order (or the subset)."""
    names = list(reversed(_selected(cfg, names)))
    return run_sequence(_service_plan(cfg, names, "start_cmd", "start"))


def service_states(cfg):
    """{service: "active" | "inactive" | "unknown"} from ``services:status_cmd``.

    Exit code 0 is "active", any other exit code "inactive"; a status command that
    cannot be run (missing, not executable, timed out) gives "unknown".
    """
    states = {}
    for name in cfg["services"]["names"]:
        argv = config.format_argv(cfg["services"]["status_cmd"], service=name)
        try:
            result = proc.run(argv, timeout=COMMAND_TIMEOUT, check=False, what=f"status {name}")
        except (CommandFailed, OSError):
            states[name] = "unknown"
            continue
        states[name] = "active" if result.returncode == 0 else "inactive"
    return states


# --------------------------------------------------------------------------- hooks


def _format(cmd, label, **values):
    try:
        return config.format_argv(cmd, **values)
    except SaltInvocationError as exc:
        hint = " (pass node=<minion id>)" if "'node'" in str(exc) and "node" not in values else ""
        raise SaltInvocationError(f"{label}: {exc}{hint}") from None


def hook_plan(cfg, which="post_promotion", node=None):
    """The steps :func:`run_hooks` would run, with placeholders filled (nothing is run).

    Every command is formatted before the first one runs, so a bad placeholder is an
    invocation error rather than a half-run sequence.
    """
    if which not in HOOK_KINDS:
        raise SaltInvocationError(f"which: expected one of: {', '.join(HOOK_KINDS)}, got {which!r}")
    vip = cfg["vip"]["address"]
    if which == "post_promotion":
        values = {"vip": vip}
        if node is not None:
            values["node"] = str(node)
        return [
            {
                "name": hook["name"],
                "argv": _format(hook["cmd"], f"hamn:hooks:post_promotion:{index}:cmd", **values),
                "timeout": hook["timeout"],
                "optional": hook["optional"],
            }
            for index, hook in enumerate(cfg["hooks"]["post_promotion"])
        ]
    if which == "site":
        plan = []
        for index, cmd in enumerate(cfg["xcat"]["site_cmds"]):
            argv = _format(cmd, f"hamn:xcat:site_cmds:{index}", vip=vip)
            plan.append({"name": " ".join(argv), "argv": argv})
        network = cfg["xcat"].get("network")
        if network:  # the seed's "chdef -t network <net> tftpserver=<vip>"
            argv = ["chdef", "-t", "network", network, f"tftpserver={vip}"]
            plan.append({"name": " ".join(argv), "argv": argv})
        return plan
    reset = cfg["hooks"]["diskless_reset"]
    if not reset["enabled"]:
        return []
    argv = _format(reset["cmd"], "hamn:hooks:diskless_reset:cmd", noderange=reset["noderange"])
    return [{"name": "diskless_reset", "argv": argv}]


def run_hooks(cfg, which="post_promotion", node=None):
    """Run one group of takeover commands in order and return the step list.

    ``which``: ``post_promotion`` (``hooks:post_promotion``, placeholders ``{vip}``
    and ``{node}`` = ``node``, each hook with its own timeout and optional flag),
    ``site`` (``xcat:site_cmds`` with ``{vip}``, then ``chdef -t network <network>
    tftpserver=<vip>`` when ``xcat:network`` is set) or ``diskless_reset``
    (``hooks:diskless_reset``; an empty list when disabled).
    """
    return run_sequence(hook_plan(cfg, which, node=node))
