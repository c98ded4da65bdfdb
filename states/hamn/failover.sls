{#- Unplanned failover: the primary is dead or cut off. The seed's "Take down the
    current primary management node" (as far as it can still be done) and "Bring
    up the new primary management node":

        salt-run state.orchestrate hamn.failover
        salt-run state.orchestrate hamn.failover test=True
        salt-run state.orchestrate hamn.failover pillar='{"force": true}'     # accept lag past the limit
        salt-run state.orchestrate hamn.failover pillar='{"fenced": "mn1"}'   # you powered mn1 off by hand

    Refused on a healthy primary (use hamn.switchover). Nothing touches the old
    primary before the standby has answered as promotable; a silent old primary is
    fenced (hamn:fence:cmd) before the promotion; one that answers is stopped
    boot-safe. The failed node rejoins later: hamn.rejoin. -#}
{%- from "hamn/_steps.jinja" import pipeline with context %}
{%- from "hamn/_takeover.jinja" import takeover with context %}
{{ pipeline("failover", takeover) }}
