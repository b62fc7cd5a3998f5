"""``python -m mdsnn_zoo``: the same as the ``mdsnn-zoo`` command."""

import sys

from mdsnn_zoo.cli import main

sys.exit(main())
