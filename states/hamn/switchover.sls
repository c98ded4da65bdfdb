{#- Planned switchover, zero loss: the seed's "Take down the current primary
    management node", "Bring up the new primary management node" and "After the
    failed management node is back up", in one run:

        salt-run state.orchestrate hamn.switchover            # do it
        salt-run state.orchestrate hamn.switchover test=True  # the plan, or why it would refuse

    hamn.begin checks both nodes answer, one is primary and the other streams
    from it within the lag limit. Re-run after an interruption: it resumes. -#}
{%- from "hamn/_steps.jinja" import pipeline with context %}
{%- from "hamn/_takeover.jinja" import takeover with context %}
{{ pipeline("switchover", takeover) }}
