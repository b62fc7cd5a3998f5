"""Membrane MSE, fused: one Triton pass per layer reads the student and teacher membranes once and
writes the gradient while it reduces the squared error.

Each program reduces a block of 4096 elements to one float32 partial sum; the partial sums of all
blocks are added afterwards (``torch.sum`` over ``ceil(n / 4096)`` values), so the loss covers every
block however many there are. Bytes per element: read s and t, write g (in s's dtype).
float32, float16, bfloat16; CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mdsnn_zoo.kernels.launch import on_device

BLOCK = 4096


@triton.jit
def _mse_kernel(s_ptr, t_ptr, g_ptr, partial_ptr, n, scale, WRITE_GRAD: tl.constexpr,
                BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    d = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32) - \
        tl.load(t_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if WRITE_GRAD:
        tl.store(g_ptr + offs, (d * scale).to(g_ptr.dtype.element_ty), mask=mask)
    tl.store(partial_ptr + pid, tl.sum(d * d, axis=0))


def mse_forward(s: torch.Tensor, t: torch.Tensor, scale: float, need_grad: bool):
    """Same contract as ``mse_reference.mse_forward``."""
    s, t = s.contiguous(), t.contiguous()
    n = s.numel()
    blocks = max(1, triton.cdiv(n, BLOCK))
    partial = torch.zeros(blocks, dtype=torch.float32, device=s.device)
    grad = torch.empty_like(s) if need_grad else None
    if n:
        with on_device(s):
            _mse_kernel[(blocks,)](s, t, grad if need_grad else s, partial, n, scale,
                                   WRITE_GRAD=need_grad, BLOCK=BLOCK, num_warps=8)
    return partial.sum(), grad


forward = mse_forward
