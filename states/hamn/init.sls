# saltext-hamn SLS tree. Orchestrations (setup, switchover, failover, rejoin) and
# the file-sync state land here; this file only checks the pillar for now.
hamn-pillar-valid:
  module.run:
    - hamn.config: []
