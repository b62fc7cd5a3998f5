"""The data-set registry: what each data set is, where its files are looked for, how it is read.

Every reader module registers one :class:`DatasetSpec`. Files are looked for in this order, and
never downloaded:

1. ``root`` when the caller passes one (then *only* there),
2. ``$MDSNN_DATA``,
3. the copy shipped inside the package (only Fashion-MNIST's test split),
4. ``$MDSNN_HOME/data``, where ``mdsnn-zoo data make`` writes the data sets it makes,
5. the system folders the spec names (for example Debian's ``/usr/share/datasets/...``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from mdsnn_zoo.errors import DatasetNotFoundError, InvalidValueError, UnknownNameError
from mdsnn_zoo.paths import cache_dir

SHIPPED_DIR = Path(__file__).resolve().parent / "files"


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set.

    ``input_shape`` is one frame ``[C, H, W]``; static images enter an SNN by direct encoding (the
    same frame at every time step), event data as ``time_steps`` frames of 2 polarities.
    ``mean``/``std`` are per channel, applied to pixel values scaled to ``[0, 1]``.
    ``validation_split``: a split kept for choosing checkpoints, apart from ``test`` (the trainer
    validates on it when it is on disk, else on a held-out part of ``train``).
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kind: Literal["static", "events"]
    splits: tuple[str, ...]
    source: str
    licence: str
    classes: tuple[str, ...] | None = None
    validation_split: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """How one data set is found and read.

    ``find(split, base)`` returns the folder under ``base`` that holds the split's files, or None.
    ``count(split, folder)`` returns the number of samples cheaply.
    ``load(split, folder, **options)`` returns the torch Dataset.
    ``expects(split)`` says in words which files are needed, for the error message.
    ``describe(folder, **options)``, for a data set whose classes and shape come from its files (an
    image folder): the ``DatasetInfo`` of what is found there; ``info`` is then only a template.
    ``complete(folder, input_shape, **options)``, with ``describe``: the options with every default
    filled in (those that fix the input shape from ``input_shape``, a model's ``(C, H, W)``, when it
    is given), so that a run's stored options read the data the same way again.
    """

    info: DatasetInfo
    find: Callable[[str, Path], Path | None]
    count: Callable[[str, Path], int]
    load: Callable[..., Dataset]
    expects: Callable[[str], str]
    system_dirs: tuple[Path, ...] = ()
    split_aliases: dict[str, str] = field(default_factory=dict)
    describe: Callable[..., DatasetInfo] | None = None
    complete: Callable[..., dict] | None = None


@dataclass(frozen=True)
class SplitLocation:
    """Where a split was found: ``folder`` holds its files; ``shipped`` if it came with the package."""

    name: str
    split: str
    folder: Path
    shipped: bool


_SPECS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add a data set to the registry; a second spec of the same name is a programming error unless
    ``replace`` (data sets registered from objects, which a notebook registers again)."""
    if spec.info.name in _SPECS and not (replace and _SPECS[spec.info.name].info.source == spec.info.source):
        raise InvalidValueError(f"data set {spec.info.name!r} is registered already; choose another name")
    _SPECS[spec.info.name] = spec
    return spec


def list_datasets() -> list[str]:
    """Names of every data set mdsnn-zoo can read, sorted."""
    return sorted(_SPECS)


def _spec(name: str) -> DatasetSpec:
    key = name.lower().replace("_", "-")
    if key not in _SPECS:
        raise UnknownNameError(f"unknown data set {name!r}: choose one of {', '.join(list_datasets())}")
    return _SPECS[key]


def dataset_splits(name: str) -> tuple[str, ...]:
    """The splits data set ``name`` can have (without reading any file)."""
    return _spec(name).info.splits


def shape_from_files(name: str) -> bool:
    """Whether data set ``name`` takes its classes and input shape from its files (``imagefolder``)."""
    return _spec(name).describe is not None


def dataset_kind(name: str) -> str:
    """``"static"`` (images) or ``"events"`` (recordings binned into frames), without reading any file."""
    return _spec(name).info.kind


def _described_folder(spec: DatasetSpec, root: str | os.PathLike | None) -> Path:
    """The folder of the first split found of a data set read from what its folder holds."""
    missing = None
    for split in spec.info.splits:
        try:
            return locate(spec.info.name, split, root).folder
        except DatasetNotFoundError as err:
            missing = missing or err
    raise missing


def dataset_info(name: str, root: str | os.PathLike | None = None, **options: Any) -> DatasetInfo:
    """The metadata of data set ``name`` (classes, input shape, normalisation, splits). For a data set
    read from what its folder holds (``imagefolder``, ``eventfolder``) it is that of the folder found
    (``root``, as in ``get_dataset``) read with ``options``."""
    spec = _spec(name)
    if spec.describe is None:
        return spec.info
    return spec.describe(_described_folder(spec, root), **options)


def complete_options(name: str, root: str | os.PathLike | None = None,
                     input_shape: tuple[int, int, int] | None = None, **options: Any) -> dict:
    """``options`` for reading data set ``name`` with every default filled in, for a data set read from
    what its folder holds: an image folder's channels, size and statistics, an event folder's sensor and
    frame size; those that fix the input shape come from ``input_shape`` (the ``(C, H, W)`` of the
    model that will read it) where not given. Other data sets: ``options`` as they are."""
    spec = _spec(name)
    if spec.complete is None:
        return dict(options)
    return spec.complete(_described_folder(spec, root), input_shape, **options)


def _canonical_split(spec: DatasetSpec, split: str) -> str:
    split = spec.split_aliases.get(split, split)
    if split not in spec.info.splits:
        raise InvalidValueError(
            f"{spec.info.name} has no split {split!r}: choose one of {', '.join(spec.info.splits)}"
        )
    return split


def made_data_dir() -> Path:
    """Where data sets made by mdsnn-zoo go unless told otherwise: ``$MDSNN_HOME/data``."""
    return cache_dir() / "data"


def search_dirs(spec: DatasetSpec, root: str | os.PathLike | None) -> list[tuple[Path, bool]]:
    """The folders searched for ``spec`` in order, each with whether it is the shipped copy."""
    if root is not None:
        return [(Path(root).expanduser(), False)]
    dirs: list[tuple[Path, bool]] = []
    env = os.environ.get("MDSNN_DATA")
    if env:
        dirs.append((Path(env).expanduser(), False))
    dirs.append((SHIPPED_DIR, True))
    dirs.append((made_data_dir(), False))
    dirs += [(d, False) for d in spec.system_dirs]
    return dirs


def locate(name: str, split: str, root: str | os.PathLike | None = None) -> SplitLocation:
    """Find the files of ``name``/``split``; raise :class:`DatasetNotFoundError` if none are found."""
    spec = _spec(name)
    split = _canonical_split(spec, split)
    searched = []
    for base, shipped in search_dirs(spec, root):
        if base.is_dir():
            folder = spec.find(split, base)
            if folder is not None:
                return SplitLocation(spec.info.name, split, folder, shipped)
        if not shipped:
            searched.append(str(base))
    where = ", ".join(searched) if searched else "(no folder: pass root= or set $MDSNN_DATA)"
    raise DatasetNotFoundError(
        f"{spec.info.name} split {split!r} not found: expected {spec.expects(split)} "
        f"in one of: {where}. Get the files from {spec.info.source} and pass root=DIR "
        f"(CLI: --data-root DIR) or set $MDSNN_DATA; nothing is downloaded."
    )


def count_samples(name: str, split: str, root: str | os.PathLike | None = None) -> int:
    """Number of samples in ``name``/``split`` (cheap: reads headers or lists files)."""
    loc = locate(name, split, root)
    return _spec(name).count(loc.split, loc.folder)


def get_dataset(
    name: str, split: str, root: str | os.PathLike | None = None, **options: Any
) -> Dataset:
    """A torch ``Dataset`` of ``(x, label)`` pairs for data set ``name`` and ``split``.

    Static images give ``x: [C, H, W] float32`` (scaled to [0, 1], then normalised with the data
    set's mean and std unless ``normalize=False``); event data give ``x: [T, 2, H, W] float32``
    event counts. Batch with a DataLoader and turn into the time-major ``[T, N, ...]`` an SNN takes
    with :func:`mdsnn_zoo.data.to_time_major`. Options: ``transform`` (a callable on ``x``),
    ``normalize``; event sets also ``time_steps`` and ``frame_size``. The returned data set has an
    ``info`` attribute (:class:`DatasetInfo`).
    """
    spec = _spec(name)
    loc = locate(name, split, root)
    return spec.load(loc.split, loc.folder, **options)
