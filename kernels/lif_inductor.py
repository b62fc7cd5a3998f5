"""The reference LIF loops compiled by ``torch.compile`` (inductor): the CPU default backend.

What is fused: for a given T the loop over time is unrolled and inductor fuses the whole forward
(or backward) into one pass over the M neurons, with the state in registers: per element and step
it reads x (and writes spikes, codes/residuals or H) once, like the Triton kernel. Same arithmetic
as ``lif_reference`` (IEEE division, floor(h + 1/2)); the tests hold it to the reference.

Compilation happens once per (T, parameters, dtype, need_h, save); the neuron count M is a dynamic
dimension, so a new batch size does not recompile. First call: some seconds of C++ compilation.
"""

from __future__ import annotations

import functools
import logging
import warnings

import torch

from mdsnn_zoo.kernels import lif_reference
from mdsnn_zoo.kernels.lif_reference import LIFParams

# A quantized neuron on bfloat16 input stores its residuals as float16 (lif_reference), by design;
# inductor's C++ backend warns of the mix at every compilation.
warnings.filterwarnings("ignore", message="bf16 and fp16 are mixed in the scheduler node",
                        category=UserWarning, module=r"torch\._inductor")


class _NoCudaRuntimeNote(logging.Filter):
    """Drops torch's "No CUDA runtime is found, using CUDA_HOME=..." (logged when inductor first loads
    its C++ tooling on a machine with a CUDA toolkit and no GPU): compiling for the CPU needs no CUDA."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")


logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaRuntimeNote())


@functools.cache
def _compiled(kind: str, p: LIFParams, need_h: bool, save: bool):
    import torch._dynamo.config as dynamo_config

    # One compiled graph per T x parameter set: allow more than dynamo's default of 8.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 256))
    if kind == "forward":
        fn = functools.partial(lif_reference.lif_forward, p=p, need_h=need_h, save=save)
    else:
        fn = functools.partial(lif_reference.lif_backward, p=p)
    return torch.compile(fn, dynamic=None, fullgraph=True)


def _dynamic_m(*tensors: torch.Tensor | None) -> None:
    for t in tensors:
        if t is not None and t.ndim >= 1 and t.shape[-1] > 1:
            torch._dynamo.maybe_mark_dynamic(t, t.ndim - 1)


def forward(x: torch.Tensor, v0: torch.Tensor, delta: torch.Tensor | None, p: LIFParams, need_h: bool,
            save: bool = True, target: torch.Tensor | None = None):
    """Same contract as ``lif_reference.lif_forward``."""
    _dynamic_m(x, v0, target)
    return _compiled("forward", p, need_h, save)(x, v0, delta, target=target)


def backward(grad_s, grad_v, grad_h, state, frac, delta, p: LIFParams, out_dtype: torch.dtype,
             target: torch.Tensor | None = None, coef: torch.Tensor | None = None):
    """Same contract as ``lif_reference.lif_backward``."""
    _dynamic_m(grad_s, grad_v, grad_h, state, frac, target)
    return _compiled("backward", p, False, True)(grad_s, grad_v, grad_h, state, frac, delta,
                                                 out_dtype=out_dtype, target=target, coef=coef)
