"""Data sets (``get_dataset``), their metadata, and the time-major encoding an SNN takes."""

from mdsnn_zoo.data import (  # noqa: F401  (register)
    cifar,
    eventfolder,
    fashion_mnist,
    imagefolder,
    ncaltech101,
    nmnist,
    tiny_imagenet,
)
from mdsnn_zoo.data._registry import (
    DatasetInfo,
    SplitLocation,
    complete_options,
    count_samples,
    dataset_info,
    dataset_kind,
    dataset_splits,
    get_dataset,
    list_datasets,
    locate,
    shape_from_files,
)
from mdsnn_zoo.data.encoding import to_time_major
from mdsnn_zoo.data.objects import from_datasets

__all__ = [
    "DatasetInfo",
    "SplitLocation",
    "complete_options",
    "count_samples",
    "dataset_info",
    "dataset_kind",
    "dataset_splits",
    "from_datasets",
    "get_dataset",
    "list_datasets",
    "locate",
    "shape_from_files",
    "to_time_major",
]
