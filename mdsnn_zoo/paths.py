"""Where mdsnn-zoo keeps what it makes: ``$MDSNN_HOME`` (default ``~/.cache/mdsnn_zoo``).

Below it: ``weights/`` (downloaded zoo weights), ``data/`` (data sets made by ``mdsnn-zoo data make``)
and ``frames/`` (event recordings binned into frames, cached for training).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MDSNN_HOME``, default ``~/.cache/mdsnn_zoo``."""
    return Path(os.environ.get("MDSNN_HOME", Path.home() / ".cache" / "mdsnn_zoo")).expanduser()
