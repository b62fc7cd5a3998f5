"""Straight-through helpers shared by the neuron and the quantizers."""

from __future__ import annotations

import torch


class _GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in value; the gradient is multiplied by ``scale`` (LSQ's step-size gradient scale)."""
    return _GradScale.apply(x, scale)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in value (exactly), gradient 1."""
    return x.detach().round() + (x - x.detach())


def pow2_ste(x: torch.Tensor) -> torch.Tensor:
    """``2^round(log2 x)`` in value (exactly), gradient 1."""
    return torch.exp2(torch.round(torch.log2(x.detach()))) + (x - x.detach())
