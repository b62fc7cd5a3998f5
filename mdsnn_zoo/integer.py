"""Integer-only inference of a hardware-exact student (``quantize_model(..., scale_bits=m)``).

After the input layer (a float current into the first LIF neuron) everything is int64: spikes are
0/1, a quantized layer accumulates its integer weight codes over the incoming spikes, the current
reaches the next neuron in fixed point with F fractional bits (a per-channel multiplier ``M_c`` and
shift, plus the integer bias B in units of Δ / 2^f, f = ``bias_frac_bits``), and the neuron charges,
rounds, fires and resets on its integer grid with a shift for the leak ``tau = 2^k``. For every
weight scale ``s_c = M_c 2^e_c`` and step ``Δ = 2^e`` (F >= f, F >= e - e_c):

    X_F   = (acc_c M_c) << (e_c - e + F)  +  B << (F - f)     (= x / Δ · 2^F exactly)
    H     = v 2^(F+k) + X_F - (v - r) 2^F                      (decay_input; = h 2^(F+k))
    H     = v 2^(F+k) - (v - r) 2^F + X_F 2^k                  (no decay_input)
    q     = clamp((H + 2^(F+k-1)) >> (F+k), qmin, qmax)        (= floor(h + 1/2): ties up)
    S     = q >= 0 (codes count from the threshold);  v = r if S else q (hard), q - θ S (soft)

This is what the float kernels compute (they work in grid units, and with these scales every float
operation there is exact), so the spikes agree bit for bit; the tests check it. Supported students:
``nn.Sequential`` of quantized layers, Identity, Flatten, MaxPool2d and QuantLIFNode, in multi-step
form ``[T, N, ...]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mdsnn_zoo.errors import InvalidTypeError, InvalidValueError
from mdsnn_zoo.kernels.lif_reference import grid_constants
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import QuantConv2d, QuantLinear


def _dyadic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, e)`` int64 with ``x == M 2^e`` exactly and M odd (positive float32 ``x``)."""
    mantissa, exponent = torch.frexp(x.detach().to(torch.float32))
    m = (mantissa * 2**24).to(torch.int64)  # exact: float32 has a 24-bit significand
    e = exponent.to(torch.int64) - 24
    for _ in range(24):  # strip trailing zero bits
        even = (m % 2 == 0) & (m != 0)
        m, e = torch.where(even, m // 2, m), torch.where(even, e + 1, e)
    return m, e


def _scale_of(module: QuantConv2d | QuantLinear) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's weight scales as ``(M_c, e_c)``, refused unless they are on a ``scale_bits`` grid."""
    if module.weight_quant.scale_bits is None:
        raise InvalidValueError("integer inference needs weight scales that are a multiplier and a shift: build "
                                "the student with quantize_model(..., scale_bits=m) (or pot=True)")
    return _dyadic(module.weight_quant.step(module.weight))


def _int_conv(x: torch.Tensor, w: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """int64 convolution: ``x [B, Cin, H, W]``, ``w [Cout, Cin, kh, kw]`` (groups=1, dilation=1)."""
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise InvalidValueError("integer_forward supports plain convolutions (groups=1, dilation=1, zero padding)")
    ph, pw = conv.padding
    sh, sw = conv.stride
    kh, kw = w.shape[2:]
    x = F.pad(x, (pw, pw, ph, ph))
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = torch.zeros(x.shape[0], w.shape[0], oh, ow, dtype=torch.int64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            out += torch.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def _int_maxpool(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """int64 max pooling of spikes ``x [B, C, H, W]`` (no padding, no dilation)."""
    kh, kw = (pool.kernel_size,) * 2 if isinstance(pool.kernel_size, int) else pool.kernel_size
    stride = pool.stride or pool.kernel_size
    sh, sw = (stride,) * 2 if isinstance(stride, int) else stride
    if pool.padding not in (0, (0, 0)) or pool.dilation not in (1, (1, 1)):
        raise InvalidValueError("integer_forward supports MaxPool2d without padding or dilation")
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = torch.zeros(x.shape[0], x.shape[1], oh, ow, dtype=torch.int64)
    for i in range(kh):
        for j in range(kw):
            out = torch.maximum(out, x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw])
    return out


def _integer_lif(node: QuantLIFNode, acc: torch.Tensor, scale: tuple[torch.Tensor, torch.Tensor],
                 bias: tuple[torch.Tensor, int], channel_dim: int) -> torch.Tensor:
    """Spikes ``[T, N, ...]`` int64 of ``node`` driven by integer accumulators ``acc [T, N, ...]``
    with weight scales ``scale = (M_c, e_c)`` ``[C]``; ``bias`` = (codes ``[C]``, fraction bits f): the
    bias is ``codes · Δ / 2^f``."""
    p = node.params
    if p.u_bits is None:
        raise InvalidValueError("integer_forward needs every LIF layer after the input layer quantized")
    k = math.log2(p.tau)
    if k != round(k):
        raise InvalidValueError(f"integer inference needs tau a power of two (the leak is a shift); got {p.tau}")
    k = int(k)
    delta = node.step_in_use().detach()
    m_delta, e = _dyadic(delta)
    if int(m_delta) != 1:
        raise InvalidValueError("integer inference needs membrane steps that are powers of two: build the student "
                                "with quantize_model(..., scale_bits=m) (or pot=True)")
    theta, r = (int(t) for t in grid_constants(delta, p))
    shape = [1] * acc.ndim
    shape[channel_dim] = -1
    m_w, e_w = scale
    shift = (e_w - e).view(shape)
    bias_codes, bias_frac = bias
    frac = max(0, int(-shift.min()), bias_frac)
    x_fixed = torch.bitwise_left_shift(acc * m_w.view(shape), shift + frac) + (bias_codes.view(shape)
                                                                               << (frac - bias_frac))
    # the initial state (v_reset, or 0 for the soft reset) snapped to the grid as the kernels do
    v0 = torch.floor((torch.tensor(p.reset_value, dtype=torch.float32) - p.v_threshold) / delta + 0.5)
    v = torch.full(acc.shape[1:], int(v0), dtype=torch.int64)
    one, half = frac + k, (1 << (frac + k - 1)) if frac + k > 0 else 0
    spikes = []
    for t in range(acc.shape[0]):
        vr = (v - r) << frac
        if p.decay_input:
            h = (v << one) + x_fixed[t] - vr
        else:
            h = (v << one) - vr + (x_fixed[t] << k)
        q = ((h + half) >> one).clamp(p.qmin, p.qmax)
        s = q >= 0  # the grid is anchored at the threshold
        v = torch.where(s, torch.full_like(q, r), q) if p.hard_reset else q - theta * s.to(torch.int64)
        spikes.append(s.to(torch.int64))
    return torch.stack(spikes)


def integer_forward(student: nn.Sequential, x_seq: torch.Tensor) -> list[torch.Tensor]:
    """Spikes of every LIF layer of ``student`` (int64, ``[T, N, ...]``) on input ``x_seq``.

    The modules up to and including the first LIF neuron run as they are (float input layer);
    after it only int64 arithmetic is used. The student must be in multi-step mode.
    """
    if not isinstance(student, nn.Sequential):
        raise InvalidTypeError("integer_forward takes an nn.Sequential student")
    out: list[torch.Tensor] = []
    cur = x_seq
    pending = None  # (acc, weight scales, bias codes, channel dim) waiting for its neuron
    for module in student:
        if not out:  # the float input layer, up to the first neuron's spikes
            cur = module(cur)
            if isinstance(module, QuantLIFNode):
                cur = cur.to(torch.int64)
                out.append(cur)
            continue
        if isinstance(module, (QuantConv2d, QuantLinear)):
            if pending is not None:
                raise InvalidValueError("two quantized layers without a LIF neuron between them")
            codes = module.weight_quant.codes(module.weight)
            scale = _scale_of(module)
            bias = module.bias_codes()
            bias = (torch.zeros(codes.shape[0], dtype=torch.int64), 0) if bias is None \
                else (bias, module.bias_frac_bits)
            T, N = cur.shape[:2]
            flat = cur.flatten(0, 1)
            if isinstance(module, QuantConv2d):
                acc = _int_conv(flat, codes, module)
                pending = (acc.view(T, N, *acc.shape[1:]), scale, bias, 2)
            else:
                acc = flat @ codes.t()
                pending = (acc.view(T, N, -1), scale, bias, cur.ndim - 1)
        elif isinstance(module, QuantLIFNode):
            if pending is None:
                raise InvalidValueError("a LIF neuron without a quantized layer before it")
            cur = _integer_lif(module, *pending)
            pending = None
            out.append(cur)
        elif isinstance(module, (nn.Identity, nn.Dropout)):
            continue
        elif isinstance(module, nn.Flatten):
            if pending is not None:
                raise InvalidValueError("Flatten between a quantized layer and its neuron is not supported")
            cur = cur.flatten(2)
        elif isinstance(module, nn.MaxPool2d):
            T, N = cur.shape[:2]
            pooled = _int_maxpool(cur.flatten(0, 1), module)
            cur = pooled.view(T, N, *pooled.shape[1:])
        else:
            raise InvalidValueError(f"integer_forward does not support {type(module).__name__}")
    return out
