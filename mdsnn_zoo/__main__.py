"""``python -m mdsnn_zoo``: the same as the ``mdsnn-zoo`` command."""

import sys

from mdsnn_zoo.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    sys.exit(main())
