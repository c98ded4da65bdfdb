# PostgreSQL streaming replication for this node's current role (primary or
# standby, discovered at run time). Apply to both nodes, the primary first:
#   salt mn1 state.apply hamn.replication; salt mn2 state.apply hamn.replication
hamn-replication:
  hamn.replica_configured
