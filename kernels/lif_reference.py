"""Multi-step LIF neuron with an optionally quantized membrane: the plain-torch reference.

Every fast backend (``lif_inductor``, ``lif_triton``, ``lif_cupy`` + ``lif.cu``) computes what this
file computes, with the same signature; the tests hold them to it. Shapes: ``x: [T, M]`` (the
neuron's ``[T, N, *]`` input flattened), state ``v: [M]``.

Equations, for t = 0 .. T-1, in volts (SpikingJelly's LIF when ``u_bits is None``)::

    charge   H[t] = V[t-1] + (X[t] - (V[t-1] - V_r)) / tau        (decay_input=True)
             H[t] = V[t-1] - (V[t-1] - V_r) / tau + X[t]          (decay_input=False)
             with V_r = v_reset, or 0 for the soft reset (v_reset=None)
    fire     S[t] = Θ(H[t] - V_th)                                 Θ(0) = 1
    reset    V[t] = H[t] (1 - S[t]) + V_r S[t]                     (hard)
             V[t] = H[t] - V_th S[t]                               (soft)

Quantized membrane (``u_bits = b``, 2..8), with step ``delta`` (Δ, volts per level). The grid is
anchored at the threshold, which is its top level: the membrane takes the 2^b values
``V_th + k Δ``, ``k = qmin .. qmax = -(2^b - 1) .. 0``. Every level but the top one lies below the
threshold (with a hard reset a value above it would only fire and reset, so no level is wasted on
it), and the threshold stays at ``v_threshold`` whatever Δ is. It is computed in grid units (integer
codes relative to V_th), so that exact .5 ties round the same way on every backend and in integer
hardware:

    x[t] = X[t] / Δ                     (IEEE division, never a reciprocal multiply)
    h[t] = charge(v[t-1], x[t])         (same formula in grid units, with r for V_r; v, r integers)
    q[t] = clamp(floor(h[t] + 1/2), qmin, 0)    ties round up; NaN -> qmin
    S[t] = [q[t] >= 0]                  (H_q = V_th + q Δ reaches V_th: H >= V_th - Δ/2 before rounding)
    v[t] = r if S[t] else q[t]          (hard; r = clamp(floor((v_reset - V_th) / Δ + 1/2), qmin, 0))
    v[t] = q[t] - θ S[t]                (soft; θ = max(1, floor(V_th / Δ + 1/2)), and r uses V_r = 0)

The quantized value is what fires, what resets and what carries to t+1: the state is always on the
grid (the soft reset's V_th - θΔ excepted, which the next step quantizes). The initial state ``v0``
(volts) is snapped to the grid the same way. Codes are stored as int8 ``q + 2^(b-1) - 1``.
``QuantLIFNode`` starts with Δ = V_th / 2^(b-1): the grid spans [-V_th (1 - 2^(1-b)), V_th] and holds
0 (the usual v_reset) exactly.

Backward (surrogate gradient σ'(u) of the spike at u = H - V_th, which is q Δ when quantized, or,
with ``surrogate_shift = S``, (h + S) Δ: the membrane before rounding, h in grid units, shifted by S;
S = 0 is the float neuron's H - V_th, S = 1/2 centres σ' on the real firing boundary V_th - Δ/2):

    gS  = dL/dS[t] + [not detach_reset] gV · ∂V/∂S        ∂V/∂S = V_r - H (hard), -V_th (soft)
    (σ' evaluated at the shifted pre-rounding membrane still acts as ∂S/∂H_q: only its argument moves)
    gHq = gS σ'(u) + gV · ∂V/∂H + dL/dH[t]                ∂V/∂H = 1 - S (hard), 1 (soft)
    gH  = gHq · [h >= qmin]                               straight-through, 0 below the grid (above
                                                          its top the neuron fires: the gradient passes)
    dL/dX[t] = gH / tau (decay_input) or gH;    gV <- gH - gH / tau   (gradient on V[t-1];
    in backward 1/tau is a multiplication by the rounded reciprocal)

``dL/dH[t]`` is the gradient arriving on the recorded membrane ``h_seq`` (membrane distillation):
it is folded into the reverse-time recurrence, so no separate pass over memory is needed. Δ gets
LSQ's gradient through the quantizer, ``∂(V_th + qΔ)/∂Δ = q - h`` inside the grid and ``q`` where clipped,
plus its share through the reset level V_th + rΔ (and θΔ, the soft reset's step).

Saved for backward: with ``u_bits``, the codes q as int8 and the rounding residual ``q - h`` (for
Δ's gradient and the shifted surrogate) as float16 (error at most 2^-12 inside the grid): 2 marks
"below the grid", a value <= -2 "above its top" and stores -2 - h there (h recovered to 2^-11
relative): 3 bytes per element and step; without, H in float32 (float64 for float64 input). Spikes
are recomputed from these.

NaN input never fires. Without quantization it propagates through the membrane until a reset
(hard reset) or for good (soft reset); with quantization it lands on the lowest level, qmin, with a
zero gradient. With a soft reset the part of H above the threshold is lost (the top level is the
threshold), a difference from the float neuron that matters only for strong inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SURROGATES = ("atan", "sigmoid", "piecewise_quadratic", "rect")
FRAC_OUT = 2.0  # residual q - h lies in [-1/2, 1/2]; 2 marks "h below the grid" (h < qmin)
FRAC_TOP = -2.0  # frac <= -2 marks "h above the threshold level" (h > qmax = 0) and holds -2 - h


@dataclass(frozen=True)
class LIFParams:
    """Arguments every backend takes (hashable, so compiled code can specialise on them)."""

    tau: float = 2.0
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    detach_reset: bool = False
    surrogate: str = "atan"
    alpha: float = 2.0
    u_bits: int | None = None
    surrogate_shift: float | None = None  # quantized: None, σ' at qΔ; S, σ' at (h + S)Δ before rounding

    @property
    def hard_reset(self) -> bool:
        return self.v_reset is not None

    @property
    def reset_value(self) -> float:
        """V_r in the charge equation: v_reset, or 0 for the soft reset."""
        return 0.0 if self.v_reset is None else self.v_reset

    @property
    def qmin(self) -> int:
        """Lowest code: the grid is V_th + kΔ, k = qmin .. qmax = -(2^b - 1) .. 0."""
        return -(2**self.u_bits - 1)

    @property
    def qmax(self) -> int:
        """Highest code, the threshold itself."""
        return 0

    @property
    def code_offset(self) -> int:
        """Added to a code when it is stored as int8 (codes span 2^b values, -2^(b-1) .. 2^(b-1)-1)."""
        return 2 ** (self.u_bits - 1) - 1


def surrogate_grad(u: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    """σ'(u): the derivative the spike uses in backward, as in SpikingJelly's surrogates."""
    if kind == "atan":
        a = alpha / 2
        au = math.pi * a * u
        return a / (1 + au * au)
    if kind == "sigmoid":
        sg = torch.sigmoid(alpha * u)
        return (1.0 - sg) * sg * alpha
    if kind == "piecewise_quadratic":
        return torch.where(u.abs() > 1 / alpha, 0.0, alpha - alpha * alpha * u.abs())
    if kind == "rect":
        return alpha * (u.abs() < 0.5 / alpha).to(u.dtype)
    raise ValueError(f"unknown surrogate {kind!r}")


def surrogate_primitive(u: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    """σ(u), the smooth function whose derivative is ``surrogate_grad`` (used by gradcheck only)."""
    if kind == "atan":
        return torch.atan(math.pi / 2 * alpha * u) / math.pi + 0.5
    if kind == "sigmoid":
        return torch.sigmoid(alpha * u)
    if kind == "piecewise_quadratic":
        a, au = alpha, u.abs()
        inner = torch.where(u < 0, 0.5 * (a * u + 1) ** 2, 1 - 0.5 * (a * u - 1) ** 2)
        return torch.where(au > 1 / a, (u > 0).to(u.dtype), inner)
    if kind == "rect":
        return (alpha * u + 0.5).clamp(0.0, 1.0)
    raise ValueError(f"unknown surrogate {kind!r}")


def grid_constants(delta: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(θ, r) in grid units, float tensors holding integers: θ = round(V_th / Δ) ≥ 1, what the soft
    reset subtracts; r = round((V_r - V_th) / Δ) clamped to the codes, the reset (and leak) level."""
    theta = torch.floor(p.v_threshold / delta + 0.5).clamp_min(1)
    r = torch.floor((p.reset_value - p.v_threshold) / delta + 0.5).clamp(p.qmin, p.qmax)
    return theta, r


@dataclass
class ForwardBuffers:
    """What a fused forward kernel writes for ``x: [T, M]`` (shared by the Triton and CuPy launchers).

    A float32 membrane to record is the saved H itself (``h_seq`` None, ``write_h`` False): the
    kernel writes it once. ``state`` is written when saved for backward or used as ``h_seq``.
    """

    spikes: torch.Tensor
    v_last: torch.Tensor
    state: torch.Tensor | None
    frac: torch.Tensor | None
    h_seq: torch.Tensor | None
    write_h: bool
    write_state: bool

    @classmethod
    def allocate(cls, x: torch.Tensor, p: LIFParams, need_h: bool, save: bool) -> ForwardBuffers:
        T, M = x.shape
        quant, dev = p.u_bits is not None, x.device
        write_h = need_h and (quant or x.dtype != torch.float32)
        write_state = save or (need_h and not write_h)
        return cls(
            spikes=torch.empty((T, M), dtype=x.dtype, device=dev),
            v_last=torch.empty((M,), dtype=torch.float32, device=dev),
            state=torch.empty((T, M), dtype=torch.int8 if quant else torch.float32, device=dev)
            if write_state else None,
            frac=torch.empty((T, M), dtype=torch.float16, device=dev) if quant and save else None,
            h_seq=torch.empty((T, M), dtype=x.dtype, device=dev) if write_h else None,
            write_h=write_h, write_state=write_state)

    def outputs(self, need_h: bool, save: bool, mse: torch.Tensor | None):
        """The tuple ``lif_forward`` returns."""
        h_seq = self.state if need_h and not self.write_h else self.h_seq
        return self.spikes, self.v_last, h_seq, (self.state if save else None), self.frac, mse


def _charge(v: torch.Tensor, x: torch.Tensor, vr, p: LIFParams) -> torch.Tensor:
    if p.decay_input:
        return v + (x - (v - vr)) / p.tau
    return v - (v - vr) / p.tau + x


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def lif_forward(x: torch.Tensor, v0: torch.Tensor, delta: torch.Tensor | None, p: LIFParams,
                need_h: bool, save: bool = True, target: torch.Tensor | None = None, smooth: bool = False):
    """Run T steps. ``x: [T, M]`` any float dtype, ``v0: [M]`` volts, ``delta``: 0-d (quantized).

    Returns ``(spikes [T, M] x.dtype, v_last [M] float32/64, h_seq [T, M] x.dtype or None,
    state, frac, mse_sum)``: ``state`` is H ``[T, M]`` float (or int8 codes when quantized),
    ``frac`` the float16 residuals (None unless quantized); both None when ``save`` is False
    (inference: nothing is kept for backward). With a ``target`` membrane ``[T, M]`` (the teacher's,
    membrane distillation fused into the neuron), ``mse_sum = Σ (H - target)²`` over all steps and
    elements (float32 0-d), else None. ``smooth`` replaces Θ by the surrogate's primitive (for
    gradcheck; float mode only).
    """
    cdt = _compute_dtype(x)
    T = x.shape[0]
    v = v0.to(cdt)
    spikes, states, fracs, hs = [], [], [], []
    mse = None if target is None else torch.zeros((), dtype=cdt, device=x.device)
    if p.u_bits is None:
        for t in range(T):
            h = _charge(v, x[t].to(cdt), p.reset_value, p)
            if smooth:
                s = surrogate_primitive(h - p.v_threshold, p.surrogate, p.alpha)
            else:
                s = (h >= p.v_threshold).to(cdt)
            v = h - p.v_threshold * s if not p.hard_reset else h * (1 - s) + p.v_reset * s
            spikes.append(s.to(x.dtype).unsqueeze(0))
            states.append(h.unsqueeze(0))
            if target is not None:
                mse = mse + (h - target[t].to(cdt)).square().sum()
        # [T, M]: a cat of [1, M] steps compiles to one fused pass that writes each step in place
        state = torch.cat(states) if save or need_h else None
        h_seq = state.to(x.dtype) if need_h else None
        return torch.cat(spikes), v, h_seq, (state if save else None), None, mse

    d = delta.to(cdt)
    theta, r = grid_constants(d, p)
    v = torch.floor((v - p.v_threshold) / d + 0.5)  # volts -> codes relative to the threshold
    for t in range(T):
        h = _charge(v, x[t].to(cdt) / d, r, p)
        q = torch.where(h == h, torch.floor(h + 0.5).clamp(p.qmin, p.qmax), float(p.qmin))
        frac = torch.where(h < p.qmin, FRAC_OUT, torch.where(h > p.qmax, FRAC_TOP - h, q - h))
        s = q >= 0
        v = torch.where(s, r, q) if p.hard_reset else q - theta * s.to(cdt)
        spikes.append(s.to(x.dtype).unsqueeze(0))
        if save:
            states.append((q + p.code_offset).to(torch.int8).unsqueeze(0))
            fracs.append(frac.to(torch.float16).unsqueeze(0))
        if need_h:
            hs.append((p.v_threshold + q * d).to(x.dtype).unsqueeze(0))
        if target is not None:
            mse = mse + (p.v_threshold + q * d - target[t].to(cdt)).square().sum()
    h_seq = torch.cat(hs) if need_h else None
    if not save:
        return torch.cat(spikes), p.v_threshold + v * d, h_seq, None, None, mse
    return torch.cat(spikes), p.v_threshold + v * d, h_seq, torch.cat(states), torch.cat(fracs), mse


def lif_backward(grad_s: torch.Tensor, grad_v: torch.Tensor | None, grad_h: torch.Tensor | None,
                 state: torch.Tensor, frac: torch.Tensor | None, delta: torch.Tensor | None,
                 p: LIFParams, out_dtype: torch.dtype, target: torch.Tensor | None = None,
                 coef: torch.Tensor | None = None, smooth: bool = False):
    """Reverse-time recurrence. Returns ``(grad_x [T, M] out_dtype, grad_v0 [M], grad_delta)``.

    ``grad_s``: ``[T, M]`` gradient on the spikes; ``grad_v``: ``[M]`` on the last state or None;
    ``grad_h``: ``[T, M]`` on ``h_seq`` or None; ``state``/``frac`` as saved by ``lif_forward``;
    ``target`` and ``coef`` (0-d): the fused membrane MSE adds ``coef · (H - target)`` to the
    gradient on H (coef = the loss's gradient · 2 / elements). ``grad_delta`` is a 0-d tensor
    (None unless quantized).
    """
    cdt = torch.float64 if state.dtype == torch.float64 or out_dtype == torch.float64 else torch.float32
    T = state.shape[0]
    gv = torch.zeros(state.shape[1:], dtype=cdt, device=state.device) if grad_v is None else grad_v.to(cdt)
    grad_x = []
    inv_tau = 1.0 / p.tau
    quant = p.u_bits is not None
    if quant:
        d = delta.to(cdt)
        theta, r = grid_constants(d, p)
        gdelta = torch.zeros((), dtype=cdt, device=state.device)
    for t in range(T - 1, -1, -1):
        if quant:
            q = state[t].to(cdt) - p.code_offset
            fc = frac[t].to(cdt)
            below, top = fc == FRAC_OUT, fc <= FRAC_TOP
            clipped = below | top
            s = (q >= 0).to(cdt)
            if p.surrogate_shift is None:
                u = q * d
            else:  # h before rounding: q - (q - h) inside the grid, -2 - frac above it, q below
                h_pre = torch.where(below, q, torch.where(top, FRAC_TOP - fc, q - fc))
                u = (h_pre + p.surrogate_shift) * d
            dv_ds = (r - q) * d if p.hard_reset else -theta * d
        else:
            h = state[t].to(cdt)
            u = h - p.v_threshold
            s = surrogate_primitive(u, p.surrogate, p.alpha) if smooth else (u >= 0).to(cdt)
            dv_ds = p.v_reset - h if p.hard_reset else -p.v_threshold
        dv_dh = 1 - s if p.hard_reset else 1.0
        g_s = grad_s[t].to(cdt)
        if not p.detach_reset:
            g_s = g_s + gv * dv_ds
        g_u = g_s * surrogate_grad(u, p.surrogate, p.alpha)
        g_hq = g_u + gv * dv_dh
        if grad_h is not None:
            g_hq = g_hq + grad_h[t].to(cdt)
        if target is not None:
            hq = p.v_threshold + q * d if quant else h
            g_hq = g_hq + coef.to(cdt) * (hq - target[t].to(cdt))
        if quant:
            lsq = torch.where(clipped, q, fc)
            dv_ddelta = r * s if p.hard_reset else -theta * s
            g_h = torch.where(below, 0.0, g_hq)
            gdelta = gdelta + (g_hq * lsq + gv * dv_ddelta + g_h * (r * inv_tau)).sum()
        else:
            g_h = g_hq
        grad_x.append((g_h * inv_tau if p.decay_input else g_h).to(out_dtype).unsqueeze(0))
        gv = g_h - g_h * inv_tau
    return torch.cat(grad_x[::-1]), gv, (gdelta if quant else None)


def lif_autograd(x: torch.Tensor, v0: torch.Tensor, delta: torch.Tensor | None, p: LIFParams,
                 spike_fn, need_h: bool):
    """The same neuron written with differentiable torch ops and ``spike_fn`` (a SpikingJelly
    surrogate: Heaviside forward, surrogate backward); autograd derives the backward.

    Used for surrogates the kernels do not implement, and by the tests as an independent check of
    the hand-written backward (with ``p.surrogate_shift`` set, σ' is ``p.surrogate``'s, not
    ``spike_fn``'s). Returns ``(spikes [T, M], v_last [M], h_seq [T, M] or None)``.
    Quantized, it works in grid units with value-preserving straight-through estimators, which
    gives exactly the gradients in the module docstring (with an exact residual q - h).
    """
    cdt = _compute_dtype(x)
    v = v0.to(cdt)
    spikes, hs = [], []
    if p.u_bits is None:
        for t in range(x.shape[0]):
            h = _charge(v, x[t].to(cdt), p.reset_value, p)
            s = spike_fn(h - p.v_threshold)
            s_r = s.detach() if p.detach_reset else s
            v = h - p.v_threshold * s_r if not p.hard_reset else h * (1 - s_r) + p.v_reset * s_r
            spikes.append(s.to(x.dtype))
            hs.append(h.to(x.dtype))
    else:
        d = delta.to(cdt)
        theta, r = grid_constants(d.detach(), p)
        v = (v - p.v_threshold) / d
        v = torch.floor(v + 0.5).detach() + (v - v.detach())  # snap to the grid, straight through
        for t in range(x.shape[0]):
            h = _charge(v, x[t].to(cdt) / d, r, p)
            hd = h.detach()
            q = torch.where(hd == hd, torch.floor(hd + 0.5).clamp(p.qmin, p.qmax), float(p.qmin))
            # value q; gradient 1 to H except below the grid; LSQ's q - h for Δ inside the grid, q where
            # clipped (above the top, H passes through in volts: hΔ carries no Δ of its own there)
            hv = h * d
            through = torch.where(hd > p.qmax, (hv - hv.detach()) / d, h - hd)
            hq = torch.where(hd < p.qmin, q, q + through)
            if p.surrogate_shift is None:
                s = spike_fn(hq * d)
            else:  # Θ(q) forward; σ' at the pre-rounding membrane as the derivative on H_q (p.surrogate's)
                hu = hq * d
                h_pre = torch.where(hd < p.qmin, q, hd)
                slope = surrogate_grad((h_pre + p.surrogate_shift) * d.detach(), p.surrogate, p.alpha)
                s = (q >= 0).to(cdt) + (hu - hu.detach()) * slope
            s_r = s.detach() if p.detach_reset else s
            v = hq * (1 - s_r) + r * s_r if p.hard_reset else hq - theta * s_r
            spikes.append(s.to(x.dtype))
            hs.append((p.v_threshold + hq * d).to(x.dtype))
        v = p.v_threshold + v * d
    return torch.stack(spikes), v, (torch.stack(hs) if need_h else None)


# The backend interface every kernel module provides (see mdsnn_zoo.neuron).
forward = lif_forward
backward = lif_backward
