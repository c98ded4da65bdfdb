{#- Unplanned failover: the primary may be dead or cut off. The seed's "Take down
    the current primary management node" (as far as it can still be done) and
    "Bring up the new primary management node":

        salt-run state.orchestrate hamn.failover
        salt-run state.orchestrate hamn.failover test=True
        salt-run state.orchestrate hamn.failover pillar='{"force": true}'   # accept lag past the limit

    No arguments needed: the node to promote is the standby that answers. The old
    primary is fenced first: when it answers, its services, PostgreSQL and VIP are
    stopped; when it does not, the pillar's fence command runs (hamn:fence:cmd),
    and hamn.vip_up still refuses to raise the VIP while anything answers ARP for it. -#}
{%- from "hamn/_steps.jinja" import step, runner, finish with context %}
{%- set orch = "failover" %}
{%- set pair = salt["saltutil.runner"]("hamn.roles") %}
{%- set cfg = pair.config or {} %}
{%- set new = pair.standby %}
{%- set old = pair.primary or pair.get("failed") %}
{%- set old_answers = old and old not in pair.unreachable %}
{%- set last = ((pair.last_known or {}).get(old) or {}).get("status") or {} %}
{%- set primary_lsn = last.get("current_lsn") if last.get("role") == "primary" else None %}
{%- set sn = (cfg.get("services") or {}).get("service_nodes") or {} %}
{%- set reset = (cfg.get("hooks") or {}).get("diskless_reset") or {} %}
{%- set steps = [] %}

{{ runner(steps, "take the hamn lock", "hamn.lock", orchestration=orch) }}
{%- if old_answers %}
{{ step(orch, steps, "stop xCAT services on " ~ old, "services-stop", old, "hamn.services_stop") }}
{{ step(orch, steps, "stop PostgreSQL on " ~ old, "stop-db", old, "hamn.stop_db", kwargs={"mode": "fast"}) }}
{{ step(orch, steps, "drop the VIP on " ~ old, "vip-down", old, "hamn.vip_down") }}
{%- else %}
{{ runner(steps, "fence " ~ old ~ " (not answering)", "hamn.fence", orchestration=orch, node=old,
          cmd=(cfg.get("fence") or {}).get("cmd"), timeout=(cfg.get("fence") or {}).get("timeout", 60)) }}
{%- endif %}
{%- for name in (sn.get("names") or []) if sn.get("target") %}
{{ step(orch, steps, "stop " ~ name ~ " on the service nodes", "service-nodes-stop", sn.target, "service.stop",
        args=[name], tgt_type=sn.tgt_type) }}
{%- endfor %}
{{ step(orch, steps, "promote " ~ new, "promote", new, "hamn.promote",
        kwargs={"force": salt["pillar.get"]("force", False), "primary_lsn": primary_lsn}) }}
{{ step(orch, steps, "raise the VIP on " ~ new ~ " (refused while anything answers ARP for it)", "vip-up", new,
        "hamn.vip_up") }}
{{ step(orch, steps, "start xCAT services on " ~ new, "services-start", new, "hamn.services_start") }}
{{ step(orch, steps, "run the post-promotion commands on " ~ new, "post-promotion", new, "hamn.run_hooks",
        timeout=1800) }}
{%- for name in (sn.get("names") or [])|reverse if sn.get("target") %}
{{ step(orch, steps, "start " ~ name ~ " on the service nodes", "service-nodes-start", sn.target, "service.start",
        args=[name], tgt_type=sn.tgt_type) }}
{%- endfor %}
{%- if reset.get("enabled") %}
{{ step(orch, steps, "reset the diskless nodes (" ~ reset.noderange ~ ")", "diskless-reset", new, "hamn.run_hooks",
        kwargs={"which": "diskless_reset"}, timeout=1800) }}
{%- endif %}
{{ finish(orch, steps, "failover " ~ old ~ " -> " ~ new) }}
