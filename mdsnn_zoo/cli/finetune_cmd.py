"""``mdsnn-zoo finetune [NAME]``: continue training a zoo model (NAME) or a checkpoint (``--init``).

A zoo student is fine-tuned with MD: on its own data set from its zoo teacher; on other data (an
image folder) from ``--teacher``, a float checkpoint fine-tuned on that data first (the zoo teacher
never saw it), else the run stops and says so (``--no-distill``: cross-entropy only). A checkpoint is
fine-tuned with MD when ``--teacher`` is given."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import COMMAND_DEFAULTS, add_config_arguments, config_from_args, run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="a zoo model (see `mdsnn-zoo list --pretrained`)")
    parser.add_argument("--no-distill", action="store_true", help="a zoo student: cross-entropy only")
    add_config_arguments(parser, COMMAND_DEFAULTS["finetune"])


def run(args: argparse.Namespace) -> int:
    from mdsnn_zoo.train.finetuning import finetune_runs

    return run_training(*finetune_runs(config_from_args(args, "finetune"), args.name, args.teacher,
                                       not args.no_distill))
