"""Fine-tuning: a zoo model or a checkpoint trained further, on its own data or on yours (files, or
``Dataset`` objects from Python), with membrane distillation where it is a student."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.train.config import TrainConfig
from mdsnn_zoo.train.loop import train


def finetune_config(cfg: TrainConfig, name: str | None, teacher: str | None = None, distill: bool = True
                    ) -> TrainConfig:
    """``cfg`` made the fine-tuning run of zoo model ``name`` (its architecture, T, bits and scale grid; MD from a
    teacher that knows ``cfg.dataset`` when it is a student and ``distill``), or, with ``name`` None,
    of the checkpoint ``cfg.init`` (MD when ``teacher`` is given)."""
    if name is None:
        if not cfg.init:
            raise InvalidValueError("finetune needs a zoo model NAME or a checkpoint (--init PATH)")
        return dataclasses.replace(cfg, method="md" if teacher else "finetune", teacher=teacher)
    from mdsnn_zoo.zoo.registry import get_entry, get_weights

    e = get_entry(name)
    method = "md" if e.teacher and distill else "finetune"
    # on its own data set the zoo teacher; on other data one fine-tuned on it (finetune_runs makes it first)
    teacher = teacher or (e.teacher if method == "md" and cfg.dataset == e.dataset else None)
    return dataclasses.replace(cfg, method=method, zoo_model=e.name, arch=e.arch,
                               arch_kwargs={**e.arch_kwargs, **cfg.arch_kwargs}, time_steps=e.time_steps,
                               w_bits=e.w_bits, u_bits=e.u_bits, first_last_bits=e.first_last_bits, teacher=teacher,
                               # a hardware-exact entry stays on its grid unless --scale-bits says otherwise
                               scale_bits=get_weights(name).scale_bits if cfg.scale_bits is None else cfg.scale_bits)


def finetune_runs(cfg: TrainConfig, name: str | None, teacher: str | None = None, distill: bool = True
                  ) -> list[TrainConfig]:
    """The runs that fine-tune ``name`` (or the checkpoint ``cfg.init``), in order.

    A zoo student on data its zoo teacher never saw is trained as MD-SNN trains one: its family's float
    model, fine-tuned on the data (into ``OUT/teacher/``, unless ``teacher`` names such a checkpoint),
    is both its teacher and its start, quantized (the student is the teacher's network); with
    ``distill`` False the student starts there too and learns from the labels alone (naive QAT). A
    float model, a student on its own data set, or a checkpoint: one run, :func:`finetune_config`."""
    from mdsnn_zoo.zoo.registry import get_entry

    e = get_entry(name) if name is not None else None
    if e is None or not e.teacher or cfg.dataset == e.dataset:
        return [finetune_config(cfg, name, teacher, distill)]
    runs = []
    if teacher is None:
        runs.append(finetune_config(dataclasses.replace(cfg, out_dir=str(Path(cfg.out_dir) / "teacher")), e.teacher))
        teacher = str(Path(runs[0].out_dir) / "best.safetensors")
    student = finetune_config(cfg, name, teacher, distill)
    runs.append(dataclasses.replace(student, zoo_model=None, method="md" if distill else "finetune",
                                    teacher=teacher if distill else None, init=None if distill else teacher))
    return runs


def finetune(model: str, train_set: Dataset, val_set: Dataset | None = None, *, teacher: str | None = None,
             distill: bool = True, dataset_name: str = "custom", log: Callable[[str], Any] = print,
             **config: Any) -> dict[str, Any]:
    """Fine-tune zoo model ``model`` (a name) on ``Dataset`` objects, as ``mdsnn-zoo finetune`` does on
    files: a fresh head for other classes, checkpoints chosen on ``val_set`` (else a held-out part of
    ``train_set``), a student with MD from ``teacher`` (a float checkpoint fine-tuned on this data:
    ``finetune(teacher_name, ...)`` first) unless ``distill=False``. Samples: ``(x [C, H, W], label)``
    shaped as the model takes them. ``config``: any ``TrainConfig`` field (``epochs``, ``lr``,
    ``out_dir``...). Returns ``train``'s result (step, best validation top-1) and ``out_dir``."""
    from mdsnn_zoo.data import from_datasets
    from mdsnn_zoo.train.flags import COMMAND_DEFAULTS

    from_datasets(dataset_name, train_set, val_set)
    base = TrainConfig(**{**COMMAND_DEFAULTS["finetune"], "out_dir": "runs/finetune", **config,
                          "dataset": dataset_name})
    return run_all(finetune_runs(base, model, teacher, distill), log)


def run_all(runs: list[TrainConfig], log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train ``runs`` in order (a teacher before the student it teaches), saying which is which;
    returns the last one's result and ``out_dir``."""
    result: dict[str, Any] = {}
    for i, cfg in enumerate(runs):
        if len(runs) > 1:
            what = "the student" if i == len(runs) - 1 else f"its teacher ({cfg.zoo_model}) first"
            log(f"fine-tuning {what}, into {cfg.out_dir}")
        result = {**train(cfg, log=log), "out_dir": cfg.out_dir}
    return result
