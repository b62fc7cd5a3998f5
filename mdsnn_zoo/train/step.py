"""One optimisation step (:func:`train_step`, also what ``mdsnn-zoo bench train`` times), the
optimizer and the learning-rate schedule."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from spikingjelly.activation_based import functional
from torch import nn

from mdsnn_zoo.distill import MDLoss, MembraneRecorder, MembraneTargets, SpikeForcing
from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.precision import autocast
from mdsnn_zoo.train.config import TrainConfig


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """The schedule's factor of the peak learning rate at a step: a linear warm-up over
    ``warmup_steps``, then a cosine to 0 at ``total_steps``."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Move ``average`` (a copy of ``model``) toward ``model`` after optimizer step ``step`` (1, 2, ...):
    every floating-point parameter and buffer ``a <- d a + (1 - d) w`` with ``d = min(decay,
    (1 + step) / (10 + step))``, so the first steps are not averaged with the starting weights for
    long; other buffers (counts, flags) are copied."""
    d = min(decay, (1 + step) / (10 + step))
    for a, w in zip(average.state_dict().values(), model.state_dict().values(), strict=True):
        if a.is_floating_point():
            a.lerp_(w.to(a.dtype), 1.0 - d)
        else:
            a.copy_(w)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW over ``model``'s trainable parameters, weight decay on weight
    matrices and kernels only (none on biases, BN, scales and membrane steps)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise InvalidValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")


def train_step(net: nn.Module, model: nn.Module, teacher: nn.Module | None, optimizer: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor, loss_fn: MDLoss, *, amp: bool, fused_mse: bool = True,
               grad_clip: float | None = None, forcing: float = 0.0
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One optimisation step of ``model`` (run as ``net``: itself, or its DDP wrapper) on
    ``x: [N, C, H, W]`` (or ``[N, T, C, H, W]`` frames), ``y: [N]`` with ``loss_fn``: its cross-entropy
    alone without a teacher, with one also KD and, unless ``loss_fn.mem_weight`` is 0, the membrane
    MSE to the teacher's. ``forcing``: the share of the student's spikes replaced by the teacher's
    (:class:`SpikeForcing`). Returns (loss, logits ``[N, classes]``, loss parts), detached, on the
    device: no host sync. The trainer and ``mdsnn-zoo bench train`` both run this."""
    functional.reset_net(model)
    with autocast(x.device, amp):
        if teacher is None:
            logits = net(x)
            loss, parts = loss_fn(logits, y)
        else:
            loss, logits, parts = _distilled_loss(net, model, teacher, x, y, loss_fn, fused_mse, forcing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach(), parts


def _distilled_loss(net: nn.Module, model: nn.Module, teacher: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    loss_fn: MDLoss, fused_mse: bool, forcing: float
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The student's forward pass beside the frozen teacher's, and the loss with KD (and the membrane
    term): ``(loss, logits, parts)``, under the caller's autocast."""
    functional.reset_net(teacher)
    membranes = bool(loss_fn.mem_weight)  # without: KD on the logits alone (a ReLU twin has no membranes)
    recorder = MembraneRecorder(teacher, loss_fn.layers) if membranes or forcing else contextlib.nullcontext()
    with recorder as t_rec, torch.no_grad():
        t_logits = teacher(x)
    forced = SpikeForcing(model, t_rec.membranes, forcing) if forcing else contextlib.nullcontext()
    with forced:
        if not membranes:
            logits = net(x)
            loss, parts = loss_fn(logits, y, t_logits)
        elif fused_mse:  # the MSE inside the student's LIF kernels
            with MembraneTargets(model, t_rec.membranes) as targets:
                logits = net(x)
            loss, parts = loss_fn(logits, y, t_logits, membrane_loss=targets.loss())
        else:
            with MembraneRecorder(model, loss_fn.layers) as s_rec:
                logits = net(x)
            loss, parts = loss_fn(logits, y, t_logits, s_rec.membranes, t_rec.membranes, clip=s_rec.ranges)
    return loss, logits, parts
