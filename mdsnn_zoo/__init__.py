"""mdsnn-zoo: quantized spiking neural networks with membrane potential-aware distillation.

Public API::

    from mdsnn_zoo import list_models, create_model, get_weights      # the zoo
    from mdsnn_zoo import get_dataset, dataset_info, list_datasets    # data
    from mdsnn_zoo import from_datasets, finetune                     # your own Dataset objects
    from mdsnn_zoo import QuantLIFNode                                # the neuron
    from mdsnn_zoo.cost import estimate                               # what a model costs on hardware
    from mdsnn_zoo.data.nmnist import make_n_fashion_mnist            # the event data set, made here
    from mdsnn_zoo import MdsnnError, InvalidValueError, UnknownNameError, ...   # errors (also ValueError, KeyError...)

Everything that needs torch and SpikingJelly is imported on first use, so ``import mdsnn_zoo`` and
the command line stay quick.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from mdsnn_zoo.errors import (
    CorruptFileError,
    DatasetNotFoundError,
    DownloadError,
    InvalidTypeError,
    InvalidValueError,
    MdsnnError,
    UnknownNameError,
    UsageError,
    WeightsNotFoundError,
)

_LAZY = {"QuantLIFNode": "mdsnn_zoo.neuron", "list_models": "mdsnn_zoo.zoo.registry",
         "create_model": "mdsnn_zoo.zoo.registry", "get_weights": "mdsnn_zoo.zoo.registry",
         "DatasetInfo": "mdsnn_zoo.data", "dataset_info": "mdsnn_zoo.data", "get_dataset": "mdsnn_zoo.data",
         "list_datasets": "mdsnn_zoo.data", "from_datasets": "mdsnn_zoo.data", "finetune": "mdsnn_zoo.train"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mdsnn_zoo' has no attribute {name!r}")


__all__ = [
    "__version__",
    "create_model",
    "get_weights",
    "list_models",
    "CorruptFileError",
    "QuantLIFNode",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "InvalidTypeError",
    "InvalidValueError",
    "MdsnnError",
    "UnknownNameError",
    "UsageError",
    "WeightsNotFoundError",
    "dataset_info",
    "finetune",
    "from_datasets",
    "get_dataset",
    "list_datasets",
]
