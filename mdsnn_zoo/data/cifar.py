"""CIFAR-10 and CIFAR-100 (32x32 RGB, 50,000 train / 10,000 test) in torchvision's on-disk format.

``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` and ``<root>/cifar-100-python/{train,
test}``: Python pickles of a dict with ``data`` (uint8 ``[N, 3072]``, channel-major) and ``labels``
(CIFAR-10) or ``fine_labels`` (CIFAR-100). They are read with an unpickler that admits only the few
numpy classes these files need, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from mdsnn_zoo.data._base import TensorImageDataset, Transform
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.errors import CorruptFileError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 3, 32, 32], labels int64 [N])`` from one CIFAR pickle file."""
    try:
        with open(path, "rb") as f:
            entry = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(entry[b"data"] if b"data" in entry else entry["data"], dtype=np.uint8)
        key = label_key.encode()
        labels = np.asarray(entry[key] if key in entry else entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptFileError(f"{path} is not a CIFAR batch file ({exc}); replace the file") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise CorruptFileError(f"{path} holds data {data.shape} and {len(labels)} labels, expected "
                               f"[N, 3072] and N labels; replace the file")
    return data.reshape(-1, 3, 32, 32), labels


def _make(name: str, folder_name: str, files: dict[str, tuple[str, ...]], label_key: str,
          num_classes: int, mean: tuple[float, ...], std: tuple[float, ...]) -> DatasetSpec:
    info = DatasetInfo(
        name=name, num_classes=num_classes, input_shape=(3, 32, 32), mean=mean, std=std,
        kind="static", splits=("train", "test"),
        source="https://www.cs.toronto.edu/~kriz/cifar.html (the 'python version' archive, "
        "extracted)",
        licence="see the data set's site",
    )

    def find(split: str, base: Path) -> Path | None:
        for folder in (base / folder_name, base):
            if folder.name == folder_name and all((folder / f).is_file() for f in files[split]):
                return folder.resolve()
        return None

    def load_arrays(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
        parts = [read_cifar_batch(folder / f, label_key) for f in files[split]]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise CorruptFileError(f"{folder} holds labels outside 0..{num_classes - 1}")
        return images, labels

    def count(split: str, folder: Path) -> int:
        return len(load_arrays(split, folder)[1])

    def load(split: str, folder: Path, transform: Transform | None = None,
             normalize: bool = True) -> TensorImageDataset:
        images, labels = load_arrays(split, folder)
        return TensorImageDataset(torch.from_numpy(images), torch.from_numpy(labels), info,
                                  transform, normalize)

    def expects(split: str) -> str:
        return f"{folder_name}/{{{', '.join(files[split])}}}"

    return register_dataset(DatasetSpec(info=info, find=find, count=count, load=load,
                                        expects=expects))


CIFAR10 = _make(
    "cifar10", "cifar-10-batches-py",
    {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    "labels", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
)
CIFAR100 = _make(
    "cifar100", "cifar-100-python", {"train": ("train",), "test": ("test",)},
    "fine_labels", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
)
