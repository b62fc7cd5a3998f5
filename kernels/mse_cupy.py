"""Membrane MSE, fused, through ``cupy.RawModule`` and ``mse.cu`` (same contract as the reference).

CUDA tensors, float32/float16/bfloat16 (the teacher widened to float32 as in the reference);
launched on the tensors' device, on PyTorch's current stream there.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from mdsnn_zoo.kernels.launch import cuda_target, cupy_on

SOURCE = Path(__file__).with_name("mse.cu")
THREADS = 256
MAX_BLOCKS = 4096
_TYPE_NAMES = {torch.float32: "float", torch.float16: "f16", torch.bfloat16: "bf16"}


def _name(s_dtype: torch.dtype, t_dtype: torch.dtype) -> str:
    return f"membrane_mse<{_TYPE_NAMES[s_dtype]}, {_TYPE_NAMES[t_dtype]}>"


def name_expressions() -> list[str]:
    """Every instantiation the launcher asks for: a teacher of the student's dtype or float32."""
    return sorted({_name(dt, tgt) for dt in _TYPE_NAMES for tgt in (dt, torch.float32)})


@functools.cache
def _module():
    import cupy

    options = ("--std=c++17", f"-I{SOURCE.parent}")  # cuda_common.cuh beside the source
    return cupy.RawModule(code=SOURCE.read_text(), options=options, name_expressions=name_expressions())


def mse_forward(s: torch.Tensor, t: torch.Tensor, scale: float, need_grad: bool):
    """Same contract as ``mse_reference.mse_forward``."""
    if s.dtype not in _TYPE_NAMES:
        raise TypeError(f"the cupy membrane MSE takes a float32/float16/bfloat16 student, got {s.dtype}")
    s, t = s.contiguous(), cuda_target(t, s.dtype)
    n = s.numel()
    blocks = max(1, min((n + THREADS - 1) // THREADS, MAX_BLOCKS))
    partial = torch.zeros(blocks, dtype=torch.float32, device=s.device)
    grad = torch.empty_like(s) if need_grad else None
    if n:
        args = (np.uint64(s.data_ptr()), np.uint64(t.data_ptr()),
                np.uint64(grad.data_ptr() if need_grad else 0), np.uint64(partial.data_ptr()),
                np.int64(n), np.float32(scale), np.int32(need_grad))
        with cupy_on(s):  # the module is loaded on, and the kernel runs on, s's device
            _module().get_function(_name(s.dtype, t.dtype))((blocks,), (THREADS,), args)
    return partial.sum(), grad


forward = mse_forward
