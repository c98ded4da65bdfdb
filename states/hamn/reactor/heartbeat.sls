{#- Reactor for salt/beacon/*/hamn/ (see README, "Automatic failover"). The event
    is a hint: hamn.heartbeat renews both leases, probes both nodes itself and
    decides with the automatic failover rule (docs/auto-failover.md). -#}
hamn heartbeat of {{ data["id"] }}:
  runner.hamn.heartbeat:
    - args:
      - data: {{ data|json }}
