"""Fashion-MNIST (Zalando, MIT licence): 60,000 train / 10,000 test greyscale 28x28 images, 10 classes.

Read from the four IDX files (``.gz`` or not) in a folder, in ``<folder>/fashion-mnist/`` or in
torchvision's ``<folder>/FashionMNIST/raw/``. The test split ships inside the package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mdsnn_zoo.data._base import TensorImageDataset, Transform
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.data.idx import read_idx, read_idx_shape
from mdsnn_zoo.errors import CorruptFileError

INFO = DatasetInfo(
    name="fashion-mnist",
    num_classes=10,
    input_shape=(1, 28, 28),
    mean=(0.2860,),
    std=(0.3530,),
    kind="static",
    splits=("train", "test"),
    source="https://github.com/zalandoresearch/fashion-mnist (or Debian: apt-get install "
    "dataset-fashion-mnist)",
    licence="MIT, Copyright (c) 2017 Zalando SE",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Ankle boot"),
)
_PREFIX = {"train": "train", "test": "t10k"}
_SUBDIRS = (".", "fashion-mnist", "FashionMNIST/raw")


def _files(split: str, folder: Path) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in ``folder``, preferring the gzip-compressed ones."""
    p = _PREFIX[split]
    for suffix in (".gz", ""):
        images = folder / f"{p}-images-idx3-ubyte{suffix}"
        labels = folder / f"{p}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def _find(split: str, base: Path) -> Path | None:
    for sub in _SUBDIRS:
        if _files(split, base / sub) is not None:
            return (base / sub).resolve()
    return None


def _count(split: str, folder: Path) -> int:
    images, _ = _files(split, folder)
    return read_idx_shape(images)[0]


def _expects(split: str) -> str:
    p = _PREFIX[split]
    return f"{p}-images-idx3-ubyte.gz and {p}-labels-idx1-ubyte.gz"


def _load(
    split: str, folder: Path, transform: Transform | None = None, normalize: bool = True
) -> TensorImageDataset:
    images_path, labels_path = _files(split, folder)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != "uint8":
        raise CorruptFileError(f"{images_path} holds {images.dtype} {images.shape}, expected "
                               f"uint8 [N, 28, 28]; replace the file")
    if labels.shape != (len(images),) or labels.max(initial=0) >= INFO.num_classes:
        raise CorruptFileError(f"{labels_path} holds {labels.shape} labels up to "
                               f"{labels.max(initial=0)} for {len(images)} images; replace the file")
    data = torch.from_numpy(images.copy()).unsqueeze(1)  # [N, 28, 28] -> [N, 1, 28, 28]
    targets = torch.from_numpy(labels.astype("int64"))
    return TensorImageDataset(data, targets, INFO, transform, normalize)


SPEC = register_dataset(DatasetSpec(
    info=INFO, find=_find, count=_count, load=_load, expects=_expects,
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
))
