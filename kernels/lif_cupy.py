"""Multi-step LIF neuron (optionally quantized membrane) through ``cupy.RawModule`` and ``lif.cu``.

The same algorithm and contract as ``lif_reference`` and ``lif_triton``; the CUDA C source is the
file ``lif.cu`` beside this one (one thread per neuron, T steps in registers, flags at run time).
CUDA tensors only, float32/float16/bfloat16 (bfloat16 needs compute capability 8.0 or newer).
Kernels run on the tensors' device, on PyTorch's current stream there. ``mdsnn-zoo bench aot`` (and
the tests, with no GPU) compile ``lif.cu`` with NVRTC for sm_80 and sm_90 as ``cupy.RawModule`` does;
on a GPU the tests compare it with the reference.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from mdsnn_zoo.kernels.launch import cuda_target, cupy_on, step_strides
from mdsnn_zoo.kernels.lif_reference import SURROGATES, ForwardBuffers, LIFParams

SOURCE = Path(__file__).with_name("lif.cu")
THREADS = 256
_TYPE_NAMES = {torch.float32: "float", torch.float16: "f16", torch.bfloat16: "bf16"}


def _name(kind: str, dtype: torch.dtype, target_dtype: torch.dtype | None) -> str:
    """The instantiation for input ``dtype`` and a target of ``target_dtype`` (that dtype or float32)."""
    tgt = dtype if target_dtype is None else target_dtype
    return f"lif_{kind}<{_TYPE_NAMES[dtype]}, {_TYPE_NAMES[tgt]}>"


def name_expressions() -> list[str]:
    """Every instantiation the launchers ask for (the ahead-of-time check compiles the same)."""
    return sorted({_name(kind, dt, tgt) for kind in ("fwd", "bwd") for dt in _TYPE_NAMES
                   for tgt in (dt, torch.float32)})


@functools.cache
def _module():
    import cupy

    options = ("--std=c++17", f"-I{SOURCE.parent}")  # cuda_common.cuh beside the source
    return cupy.RawModule(code=SOURCE.read_text(), options=options, name_expressions=name_expressions())




def _blocks(n: int) -> int:
    """Grid size: one thread per neuron, capped (threads then stride over the rest)."""
    return max(1, min((n + THREADS - 1) // THREADS, 65535 * 8))


def _launch(kind: str, dtype: torch.dtype, target: torch.Tensor | None, like: torch.Tensor, n: int,
            args: tuple) -> None:
    """Run ``lif_<kind>`` for input ``dtype`` (and ``target``'s dtype) on ``like``'s device, over ``n`` neurons."""
    if dtype not in _TYPE_NAMES:
        raise TypeError(f"the cupy LIF kernels take float32, float16 or bfloat16, not {dtype}")
    with cupy_on(like):  # the module is loaded on, and the kernel runs on, that device
        kernel = _module().get_function(_name(kind, dtype, None if target is None else target.dtype))
        kernel((_blocks(n),), (THREADS,), args)


def _ptr(t: torch.Tensor | None) -> np.uint64:
    return np.uint64(0 if t is None else t.data_ptr())


def _np_strides(t: torch.Tensor) -> tuple[torch.Tensor, np.int64, np.int64]:
    t, time_stride, elem_stride = step_strides(t)
    return t, np.int64(time_stride), np.int64(elem_stride)


def _flags(p: LIFParams) -> tuple:
    quant = p.u_bits is not None
    return (np.int32(quant), np.int32(p.hard_reset), np.int32(p.decay_input))


def _grid_range(p: LIFParams) -> tuple:
    """(qmin, qmax, code_offset) as the kernels take them."""
    quant = p.u_bits is not None
    return (np.int32(p.qmin if quant else 0), np.int32(p.qmax if quant else 0),
            np.int32(p.code_offset if quant else 0))


def forward(x: torch.Tensor, v0: torch.Tensor, delta: torch.Tensor | None, p: LIFParams, need_h: bool,
            save: bool = True, target: torch.Tensor | None = None):
    """Same contract as ``lif_reference.lif_forward`` (CUDA tensors, no float64)."""
    T, M = x.shape
    x, sxt, sxm = _np_strides(x)
    v0 = v0.float().contiguous()
    quant = p.u_bits is not None
    out = ForwardBuffers.allocate(x, p, need_h, save)
    target = cuda_target(target, x.dtype)
    partial = torch.zeros((_blocks(M),), dtype=torch.float32, device=x.device) if target is not None else None
    if M:
        args = (_ptr(x), sxt, sxm, _ptr(v0), _ptr(delta if quant else None), _ptr(out.spikes),
                _ptr(out.v_last), _ptr(None if quant else out.state), _ptr(out.state if quant else None),
                _ptr(out.frac), _ptr(out.h_seq), _ptr(target), _ptr(partial), np.int64(M), np.int32(T),
                np.float32(p.tau), np.float32(p.v_threshold), np.float32(p.reset_value),
                np.float32(p.reset_value - p.v_threshold), *_flags(p), np.int32(out.write_h),
                np.int32(out.write_state), np.int32(target is not None), *_grid_range(p))
        _launch("fwd", x.dtype, target, x, M, args)
    return out.outputs(need_h, save, partial.sum() if partial is not None else None)


def backward(grad_s, grad_v, grad_h, state, frac, delta, p: LIFParams, out_dtype: torch.dtype,
             target: torch.Tensor | None = None, coef: torch.Tensor | None = None):
    """Same contract as ``lif_reference.lif_backward`` (CUDA tensors, no float64)."""
    T, M = state.shape
    quant = p.u_bits is not None
    dev = state.device
    grad_s, sgt, sgm = _np_strides(grad_s.to(out_dtype))
    if grad_h is not None:
        grad_h, sht, shm = _np_strides(grad_h.to(out_dtype))
    else:
        sht = shm = np.int64(0)
    grad_v = grad_v.float().contiguous() if grad_v is not None else None
    # kept in locals: the kernel reads them through raw pointers
    target = cuda_target(target, out_dtype)
    coef = coef.float().reshape(1).contiguous() if coef is not None else None
    grad_x = torch.empty((T, M), dtype=out_dtype, device=dev)
    grad_v0 = torch.empty((M,), dtype=torch.float32, device=dev)
    partial = torch.zeros((_blocks(M),), dtype=torch.float32, device=dev) if quant else None
    if M:
        args = (_ptr(grad_s), sgt, sgm, _ptr(grad_v), _ptr(grad_h), sht, shm,
                _ptr(None if quant else state), _ptr(state if quant else None), _ptr(frac),
                _ptr(delta if quant else None), _ptr(grad_x), _ptr(grad_v0), _ptr(partial),
                _ptr(target), _ptr(coef), np.int64(M), np.int32(T), np.float32(p.tau), np.float32(p.v_threshold),
                np.float32(p.reset_value), np.float32(p.reset_value - p.v_threshold), np.float32(p.alpha),
                np.float32(p.surrogate_shift or 0.0), *_flags(p), np.int32(p.detach_reset),
                np.int32(SURROGATES.index(p.surrogate)), np.int32(quant and p.surrogate_shift is not None),
                np.int32(grad_v is not None),
                np.int32(grad_h is not None), np.int32(target is not None), *_grid_range(p))
        _launch("bwd", out_dtype, target, state, M, args)
    return grad_x, grad_v0, (partial.sum() if quant else None)
