"""Data sets held as ``torch.utils.data.Dataset`` objects (a notebook's own), registered by name so
that ``get_dataset``, the trainer and ``evaluate`` read them like any other.

    info = from_datasets("pets", train_set, val_set)   # then TrainConfig(dataset="pets", ...)

Each sample is ``(x, label)`` with ``x: [C, H, W]`` (static images, already as the model takes them)
or ``[T, C, H, W]`` (event frames) float and an int label. The class count is ``len(train.classes)``
when the data set has ``classes`` (torchvision's ``ImageFolder`` does), else the largest label + 1.
The registration lives in this process only: a later process that loads a checkpoint trained on it
registers the same data again first.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from mdsnn_zoo.data._registry import SHIPPED_DIR, DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.errors import InvalidTypeError, InvalidValueError


def _labels(ds: Dataset) -> torch.Tensor:
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets)
    return torch.tensor([int(ds[i][1]) for i in range(len(ds))])


def _info(name: str, train: Dataset, val: Dataset | None, test: Dataset | None) -> DatasetInfo:
    given = getattr(train, "info", None)
    if isinstance(given, DatasetInfo):
        return DatasetInfo(**{**given.__dict__, "name": name, "splits": _splits(train, val, test),
                              "validation_split": "val" if val is not None else None})
    if not len(train):
        raise InvalidValueError(f"the train set of {name!r} is empty")
    x, _ = train[0]
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        raise InvalidTypeError(f"{name!r}: a sample must be (x, label) with x a [C, H, W] or [T, C, H, W] tensor, "
                               f"got {type(x).__name__} {tuple(getattr(x, 'shape', ()))}; add a transform that "
                               "makes one (e.g. torchvision.transforms.ToTensor())")
    classes = getattr(train, "classes", None)
    num_classes = len(classes) if classes is not None else int(_labels(train).max()) + 1
    c, h, w = x.shape[-3:]
    return DatasetInfo(name=name, num_classes=num_classes, input_shape=(c, h, w), mean=(0.0,) * c, std=(1.0,) * c,
                       kind="events" if x.ndim == 4 else "static", splits=_splits(train, val, test),
                       source="Dataset objects given to mdsnn_zoo.data.from_datasets", licence="that of the data",
                       classes=tuple(classes) if classes is not None else None,
                       validation_split="val" if val is not None else None)


def _splits(train, val, test) -> tuple[str, ...]:
    return tuple(s for s, d in (("train", train), ("val", val), ("test", test)) if d is not None)


def from_datasets(name: str, train: Dataset, val: Dataset | None = None, test: Dataset | None = None
                  ) -> DatasetInfo:
    """Register ``train`` (and ``val``, ``test``) as data set ``name`` (replacing an earlier registration
    of these objects under that name); returns its metadata. With ``val`` the trainer chooses checkpoints
    on it, else on a held-out part of ``train``."""
    info = _info(name, train, val, test)
    by_split = dict(zip(("train", "val", "test"), (train, val, test), strict=True))

    def find(split: str, base: Path) -> Path | None:
        return SHIPPED_DIR if base == SHIPPED_DIR and by_split.get(split) is not None else None

    register_dataset(DatasetSpec(
        info=info, find=find, count=lambda split, _: len(by_split[split]),
        load=lambda split, _, **__: by_split[split],
        expects=lambda split: f"a {split} Dataset given to from_datasets({name!r}, ...)",
    ), replace=True)
    return info
