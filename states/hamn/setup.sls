{#- First setup of the pair: the seed's "Configuration Requirements", "Setup
    PostgreSQL replication", "Verify the database replication configuration",
    the VIP, xCAT's name resolution and site table, and the first file sync.

        salt-run state.orchestrate hamn.setup [test=True]

    The primary is the node already running as primary, else hamn:initial_primary. -#}
{%- from "hamn/_steps.jinja" import step, runner, finish with context %}
{%- set orch = "setup" %}
{%- set pair = salt["saltutil.runner"]("hamn.roles") %}
{%- set cfg = pair.config or {} %}
{%- set primary = pair.primary or cfg.get("initial_primary") %}
{%- set standby = (pair.nodes | reject("equalto", primary) | list | first) if primary else None %}
{%- set steps = [] %}

{{ runner(steps, "take the hamn lock", "hamn.lock", orchestration=orch) }}
{{ runner(steps, "preflight on both nodes, versions compared", "hamn.preflight", orchestration=orch) }}
{{ step(orch, steps, "configure replication on the primary " ~ primary, "replication-primary", primary,
        "state.apply", args=["hamn.replication"], timeout=600) }}
{{ step(orch, steps, "configure replication on the standby " ~ standby, "replication-standby", standby,
        "state.apply", args=["hamn.replication"], timeout=3600) }}
{{ step(orch, steps, "verify replication " ~ primary ~ " -> " ~ standby, "verify", primary,
        "hamn.verify_replication") }}
{{ step(orch, steps, "raise the VIP on " ~ primary, "vip-up", primary, "hamn.vip_up") }}
{{ step(orch, steps, "name resolution on " ~ primary ~ " (resolv.conf nameserver = VIP, hosts: files dns)",
        "resolution-primary", primary, "state.apply", args=["hamn.resolution"]) }}
{{ step(orch, steps, "name resolution on " ~ standby, "resolution-standby", standby, "state.apply",
        args=["hamn.resolution"]) }}
{{ step(orch, steps, "site table master/nameservers/tftpserver = VIP", "site", primary, "hamn.run_hooks",
        kwargs={"which": "site"}) }}
{{ step(orch, steps, "push the synced files from " ~ primary, "files-primary", primary, "state.apply",
        args=["hamn.files"]) }}
{{ step(orch, steps, "first file sync onto " ~ standby, "files-standby", standby, "state.apply",
        args=["hamn.files"]) }}
{{ finish(orch, steps, "primary " ~ primary ~ ", standby " ~ standby) }}
