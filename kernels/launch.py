"""What every CUDA launcher shares: the device its tensors live on made current around a launch,
CuPy kernels on PyTorch's stream of that device, the layouts the kernels read, and the teacher
membrane's dtype contract.

The contract for a membrane target (the teacher's H, fused LIF or separate MSE): it is read in its
own dtype and widened to float32, as the reference computes it, on every backend. A CUDA C kernel is
instantiated for a target of the input's dtype or of float32; any other is widened to float32 first
(exact for float16 and bfloat16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def on_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Make ``t``'s CUDA device current (a launch goes to the current device); nothing on the CPU."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


@contextlib.contextmanager
def cupy_on(t: torch.Tensor) -> Iterator[None]:
    """CuPy launches on ``t``'s device, on PyTorch's current stream of that device."""
    import cupy

    with on_device(t), cupy.cuda.Device(t.device.index), \
            cupy.cuda.ExternalStream(torch.cuda.current_stream(t.device).cuda_stream):
        yield


def cuda_target(target: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A target as a CUDA C kernel takes it: contiguous, of ``dtype`` or widened to float32."""
    if target is None:
        return None
    return (target if target.dtype == dtype else target.float()).contiguous()


def step_strides(t: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """``t`` (``[T, M]``) with its (time, element) strides, as the kernels read it: any stride between
    steps, 1 or 0 inside a step (a stride-0 gradient is read without a copy); anything else is copied."""
    if t.shape[1] > 1 and t.stride(1) not in (0, 1):
        t = t.contiguous()
    return t, t.stride(0), (t.stride(1) if t.shape[1] > 1 else 1)
