"""``mdsnn-zoo distill``: MD-SNN, a low-bit student trained from a frozen float teacher."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import COMMAND_DEFAULTS, add_config_arguments, config_from_args, run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, COMMAND_DEFAULTS["distill"])


def run(args: argparse.Namespace) -> int:
    return run_training(config_from_args(args, "md"))
