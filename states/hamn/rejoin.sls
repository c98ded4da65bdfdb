{#- The seed's "After the failed management node is back up and running": the
    node that is not primary becomes the standby of the current primary.

        salt-run state.orchestrate hamn.rejoin [test=True]

    pg_rewind when possible, else a fresh base backup; commits the node made
    after the fork are kept (WAL copied aside, or the old data dir moved aside)
    and reported, never deleted. Then the seed's replication check. -#}
{%- from "hamn/_steps.jinja" import pipeline with context %}
{{ pipeline("rejoin", [
    ["services-stop-old", "make sure xCAT services are stopped on the node that rejoins"],
    ["vip-down-old", "make sure the node that rejoins does not hold the VIP"],
    ["rejoin-old", "rejoin the node as standby of the primary (diverged commits kept)"],
    ["verify", "verify replication from the primary"],
]) }}
