"""External pillar modules of saltext-hamn (loaded by the master through the
``salt.loader`` entry point)."""
