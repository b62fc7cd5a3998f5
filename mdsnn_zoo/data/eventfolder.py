"""Your own event-camera recordings, one file per sample: ``DIR/<split>/<class>/<recording>``.

Splits, classes and labels follow :mod:`mdsnn_zoo.data._folders` (the image folder's layout). A
recording is a ``.npy`` structured array with fields ``x, y, t, p`` (tonic's event arrays), an ``.npz``
holding arrays ``x, y, t, p``, or a ``.bin`` in N-MNIST's 40-bit encoding
(:func:`mdsnn_zoo.data.events.read_recording`); other files are ignored. ``t`` may be in any integer
unit (only its order and spacing matter), ``p > 0`` is ON.

Options: ``time_steps`` frames per recording (the trainer passes its T), ``binning`` (``"count"``, the
default, or ``"time"``), ``sensor_size`` (height, width) of the camera (default: the largest ``y`` and
``x`` of the train split's events, plus one; giving it saves reading every recording twice) and
``frame_size`` (default: the sensor's; fine-tuning a zoo model passes that model's, and event
positions are scaled to it). An event outside the sensor is an error that names the file. A split is
binned once and held in memory (:class:`~mdsnn_zoo.data.events.EventFrames`), cached in
``$MDSNN_HOME/frames``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import torch

from mdsnn_zoo.data._base import Transform
from mdsnn_zoo.data._folders import ClassFolders, classes, find_split, first_split, template_info
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.data.events import (
    RECORDING_SUFFIXES,
    Binning,
    EventFrames,
    Events,
    bin_recordings,
    cached_frames,
    check_binning,
    check_frame_options,
    check_size,
    files_digest,
    read_recording,
)
from mdsnn_zoo.errors import InvalidValueError

INFO = template_info("eventfolder", "events", 2, "your own event recordings", "that of your recordings")
FILES = ClassFolders(RECORDING_SUFFIXES, "recording")


@functools.lru_cache(maxsize=8)
def _sensor_of(paths: tuple[Path, ...], digest: str) -> tuple[int, int]:
    """(height, width) that holds every event of the recordings ``paths`` (``digest``: their
    :func:`~mdsnn_zoo.data.events.files_digest`, so that changed files are read again)."""
    height = width = 0
    for path in paths:
        events = read_recording(path)
        if events["x"].size:
            height, width = max(height, int(events["y"].max()) + 1), max(width, int(events["x"].max()) + 1)
    if not height:
        raise InvalidValueError(f"the recordings under {paths[0].parent.parent} hold no events, so the sensor "
                                "size cannot be read from them; pass sensor_size=[height, width]")
    return height, width


def resolve_sensor_size(root: Path, given: Any = None) -> tuple[int, int]:
    """The camera's (height, width): ``given``, checked, else what holds every event of the train split
    (of the first split found when there is no train split)."""
    if given is not None:
        return check_size(given, "sensor_size")
    paths = tuple(FILES.samples(first_split(root), root)[0])
    return _sensor_of(paths, files_digest(list(paths)))


def _read_on_sensor(path: Path, sensor: tuple[int, int]) -> Events:
    """:func:`read_recording`, refusing an event outside a ``sensor`` (height, width)."""
    events = read_recording(path)
    if events["x"].size and (events["y"].max() >= sensor[0] or events["x"].max() >= sensor[1]):
        raise InvalidValueError(
            f"{path} has events up to x={events['x'].max()}, y={events['y'].max()}, outside the "
            f"{sensor[0]}x{sensor[1]} (height x width) sensor; pass the camera's sensor_size=[height, width] "
            "(CLI: --data-options '{\"sensor_size\": [H, W]}') or remove the file")
    return events


def describe(root: Path, time_steps: int = 10, binning: Binning = "count", sensor_size: Any = None,
             frame_size: Any = None, **_: Any) -> DatasetInfo:
    """The metadata of the event folder at ``root`` as it will be read with these options."""
    check_binning(binning)
    if frame_size is None:
        frame = resolve_sensor_size(root, sensor_size)
    else:
        frame = check_size(frame_size, "frame_size")
    names = classes(root)
    return dataclasses.replace(INFO, num_classes=len(names), input_shape=(2, *frame), classes=names)


OPTIONS = ("time_steps", "binning", "sensor_size", "frame_size")


def complete(root: Path, input_shape: tuple[int, int, int] | None = None, **options: Any) -> dict:
    """``options`` with the number of frames (10), the binning (``"count"``), the sensor size and the
    frame size filled in, the frame size from ``input_shape`` (a model's ``(C, H, W)``, C = 2
    polarities) where not given; an unknown option is an error."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidValueError(f"eventfolder has no option {', '.join(map(repr, unknown))}: its options are "
                                f"{', '.join(OPTIONS)}")
    if input_shape is not None:
        if input_shape[0] != 2:
            raise InvalidValueError(f"event frames have 2 channels (OFF, ON), and this model takes "
                                    f"{input_shape[0]}: fine-tune a model trained on event data "
                                    "(mdsnn-zoo list: data n-fashion-mnist)")
        options.setdefault("frame_size", input_shape[1:])
    sensor = resolve_sensor_size(root, options.get("sensor_size"))
    frame = check_frame_options(options.setdefault("time_steps", 10), options.setdefault("binning", "count"),
                                options.get("frame_size", sensor))
    return {**options, "sensor_size": list(sensor), "frame_size": list(frame)}


def _load(split: str, root: Path, time_steps: int = 10, binning: Binning = "count", sensor_size: Any = None,
          frame_size: Any = None, transform: Transform | None = None, normalize: bool = True, cache: bool = True,
          progress: bool = True) -> EventFrames:
    """``normalize`` is accepted for a uniform call and ignored: event counts are not normalised."""
    sensor = resolve_sensor_size(root, sensor_size)
    frame = check_frame_options(time_steps, binning, frame_size if frame_size is not None else sensor)
    paths, labels = FILES.samples(split, root)
    read = functools.partial(_read_on_sensor, sensor=sensor)
    if cache:
        frames = cached_frames(INFO.name, split, paths, time_steps, binning, frame, sensor, read, progress)
    else:
        frames = bin_recordings(paths, time_steps, binning, frame, sensor, read, progress)
    info = describe(root, time_steps, binning, sensor, frame)
    return EventFrames(torch.from_numpy(frames), torch.as_tensor(labels), info, transform)


SPEC = register_dataset(DatasetSpec(
    info=INFO, find=find_split, count=FILES.count, load=_load, expects=FILES.expects, describe=describe,
    complete=complete,
))
