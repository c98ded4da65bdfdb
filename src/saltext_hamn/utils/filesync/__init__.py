"""File synchronization from the primary to the standby (``hamn.files_synced``).

* :mod:`.paths`     path rules: root_dir prefixing, glob expansion, excludes, validation
* :mod:`.manifest`  scanning a node's listed trees into manifest entries, comparing
* :mod:`.plan`      what the standby must do for a manifest (entries validated first)
* :mod:`.apply`     writing entries on the standby (atomic, never through symlinks)
* :mod:`.transport` the two transports: the Salt channel (cp.push + ext_pillar) and rsync
* :mod:`.store`     the master side: pushed manifests and objects in the master cache
* :mod:`.state`     the state logic behind ``hamn.files_synced``

See docs/file-sync.md for the design and the master settings.
"""
