{#- Reactor for salt/minion/*/start (see README, "Master configuration"): a node
    the master failed over while it could not be told (fenced) is demoted on its
    first contact, before anything else runs there. The event is only a hint:
    hamn.first_contact re-checks the master's record and the node's own status. -#}
hamn first contact of {{ data["id"] }}:
  runner.hamn.first_contact:
    - args:
      - node: {{ data["id"]|json }}
