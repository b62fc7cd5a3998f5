"""``QuantLIFNode``: a multi-step LIF neuron with an optionally quantized membrane, on fused kernels.

The equations, the quantization grid and the gradients are written out in
``mdsnn_zoo/kernels/lif_reference.py`` (source: ``kernels/lif_reference.py``). This module owns the
arguments, the state, the step modes and the memory layout; which kernel runs is ``mdsnn_zoo.backends``'s
table.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

import torch
from spikingjelly.activation_based import base, surrogate
from torch import nn

from mdsnn_zoo import backends
from mdsnn_zoo._ste import dyadic_ste, grad_scale
from mdsnn_zoo.errors import InvalidTypeError, InvalidValueError
from mdsnn_zoo.kernels import mse_reference
from mdsnn_zoo.kernels.lif_reference import LIFParams, grid_constants, lif_autograd

# SpikingJelly surrogate classes the kernels implement, by class name (both SpikingJelly releases).
_KNOWN_SURROGATES = {
    "ATan": "atan",
    "Sigmoid": "sigmoid",
    "PiecewiseQuadratic": "piecewise_quadratic",
    "Rect": "rect",
}


def _resolve_surrogate(fn: object | None) -> tuple[str | None, float, Callable | None]:
    """(kernel name or None, alpha, callable): None when the kernels do not implement ``fn``."""
    if fn is None:
        return "atan", 2.0, surrogate.ATan(alpha=2.0)
    if not callable(fn):
        raise InvalidTypeError(f"surrogate_function must be a SpikingJelly surrogate (e.g. surrogate.ATan()), "
                               f"got {fn!r}")
    kind = _KNOWN_SURROGATES.get(type(fn).__name__)
    alpha = getattr(fn, "alpha", None)
    if kind is None or not getattr(fn, "spiking", True) or not isinstance(alpha, (int, float)):
        return None, float("nan"), fn
    return kind, float(alpha), fn


class _LIFFunction(torch.autograd.Function):
    """Spikes, last state and (optionally) the membrane H, with the backend's hand-written backward."""

    @staticmethod
    def forward(ctx, x, v0, delta, backend: ModuleType, p: LIFParams, need_h: bool, save: bool,
                target: torch.Tensor | None):
        with torch.autocast(x.device.type, enabled=False):  # the kernels choose their own precision
            spikes, v_last, h_seq, state, frac, mse_sum = backend.forward(x, v0, delta, p, need_h, save,
                                                                          target)
        ctx.save_for_backward(state, frac, delta, target)
        ctx.backend, ctx.p, ctx.x_dtype = backend, p, x.dtype
        ctx.set_materialize_grads(False)
        mse = mse_sum / max(x.numel(), 1) if mse_sum is not None else None  # mean over T, N, features
        return spikes, v_last, h_seq, mse

    @staticmethod
    def backward(ctx, grad_s, grad_v, grad_h, grad_mse):
        state, frac, delta, target = ctx.saved_tensors
        if grad_s is None:
            grad_s = torch.zeros(state.shape, dtype=ctx.x_dtype, device=state.device)
        coef = None
        if target is not None:  # d(mean (H - target)^2)/dH = 2 (H - target) / elements
            coef = (grad_mse if grad_mse is not None else torch.zeros((), device=state.device)) \
                * (2.0 / max(state.numel(), 1))
        with torch.autocast(state.device.type, enabled=False):
            grad_x, grad_v0, grad_delta = ctx.backend.backward(
                grad_s, grad_v, grad_h, state, frac, delta, ctx.p, ctx.x_dtype,
                target if coef is not None else None, coef)
        return grad_x, grad_v0, grad_delta, None, None, None, None, None


class QuantLIFNode(base.MemoryModule):
    """Leaky integrate-and-fire neuron whose membrane potential can be quantized to ``u_bits``.

    With ``u_bits=None`` it computes what SpikingJelly's ``LIFNode`` computes for the same
    arguments. With ``u_bits=b`` (2..8) the membrane lives on the b-bit grid ``v_threshold + kΔ``
    (k = -(2^b - 1) .. 0: the threshold is the top level) with a learnable step ``delta`` (volts per
    level, initialised to ``v_threshold / 2^(b-1)``); see ``lif_reference.py`` for the exact grid,
    ties and gradients.

    Input: ``[T, N, *]`` in multi-step mode, ``[N, *]`` in single-step mode; output spikes of the
    same shape and dtype (float32, float16, bfloat16; float64 on the ``torch`` backend). State
    ``v``: ``[N, *]`` float32, volts. ``store_h_seq=True`` keeps the pre-spike membrane (after
    quantization) as ``h_seq`` ``[T, N, *]``, differentiable; ``store_v_seq=True`` keeps the
    membrane after reset as ``v_seq``.

    ``backend``: ``'auto'`` (CUDA: triton, else cupy, else torch; CPU: inductor, else torch),
    ``'torch'`` (the readable reference), ``'inductor'`` (torch.compile), ``'triton'``, ``'cupy'``.
    A surrogate the kernels do not implement runs on plain torch autograd, with one warning.

    ``surrogate_shift`` (quantized membrane only; changes gradients, never the forward pass): None
    evaluates the surrogate at the quantized membrane, u = qΔ, where every firing neuron sits at the
    surrogate's peak; a number S evaluates it before rounding, at u = (h + S)Δ (h in grid units;
    S = 0 is the float neuron's H - V_th). See ``recipes/RESULTS.md``: in resnet20, u = qΔ multiplies
    the first layer's gradient by ~500 at U4 and U8.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Callable | None = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "auto",
        u_bits: int | None = None,
        store_v_seq: bool = False,
        store_h_seq: bool = False,
        surrogate_shift: float | None = None,
    ) -> None:
        super().__init__()
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 1:
            raise InvalidValueError(f"tau must be a number > 1 (the membrane time constant), got {tau!r}")
        for name, value in (("v_threshold", v_threshold), ("v_reset", v_reset)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidValueError(f"{name} must be a finite number, got {value!r}")
        if v_reset is not None and v_reset >= v_threshold:
            raise InvalidValueError(f"v_reset ({v_reset}) must be below v_threshold ({v_threshold})")
        if step_mode not in ("s", "m"):
            raise InvalidValueError(f"step_mode must be 's' (single-step) or 'm' (multi-step), got {step_mode!r}")
        self.tau = float(tau)
        self.decay_input = bool(decay_input)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.surrogate_function = surrogate_function if surrogate_function is not None else \
            surrogate.ATan(alpha=2.0)
        self._kind, self._alpha, _ = _resolve_surrogate(self.surrogate_function)
        self.step_mode = step_mode
        self.backend = backends.check(backend, "lif")
        self.store_v_seq = store_v_seq
        self.store_h_seq = store_h_seq
        self.u_bits = None
        self.delta = None
        self.pot_delta = False  # quantize_model(scale_bits=...): Δ a power of two (integer inference)
        self.set_u_bits(u_bits)
        self.surrogate_shift: float | None = None
        self.set_surrogate_shift(surrogate_shift)
        self.register_memory("v", self.v_reset if self.v_reset is not None else 0.0)
        self.h_seq: torch.Tensor | None = None
        self.v_seq: torch.Tensor | None = None
        # membrane distillation fused into the neuron (``distill_to``): the teacher's H in, the MSE out
        self._membrane_target: torch.Tensor | None = None
        self.membrane_mse: torch.Tensor | None = None
        self._warned = False

    # -- configuration ---------------------------------------------------------------------------

    @staticmethod
    def available_backends() -> list[str]:
        """The backends that run on this machine now, e.g. ``['torch', 'inductor']`` on a CPU."""
        return backends.available_backends("lif")

    def set_u_bits(self, u_bits: int | None) -> None:
        """Quantize the membrane to ``u_bits`` (2..8; None: full precision); (re)initialises ``delta``."""
        if u_bits is not None and (isinstance(u_bits, bool) or not isinstance(u_bits, int)
                                   or not 2 <= u_bits <= 8):
            raise InvalidValueError(f"u_bits must be an int from 2 to 8, or None for a float membrane; "
                                    f"got {u_bits!r}")
        self.u_bits = u_bits
        if u_bits is None:
            self.delta = None
        else:
            step = self.v_threshold / 2 ** (u_bits - 1)  # grid V_th + kΔ, k <= 0, spans [~-V_th, V_th]
            self.delta = nn.Parameter(torch.tensor(step, dtype=torch.float32))

    def set_surrogate_shift(self, shift: float | None) -> None:
        """Where a quantized membrane's surrogate is evaluated: None at qΔ, S at (h + S)Δ (grid units)."""
        if shift is not None:
            if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
                raise InvalidValueError(f"surrogate_shift must be a finite number (grid steps) or None, got {shift!r}")
            if self._kind is None:
                known = ", ".join(_KNOWN_SURROGATES)
                raise InvalidValueError(f"surrogate_shift needs a surrogate the kernels implement ({known}); "
                                        f"{type(self.surrogate_function).__name__} is not one")
            shift = float(shift)
        self.surrogate_shift = shift

    def step_in_use(self) -> torch.Tensor:
        """Δ as the forward pass uses it: positive, a power of two if ``pot_delta`` (0-d tensor)."""
        if self.delta is None:
            raise InvalidValueError("this neuron has a float membrane (u_bits=None): it has no step")
        # a floor at V_th / 2^(b+1) (a quarter of the initial step): the step can shrink, not collapse
        delta = self.delta.clamp(min=self.v_threshold / 2 ** (self.u_bits + 1))
        if self.pot_delta:
            delta = dyadic_ste(delta, 0)
        return delta

    @property
    def params(self) -> LIFParams:
        return LIFParams(self.tau, self.decay_input, self.v_threshold, self.v_reset, self.detach_reset,
                         self._kind or "atan", self._alpha, self.u_bits,
                         self.surrogate_shift if self.u_bits is not None else None)

    def extra_repr(self) -> str:
        shift = f"surrogate_shift={self.surrogate_shift}, " if self.surrogate_shift is not None else ""
        return (f"tau={self.tau}, decay_input={self.decay_input}, v_threshold={self.v_threshold}, "
                f"v_reset={self.v_reset}, detach_reset={self.detach_reset}, u_bits={self.u_bits}, {shift}"
                f"backend={self.backend!r}, step_mode={self.step_mode!r}")

    def reset(self) -> None:
        super().reset()
        self.h_seq = None
        self.v_seq = None
        self.membrane_mse = None

    # -- forward ---------------------------------------------------------------------------------

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 1:
            raise InvalidValueError(f"QuantLIFNode in single-step mode takes x: [N, *], got "
                                    f"{getattr(x, 'shape', type(x))}")
        return self._run(x.unsqueeze(0))[0]

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not isinstance(x_seq, torch.Tensor) or x_seq.ndim < 2:
            raise InvalidValueError(f"QuantLIFNode in multi-step mode takes x_seq: [T, N, *], got "
                                    f"{tuple(getattr(x_seq, 'shape', ()))}; for [N, *] input use step_mode='s'")
        return self._run(x_seq)

    def _pick_backend(self, x: torch.Tensor) -> str:
        if self._kind is None:
            if not self._warned:
                warnings.warn(f"surrogate {type(self.surrogate_function).__name__} has no fused kernel; "
                              "QuantLIFNode runs it on plain torch autograd", stacklevel=3)
                self._warned = True
            return "autograd"
        name = self.backend
        if x.dtype == torch.float64:
            if name not in ("auto", "torch"):
                raise InvalidValueError(f"float64 input runs only on backend='torch', not {name!r}")
            return "torch"
        return backends.resolve(name, "lif", x.device.type)

    def _state(self, x_seq: torch.Tensor, order: tuple[int, ...] | None) -> torch.Tensor:
        """The state ``v`` as ``[M]`` float32 (M = N * features, in the memory order ``order`` of
        ``_memory_order``), checked against the input."""
        feat = x_seq.shape[1:]
        v = self.v
        if isinstance(v, torch.Tensor):
            if v.shape != feat:
                raise InvalidValueError(f"input {tuple(x_seq.shape)} does not match the neuron's state "
                                        f"{tuple(v.shape)} (expected [T, {', '.join(map(str, v.shape))}] in "
                                        f"step_mode={self.step_mode!r}); call functional.reset_net(net) "
                                        "between batches of different shape")
            if order is not None:
                v = v.permute([d - 1 for d in order[1:]])
            return v.reshape(-1).to(torch.float32)
        return torch.full((x_seq[0].numel(),), float(v), dtype=torch.float32, device=x_seq.device)

    def _run(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not x_seq.is_floating_point():
            raise InvalidValueError(f"QuantLIFNode takes a floating-point input, got {x_seq.dtype}")
        T, feat = x_seq.shape[0], x_seq.shape[1:]
        order = _memory_order(x_seq)
        v0 = self._state(x_seq, order)
        x_mem = x_seq.permute(order) if order is not None else x_seq  # memory order: [T, N, H, W, C]
        x = x_mem.flatten(1) if x_mem.ndim > 2 else x_mem  # [T, M]; a view when x[t] is mergeable
        delta = None
        if self.u_bits is not None:
            delta = self.step_in_use()
            if delta.requires_grad:
                delta = grad_scale(delta, 1.0 / math.sqrt(x.numel() * (2 ** (self.u_bits - 1) - 1)))
        need_h = self.store_h_seq or self.store_v_seq
        backend = self._pick_backend(x)
        p = self.params
        if backend == "autograd":
            spikes, v_last, h = lif_autograd(x, v0, delta, p, self.surrogate_function, need_h or
                                             self._membrane_target is not None)
            if self._membrane_target is not None:
                self.membrane_mse = mse_reference.mean_squared(h, self._flat_target(x, x_seq, order))
        else:
            # keep nothing for backward when no gradient can be asked for (inference)
            save = torch.is_grad_enabled() and any(
                t is not None and t.requires_grad for t in (x, v0, delta))
            target = self._flat_target(x, x_seq, order)
            spikes, v_last, h, mse = _LIFFunction.apply(x, v0, delta, backends.module(backend, "lif"), p, need_h, save,
                                                        target)
            self.membrane_mse = mse
        mem_feat = x_mem.shape[1:]

        def logical(flat: torch.Tensor) -> torch.Tensor:  # [T, M] in memory order -> [T, N, *] view
            out = flat.view(T, *mem_feat)
            return out if order is None else out.permute(_inverse(order))

        # not a view of v_last (SpikingJelly's detach_net detaches the state in place)
        if order is None:
            self.v = torch.ops.aten._unsafe_view(v_last, feat)
        else:  # [N, *] in the logical layout; the copy is one step's state, 1/T of the input
            self.v = torch.permute_copy(v_last.view(mem_feat), _inverse([d - 1 for d in order[1:]]))
        h_seq = logical(h) if need_h else None
        self.h_seq = h_seq if self.store_h_seq else None
        spikes = logical(spikes)
        if self.store_v_seq:
            self.v_seq = self._after_reset(h_seq, spikes, delta)
        return spikes

    @contextlib.contextmanager
    def distill_to(self, target: torch.Tensor) -> Iterator[QuantLIFNode]:
        """Within the block, each forward also computes ``membrane_mse``, the MSE of this neuron's
        membrane to ``target`` (a teacher's H, ``[T, N, *]``, clipped to this grid), in its kernels,
        with its gradient folded into the backward pass. ``MembraneTargets`` sets it for a network."""
        self._membrane_target, self.membrane_mse = target, None
        try:
            yield self
        finally:
            self._membrane_target = None

    def grid_range(self) -> tuple[float, float] | None:
        """(lowest, highest) membrane value of the quantized grid at its initial step, in volts
        (``-v_threshold (1 - 2^(1-b))`` to ``v_threshold``); None for a float membrane.

        Distillation clips the teacher's membrane to this range: a student is not asked for what
        its grid cannot hold. The range is fixed, not the learned step's, so that shrinking the
        step cannot shrink the targets with it (which made the membrane loss collapse the grid)."""
        if self.u_bits is None:
            return None
        return self.v_threshold * (1.0 - (2**self.u_bits - 1) / 2 ** (self.u_bits - 1)), self.v_threshold

    def _flat_target(self, x: torch.Tensor, x_seq: torch.Tensor, order: tuple[int, ...] | None
                     ) -> torch.Tensor | None:
        """The membrane target as ``[T, M]`` in the memory order of ``x`` (the input ``x_seq``
        flattened, see ``_memory_order``), clipped to what this neuron's grid can hold, or None."""
        t = self._membrane_target
        if t is None:
            return None
        if t.shape[0] != x.shape[0] or t[0].numel() != x[0].numel():
            raise InvalidValueError(f"the membrane target {tuple(t.shape)} does not match this neuron's input "
                                    f"(T={x.shape[0]}, {x[0].numel()} neurons per step)")
        t = t.detach()
        if order is not None:  # [T, N, C, H, W] (a teacher's h_seq, any layout) -> memory order
            t = t.reshape(x_seq.shape).permute(order)
        return mse_reference.clip_target(t.reshape(x.shape[0], -1), self.grid_range())

    def _after_reset(self, h: torch.Tensor, s: torch.Tensor, delta: torch.Tensor | None) -> torch.Tensor:
        """V[t] from H[t] and S[t], differentiable through both (the kernels never store it)."""
        v_th, v_r = self.v_threshold, self.v_reset
        if delta is not None:  # the grid is anchored at V_th: reset level V_th + rΔ, soft step θΔ
            theta, r = grid_constants(delta, self.params)  # integers, no gradient
            if v_r is None:
                return h - theta * delta * (s.detach() if self.detach_reset else s)
            v_r = self.v_threshold + r * delta
        if self.detach_reset:
            s = s.detach()
        return h - v_th * s if v_r is None else h * (1 - s) + v_r * s


_CHANNELS_LAST = (0, 1, 3, 4, 2)  # [T, N, C, H, W] -> [T, N, H, W, C]


def _memory_order(x_seq: torch.Tensor) -> tuple[int, ...] | None:
    """The permutation of ``x_seq``'s dims under which each step is contiguous, when it is a channels_last
    ``[T, N, C, H, W]`` sequence (the neuron then runs on the memory as it lies, and its outputs get
    the input's layout); None when it needs no permutation or has another layout (then flattened)."""
    if x_seq.ndim != 5 or x_seq.shape[2] == 1 or x_seq[0].is_contiguous():
        return None
    return _CHANNELS_LAST if x_seq[0].permute(0, 2, 3, 1).is_contiguous() else None


def _inverse(order: tuple[int, ...] | list[int]) -> list[int]:
    inv = [0] * len(order)
    for i, d in enumerate(order):
        inv[d] = i
    return inv
