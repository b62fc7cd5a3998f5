"""Membrane MSE between a student's and a teacher's recorded membranes: the torch reference.

The one definition (``mean_squared``, on targets from ``clip_target``); every other path is a
backend of it, held to it by the tests. For one layer with student membrane ``s`` and teacher
membrane ``t`` (same shape ``[T, N, *]``, ``n`` elements): ``loss_sum = Σ (s - t)²`` and, when
asked, the gradient ``g = scale · (s - t)`` (the caller passes ``scale = 2 · weight / (n · layers)``).
Fused backends compute both in one pass over memory (read s and t, write g): 2 reads + 1 write per
element, in the student's dtype for g. The teacher never receives a gradient.
"""

from __future__ import annotations

import torch


def clip_target(t: torch.Tensor, span: tuple[float, float] | None) -> torch.Tensor:
    """The teacher membrane a student is asked for: ``t`` clipped to ``span``, the (lowest, highest)
    value of the student's membrane grid (``QuantLIFNode.grid_range``), or as is for a float membrane.
    Every path (fused in the LIF kernels, a separate pass, plain autograd) takes its target from here."""
    return t if span is None else t.clamp(*span)


def mean_squared(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The membrane MSE of one layer: the mean over T, N and features of ``(s - t)²``, float32."""
    d = s.float() - t.float()
    return (d * d).mean()


def mse_forward(s: torch.Tensor, t: torch.Tensor, scale: float, need_grad: bool):
    """``(loss_sum, grad)``: ``loss_sum`` a float32 0-d tensor, ``grad`` like ``s`` or None."""
    d = s.float() - t.float()
    loss_sum = (d * d).sum()
    return loss_sum, ((d * scale).to(s.dtype) if need_grad else None)


forward = mse_forward
