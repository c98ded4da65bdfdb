# saltext-hamn SLS tree (the master's file_roots points at states/).
# Orchestrations (setup, switchover, failover, rejoin) and the file-sync state are
# added here as they land; applying `hamn` checks this node's pillar.
hamn-pillar:
  hamn.pillar_valid
