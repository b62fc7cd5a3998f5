"""Tiny-ImageNet-200 (64x64 RGB, 200 classes, 100,000 train / 10,000 val) in its standard layout.

``tiny-imagenet-200/wnids.txt`` (one WordNet id per line: the classes, label = sorted position),
``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` with ``val/val_annotations.txt`` (tab
separated: file name, wnid, box). The unlabelled ``test/`` folder is not used: split ``test``
means ``val``, as in the SNN literature.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mdsnn_zoo.data._base import FileImageDataset, Transform
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.errors import CorruptFileError

INFO = DatasetInfo(
    name="tiny-imagenet",
    num_classes=200,
    input_shape=(3, 64, 64),
    mean=(0.4802, 0.4481, 0.3975),
    std=(0.2770, 0.2691, 0.2821),
    kind="static",
    splits=("train", "val"),
    source="http://cs231n.stanford.edu/tiny-imagenet-200.zip (extracted)",
    licence="ImageNet terms of access",
)
_FOLDER = "tiny-imagenet-200"
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def _find(split: str, base: Path) -> Path | None:
    for folder in (base / _FOLDER, base):
        marker = "val/val_annotations.txt" if split == "val" else "train"
        if (folder / "wnids.txt").is_file() and (folder / marker).exists():
            return folder.resolve()
    return None


def _wnids(folder: Path) -> list[str]:
    wnids = sorted(line.strip() for line in (folder / "wnids.txt").read_text().splitlines()
                   if line.strip())
    if not wnids:
        raise CorruptFileError(f"{folder / 'wnids.txt'} lists no class; replace the file")
    return wnids


def _samples(split: str, folder: Path) -> tuple[list[Path], list[int]]:
    index = {w: i for i, w in enumerate(_wnids(folder))}
    paths: list[Path] = []
    labels: list[int] = []
    if split == "train":
        for wnid, label in index.items():
            images = sorted(p for p in (folder / "train" / wnid / "images").glob("*")
                            if p.suffix.lower() in _IMAGE_SUFFIXES)
            paths += images
            labels += [label] * len(images)
    else:
        annotations = folder / "val" / "val_annotations.txt"
        for n, line in enumerate(annotations.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise CorruptFileError(f"{annotations}:{n}: expected 'file<TAB>wnid<TAB>...' with a "
                                       f"wnid from wnids.txt, got {line!r}")
            paths.append(folder / "val" / "images" / fields[0])
            labels.append(index[fields[1]])
    return paths, labels


def _count(split: str, folder: Path) -> int:
    return len(_samples(split, folder)[0])


def _expects(split: str) -> str:
    if split == "val":
        return f"{_FOLDER}/wnids.txt, {_FOLDER}/val/val_annotations.txt and val/images/"
    return f"{_FOLDER}/wnids.txt and {_FOLDER}/train/<wnid>/images/"


def _load(split: str, folder: Path, transform: Transform | None = None,
          normalize: bool = True) -> FileImageDataset:
    paths, labels = _samples(split, folder)
    info = dataclasses.replace(INFO, classes=tuple(_wnids(folder)))
    return FileImageDataset(paths, labels, info, transform, normalize)


SPEC = register_dataset(DatasetSpec(
    info=INFO, find=_find, count=_count, load=_load, expects=_expects,
    split_aliases={"test": "val"},
))
