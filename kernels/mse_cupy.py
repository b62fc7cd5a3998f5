"""Membrane MSE, fused, through ``cupy.RawModule`` and ``mse.cu`` (same contract as the reference).

CUDA tensors, float32/float16/bfloat16; launched on PyTorch's current stream.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).with_name("mse.cu")
THREADS = 256
MAX_BLOCKS = 4096
_TYPE_NAMES = {torch.float32: "float", torch.float16: "f16", torch.bfloat16: "bf16"}


@functools.cache
def _module():
    import cupy

    names = [f"membrane_mse<{t}>" for t in _TYPE_NAMES.values()]
    options = ("--std=c++17", f"-I{SOURCE.parent}")  # cuda_common.cuh beside the source
    return cupy.RawModule(code=SOURCE.read_text(), options=options, name_expressions=names)


def mse_forward(s: torch.Tensor, t: torch.Tensor, scale: float, need_grad: bool):
    """Same contract as ``mse_reference.mse_forward``."""
    import cupy

    if s.dtype not in _TYPE_NAMES or t.dtype != s.dtype:
        raise TypeError(f"the cupy membrane MSE takes two float32/float16/bfloat16 tensors of one "
                        f"dtype, got {s.dtype} and {t.dtype}")
    s, t = s.contiguous(), t.contiguous()
    n = s.numel()
    blocks = max(1, min((n + THREADS - 1) // THREADS, MAX_BLOCKS))
    partial = torch.zeros(blocks, dtype=torch.float32, device=s.device)
    grad = torch.empty_like(s) if need_grad else None
    if n:
        kernel = _module().get_function(f"membrane_mse<{_TYPE_NAMES[s.dtype]}>")
        args = (np.uint64(s.data_ptr()), np.uint64(t.data_ptr()),
                np.uint64(grad.data_ptr() if need_grad else 0), np.uint64(partial.data_ptr()),
                np.int64(n), np.float32(scale), np.int32(need_grad))
        with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            kernel((blocks,), (THREADS,), args)
    return partial.sum(), grad


forward = mse_forward
