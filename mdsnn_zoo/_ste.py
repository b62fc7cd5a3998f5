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


def dyadic_ste(x: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """``x`` (positive) rounded to the nearest ``M 2^e`` with ``M`` an integer of ``frac_bits + 1``
    bits (``2^frac_bits <= M <= 2^(frac_bits + 1)``: a fixed-point multiplier and a shift), in value
    exactly; gradient 1. ``frac_bits = 0``: the nearest power of two on a linear scale."""
    e = torch.exp2(torch.floor(torch.log2(x.detach())) - frac_bits)
    return torch.round(x.detach() / e) * e + (x - x.detach())
