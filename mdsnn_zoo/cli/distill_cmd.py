"""``mdsnn-zoo distill``: MD-SNN, a low-bit student trained from a frozen float teacher."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import add_config_arguments, config_from_args, run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, {"w_bits": 2, "u_bits": 2, "lr": 0.02, "warmup_epochs": 0.0, "learn_step": False})


def run(args: argparse.Namespace) -> int:
    return run_training(config_from_args(args, "md"))
