"""``mdsnn-zoo finetune``: continue training a checkpoint (``--init``), with MD when ``--teacher`` is given."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import add_config_arguments, config_from_args, run_training

HELP = "fine-tune a trained network from a checkpoint (--init), with distillation if --teacher is given"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, {"lr": 0.01, "warmup_epochs": 0.0})


def run(args: argparse.Namespace) -> int:
    return run_training(config_from_args(args, "md" if args.teacher else "finetune"))
