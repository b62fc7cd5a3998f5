"""The class-folder layout of your own data: ``DIR/<split>/<class>/<file>``, torchvision's ``ImageFolder``
layout with one folder per split.

Splits are ``train``, ``val`` and ``test``, whichever exist. Classes are the sub-folder names of the
train split (of the first split found when there is no train split), sorted as torchvision sorts them
(``sorted()`` of the names), so label ``i`` is the i-th name; a class folder in another split that the
train split lacks is an error. Files are found at any depth under a class folder, by suffix (any case).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mdsnn_zoo.data._registry import DatasetInfo
from mdsnn_zoo.errors import DatasetNotFoundError, InvalidValueError

SPLITS = ("train", "val", "test")


def template_info(name: str, kind: str, channels: int, source: str, licence: str) -> DatasetInfo:
    """The metadata of a class-folder data set before a folder is read (classes and frame size come
    from the folder: ``dataset_info(name, root=DIR)``); checkpoints are chosen on ``val``."""
    return DatasetInfo(name=name, num_classes=0, input_shape=(channels, 0, 0), mean=(0.0,) * channels,
                       std=(1.0,) * channels, kind=kind, splits=SPLITS, source=source, licence=licence,
                       validation_split="val")


def class_dirs(split_dir: Path) -> list[str]:
    """The sub-folder names of ``split_dir``, sorted."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def find_split(split: str, base: Path) -> Path | None:
    """``base`` (resolved) when it holds ``base/<split>/<class>/``, else None."""
    d = base / split
    return base.resolve() if d.is_dir() and class_dirs(d) else None


def first_split(root: Path) -> str:
    """``train`` when ``root`` has it, else the first of the other splits it has."""
    for split in SPLITS:
        if find_split(split, root) is not None:
            return split
    raise DatasetNotFoundError(f"{root} holds no split folder with class sub-folders: expected "
                               f"{root}/train/<class>/<file>")


def classes(root: Path) -> tuple[str, ...]:
    """The class names: the sub-folders of the train split (else of the first split found); at least two."""
    split = first_split(root)
    names = tuple(class_dirs(root / split))
    if len(names) < 2:
        raise InvalidValueError(f"{root / split} has one class folder ({names[0]}): a classifier needs at least two; "
                                f"put each class's files in a folder of its own, {root / split}/<class>/")
    return names


@dataclass(frozen=True)
class ClassFolders:
    """Files of one kind in the layout: ``suffixes`` (lower case) and what one is called (``"image"``)."""

    suffixes: tuple[str, ...]
    noun: str

    def expects(self, split: str) -> str:
        """In words, where the files of ``split`` go (for the error when none are found)."""
        return f"DIR/{split}/<class>/<{self.noun}> ({', '.join(self.suffixes)} files, one folder per class)"

    def samples(self, split: str, root: Path) -> tuple[list[Path], list[int]]:
        """The files of ``split`` (sorted within each class) and their labels."""
        names = classes(root)
        index = {c: i for i, c in enumerate(names)}
        paths: list[Path] = []
        labels: list[int] = []
        for c in class_dirs(root / split):
            if c not in index:
                raise InvalidValueError(f"{root / split / c} is a class the train split does not have "
                                        f"({', '.join(names)}); add it to {root / 'train'} or remove it")
            found = sorted(p for p in (root / split / c).rglob("*")
                           if p.is_file() and p.suffix.lower() in self.suffixes)
            paths += found
            labels += [index[c]] * len(found)
        if not paths:
            raise DatasetNotFoundError(f"{root / split} has class folders but no {self.noun}s "
                                       f"({', '.join(self.suffixes)})")
        return paths, labels

    def count(self, split: str, root: Path) -> int:
        """How many files ``split`` has."""
        return len(self.samples(split, root)[0])
