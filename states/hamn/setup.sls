{#- First setup of the pair: the seed's "Configuration Requirements", "Setup
    PostgreSQL replication", "Verify the database replication configuration",
    the VIP, xCAT's name resolution and site table, and the first file sync.

        salt-run state.orchestrate hamn.setup [test=True]

    The primary is the node already running as primary, else hamn:initial_primary. -#}
{%- from "hamn/_steps.jinja" import pipeline with context %}
{{ pipeline("setup", [
    ["preflight", "preflight on both nodes, versions compared"],
    ["replication-primary", "configure replication on the primary"],
    ["replication-standby", "configure replication on the standby"],
    ["setup-verify", "verify replication primary -> standby"],
    ["setup-vip-up", "raise the VIP on the primary"],
    ["resolution-primary", "name resolution on the primary (resolv.conf nameserver = VIP, hosts: files dns)"],
    ["resolution-standby", "name resolution on the standby"],
    ["site", "site table master/nameservers = VIP"],
    ["files-primary", "push the synced files from the primary"],
    ["files-standby", "first file sync onto the standby"],
]) }}
