"""Event data sets in N-MNIST's layout: the real N-MNIST, and N-Fashion-MNIST made here from Fashion-MNIST.

Layout (N-MNIST's own, as tonic's ``NMNIST`` extracts it): ``<folder>/Train/<label>/<NNNNN>.bin`` and
``<folder>/Test/<label>/...``, one 40-bit event file (:mod:`mdsnn_zoo.data.events`) per sample on a
34x34 sensor. N-MNIST is looked for in ``<base>/NMNIST``, ``<base>/N-MNIST`` or ``<base>`` itself;
N-Fashion-MNIST in ``<base>/n-fashion-mnist`` or ``<base>``, recognised by the ``params.json`` that
:func:`make_n_fashion_mnist` writes there (the converter's parameters).

A split reads as :class:`~mdsnn_zoo.data.events.EventFrames`: every recording binned once into
``[T, 2, H, W]`` counts (by equal time or equal event counts) and held in memory as uint8, cached in
``$MDSNN_HOME/frames`` so that the next run with the same files, T and binning loads them at once.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from mdsnn_zoo.checkpoint import atomic_write_bytes
from mdsnn_zoo.data._base import Transform
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, made_data_dir, register_dataset
from mdsnn_zoo.data.events import (
    Binning,
    EventFrames,
    Events,
    bin_recordings,
    cached_frames,
    check_frame_options,
    read_events,
    write_events,
)
from mdsnn_zoo.data.saccades import DVSParams, saccade_recordings
from mdsnn_zoo.errors import CorruptFileError, InvalidValueError

SENSOR_SIZE = (34, 34)
FOLDERS = {"train": "Train", "test": "Test"}
PARAMS_FILE = "params.json"
GENERATOR = "mdsnn_zoo.data.saccades 1"  # bump when the converter's output changes

N_MNIST = DatasetInfo(
    name="n-mnist", num_classes=10, input_shape=(2, *SENSOR_SIZE), mean=(0.0, 0.0), std=(1.0, 1.0),
    kind="events", splits=("train", "test"),
    source="https://www.garrickorchard.com/datasets/n-mnist (Train.zip and Test.zip extracted into "
    "<root>/NMNIST/, as tonic does)",
    licence="CC BY-SA 4.0", classes=tuple(str(i) for i in range(10)),
)
N_FASHION_MNIST = DatasetInfo(
    name="n-fashion-mnist", num_classes=10, input_shape=(2, *SENSOR_SIZE), mean=(0.0, 0.0),
    std=(1.0, 1.0), kind="events", splits=("train", "test"),
    source="the command mdsnn-zoo data make n-fashion-mnist (which records Fashion-MNIST through the "
    "saccade converter)",
    licence="MIT (derived from Fashion-MNIST, Copyright (c) 2017 Zalando SE)",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Ankle boot"),
)


# -- reading -------------------------------------------------------------------------------------------

def recordings(split: str, folder: Path) -> tuple[list[Path], list[int]]:
    """The split's files, by label (a folder named 0..9) then file name, and their labels."""
    paths: list[Path] = []
    labels: list[int] = []
    for d in sorted((folder / FOLDERS[split]).iterdir(), key=lambda d: d.name):
        if d.is_dir() and d.name.isdigit():
            files = sorted(d.glob("*.bin"))
            paths += files
            labels += [int(d.name)] * len(files)
    return paths, labels


def _loader(info: DatasetInfo):
    def load(split: str, folder: Path, time_steps: int = 10, binning: Binning = "count",
             frame_size: tuple[int, int] = SENSOR_SIZE, transform: Transform | None = None,
             normalize: bool = True, cache: bool = True, progress: bool = True) -> EventFrames:
        """``normalize`` is accepted for a uniform call and ignored: event counts are not normalised."""
        frame_size = check_frame_options(time_steps, binning, frame_size)
        paths, labels = recordings(split, folder)
        if cache:
            frames = cached_frames(info.name, split, paths, time_steps, binning, frame_size, SENSOR_SIZE,
                                   progress=progress)
        else:
            frames = bin_recordings(paths, time_steps, binning, frame_size, SENSOR_SIZE, progress=progress)
        return EventFrames(torch.from_numpy(frames), torch.as_tensor(labels), dataclasses.replace(
            info, input_shape=(2, *frame_size)), transform)
    return load


def _has_split(folder: Path, split: str) -> bool:
    d = folder / FOLDERS[split]
    return d.is_dir() and any(any(c.glob("*.bin")) for c in d.iterdir() if c.is_dir() and c.name.isdigit())


def _finder(subdirs: tuple[str, ...], made_here: bool):
    def find(split: str, base: Path) -> Path | None:
        for sub in subdirs:
            folder = base / sub
            if (folder / PARAMS_FILE).is_file() == made_here and _has_split(folder, split):
                return folder.resolve()
        return None
    return find


def _count(split: str, folder: Path) -> int:
    return len(recordings(split, folder)[0])


for _info, _subdirs, _made_here in ((N_MNIST, ("NMNIST", "N-MNIST", "."), False),
                                    (N_FASHION_MNIST, ("n-fashion-mnist", "."), True)):
    register_dataset(DatasetSpec(
        info=_info, find=_finder(_subdirs, _made_here), count=_count, load=_loader(_info),
        expects=lambda split: f"{FOLDERS[split]}/<label>/*.bin",
    ))


# -- making N-Fashion-MNIST ------------------------------------------------------------------------------

def default_out() -> Path:
    """Where ``make_n_fashion_mnist`` writes by default: ``$MDSNN_DATA/n-fashion-mnist`` when
    ``$MDSNN_DATA`` is set, else ``$MDSNN_HOME/data/n-fashion-mnist``."""
    env = os.environ.get("MDSNN_DATA")
    return (Path(env).expanduser() if env else made_data_dir()) / "n-fashion-mnist"


def _check_params(out: Path, params: DVSParams) -> None:
    """Write ``params.json``, or check that the one there describes the same converter and parameters."""
    record = {"generator": GENERATOR, "params": params.as_dict(), "source": "fashion-mnist"}
    file = out / PARAMS_FILE
    if file.exists():
        try:
            found = json.loads(file.read_text())
        except json.JSONDecodeError:
            raise CorruptFileError(f"{file} is not JSON; delete it (and the data beside it) and run again") from None
        if found != json.loads(json.dumps(record)):
            raise InvalidValueError(f"{out} holds recordings made with other parameters ({file}); "
                                    "choose another --out, or delete that folder to make it anew")
        return
    atomic_write_bytes(file, (json.dumps(record, indent=2) + "\n").encode())


def make_n_fashion_mnist(out: str | os.PathLike | None = None, splits: Iterable[str] = ("train", "test"),
                         params: DVSParams | None = None, source_root: str | os.PathLike | None = None,
                         limit: int | None = None, chunk: int = 64, progress: bool = True,
                         workers: int = 1) -> Path:
    """Record every Fashion-MNIST image of ``splits`` (the first ``limit`` of each, if given) through
    the saccade converter into ``out`` (default :func:`default_out`), in N-MNIST's layout:
    ``Train/<label>/<index>.bin``, the index the image's position in its split. Resumable: a file
    already there is kept (files are written atomically, and the converter is deterministic);
    ``workers`` processes record ``chunk`` images at a time each (the same bytes as one process);
    returns ``out``."""
    from tqdm import tqdm

    from mdsnn_zoo.data import get_dataset

    params = params or DVSParams()
    if workers < 1:
        raise InvalidValueError(f"workers must be 1 or more, got {workers}")
    out = Path(out).expanduser() if out is not None else default_out()
    _check_params(out, params)
    for split in splits:
        if split not in FOLDERS:
            raise InvalidValueError(f"split must be one of {', '.join(FOLDERS)}, got {split!r}")
        source = get_dataset("fashion-mnist", split, root=source_root, normalize=False)
        images, labels = source.data[:limit, 0].numpy(), source.targets[:limit].numpy()
        for label in range(N_FASHION_MNIST.num_classes):
            (out / FOLDERS[split] / str(label)).mkdir(parents=True, exist_ok=True)
        files = [out / FOLDERS[split] / str(labels[i]) / f"{i:05d}.bin" for i in range(len(images))]
        todo = np.array([i for i, f in enumerate(files) if not f.exists()], dtype=np.int64)
        bar = tqdm(total=len(files), initial=len(files) - len(todo), desc=f"making {split}",
                   disable=not progress)
        code = list(FOLDERS).index(split)
        jobs = [(images[idx], [(code, int(i)) for i in idx], [files[i] for i in idx], params)
                for idx in (todo[start:start + chunk] for start in range(0, len(todo), chunk))]
        if workers > 1 and len(jobs) > 1:
            context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for done in pool.map(_record, jobs):
                    bar.update(done)
        else:
            for job in jobs:
                bar.update(_record(job))
        bar.close()
    return out


def _record(job: tuple[np.ndarray, list[tuple[int, int]], list[Path], DVSParams]) -> int:
    """Record one chunk of images ``[B, 28, 28]`` into their files; returns how many."""
    images, keys, files, params = job
    for file, events in zip(files, saccade_recordings(images, params, keys), strict=True):
        write_events(file, events)
    return len(files)


def statistics(folder: str | os.PathLike, split: str) -> dict:
    """Per-recording statistics of a split: samples, events (mean, std, min, max), ON fraction,
    duration in ms (mean), read from the files."""
    paths, _ = recordings(split, Path(folder))
    if not paths:
        raise InvalidValueError(f"{folder} has no {FOLDERS[split]}/<label>/*.bin recordings")
    counts, on, duration = np.zeros(len(paths)), 0, np.zeros(len(paths))
    for i, path in enumerate(paths):
        ev: Events = read_events(path)
        counts[i], on = ev["t"].size, on + int(ev["p"].sum())
        duration[i] = (ev["t"].max() - ev["t"].min()) / 1000 if ev["t"].size else 0.0
    return {"split": split, "samples": len(paths), "events_mean": float(counts.mean()),
            "events_std": float(counts.std()), "events_min": int(counts.min()), "events_max": int(counts.max()),
            "on_fraction": float(on / max(counts.sum(), 1)), "duration_ms": float(duration.mean())}
