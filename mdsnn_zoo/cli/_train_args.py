"""Arguments shared by ``train``, ``distill`` and ``finetune``: one flag per TrainConfig field (the
library's :mod:`mdsnn_zoo.train.flags`), and running the training they describe."""

from __future__ import annotations

import json

from mdsnn_zoo.train.config import TrainConfig
from mdsnn_zoo.train.flags import COMMAND_DEFAULTS, add_config_arguments, config_from_args, train_method
from mdsnn_zoo.train.flags import SKIP as _SKIP

__all__ = ["COMMAND_DEFAULTS", "_SKIP", "add_config_arguments", "config_from_args", "run_training", "train_method"]


def run_training(*runs: TrainConfig) -> int:
    """Train ``runs`` in order (a teacher before its student), then print the last one's result."""
    from mdsnn_zoo.machine import tune_cpu_allocator
    from mdsnn_zoo.train.finetuning import run_all

    if runs[0].device in ("auto", "cpu"):
        tune_cpu_allocator()
    result = run_all(list(runs))
    result.pop("out_dir")
    print(json.dumps(result))
    return 0
