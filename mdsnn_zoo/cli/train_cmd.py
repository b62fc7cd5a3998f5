"""``mdsnn-zoo train``: a full-precision network (``--teacher``: with KD from a float network's logits, e.g.
its ReLU twin), or a naive QAT student (``--w-bits``/``--u-bits``)."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import (
    COMMAND_DEFAULTS,
    add_config_arguments,
    config_from_args,
    run_training,
    train_method,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, COMMAND_DEFAULTS["train"])


def run(args: argparse.Namespace) -> int:
    return run_training(config_from_args(args, train_method(args)))
