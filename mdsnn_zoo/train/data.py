"""A run's data: how a data set is read for a model (:func:`read_options`, the one resolver), and
which samples are trained on and which choose the best checkpoint (:func:`training_data`)."""

from __future__ import annotations

import contextlib
import os

import torch
from torch.utils.data import Dataset

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.data import complete_options, dataset_info, dataset_kind, get_dataset, shape_from_files
from mdsnn_zoo.data.batching import split_indices
from mdsnn_zoo.errors import DatasetNotFoundError
from mdsnn_zoo.train.config import MIN_STEPS, TrainConfig


def read_options(dataset: str, time_steps: int | None, options: dict | None = None,
                 root: str | os.PathLike | None = None, input_shape: tuple[int, int, int] | None = None) -> dict:
    """The options that read ``dataset`` for a model: ``options`` completed so that they read it the
    same way again. Event recordings are binned into ``time_steps`` frames unless ``options`` say
    otherwise; a data set read from what its folder holds (``root``: an image or event folder) gets
    the ``(C, H, W)`` ``input_shape`` of the model that reads it (None: the folder's own) and the
    rest of its defaults (:func:`~mdsnn_zoo.data.complete_options`). Reads no file for other data."""
    opts = dict(options or {})
    if time_steps is not None and dataset_kind(dataset) == "events":
        opts.setdefault("time_steps", time_steps)
    if not shape_from_files(dataset):
        return opts
    return complete_options(dataset, root, input_shape, **opts)


def start_input_shape(cfg: TrainConfig) -> tuple[int, int, int] | None:
    """The ``(C, H, W)`` input of the model a run starts from (a zoo model, ``--init`` or ``--teacher``),
    or None for a fresh one (or one trained on a folder of data that is no longer there)."""
    if cfg.zoo_model:
        from mdsnn_zoo.zoo.registry import get_entry

        e = get_entry(cfg.zoo_model)
        return dataset_info(e.dataset, **e.data_options).input_shape
    if not (cfg.init or cfg.teacher):
        return None
    start = ckpt.load_checkpoint(cfg.init or cfg.teacher, tensors=False).config
    if start is None:
        return None
    try:
        return dataset_info(start.dataset, start.data_root, **start.data_options).input_shape
    except DatasetNotFoundError:  # its folder is gone: the options given, else the data's own shape
        return None


def resolve_data_options(cfg: TrainConfig) -> dict:
    """``cfg.data_options`` completed by :func:`read_options` for the run's T and the input shape of
    the model it starts from, so that the stored config reads the data the same way again."""
    shape = start_input_shape(cfg) if shape_from_files(cfg.dataset) else None
    return read_options(cfg.dataset, cfg.time_steps, cfg.data_options, cfg.data_root, shape)


def training_data(cfg: TrainConfig) -> tuple[Dataset, torch.Tensor, Dataset, torch.Tensor]:
    """(train data, its indices to train on, validation data, its indices): the data set's own
    validation split when it has one on disk (all of train is trained on), else the last
    ``val_size`` of a fixed permutation of train, held out. Never the test split."""
    data = get_dataset(cfg.dataset, "train", root=cfg.data_root, **cfg.data_options)
    val_split = dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options).validation_split
    val_data = None
    if val_split:
        with contextlib.suppress(DatasetNotFoundError):  # a folder without one: hold out part of train
            val_data = get_dataset(cfg.dataset, val_split, root=cfg.data_root, **cfg.data_options)
    if val_data is not None:
        train_idx, val_idx = torch.arange(len(data)), torch.arange(len(val_data))
    else:
        val_data = data
        train_idx, val_idx = split_indices(len(data), cfg.val_size)
    if cfg.train_subset:
        train_idx = train_idx[: cfg.train_subset]
    return data, train_idx, val_data, val_idx


def batch_size_for(samples: int, world: int = 1) -> int:
    """A batch size for ``samples`` training images over ``world`` processes: the largest power of two
    from 16 to 128 that still makes an epoch at least 32 steps (so that a few thousand images get
    enough optimizer steps; 128 from about 4,100 images a process up)."""
    size = 128
    while size > 16 and samples // world // size < 32:
        size //= 2
    return size


def epochs_for(steps_per_epoch: int) -> int:
    """Epochs for a run sized by its data: at least 10, and at least :data:`MIN_STEPS` optimizer steps
    (on scikit-learn's 1,797 digits, 330 steps left vgg9's W2U2 student still rising; 660 did not)."""
    return max(10, -(-MIN_STEPS // max(steps_per_epoch, 1)))
