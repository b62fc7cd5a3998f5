"""``mdsnn-zoo cost NAME | CHECKPOINT``: what a model costs on hardware (energy, latency, area, EDAP,
TOPS/W, TOPS/mm²), per layer and in total, measured on a batch of its test split. A checkpoint may be
of any architecture (``mdsnn-zoo list`` shows them) written by train, distill or finetune; it is built
as ``mdsnn-zoo eval`` builds it (:func:`mdsnn_zoo.cost.measure`)."""

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


def run(args: argparse.Namespace) -> int:
    import json

    from mdsnn_zoo.cost import measure

    report = measure(args.model, args.hardware, args.activity, args.samples, args.data_root)
    if args.json:
        print(json.dumps({"model": args.model, **report.totals(), "unmapped": list(report.unmapped)}))
    else:
        print(report.table())
    return 0
