"""``mdsnn-zoo train``: a full-precision network (``--teacher``: with KD from a float network's logits, e.g.
its ReLU twin), or a naive QAT student (``--w-bits``/``--u-bits``)."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import add_config_arguments, config_from_args, run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, {})


def run(args: argparse.Namespace) -> int:
    method = "qat" if args.w_bits is not None or args.u_bits is not None else "fp"
    return run_training(config_from_args(args, method))
