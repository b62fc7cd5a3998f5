"""``mdsnn-zoo finetune [NAME]``: continue training a zoo model (NAME) or a checkpoint (``--init``).

A zoo student is fine-tuned with MD: on its own data set from its zoo teacher; on other data (an
image folder) from ``--teacher``, a float checkpoint fine-tuned on that data first (the zoo teacher
never saw it), else the run stops and says so (``--no-distill``: cross-entropy only). A checkpoint is
fine-tuned with MD when ``--teacher`` is given."""

from __future__ import annotations

import argparse

from mdsnn_zoo.cli._train_args import add_config_arguments, config_from_args, run_training
from mdsnn_zoo.errors import InvalidValueError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="a zoo model (see `mdsnn-zoo list --pretrained`)")
    parser.add_argument("--no-distill", action="store_true", help="a zoo student: cross-entropy only")
    add_config_arguments(parser, {"lr": 0.01, "warmup_epochs": 0.0, "learn_step": False})


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        if not args.init:
            raise InvalidValueError("finetune needs a zoo model NAME or a checkpoint (--init PATH)")
        return run_training(config_from_args(args, "md" if args.teacher else "finetune"))
    from mdsnn_zoo.zoo.registry import get_entry

    e = get_entry(args.name)
    method = "md" if e.teacher and not args.no_distill else "finetune"
    cfg = config_from_args(args, method)
    cfg.zoo_model, cfg.arch, cfg.arch_kwargs = e.name, e.arch, {**e.arch_kwargs, **cfg.arch_kwargs}
    cfg.time_steps, cfg.w_bits, cfg.u_bits, cfg.first_last_bits = e.time_steps, e.w_bits, e.u_bits, e.first_last_bits
    # on its own data set the zoo teacher; on other data a teacher fine-tuned on it (--teacher), or an error
    cfg.teacher = args.teacher or (e.teacher if method == "md" and cfg.dataset == e.dataset else None)
    return run_training(cfg)
