"""mdsnn-zoo: quantized spiking neural networks with membrane potential-aware distillation.

Public API::

    from mdsnn_zoo import get_dataset, dataset_info, list_datasets
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from mdsnn_zoo.data import DatasetInfo, dataset_info, get_dataset, list_datasets
from mdsnn_zoo.errors import CorruptFileError, DatasetNotFoundError, MdsnnError

__all__ = [
    "__version__",
    "CorruptFileError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "MdsnnError",
    "dataset_info",
    "get_dataset",
    "list_datasets",
]
