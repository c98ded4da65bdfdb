# Keep the standby's copies of the hamn:files paths identical to the primary's.
# Apply it on both nodes (the pillar.example schedule does, every 15 minutes): the
# primary pushes its files to the master, the standby applies them; the node's
# current role decides, so a failover flips the direction with no pillar edit.
# `state.apply hamn.files test=True` on the standby is the drift report.
hamn-files:
  hamn.files_synced
