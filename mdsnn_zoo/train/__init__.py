"""Training: full precision, naive QAT, MD distillation and fine-tuning, on a CPU, a GPU or several
GPUs/processes through ``torchrun`` (DDP: NCCL on GPUs, gloo on CPUs).

    cfg = TrainConfig(method="md", arch="small_cnn", teacher="runs/fp/best.safetensors",
                      w_bits=2, u_bits=2, epochs=10, out_dir="runs/md")
    train(cfg)

Data order and augmentation come from generators seeded by ``seed`` (the epoch's permutation is a
function of seed and epoch; the augmentation generator's state is checkpointed), so a run resumed
from a checkpoint ends, on the CPU, with the same weights as one that never stopped. Checkpoints
(``last.safetensors`` every ``checkpoint_every`` steps and each epoch, ``best.safetensors`` by the
held-out validation accuracy) are written atomically; the test split is never used here.

The parts, each a module of this package:

- ``config``: :class:`TrainConfig` (every field a command-line flag) and :func:`config_from_dict`
- ``build``: :func:`build_network`, the one network builder (also the zoo's), the student and teacher
- ``data``: :func:`read_options` (how a data set is read for a model) and the train/validation split
- ``step``: :func:`train_step`, the optimizer and the schedule
- ``runlog``: the run folder's logs and the progress bar
- ``distributed``: the ranks and their collectives
- ``loop``: :func:`train`; ``finetuning``: :func:`finetune`, :func:`finetune_config`
- ``flags``: the command-line flags of a config (:func:`config_from_command`)

Evaluation is :mod:`mdsnn_zoo.evaluation` (re-exported here as :func:`evaluate`); checkpoints are
:mod:`mdsnn_zoo.checkpoint`. Names are imported on first use, so ``from mdsnn_zoo.train import
TrainConfig`` loads the configuration alone.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "TrainConfig": "config", "config_from_dict": "config", "METHODS": "config", "ACTIVATIONS": "config",
    "check_same_network": "config",
    "build_network": "build", "quantize_as": "build", "load_weights": "build", "model_from_checkpoint": "build",
    "float_teacher": "build", "build_student_and_teacher": "build", "configure_student": "build",
    "to_layout": "build",
    "read_options": "data", "resolve_data_options": "data", "training_data": "data",
    "train_step": "step", "make_optimizer": "step", "lr_lambda": "step", "SpikeForcing": "step",
    "MDLoss": "step",
    "RunLog": "runlog",
    "train": "loop", "setup": "loop", "validate": "loop",
    "finetune": "finetuning", "finetune_config": "finetuning",
    "config_from_command": "flags",
    "evaluate": "mdsnn_zoo.evaluation", "tally": "mdsnn_zoo.evaluation",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mdsnn_zoo.train' has no attribute {name!r}")
    where = _WHERE[name]
    module = importlib.import_module(where if "." in where else f"{__name__}.{where}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
