{#- Planned switchover, zero loss. The seed's "Take down the current primary
    management node", "Bring up the new primary management node" and "After the
    failed management node is back up", in one run:

        salt-run state.orchestrate hamn.switchover            # do it
        salt-run state.orchestrate hamn.switchover test=True  # list the steps only

    Who is primary is discovered now (hamn.roles), not read from the pillar. -#}
{%- from "hamn/_steps.jinja" import step, runner, finish with context %}
{%- set orch = "switchover" %}
{%- set pair = salt["saltutil.runner"]("hamn.roles") %}
{%- set old, new = pair.primary, pair.standby %}
{%- set cfg = pair.config or {} %}
{%- set sn = (cfg.get("services") or {}).get("service_nodes") or {} %}
{%- set reset = (cfg.get("hooks") or {}).get("diskless_reset") or {} %}
{%- set steps = [] %}

{{ runner(steps, "take the hamn lock", "hamn.lock", orchestration=orch) }}
{{ runner(steps, "check both nodes are healthy and in sync", "hamn.check", orchestration=orch) }}
{{ step(orch, steps, "stop xCAT services on " ~ old, "services-stop", old, "hamn.services_stop") }}
{%- for name in (sn.get("names") or []) if sn.get("target") %}
{{ step(orch, steps, "stop " ~ name ~ " on the service nodes", "service-nodes-stop", sn.target, "service.stop",
        args=[name], tgt_type=sn.tgt_type) }}
{%- endfor %}
{{ runner(steps, "stop PostgreSQL on " ~ old ~ ", wait until " ~ new ~ " has received all of it", "hamn.handover",
          orchestration=orch, old=old, new=new) }}
{{ step(orch, steps, "drop the VIP on " ~ old, "vip-down", old, "hamn.vip_down") }}
{{ step(orch, steps, "promote " ~ new, "promote", new, "hamn.promote") }}
{{ step(orch, steps, "raise the VIP on " ~ new ~ " (ARP probe, gratuitous ARP)", "vip-up", new, "hamn.vip_up") }}
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
{{ step(orch, steps, "rejoin " ~ old ~ " as standby of " ~ new, "rejoin", old, "hamn.rewind",
        kwargs={"fallback": True}, timeout=3600) }}
{{ step(orch, steps, "verify replication " ~ new ~ " -> " ~ old, "verify", new, "hamn.verify_replication") }}
{{ finish(orch, steps, "primary " ~ old ~ " -> " ~ new) }}
