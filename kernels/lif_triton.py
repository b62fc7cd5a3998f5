"""Multi-step LIF neuron (optionally quantized membrane) as two fused Triton kernels.

What is fused: the forward kernel runs all T steps for a block of neurons with the state in
registers (charge, quantize, fire, reset), reading x once and writing the spikes and what backward
needs once; the backward kernel runs the reverse-time recurrence the same way, folding in the
gradient on the recorded membrane ``h_seq`` (membrane distillation) and reducing Δ's gradient per
block. Equations, grid and gradients: ``lif_reference.py``; this file computes the same.

Bytes moved per element and step (fp32 x, T steps): forward reads x (4) and writes spikes (4) plus
H (4, float membrane) or code + residual (1 + 2, quantized); backward reads the spike gradient (4)
and H or code + residual, and writes the input gradient (4). The state v is read and written once
per neuron, not once per step (``mdsnn_zoo.bench.lif.bytes_moved`` counts both).

Shape of the code: the time loop is a loop (``tl.range``), not unrolled, and each step issues the
next step's loads before its own stores, so one step's values (and the next step's loads) live in
registers whatever T is: at most 128 registers a thread on sm_90 in every configuration the library
launches, none spilling (``mdsnn-zoo bench aot`` holds them to it; unrolled, they reached 255). A
program handles 128 threads x one 128-bit vector (4 float32 or 8 float16/bfloat16 neurons) when every
step starts 16-element aligned, else 2 neurons a thread (``block_size``). Step offsets are 64-bit
(``_step_offset``): (T - 1) x M may pass 2^31.

Sizes and T are runtime arguments with masks, and there is no autotuning: a new batch size or T
compiles nothing new, except that Triton specialises on M being a multiple of 16 (which also picks
the block) or 1. The flags, the dtypes and the block are compile-time constants. Inputs may
have any stride between time steps and stride 1 or 0 inside a step (so the stride-0 gradient of
``.sum().backward()`` is read without a copy); other layouts are made contiguous first. A membrane
target (the teacher's) is read in its own dtype and widened to float32 (``launch.py``).

Dtypes: float32, float16, bfloat16 in and out; arithmetic and state in float32. Divisions in the
forward pass are IEEE (``div_rn``), as in the reference, so that spikes and codes agree bit for
bit. Runs on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (tests). Compiled ahead
of time for sm_80 and sm_90 by the tests with Triton 3.8; not yet run on a GPU by this project.
Differences from the reference: none in the forward; the backward sums Δ's gradient per block
first, so it differs from the reference's order of summation by float rounding.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mdsnn_zoo.kernels import lif_reference
from mdsnn_zoo.kernels.launch import on_device, step_strides
from mdsnn_zoo.kernels.lif_reference import SURROGATES, ForwardBuffers, LIFParams

NUM_WARPS = 4
VECTOR_BYTES = 16  # what one thread loads at once: a 128-bit access
UNALIGNED_ELEMENTS = 2  # per thread, where steps are not 16-element aligned and accesses are scalar
# The residual's markers, as compile-time constants (a kernel may read only constexpr globals)
FRAC_OUT = tl.constexpr(lif_reference.FRAC_OUT)
FRAC_TOP = tl.constexpr(lif_reference.FRAC_TOP)


@triton.jit
def _surrogate_grad(u, alpha, SG: tl.constexpr):
    if SG == 0:  # atan
        a = alpha * 0.5
        au = 3.141592653589793 * a * u
        g = a / (1.0 + au * au)
    elif SG == 1:  # sigmoid
        sg = tl.sigmoid(alpha * u)
        g = (1.0 - sg) * sg * alpha
    elif SG == 2:  # piecewise quadratic
        g = tl.where(tl.abs(u) > 1.0 / alpha, 0.0, alpha - alpha * alpha * tl.abs(u))
    else:  # rectangular window
        g = tl.where(tl.abs(u) < 0.5 / alpha, alpha, 0.0)
    return g


@triton.jit
def _step_offset(t, stride):
    """Elements from step 0 to step ``t`` for a time ``stride``, in 64 bits: (T - 1) · stride may pass
    2^31 while ``t`` and ``stride`` each fit in 32."""
    return tl.cast(t, tl.int64) * stride


@triton.jit(do_not_specialize=["T"])
def _lif_fwd_kernel(
    x_ptr, stride_xt, stride_xm, v0_ptr, delta_ptr,
    s_ptr, vlast_ptr, state_ptr, frac_ptr, h_ptr, tgt_ptr, mse_ptr, M, T,
    tau, v_th, v_rst, vr_rel,
    QUANT: tl.constexpr, HARD: tl.constexpr, DECAY: tl.constexpr,
    NEED_H: tl.constexpr, SAVE: tl.constexpr, TARGET: tl.constexpr,
    QMIN: tl.constexpr, QMAX: tl.constexpr, OFFSET: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    x_offs = offs * stride_xm
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if QUANT:
        d = tl.load(delta_ptr).to(tl.float32)
        theta = tl.maximum(tl.floor(tl.div_rn(v_th, d) + 0.5), 1.0)
        r = tl.minimum(tl.maximum(tl.floor(tl.div_rn(vr_rel, d) + 0.5), QMIN), QMAX)
        v = tl.floor(tl.div_rn(v - v_th, d) + 0.5)  # codes relative to the threshold
    else:
        r = v_rst
    if TARGET:
        err = tl.zeros([BLOCK], dtype=tl.float32)
        tgt_next = tl.load(tgt_ptr + offs, mask=mask & (T > 0), other=0.0).to(tl.float32)
    x_next = tl.load(x_ptr + x_offs, mask=mask & (T > 0), other=0.0).to(tl.float32)
    # A loop, not unrolled: one step's values live at a time (plus the next step's loads, issued
    # before this step's stores), whatever T is.
    for t in tl.range(T):
        x = x_next
        ahead = mask & (t + 1 < T)
        x_next = tl.load(x_ptr + _step_offset(t + 1, stride_xt) + x_offs, mask=ahead, other=0.0).to(tl.float32)
        out = _step_offset(t, M) + offs
        if TARGET:
            tgt = tgt_next
            tgt_next = tl.load(tgt_ptr + _step_offset(t + 1, M) + offs, mask=ahead, other=0.0).to(tl.float32)
        if QUANT:
            x = tl.div_rn(x, d)
        if DECAY:
            h = v + tl.div_rn(x - (v - r), tau)
        else:
            h = v - tl.div_rn(v - r, tau) + x
        if QUANT:
            q = tl.minimum(tl.maximum(tl.floor(h + 0.5), QMIN), QMAX)
            q = tl.where(h == h, q, QMIN)
            frac = tl.where(h < QMIN, FRAC_OUT, tl.where(h > QMAX, FRAC_TOP - h, q - h))
            spike = q >= 0.0
            s = spike.to(tl.float32)
            if HARD:
                v = tl.where(spike, r, q)
            else:
                v = q - theta * s
            if SAVE:
                tl.store(state_ptr + out, (q + OFFSET).to(tl.int8), mask=mask)
                tl.store(frac_ptr + out, frac.to(tl.float16), mask=mask)
            hq = v_th + q * d  # volts; no fused multiply-add (enable_fp_fusion=False), as in torch
            if NEED_H:
                tl.store(h_ptr + out, hq.to(h_ptr.dtype.element_ty), mask=mask)
            if TARGET:
                e = hq - tgt
                err += tl.where(mask, e * e, 0.0)
        else:
            s = (h >= v_th).to(tl.float32)
            if HARD:
                v = h * (1.0 - s) + v_rst * s
            else:
                v = h - v_th * s
            if SAVE:
                tl.store(state_ptr + out, h, mask=mask)
            if NEED_H:
                tl.store(h_ptr + out, h.to(h_ptr.dtype.element_ty), mask=mask)
            if TARGET:
                e = h - tgt
                err += tl.where(mask, e * e, 0.0)
        tl.store(s_ptr + out, s.to(s_ptr.dtype.element_ty), mask=mask)
    if QUANT:
        v = v_th + v * d
    tl.store(vlast_ptr + offs, v, mask=mask)
    if TARGET:
        tl.store(mse_ptr + pid, tl.sum(err, axis=0))


@triton.jit
def _load_step(ptr, t, stride, offs, mask):
    """Step ``t`` of a ``[T, M]`` tensor with time ``stride`` at element offsets ``offs`` (0 where masked)."""
    return tl.load(ptr + _step_offset(t, stride) + offs, mask=mask, other=0.0)


@triton.jit
def _bwd_loads(gs_ptr, stride_gst, gs_offs, state_ptr, frac_ptr, gh_ptr, stride_ght, gh_offs, tgt_ptr, M, offs, t,
               mask, QUANT: tl.constexpr, HAS_GH: tl.constexpr, TARGET: tl.constexpr):
    """Step ``t``'s inputs of the backward pass, as stored: the spike gradient, the saved state, the
    residual, the gradient on the recorded membrane and the target (those a variant lacks: zeros)."""
    return (_load_step(gs_ptr, t, stride_gst, gs_offs, mask), _load_step(state_ptr, t, M, offs, mask),
            _load_step(frac_ptr, t, M, offs, mask & QUANT), _load_step(gh_ptr, t, stride_ght, gh_offs, mask & HAS_GH),
            _load_step(tgt_ptr, t, M, offs, mask & TARGET))


@triton.jit
def _saved_terms(saved, fc, d, r, theta, v_th, v_rst, shift, QUANT: tl.constexpr, HARD: tl.constexpr,
                 SHIFTED: tl.constexpr, OFFSET: tl.constexpr):
    """One step's terms from what the forward pass saved (``saved``: the int8 codes, or H; ``fc``: the
    float16 residuals): ``(u, s, dv_ds, hq)``, the surrogate's argument (volts), the spike, ∂V/∂S and
    the membrane H_q (volts)."""
    if QUANT:
        q = saved.to(tl.float32) - OFFSET
        if SHIFTED:  # the membrane before rounding (grid units), shifted
            h_pre = tl.where(fc == FRAC_OUT, q, tl.where(fc <= FRAC_TOP, FRAC_TOP - fc, q - fc))
            u = (h_pre + shift) * d
        else:
            u = q * d
        s = (q >= 0.0).to(tl.float32)
        if HARD:
            dv_ds = (r - q) * d
        else:
            dv_ds = -theta * d
        hq = v_th + q * d
    else:
        hq = saved
        u = hq - v_th
        s = (u >= 0).to(tl.float32)
        if HARD:
            dv_ds = v_rst - hq
        else:
            dv_ds = -v_th
    return u, s, dv_ds, hq


@triton.jit
def _through_grid(g_hq, gv, saved, fc, s, r, theta, inv_tau, HARD: tl.constexpr, OFFSET: tl.constexpr):
    """Through the quantizer: ``(g_h, share)``, the gradient on H (0 below the grid, straight through
    elsewhere) and this step's share of Δ's gradient (LSQ's ``q - h`` inside the grid, ``q`` where
    clipped, and the reset level's)."""
    q = saved.to(tl.float32) - OFFSET
    below = fc == FRAC_OUT
    lsq = tl.where(below | (fc <= FRAC_TOP), q, fc)
    if HARD:
        dv_dd = r * s
    else:
        dv_dd = -theta * s
    g_h = tl.where(below, 0.0, g_hq)
    return g_h, g_hq * lsq + gv * dv_dd + g_h * (r * inv_tau)


@triton.jit(do_not_specialize=["T"])
def _lif_bwd_kernel(
    gs_ptr, stride_gst, stride_gsm, gv_ptr, gh_ptr, stride_ght, stride_ghm,
    state_ptr, frac_ptr, delta_ptr, gx_ptr, gv0_ptr, gdelta_ptr, tgt_ptr, coef_ptr, M, T,
    tau, v_th, v_rst, vr_rel, alpha, shift,
    QUANT: tl.constexpr, HARD: tl.constexpr, DECAY: tl.constexpr,
    DETACH: tl.constexpr, SG: tl.constexpr, SHIFTED: tl.constexpr,
    HAS_GV: tl.constexpr, HAS_GH: tl.constexpr, TARGET: tl.constexpr,
    QMIN: tl.constexpr, QMAX: tl.constexpr, OFFSET: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    gs_offs = offs * stride_gsm
    gh_offs = offs * stride_ghm
    inv_tau = 1.0 / tau
    if HAS_GV:
        gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        gv = tl.zeros([BLOCK], dtype=tl.float32)
    if QUANT:
        d = tl.load(delta_ptr).to(tl.float32)
        theta = tl.maximum(tl.floor(tl.div_rn(v_th, d) + 0.5), 1.0)
        r = tl.minimum(tl.maximum(tl.floor(tl.div_rn(vr_rel, d) + 0.5), QMIN), QMAX)
        gdelta = tl.zeros([BLOCK], dtype=tl.float32)
    else:  # unused by a float membrane
        d, theta, r = 1.0, 1.0, v_rst
    if TARGET:
        coef = tl.load(coef_ptr).to(tl.float32)
    # Step T - 1's loads; each step then issues the loads of the step before it ahead of its store.
    g_s_next, state_next, frac_next, gh_next, tgt_next = _bwd_loads(
        gs_ptr, stride_gst, gs_offs, state_ptr, frac_ptr, gh_ptr, stride_ght, gh_offs, tgt_ptr, M, offs, T - 1,
        mask & (T > 0), QUANT, HAS_GH, TARGET)
    for i in tl.range(T):
        t = T - 1 - i
        g_s, saved, fc = g_s_next.to(tl.float32), state_next, frac_next.to(tl.float32)
        g_h_in, tgt = gh_next.to(tl.float32), tgt_next.to(tl.float32)
        g_s_next, state_next, frac_next, gh_next, tgt_next = _bwd_loads(
            gs_ptr, stride_gst, gs_offs, state_ptr, frac_ptr, gh_ptr, stride_ght, gh_offs, tgt_ptr, M, offs, t - 1,
            mask & (t > 0), QUANT, HAS_GH, TARGET)
        u, s, dv_ds, hq = _saved_terms(saved, fc, d, r, theta, v_th, v_rst, shift, QUANT, HARD, SHIFTED, OFFSET)
        if not DETACH:
            g_s = g_s + gv * dv_ds
        g_hq = g_s * _surrogate_grad(u, alpha, SG)
        if HARD:
            g_hq += gv * (1.0 - s)  # ∂V/∂H
        else:
            g_hq += gv
        if HAS_GH:
            g_hq += g_h_in
        if TARGET:
            g_hq += coef * (hq - tgt)
        if QUANT:
            g_h, share = _through_grid(g_hq, gv, saved, fc, s, r, theta, inv_tau, HARD, OFFSET)
            gdelta += tl.where(mask, share, 0.0)
        else:
            g_h = g_hq
        if DECAY:
            gx = g_h * inv_tau
        else:
            gx = g_h
        tl.store(gx_ptr + _step_offset(t, M) + offs, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        gv = g_h - g_h * inv_tau
    tl.store(gv0_ptr + offs, gv, mask=mask)
    if QUANT:
        tl.store(gdelta_ptr + pid, tl.sum(gdelta, axis=0))


def block_size(dtype: torch.dtype, M: int, *time_strides: int) -> int:
    """Neurons a program handles: 128 threads x one 128-bit vector of ``dtype`` each (4 float32, 8
    float16/bfloat16) when every step starts 16-element aligned (``M`` and the time strides multiples
    of 16), so that Triton can prove the alignment and vectorize; else 2 each (scalar accesses, and
    8 elements' worth of 64-bit addresses would cost registers for nothing)."""
    threads = 32 * NUM_WARPS
    if M % 16 == 0 and all(s % 16 == 0 for s in time_strides):
        return threads * VECTOR_BYTES // dtype.itemsize
    return threads * UNALIGNED_ELEMENTS


def _flags(p: LIFParams) -> dict:
    quant = p.u_bits is not None
    return dict(QUANT=quant, HARD=p.hard_reset, DECAY=p.decay_input, QMIN=p.qmin if quant else 0,
                QMAX=p.qmax if quant else 0, OFFSET=p.code_offset if quant else 0)


def forward(x: torch.Tensor, v0: torch.Tensor, delta: torch.Tensor | None, p: LIFParams, need_h: bool,
            save: bool = True, target: torch.Tensor | None = None):
    """Same contract as ``lif_reference.lif_forward`` (no float64)."""
    T, M = x.shape
    x, sxt, sxm = step_strides(x)
    v0 = v0.contiguous()
    quant = p.u_bits is not None
    out = ForwardBuffers.allocate(x, p, need_h, save)
    block = block_size(x.dtype, M, sxt)
    blocks = triton.cdiv(M, block)
    target = target.contiguous() if target is not None else None
    partial = torch.zeros((max(blocks, 1),), dtype=torch.float32, device=x.device) if target is not None else None
    if M:
        spare = out.spikes  # any tensor, for pointers a kernel variant does not use
        with on_device(x):
            _lif_fwd_kernel[(blocks,)](
                x, sxt, sxm, v0, delta if quant else v0, out.spikes, out.v_last,
                out.state if out.write_state else spare, out.frac if out.frac is not None else spare,
                out.h_seq if out.write_h else spare, target if target is not None else spare,
                partial if partial is not None else out.v_last, M, T, p.tau, p.v_threshold, p.reset_value,
                p.reset_value - p.v_threshold,
                NEED_H=out.write_h, SAVE=out.write_state, TARGET=target is not None, BLOCK=block,
                num_warps=NUM_WARPS, enable_fp_fusion=False, **_flags(p))
    return out.outputs(need_h, save, partial.sum() if partial is not None else None)


def backward(grad_s, grad_v, grad_h, state, frac, delta, p: LIFParams, out_dtype: torch.dtype,
             target: torch.Tensor | None = None, coef: torch.Tensor | None = None):
    """Same contract as ``lif_reference.lif_backward`` (no float64)."""
    T, M = state.shape
    quant = p.u_bits is not None
    dev = state.device
    grad_s, sgt, sgm = step_strides(grad_s)
    grad_v = grad_v.float().contiguous() if grad_v is not None else None
    if grad_h is not None:
        grad_h, sht, shm = step_strides(grad_h)
    else:
        sht = shm = 0
    grad_x = torch.empty((T, M), dtype=out_dtype, device=dev)
    grad_v0 = torch.empty((M,), dtype=torch.float32, device=dev)
    block = block_size(out_dtype, M, sgt, sht)
    blocks = triton.cdiv(M, block)
    partial = torch.zeros((max(blocks, 1),), dtype=torch.float32, device=dev) if quant else None
    target = target.contiguous() if target is not None else None
    coef = coef.float().reshape(1) if coef is not None else None
    if M:
        with on_device(state):
            _lif_bwd_kernel[(blocks,)](
                grad_s, sgt, sgm, grad_v if grad_v is not None else grad_v0,
                grad_h if grad_h is not None else grad_s, sht, shm,
                state, frac if quant else state, delta if quant else grad_v0,
                grad_x, grad_v0, partial if quant else grad_v0,
                target if target is not None else grad_v0, coef if coef is not None else grad_v0, M, T,
                p.tau, p.v_threshold, p.reset_value, p.reset_value - p.v_threshold, p.alpha,
                p.surrogate_shift or 0.0, DETACH=p.detach_reset, SG=SURROGATES.index(p.surrogate),
                SHIFTED=quant and p.surrogate_shift is not None,
                HAS_GV=grad_v is not None, HAS_GH=grad_h is not None, TARGET=target is not None,
                BLOCK=block, num_warps=NUM_WARPS, **_flags(p))
    return grad_x, grad_v0, (partial.sum() if quant else None)
