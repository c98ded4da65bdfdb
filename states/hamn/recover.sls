{#- Converge the pair after anything: an interrupted run (master or salt-run
    killed), a VIP on no node or on the standby, services on the wrong node, a
    standby that does not stream, no primary at all.

        salt-run state.orchestrate hamn.recover [test=True]

    An unfinished run is resumed towards its goal (every step is idempotent);
    otherwise the primary keeps its role (or the standby with the most WAL is
    promoted, with the same guards as a failover) and the rest of the pair is
    made to match. A split brain is refused, naming the node to demote. -#}
{%- from "hamn/_steps.jinja" import pipeline with context %}
{%- from "hamn/_takeover.jinja" import takeover with context %}
{%- from "hamn/_switchover.jinja" import switchover with context %}
{#- An interrupted switchover resumes with its own steps (its verify is the takeover's last). #}
{{ pipeline("recover", switchover[:-1] + takeover) }}
