"""N-Caltech101 (event camera recordings of Caltech101 images, 101 classes), in tonic's layout.

Files: ``<root>/NCALTECH101/Caltech101/<class>/image_NNNN.bin`` (what tonic's ``NCALTECH101``
leaves after extraction; ``<root>/Caltech101/<class>/`` is accepted too). ``BACKGROUND_Google`` is
not a class. There is no official split: per class, files sorted by name, the last
``max(1, round(n / 10))`` are ``test`` and the rest ``train``.

Each ``.bin`` holds the 40-bit events of :mod:`mdsnn_zoo.data.events`, decoded by its numpy decoder
(the tests check it against tonic's reader where tonic is installed).

A sample becomes ``[T, 2, H, W]`` float32 event counts: T equal-duration bins over the recording,
polarity as channel, the 240x180 sensor area scaled to ``frame_size``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mdsnn_zoo.data._base import Transform
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.data.events import check_frame_options, events_to_frames, read_events

SENSOR_WIDTH, SENSOR_HEIGHT = 240, 180
_BACKGROUND = "BACKGROUND_Google"

INFO = DatasetInfo(
    name="n-caltech101",
    num_classes=101,
    input_shape=(2, 48, 48),
    mean=(0.0, 0.0),
    std=(1.0, 1.0),
    kind="events",
    splits=("train", "test"),
    source="https://www.garrickorchard.com/datasets/n-caltech101 (Caltech101.zip extracted as "
    "tonic does, into <root>/NCALTECH101/Caltech101/)",
    licence="CC BY 4.0",
)
_LAYOUTS = ("NCALTECH101/Caltech101", "Caltech101")


class EventFrameDataset(Dataset):
    """Recordings decoded and binned on access: ``x: [T, 2, H, W] float32``, label int."""

    def __init__(self, paths: list[Path], targets: list[int], info: DatasetInfo, time_steps: int,
                 frame_size: tuple[int, int], transform: Transform | None = None) -> None:
        self.paths, self.targets = paths, torch.as_tensor(targets, dtype=torch.int64)
        self.info, self.time_steps, self.frame_size = info, time_steps, frame_size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = events_to_frames(read_events(self.paths[index]), self.time_steps,
                             (SENSOR_HEIGHT, SENSOR_WIDTH), self.frame_size)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and d.name != _BACKGROUND)


def _find(split: str, base: Path) -> Path | None:
    for layout in _LAYOUTS:
        folder = base / layout
        if folder.is_dir() and any(any(d.glob("*.bin")) for d in _class_dirs(folder)):
            return folder.resolve()
    return None


def _samples(split: str, folder: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = [d for d in _class_dirs(folder) if any(d.glob("*.bin"))]
    paths: list[Path] = []
    labels: list[int] = []
    for label, d in enumerate(classes):
        files = sorted(d.glob("*.bin"))
        n_test = max(1, round(len(files) / 10))
        chosen = files[-n_test:] if split == "test" else files[:-n_test]
        paths += chosen
        labels += [label] * len(chosen)
    return paths, labels, [d.name for d in classes]


def _count(split: str, folder: Path) -> int:
    return len(_samples(split, folder)[0])


def _expects(split: str) -> str:
    return "NCALTECH101/Caltech101/<class>/*.bin"


def _load(split: str, folder: Path, time_steps: int = 10, frame_size: tuple[int, int] = (48, 48),
          transform: Transform | None = None, normalize: bool = True) -> EventFrameDataset:
    frame_size = check_frame_options(time_steps, "time", frame_size)
    paths, labels, classes = _samples(split, folder)
    info = dataclasses.replace(INFO, input_shape=(2, *frame_size), classes=tuple(classes))
    return EventFrameDataset(paths, labels, info, time_steps, frame_size, transform)


SPEC = register_dataset(DatasetSpec(
    info=INFO, find=_find, count=_count, load=_load, expects=_expects,
))
