"""``mdsnn-zoo export SOURCE --format int --out PATH``: a hardware-exact student as an integer model
for :class:`mdsnn_zoo.runtime.IntegerModel` (NumPy only)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a zoo student (e.g. small_cnn.fmnist_t4_w2u2_md) or a checkpoint "
                                       "(path/to/best.safetensors) of one trained with --scale-bits")
    parser.add_argument("--format", choices=["int"], default="int",
                        help="int: integer weight codes, multipliers, shifts and biases (safetensors) and a JSON graph")
    parser.add_argument("--out", required=True, help="the folder to write (graph.json, weights.safetensors)")


def run(args: argparse.Namespace) -> int:
    from mdsnn_zoo.export import export
    from mdsnn_zoo.runtime import GRAPH_FILE, WEIGHTS_FILE

    out = export(args.source, args.out)
    size = (out / WEIGHTS_FILE).stat().st_size + (out / GRAPH_FILE).stat().st_size
    print(f"wrote {out} ({size:,} bytes): run it with mdsnn_zoo.runtime.IntegerModel.load({str(out)!r}).predict(x)")
    return 0
