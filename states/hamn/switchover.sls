{#- Planned switchover, zero loss: the seed's "Take down the current primary
    management node", "Bring up the new primary management node" and "After the
    failed management node is back up", in one run:

        salt-run state.orchestrate hamn.switchover            # do it
        salt-run state.orchestrate hamn.switchover test=True  # the plan, or why it would refuse

    hamn.begin checks both nodes answer, one is primary and the other streams
    from it within the lag limit. One minion call per node per phase; the VIP
    moves node to node (docs/switchover.md). Re-run after an interruption: it
    resumes, every step picking up where it stopped. -#}
{%- from "hamn/_steps.jinja" import pipeline with context %}
{%- from "hamn/_switchover.jinja" import switchover with context %}
{{ pipeline("switchover", switchover) }}
