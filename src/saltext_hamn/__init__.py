"""saltext-hamn: a Salt extension for a highly available xCAT management node pair.

Salt finds the loader directories (``modules/``, ``states/``, ``runners/``,
``beacons/``, ...) of this package through the ``salt.loader`` entry point; the
logic lives in ``saltext_hamn.utils``.
"""

__version__ = "0.1.0"
