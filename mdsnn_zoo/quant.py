"""Quantized layers, batch-norm folding and ``quantize_model``: from a float SNN to a low-bit student.

Weights: symmetric uniform b-bit codes ``q ∈ [-2^(b-1), 2^(b-1)-1]`` times a learnable scale per
output channel (LSQ: initialised per channel to the fraction of ``max|w| / (2^(b-1)-1)`` with the
least squared quantization error, gradient scaled by
``1 / sqrt(weights per channel · (2^(b-1)-1))``, straight-through rounding, zero gradient for weights
outside the range). The layer calls ``conv2d``/``linear`` with ``q · scale``, so a b-bit layer uses
at most 2^b distinct values per output channel.

Batch norm is folded into the convolution before it: ``W' = W γ/σ``, ``b' = β + (b - μ) γ/σ`` with
``σ = sqrt(running_var + eps)``. The running statistics are those of the float model at the time of
``quantize_model``, and they stay frozen: during QAT the folded weight and bias are trained directly
(no batch statistics), so training and inference compute the same function and the student has no
float batch norm left.

Where the scales meet (the integer scheme). A quantized layer feeding a quantized LIF neuron gets its
bias on a grid ``2^f`` times finer than that neuron's membrane step, ``b = B Δ / 2^f`` (B integer,
``f = bias_frac_bits``, default 4): the input current is accumulated with f fraction bits before the
membrane is rounded to its grid. With ``f = 0`` (the first zoo students) the bias sits on the membrane
grid itself, which at 2 bits (Δ = V_th/2) rounds every bias to a multiple of V_th/2; under the membrane
loss with a fixed Δ the biases then gathered at the rounding boundaries and flipped by whole steps
(recipes/RESULTS.md). With ``scale_bits`` m every weight scale is
``s_c = M_c 2^e_c`` (``M_c`` an integer of m + 1 bits; m = 0, or ``pot=True``: a power of two) and
every membrane step Δ a power of two (learned in value, rounded with a straight-through gradient),
so the input current in grid units is ``X/Δ = M_c 2^(e_c - e_Δ) Σ q w_spike + B / 2^f``: an integer
accumulation of the codes over the incoming spikes, one small multiplier, a shift and an integer
bias. The threshold θ and the reset level r are integers on the grid, and the leak with
``tau = 2^k`` is a shift. Every float operation of the fake-quant forward is then exact (its sums
stay within float32's significand), and the NumPy runtime (:mod:`mdsnn_zoo.runtime`, after
``mdsnn-zoo export``) runs such a student in integers with the same spikes, bit for bit. Without
``scale_bits`` the scales are free floats and inference needs a full-precision multiplication by
``s_c / Δ`` per output channel.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer
from torch import nn

from mdsnn_zoo._ste import dyadic_ste, grad_scale, round_ste
from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.neuron import QuantLIFNode

DEFAULT_BIAS_FRAC_BITS = 4  # a bias has 4 more fraction bits than the membrane it charges
HEAD_BIAS_BITS = 8  # a hardware-exact classifier's bias is a multiple of 2^-8


def check_bits(name: str, bits: object, allow_none: bool = False) -> None:
    """Raise a clear error unless ``bits`` is an int from 2 to 8 (or None when allowed)."""
    if bits is None and allow_none:
        return
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        extra = ", or None" if allow_none else ""
        raise InvalidValueError(f"{name} must be an int from 2 to 8{extra}; got {bits!r}")


def check_scale_bits(scale_bits: object) -> None:
    """Raise a clear error unless ``scale_bits`` is None or an int from 0 to 8."""
    if scale_bits is not None and (isinstance(scale_bits, bool) or not isinstance(scale_bits, int)
                                   or not 0 <= scale_bits <= 8):
        raise InvalidValueError(f"scale_bits must be None (float scales) or an int from 0 (powers of two) to 8 "
                                f"(a multiplier of scale_bits + 1 bits and a shift), got {scale_bits!r}")


def dyadic_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, e)`` int64 with ``x == M 2^e`` exactly and M odd (positive float32 ``x``, any shape): a
    scale as an integer machine applies it, a multiplication and a shift."""
    mantissa, exponent = torch.frexp(x.detach().to(torch.float32))
    m = (mantissa * 2**24).to(torch.int64)  # exact: float32 has a 24-bit significand
    e = exponent.to(torch.int64) - 24
    for _ in range(24):  # strip trailing zero bits
        even = (m % 2 == 0) & (m != 0)
        m, e = torch.where(even, m // 2, m), torch.where(even, e + 1, e)
    return m, e


class WeightQuantizer(nn.Module):
    """Signed b-bit per-output-channel fake quantizer with a learnable scale (LSQ).

    ``w: [C_out, ...]`` float -> ``q · s`` of the same shape; ``codes(w)`` gives the integers q.
    ``scale_bits`` m (None: free float scales): every scale is ``M 2^e`` with M an integer of m + 1
    bits, a multiplier and a shift of integer hardware (m = 0: a power of two).
    """

    def __init__(self, bits: int, channels: int, scale_bits: int | None = None) -> None:
        super().__init__()
        check_bits("w_bits", bits)
        check_scale_bits(scale_bits)
        self.bits, self.scale_bits = bits, scale_bits
        self.qmin, self.qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        self.scale = nn.Parameter(torch.ones(channels))

    @torch.no_grad()
    def init_scale(self, w: torch.Tensor) -> None:
        """Per channel, the scale (a fraction of ``max|w| / qmax``) with the least squared error."""
        flat = w.detach().flatten(1)  # [C, K]
        top = flat.abs().amax(1).clamp_min(1e-8) / self.qmax
        fractions = torch.linspace(0.2, 1.0, 33, device=w.device)
        cand = top[:, None] * fractions[None, :]  # [C, F]
        q = torch.round(flat[:, None, :] / cand[..., None]).clamp(self.qmin, self.qmax)
        err = (q * cand[..., None] - flat[:, None, :]).pow(2).sum(-1)  # [C, F]
        self.scale.copy_(cand.gather(1, err.argmin(1, keepdim=True)).squeeze(1))

    def step(self, w: torch.Tensor) -> torch.Tensor:
        """The scale in use, ``[C_out]``: clamped positive, on the ``scale_bits`` grid, LSQ-scaled grad."""
        s = self.scale.clamp_min(1e-8)
        if self.scale_bits is not None:
            s = dyadic_ste(s, self.scale_bits)
        if s.requires_grad:
            s = grad_scale(s, 1.0 / math.sqrt(w[0].numel() * self.qmax))
        return s

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """Integer codes ``[C_out, ...]`` (int64)."""
        s = self.step(w).detach().view(-1, *([1] * (w.ndim - 1)))
        return torch.round(w.detach() / s).clamp(self.qmin, self.qmax).to(torch.int64)

    def codes_and_step(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes q as floats ``[C_out, ...]`` with straight-through gradients to ``w`` and the scale
        (zero for weights outside the range), and the scale in use shaped to multiply them."""
        s = self.step(w).view(-1, *([1] * (w.ndim - 1)))
        return round_ste((w / s).clamp(self.qmin, self.qmax)), s

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q, s = self.codes_and_step(w)
        return q * s

    def extra_repr(self) -> str:
        return f"bits={self.bits}, channels={self.scale.numel()}, scale_bits={self.scale_bits}"


class _QuantLayerMixin:
    """Shared by QuantConv2d and QuantLinear: the weight quantizer and the bias on a LIF's grid."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    weight_quant: WeightQuantizer

    bias_frac_bits: int = 0
    input_layer: bool = False  # the network's first layer (set by quantize_model)

    def link_bias_grid(self, node: QuantLIFNode | None, frac_bits: int = 0) -> None:
        """Put the bias on ``node``'s membrane grid refined ``2^frac_bits`` times
        (``b = round(b 2^f / Δ) Δ / 2^f``); None: float bias."""
        self.__dict__["_grid_node"] = node  # a reference, not a submodule
        self.bias_frac_bits = frac_bits

    @property
    def grid_node(self) -> QuantLIFNode | None:
        return self.__dict__.get("_grid_node")

    def _take_weights(self, src: nn.Module):
        """Copy ``src``'s weight and bias (same shapes) and initialise the weight scale from them."""
        self.to(src.weight.device)
        with torch.no_grad():
            self.weight.copy_(src.weight)
            if src.bias is not None:
                self.bias.copy_(src.bias)
        self.weight_quant.init_scale(self.weight)
        return self

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def quantized_bias(self) -> torch.Tensor | None:
        d = self._bias_unit()
        return self.bias if d is None else round_ste(self.bias / d) * d

    def bias_codes(self) -> torch.Tensor | None:
        """The integer bias B (int64, ``[C_out]``) in units of ``Δ / 2^bias_frac_bits``; None when the
        bias is not on a membrane grid."""
        d = self._bias_unit()
        return None if d is None else torch.round(self.bias.detach() / d.detach()).to(torch.int64)

    def _bias_unit(self) -> torch.Tensor | None:
        """``Δ / 2^bias_frac_bits`` of the linked neuron (volts); for a hardware-exact layer that feeds
        no neuron (the classifier), ``2^-HEAD_BIAS_BITS``; else None (a float bias)."""
        node = self.grid_node
        if self.bias is None:
            return None
        if node is None or node.delta is None:
            exact = self.weight_quant.scale_bits is not None
            return self.bias.new_tensor(2.0 ** -HEAD_BIAS_BITS) if exact else None
        return node.step_in_use() / 2**self.bias_frac_bits

    @property
    def accumulates_exactly(self) -> bool:
        """Whether the layer sums its inputs in float64 and rounds once: the input layer of a
        hardware-exact student, whose float inputs (pixels, event counts) an integer runtime must
        reproduce bit for bit (every other layer sums spikes, exact in float32)."""
        return self.input_layer and self.weight_quant.scale_bits is not None

    def exact_affine(self, x: torch.Tensor, op: Callable[..., torch.Tensor], channel_dim: int) -> torch.Tensor:
        """``op(x, q) · s + b`` computed in float64 (the codes' sums exactly), then rounded to the
        bias grid (the next neuron's ``Δ / 2^bias_frac_bits``: a fixed-point current, straight-through
        gradient) and given x's dtype; ``op`` is the layer's convolution or matrix product without bias."""
        q, step = self.weight_quant.codes_and_step(self.weight)
        shape = [1] * x.ndim
        shape[channel_dim] = -1
        out = op(x.double(), q.double()) * step.double().view(shape)
        bias = self.quantized_bias()
        if bias is not None:
            out = out + bias.double().view(shape)
        unit = self._bias_unit()
        if unit is not None:
            out = round_ste(out / unit.double()) * unit.double()
        return out.to(x.dtype)


class QuantConv2d(_QuantLayerMixin, layer.Conv2d):
    """SpikingJelly ``Conv2d`` (``step_mode`` 's' or 'm') whose weight is fake-quantized to ``w_bits``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 step_mode: str = "s", w_bits: int = 4, scale_bits: int | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, step_mode=step_mode)
        self.weight_quant = WeightQuantizer(w_bits, out_channels, scale_bits)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, w_bits: int, scale_bits: int | None = None) -> QuantConv2d:
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                getattr(conv, "step_mode", "s"), w_bits, scale_bits)
        return q._take_weights(conv)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        if self.accumulates_exactly:
            conv = functools.partial(super()._conv_forward, bias=None)
            return self.exact_affine(input, conv, 1)
        return super()._conv_forward(input, self.quantized_weight(), self.quantized_bias())


class QuantLinear(_QuantLayerMixin, layer.Linear):
    """SpikingJelly ``Linear`` whose weight is fake-quantized to ``w_bits``; ``[T, N, F]`` or ``[N, F]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, step_mode: str = "s",
                 w_bits: int = 4, scale_bits: int | None = None) -> None:
        super().__init__(in_features, out_features, bias, step_mode=step_mode)
        self.weight_quant = WeightQuantizer(w_bits, out_features, scale_bits)

    @classmethod
    def from_float(cls, linear: nn.Linear, w_bits: int, scale_bits: int | None = None) -> QuantLinear:
        q = cls(linear.in_features, linear.out_features, linear.bias is not None,
                getattr(linear, "step_mode", "s"), w_bits, scale_bits)
        return q._take_weights(linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.accumulates_exactly:
            return self.exact_affine(x, F.linear, x.ndim - 1)
        return F.linear(x, self.quantized_weight(), self.quantized_bias())  # any leading dims


# -- batch-norm folding ------------------------------------------------------------------------------

def fold_batchnorm(conv: nn.Conv2d | nn.Linear, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> None:
    """Fold ``bn`` (its running statistics and affine) into ``conv`` (or a linear layer) in place;
    gives it a bias."""
    if bn.running_mean is None or bn.running_var is None:
        raise InvalidValueError("cannot fold a BatchNorm without running statistics "
                                "(track_running_stats=False); use bn='keep'")
    with torch.no_grad():
        sigma = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(sigma)
        beta = bn.bias if bn.affine else torch.zeros_like(sigma)
        factor = gamma / sigma
        bias = conv.bias if conv.bias is not None else torch.zeros_like(sigma)
        conv.weight.mul_(factor.view(-1, *([1] * (conv.weight.ndim - 1))))
        new_bias = beta + (bias - bn.running_mean) * factor
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias)
        else:
            conv.bias.copy_(new_bias)


def _fold_all(model: nn.Module) -> None:
    for container in model.modules():
        if not isinstance(container, nn.Sequential):
            continue
        names = list(container._modules)
        for prev, name in zip(names, names[1:], strict=False):
            a, b = container._modules[prev], container._modules[name]
            if (isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)) or \
                    (isinstance(a, nn.Linear) and isinstance(b, nn.BatchNorm1d)):
                fold_batchnorm(a, b)
                container._modules[name] = nn.Identity()
    left = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise InvalidValueError(f"bn='fold' found no convolution (or linear layer) right before BatchNorm "
                                f"{left[0]!r} in an nn.Sequential; fold it by hand or use bn='keep'")


# -- quantize_model ------------------------------------------------------------------------------------

def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Float convolutions and linear layers (SpikingJelly's or torch's), in module order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, (QuantConv2d, QuantLinear))]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def quantize_model(model: nn.Module, w_bits: int, u_bits: int | None, bn: str = "fold",
                   first_last_bits: int | None = 8, pot: bool = False,
                   bias_frac_bits: int = DEFAULT_BIAS_FRAC_BITS, scale_bits: int | None = None) -> nn.Module:
    """A low-bit student built from the float SNN ``model`` (which is left unchanged).

    Convolutions and linear layers become :class:`QuantConv2d`/:class:`QuantLinear` with ``w_bits``
    (the first and the last with ``first_last_bits``; None: ``w_bits`` too), batch norms are folded
    into the convolution before them (``bn='fold'``) or kept in float (``bn='keep'``), and every
    :class:`QuantLIFNode` gets ``u_bits`` (None keeps a float membrane). Module names of the LIF
    layers do not change, so teacher and student line up for distillation. ``scale_bits`` m puts
    every weight scale on ``M 2^e`` (M of m + 1 bits) and every membrane step on a power of two, for
    integer-only inference (see the module docstring); ``pot=True`` is ``scale_bits=0``. A layer's
    bias is quantized to the next neuron's membrane step divided by ``2^bias_frac_bits`` (0 to 16).
    """
    check_bits("w_bits", w_bits)
    check_scale_bits(scale_bits)
    if pot:
        if scale_bits not in (None, 0):
            raise InvalidValueError(f"pot=True is scale_bits=0; got scale_bits={scale_bits} too")
        scale_bits = 0
    if isinstance(bias_frac_bits, bool) or not isinstance(bias_frac_bits, int) or not 0 <= bias_frac_bits <= 16:
        raise InvalidValueError(f"bias_frac_bits must be an int from 0 to 16 (the bias grid is the membrane step / "
                                f"2^bias_frac_bits), got {bias_frac_bits!r}")
    check_bits("u_bits", u_bits, allow_none=True)
    check_bits("first_last_bits", first_last_bits, allow_none=True)
    if bn not in ("fold", "keep"):
        raise InvalidValueError(f"bn must be 'fold' (fold batch norm into the convolution) or 'keep', got {bn!r}")
    if not any(isinstance(m, QuantLIFNode) for m in model.modules()):
        raise InvalidValueError("quantize_model needs a model with QuantLIFNode layers (mdsnn_zoo.QuantLIFNode); "
                                "this one has none")
    student = copy.deepcopy(model)
    student.eval()
    if bn == "fold":
        _fold_all(student)
    weights = _weight_layers(student)
    if not weights:
        raise InvalidValueError("quantize_model found no Conv2d or Linear layer to quantize")
    for i, (name, module) in enumerate(weights):
        edge = i in (0, len(weights) - 1)
        bits = first_last_bits if edge and first_last_bits is not None else w_bits
        quant = QuantConv2d if isinstance(module, nn.Conv2d) else QuantLinear
        layer_q = quant.from_float(module, bits, scale_bits)
        layer_q.input_layer = i == 0
        _set_module(student, name, layer_q)
    for node in student.modules():
        if isinstance(node, QuantLIFNode):
            node.set_u_bits(u_bits)
    set_scale_bits(student, scale_bits)
    _link_bias_grids(student, bias_frac_bits)
    student.train(model.training)
    return student


def set_scale_bits(model: nn.Module, scale_bits: int | None) -> nn.Module:
    """Put the quantized ``model``'s weight scales on the ``M 2^e`` grid (M of ``scale_bits`` + 1 bits) and
    its membrane steps on powers of two, in place (None: free float scales and steps); the learned values
    are kept and rounded in the forward. Returns ``model``."""
    check_scale_bits(scale_bits)
    for _, quant_layer in quantized_layers(model):
        quant_layer.weight_quant.scale_bits = scale_bits
    for node in model.modules():
        if isinstance(node, QuantLIFNode):
            node.pot_delta = scale_bits is not None
    return model


def _link_bias_grids(model: nn.Module, frac_bits: int) -> None:
    """Each quantized layer puts its bias on the (refined) grid of the next LIF neuron in module order."""
    pending: list[_QuantLayerMixin] = []
    for module in model.modules():
        if isinstance(module, (QuantConv2d, QuantLinear)):
            pending.append(module)
        elif isinstance(module, QuantLIFNode):
            for q in pending:
                q.link_bias_grid(module if module.u_bits is not None else None, frac_bits)
            pending = []


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, layer) of every QuantConv2d and QuantLinear in ``model``."""
    return ((n, m) for n, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear)))
