"""The master's side of the hamn runner: Salt calls to the nodes, the master's own
probes, events, and the Observation they make (for ``decide.py``).

``Master(opts)`` wraps a salt-run process's master opts; the runner
(``runners/hamn.py``) stays a thin layer of public functions over it.
"""

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import salt.client
import salt.utils.event
import salt.utils.minions
from salt.exceptions import SaltInvocationError

from saltext_hamn.utils import preflight as pre, proc
from saltext_hamn.utils.config import digest as config_digest
from saltext_hamn.utils.errors import HamnError
from saltext_hamn.utils.orch import history, lock as orch_lock, runs
from saltext_hamn.utils.orch.observation import NodeView, Observation

log = logging.getLogger(__name__)

STATUS_TIMEOUT = 2  # hamn.status answers in milliseconds; a node silent this long is down
PROBE_TIMEOUT = 0.25  # a LAN answers a connect (SYN-ACK or RST) in milliseconds
MASTER_CHECK_INTERVAL = 0.5  # how soon a minion call notices that the salt-master died


class MasterLost(HamnError):
    """The salt-master died or restarted during a call: its answer is lost, the run interrupted."""


def no_return(ret):
    """Salt's own placeholder for a minion that did not answer (not the minion's error)."""
    return isinstance(ret, str) and ret.startswith("Minion did not return")


def one_line(value):
    """The last non-empty line of an error (a minion's error ends with its message)."""
    text = str(value).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


def tcp_open(host, port, timeout=PROBE_TIMEOUT):
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def probes(targets):
    """{key: open?} for {key: (host, port)}, probed in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        futures = {key: pool.submit(tcp_open, *hp) for key, hp in targets.items()}
        return {key: f.result() for key, f in futures.items()}


class Master:
    def __init__(self, opts):
        self.opts = opts
        self.dir = os.path.join(opts["cachedir"], "hamn")
        self.lock_path = os.path.join(self.dir, "orchestration.lock")

    # ------------------------------------------------------------------ Salt plumbing

    def nodes(self, tgt):
        nodes = salt.utils.minions.CkMinions(self.opts).check_minions(tgt, "compound")["minions"]
        if len(nodes) != 2:
            raise SaltInvocationError(
                f"tgt {tgt!r} matches {len(nodes)} minions ({', '.join(sorted(nodes)) or 'none'}); "
                "expected the two management nodes"
            )
        return sorted(nodes)

    def fire(self, tag, data):
        """Events are for watchers; a master that is gone must not fail or hang a step."""
        try:
            with salt.utils.event.get_master_event(self.opts, self.opts["sock_dir"], listen=False) as event:
                event.fire_event(data, tag)
        except Exception:  # pylint: disable=broad-except
            log.warning("hamn: could not fire %s (is the salt-master running?)", tag, exc_info=True)

    def identity(self):
        """(pid, start time) of the running salt-master, None when it is not running."""
        try:
            with open(self.opts["pidfile"], encoding="utf-8") as handle:
                pid = int(handle.read().strip())
            if not proc.alive(pid):
                return None
            return pid, orch_lock.owner(pid)[1]
        except (OSError, ValueError, HamnError):
            return None

    def call(self, tgt, fun, arg=(), kwarg=None, timeout=60, tgt_type="list", gather_job_timeout=None):
        """LocalClient.cmd, abandoned at once when the salt-master dies or restarts meanwhile.

        A restarted master has lost the job's returns: waiting would only run out the
        timeout (minutes for a long step), and the answer would still be lost.
        """
        extra = {"gather_job_timeout": gather_job_timeout} if gather_job_timeout else {}
        master = self.identity()
        if master is None:  # nothing would ever return: waiting would only run out the timeout
            raise MasterLost(f"the salt-master is not running, so {fun} cannot be sent to {tgt}. Start it, then "
                             "re-run the orchestration (or salt-run state.orchestrate hamn.recover): it resumes")
        outcome = {}

        def work():
            try:
                with salt.client.get_local_client(mopts=self.opts) as client:
                    outcome["client"] = client
                    outcome["ret"] = client.cmd(list(tgt) if tgt_type == "list" else tgt, fun, arg=list(arg),
                                                kwarg=kwarg or {}, tgt_type=tgt_type, timeout=timeout,
                                                full_return=True, **extra)
            except Exception as exc:  # pylint: disable=broad-except
                outcome["error"] = exc

        worker = threading.Thread(target=work, name=f"hamn {fun}", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(MASTER_CHECK_INTERVAL)
            if worker.is_alive() and self.identity() != master:
                _abandon(worker, outcome.get("client"))
                raise MasterLost(f"the salt-master stopped or restarted while {fun} ran on {tgt}: its answer is "
                                 "lost. Re-run the orchestration (or salt-run state.orchestrate hamn.recover): "
                                 "it resumes from what it finds")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["ret"]

    def call_one(self, node, fun, args=(), kwargs=None, timeout=300):
        """``fun`` on one node; its return, or HamnError naming the node (no answer / failure)."""
        result = self.call([node], fun, args, kwargs, timeout).get(node)
        if not isinstance(result, dict) or no_return(result.get("ret")):
            raise HamnError(f"{node} did not answer {fun} within {timeout}s")
        if result.get("retcode", 0) != 0:
            raise HamnError(f"{fun} failed on {node}: {one_line(result.get('ret'))}")
        return result.get("ret")

    def call_each(self, calls, timeout=300):
        """Different functions on different nodes at the same time: ``{node: (fun, args,
        kwargs)}`` -> ``{node: return}``. Waits for all; then raises for the failures
        (MasterLost first: then no answer means anything)."""
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {node: pool.submit(self.call_one, node, fun, args, kwargs, timeout)
                       for node, (fun, args, kwargs) in calls.items()}
        results, errors = {}, {}
        for node, future in futures.items():
            try:
                results[node] = future.result()
            except Exception as exc:  # pylint: disable=broad-except
                errors[node] = exc
        lost = next((e for e in errors.values() if isinstance(e, MasterLost)), None)
        if lost:
            raise lost
        if errors:
            raise HamnError("; ".join(one_line(e) for e in errors.values()))
        return results

    def call_target(self, target, tgt_type, fun, args, timeout=300):
        """``fun`` on every minion of a target (service nodes); fails if any fails or none answers."""
        results = self.call(target, fun, args, timeout=timeout, tgt_type=tgt_type)
        failed = {m: r.get("ret") for m, r in results.items() if isinstance(r, dict) and r.get("retcode", 0) != 0}
        if not results or failed:
            raise HamnError(f"{fun} {' '.join(args)} failed on {target}: {failed or 'no minion answered'}")
        return {m: r.get("ret") for m, r in results.items()}

    def disconnected(self, nodes):
        """Nodes the master knows are not connected to its publisher (Salt's "[Not connected]").

        Asking them would only wait out the timeout. A node without cached grains is
        never assumed disconnected.
        """
        minions = salt.utils.minions.CkMinions(self.opts)
        try:
            connected = minions.connected_ids(subset=list(nodes))
            known = [n for n in nodes if minions.cache.fetch("grains", n)]
        except Exception:  # pylint: disable=broad-except
            log.debug("hamn: cannot tell which minions are connected", exc_info=True)
            return []
        return [n for n in known if n not in connected]

    # ------------------------------------------------------------------ observing

    def observe(self, tgt, force=False, fenced=None, live_token=None, cfg=None):
        """An Observation: both nodes' hamn.status (or silence, or error) and the master's probes."""
        nodes = self.nodes(tgt)
        # With the config known beforehand (a step's), the master's own probes run while
        # the nodes answer: a powered-off node's probe waits out its whole timeout.
        early = None
        if cfg:
            early = ThreadPoolExecutor(max_workers=1)
            probed = early.submit(probes, _probe_targets(cfg, nodes))
        asked = [n for n in nodes if n not in self.disconnected(nodes)]
        raw = self.call(asked, "hamn.status", timeout=STATUS_TIMEOUT, gather_job_timeout=1) if asked else {}
        views = {n: NodeView(name=n) for n in nodes}
        for node, result in raw.items():
            if node not in views or not isinstance(result, dict):
                continue
            ret = result.get("ret")
            if result.get("retcode", 0) == 0 and isinstance(ret, dict):
                views[node].status = ret
            elif not no_return(ret):
                views[node].error = one_line(ret)
        history.remember_statuses(self.dir, {n: v.status for n, v in views.items() if v.status is not None})
        last = history.last_statuses(self.dir)
        for node, view in views.items():
            if view.status is None:
                view.last_known = (last.get(node) or {}).get("status")
        opened = {}
        if early is not None:
            opened = probed.result()
            early.shutdown()
        cfg = cfg or self.config(nodes, views)
        if cfg:
            opened = opened or probes(_probe_targets(cfg, nodes))
            for node, view in views.items():
                view.address = cfg["nodes"].get(node, {}).get("address")
                view.pg_port_open = opened.get(node)
        return Observation(
            nodes=views, cfg=cfg, vip_port_open=opened.get("vip"), record=runs.record(self.dir),
            unfinished=runs.unfinished(self.dir, live_token=live_token or self.live_token()),
            force=bool(force), fenced_by_admin=fenced,
        )

    def live_token(self):
        """The token of the run holding the lock, when its process lives."""
        state = orch_lock.holder_state(self.lock_path)
        return (state.get("record") or {}).get("token") if state.get("alive") else None

    def config(self, nodes, views):
        """The validated config (password redacted) from an answering node, else the last one seen."""
        cached = self.cached_config()
        for node in nodes:
            if views[node].status is None:
                continue
            said = views[node].status.get("config_digest")
            if cached and said and said == config_digest(cached):
                return cached  # unchanged since the copy kept here: no round trip
            result = self.call([node], "hamn.config", timeout=STATUS_TIMEOUT).get(node)
            if isinstance(result, dict) and result.get("retcode") == 0 and isinstance(result.get("ret"), dict):
                history.write_json(self.config_path, result["ret"])
                return result["ret"]
        return self.cached_config()

    @property
    def config_path(self):
        return os.path.join(self.dir, "last_config.json")

    def cached_config(self):
        return history.read_json(self.config_path)

    # ------------------------------------------------------------------ actions

    def demote_node(self, node):
        """Services off, PostgreSQL stopped boot-safe, VIP dropped: ``node`` is no writer."""
        self.call_one(node, "hamn.services_stop")
        ret = self.call_one(node, "hamn.demote", timeout=120)
        self.call_one(node, "hamn.vip_down")
        return ret

    def preflight(self, tgt, timeout=60):
        nodes = self.nodes(tgt)
        raw = self.call(nodes, "hamn.preflight", kwarg={"reference_time": time.time()}, timeout=timeout)
        reports = {n: r.get("ret") for n, r in raw.items() if isinstance(r, dict) and r.get("retcode") == 0}
        failed = [f"{n}: no answer" for n in nodes if n not in reports]
        for node, result in sorted(reports.items()):
            failed += [f"{node}: {c['name']}: {c['reason']}" for c in result["checks"] if not c["ok"]]
        compared = pre.compare(reports)
        failed += [f"{c['name']}: {c['reason']}" for c in compared if not c["ok"]]
        self.fire("hamn/preflight", {"ok": not failed, "failed": failed})
        if failed:
            raise HamnError("preflight failed: " + "; ".join(failed))
        return {"reports": reports, "compared": compared}


def _probe_targets(cfg, nodes):
    """{node or "vip": (address, PostgreSQL port)} for the master's own probes."""
    port = cfg["postgres"]["port"]
    targets = {n: (cfg["nodes"][n]["address"], port) for n in nodes if n in cfg["nodes"]}
    targets["vip"] = (cfg["vip"]["address"], port)
    return targets


def _abandon(worker, client):
    """Close the stuck client's connections so the wait ends and nothing blocks the exit."""
    if client is not None:
        try:
            client.destroy()
        except Exception:  # pylint: disable=broad-except
            log.debug("hamn: closing an abandoned LocalClient failed", exc_info=True)
    worker.join(5)


class StepContext:
    """What an orchestration step may do on the master (see steps.py); one per step."""

    def __init__(self, master, tgt, run):
        self.master, self.tgt, self.run = master, tgt, run
        self.cfg = master.cached_config()
        self._seen = None
        self.timings = []  # (what, seconds): where a step's time went, for its record

    def _timed(self, what, func, *args):
        started = time.monotonic()
        try:
            return func(*args)
        finally:
            self.timings.append((what, round(time.monotonic() - started, 3)))

    def observe(self, fresh=False):
        """Both nodes now; within one step the first observation is reused unless ``fresh``."""
        if fresh or self._seen is None:
            self._seen = self._timed("observe", lambda: self.master.observe(self.tgt, live_token=self.run["token"],
                                                                             cfg=self.cfg))
        return self._seen

    def config(self):
        return self.cfg

    def call(self, node, fun, args=(), kwargs=None, timeout=300):
        return self._timed(f"{node} {fun}", self.master.call_one, node, fun, args, kwargs, timeout)

    def call_each(self, calls, timeout=300):
        what = " | ".join(f"{node} {fun}" for node, (fun, _, _) in calls.items())
        return self._timed(what, self.master.call_each, calls, timeout)

    def call_target(self, target, tgt_type, fun, args):
        return self.master.call_target(target, tgt_type, fun, args)

    def fence(self, node):
        fence = self.cfg["fence"]
        argv = [a.replace("{node}", node) for a in fence["cmd"]]
        result = proc.run(argv, timeout=fence["timeout"], check=False, what="fence command")
        self.master.fire("hamn/fence", {"node": node, "argv": argv, "retcode": result.returncode})
        if result.returncode != 0:
            raise HamnError(f"fencing {node} failed (exit {result.returncode}): {one_line(result.stderr)}")
        return f"fence command exit 0 ({argv[0]})"

    def probe_pg(self, node):
        return tcp_open(self.cfg["nodes"][node]["address"], self.cfg["postgres"]["port"])

    def preflight(self):
        return self.master.preflight(self.tgt)

    def promoted(self, plan, run):
        fenced = plan["old"] in run.get("fenced", [])
        runs.promoted(self.master.dir, plan["new"], plan["old"], run["token"], fenced=fenced)

    def rejoined(self, node):
        runs.rejoined(self.master.dir, node)
