{#- The seed's "After the failed management node is back up and running": the
    node that is not primary becomes the standby of the current primary.

        salt-run state.orchestrate hamn.rejoin [test=True]

    pg_rewind when possible, else a fresh base backup (the old data dir is moved
    aside, never deleted); then the seed's replication check. -#}
{%- from "hamn/_steps.jinja" import step, runner, finish with context %}
{%- set orch = "rejoin" %}
{%- set pair = salt["saltutil.runner"]("hamn.roles") %}
{%- set primary = pair.primary %}
{%- set node = pair.standby %}
{%- set steps = [] %}

{{ runner(steps, "take the hamn lock", "hamn.lock", orchestration=orch) }}
{{ step(orch, steps, "make sure xCAT services are stopped on " ~ node, "services-stop", node, "hamn.services_stop") }}
{{ step(orch, steps, "make sure " ~ node ~ " does not hold the VIP", "vip-down", node, "hamn.vip_down") }}
{{ step(orch, steps, "rejoin " ~ node ~ " as standby of " ~ primary, "rejoin", node, "hamn.rewind",
        kwargs={"fallback": True}, timeout=3600) }}
{{ step(orch, steps, "verify replication " ~ primary ~ " -> " ~ node, "verify", primary, "hamn.verify_replication") }}
{{ finish(orch, steps, node ~ " rejoined as standby of " ~ primary) }}
