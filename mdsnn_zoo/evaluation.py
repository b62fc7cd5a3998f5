"""Evaluation: the one loop that scores a network on batches, used by ``mdsnn-zoo eval``, the trainer's
validation and the recipes' diagnostics; and finding a model and its data by a zoo name or a checkpoint.

    model, dataset, options, teacher = load_model("small_cnn.fmnist_t4_w2u2_md")
    evaluate(model, DataLoader(get_dataset(dataset, "test", **options), batch_size=256), torch.device("cpu"))

:func:`tally` keeps its counts on the device (no host sync per batch), so that processes can add
theirs (``all_reduce``) before :func:`summarize` turns them into top-1 and rates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

COUNTS = ("correct", "samples", "spikes", "neurons", "mse_sum", "mse_batches")  # what a tally holds, in order


def _counting_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # float64: integers exact to 2^53


@torch.no_grad()
def tally(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
          amp: bool = False, teacher: nn.Module | None = None, hits: list[torch.Tensor] | None = None
          ) -> torch.Tensor:
    """Run ``model`` (eval mode) on ``batches`` of ``(x [N, C, H, W] or [N, T, C, H, W], y [N])`` and
    count, on ``device``: ``[6]`` float64, the :data:`COUNTS` (correct answers, samples, spikes and
    neuron outputs of the LIF layers, the sum of per-batch membrane MSEs to ``teacher`` and their
    number). ``hits``: a list that receives each batch's ``[N]`` bool correct-or-not (on ``device``)."""
    from spikingjelly.activation_based import functional, monitor

    from mdsnn_zoo.distill import MembraneRecorder, membrane_mse
    from mdsnn_zoo.neuron import QuantLIFNode
    from mdsnn_zoo.precision import autocast

    model.eval()
    counts = torch.zeros(len(COUNTS), dtype=_counting_dtype(device), device=device)
    rate = monitor.OutputMonitor(model, QuantLIFNode, lambda s: (s.float().sum(), s.numel()))
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            functional.reset_net(model)
            with autocast(device, amp):
                if teacher is None:
                    logits = model(x)
                else:
                    functional.reset_net(teacher)
                    with MembraneRecorder(teacher) as t_rec, MembraneRecorder(model) as s_rec:
                        teacher(x)
                        logits = model(x)
                    counts[4] += membrane_mse(s_rec.membranes, t_rec.membranes)  # unclipped: the plain gap
                    counts[5] += 1
            right = logits.argmax(1) == y
            if hits is not None:
                hits.append(right)
            counts[0] += right.sum()
            counts[1] += len(y)
            for spikes, n in rate.records:
                counts[2] += spikes
                counts[3] += n
            rate.clear_recorded_data()
    finally:
        rate.remove_hooks()
    return counts


def summarize(counts: torch.Tensor, membrane: bool = False) -> dict[str, float]:
    """A tally's (or the sum of several processes' tallies') ``top1`` (%), ``spike_rate`` (spikes per
    LIF output and time step), ``samples`` and, with ``membrane``, ``membrane_mse`` (the mean over
    batches). One host sync."""
    correct, total, spikes, neurons, mse_sum, mse_batches = counts.tolist()
    out = {"top1": 100.0 * correct / max(total, 1), "spike_rate": spikes / max(neurons, 1), "samples": int(total)}
    if membrane:
        out["membrane_mse"] = mse_sum / max(mse_batches, 1)
    return out


def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
             amp: bool = False, teacher: nn.Module | None = None, *, per_sample: bool = False) -> dict[str, Any]:
    """Top-1 (%), mean spike rate, the number of samples, and for a student with a teacher the mean
    membrane MSE to it, on ``batches`` (see :func:`tally`). ``per_sample``: also ``hits``, ``[N]`` bool
    on the CPU, which samples ``model`` gets right, in order."""
    hits: list[torch.Tensor] | None = [] if per_sample else None
    out: dict[str, Any] = summarize(tally(model, batches, device, amp, teacher, hits), teacher is not None)
    if hits is not None:
        out["hits"] = torch.cat(hits).cpu() if hits else torch.zeros(0, dtype=torch.bool)
    return out


def load_model(ref: str | os.PathLike) -> tuple[nn.Module, str, dict, str | None]:
    """(model in eval mode, its data set, the options that read the data set as it was trained, its
    teacher's reference or None) for a zoo name or a checkpoint path (``.safetensors``)."""
    from mdsnn_zoo.train.build import model_from_checkpoint
    from mdsnn_zoo.zoo.registry import create_model, get_entry

    if str(ref).endswith(".safetensors") or Path(ref).exists():
        model, cfg = model_from_checkpoint(ref)
        return model, cfg.dataset, cfg.data_options, cfg.teacher if cfg.method == "md" else None
    e = get_entry(str(ref))  # an unknown name raises, listing the closest ones
    return create_model(e.name, pretrained=True), e.dataset, e.data_options, e.teacher


def data_options_for(model_dataset: str, model_options: dict, dataset: str, root: str | None = None) -> dict:
    """Options to read ``dataset`` (found in ``root``) for a model trained on ``model_dataset`` read
    with ``model_options``: those on its own data; on other event data its number of frames (and, for
    a folder of recordings, its binning), and for a folder of your own images or recordings the
    model's input shape. See :func:`mdsnn_zoo.train.data.read_options`."""
    from mdsnn_zoo.data import dataset_info, dataset_kind, shape_from_files
    from mdsnn_zoo.train.data import read_options

    if dataset == model_dataset:
        return dict(model_options)
    carried = {}
    if dataset_kind(dataset) == "events":  # an event folder takes the binning too
        keys = ("time_steps", "binning") if shape_from_files(dataset) else ("time_steps",)
        carried = {k: model_options[k] for k in keys if k in model_options}
    shape = dataset_info(model_dataset, **model_options).input_shape if shape_from_files(dataset) else None
    return read_options(dataset, None, carried, root, shape)
