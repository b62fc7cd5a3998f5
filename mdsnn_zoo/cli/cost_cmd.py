"""``mdsnn-zoo cost NAME | CHECKPOINT``: what a model costs on hardware (energy, latency, area, EDAP,
TOPS/W, TOPS/mm²), per layer and in total, measured on a batch of its test split. A checkpoint may be
of any architecture (``mdsnn-zoo list`` shows them) written by train, distill or finetune; it is built
as ``mdsnn-zoo eval`` builds it (:func:`mdsnn_zoo.cli.eval_cmd.load_model`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a zoo model name or a checkpoint (.safetensors) of any architecture, "
                        "written by train/distill/finetune")
    parser.add_argument("--hardware", choices=["spikesim", "digital"], default="spikesim")
    parser.add_argument("--activity", choices=["dense", "spikes"], default="dense",
                        help="dense: every operation; spikes: the work follows the measured spikes")
    parser.add_argument("--samples", type=int, default=64, help="test samples the activity is measured on")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", action="store_true", help="one JSON line of the totals instead of the table")


def measure(ref: str, hardware: str, activity: str, samples: int = 64, data_root: str | None = None):
    """The :class:`mdsnn_zoo.cost.CostReport` of a zoo name or checkpoint (any trained architecture, built
    by ``load_model`` as ``eval`` builds it) on its test split's first ``samples`` samples, per sample."""
    import torch

    from mdsnn_zoo.cli.eval_cmd import load_model
    from mdsnn_zoo.cost import estimate
    from mdsnn_zoo.data import get_dataset, to_time_major
    from mdsnn_zoo.errors import InvalidValueError

    if samples < 1:
        raise InvalidValueError(f"--samples must be >= 1, got {samples}")
    model, dataset, options, _ = load_model(ref)
    data = get_dataset(dataset, "test", root=data_root, **options)
    idx = torch.arange(min(samples, len(data)))
    x = data.batch(idx)[0] if hasattr(data, "batch") else torch.stack([data[int(i)][0] for i in idx])
    return estimate(model, to_time_major(x, model.time_steps), hardware, activity)


def run(args: argparse.Namespace) -> int:
    import json

    report = measure(args.model, args.hardware, args.activity, args.samples, args.data_root)
    if args.json:
        print(json.dumps({"model": args.model, **report.totals(), "unmapped": list(report.unmapped)}))
    else:
        print(report.table())
    return 0
