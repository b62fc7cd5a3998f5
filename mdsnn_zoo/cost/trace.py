"""One real forward pass, recorded as the operations a hardware model prices.

:func:`trace` runs ``model`` on ``x: [T, N, ...]`` with every layer on every time step (a zoo
``SpikingNet``'s stem too: ``share_stem`` is turned off, as hardware would run it) and returns, in
execution order, one :class:`Op` per convolution, linear layer, pooling, residual addition (of the
zoo's residual blocks) and neuron layer, with its shapes, bit widths and the activity measured on
``x`` (counts are per sample, over all T steps).

Which networks: a zoo ``SpikingNet`` (called with ``time_major=True``) or any other SpikingJelly
network (an ``nn.Sequential`` or a module of your own, called ``model(x)``), run in multi-step mode:
every module with a ``step_mode`` is set to ``'m'`` for the pass and given back its own mode after,
and the neurons' state is reset before and after. Neurons: ``QuantLIFNode`` (its membrane bits) and
every SpikingJelly ``neuron.BaseNode`` (LIFNode, IFNode, ParametricLIFNode...; float membrane, bits
None). Weighted layers: ``torch.nn.Conv2d`` and ``nn.Linear`` and their subclasses (SpikingJelly's
``layer.Conv2d``/``layer.Linear``), with the weight bits of the project's ``QuantConv2d``/``QuantLinear``
or None (float weights, which the hardware models price at full precision). Additions written in a
custom ``forward`` are not modules, so they are not seen.

Activity of a layer whose input is spikes (binary): ``sops``, the synaptic operations (each input
spike times the outputs it reaches: multiply-accumulates with a non-zero input); and, for a
compute-in-memory mapping with ``rows`` crossbar rows per input slice, ``active_patches`` (the
fraction of (output position, input slice) pairs whose receptive field holds a spike) and
``active_rows`` (the fraction of crossbar rows driven by a spike). A layer whose input is real-valued
(the first) is dense: ``sops = macs`` and both fractions 1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron
from torch import nn

from mdsnn_zoo.errors import InvalidTypeError, InvalidValueError
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import QuantConv2d, QuantLinear

NEURONS = (QuantLIFNode, neuron.BaseNode)  # the spiking neurons a trace records
WEIGHTED = (nn.Conv2d, nn.Linear)  # the layers the hardware models compute


@dataclass
class Op:
    """One operation of the traced network. Shapes are per sample and time step: ``in_shape`` and
    ``out_shape`` ``(C, H, W)`` for 2-d layers, ``(F,)`` for linear ones."""

    name: str
    kind: str  # conv | linear | pool | global_pool | add | neuron
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    time_steps: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    w_bits: int | None = None  # None: float weights (conv, linear)
    u_bits: int | None = None  # membrane bits, None: float (a neuron's own; a conv, linear, add: the next neuron's)
    params: int = 0
    macs: int = 0  # dense multiply-accumulates per sample, all steps
    sops: float = 0.0  # synaptic operations per sample, all steps (= macs for real-valued input)
    binary_input: bool = False
    active_patches: float = 1.0
    active_rows: float = 1.0
    spike_rate: float = 0.0  # neuron: spikes per neuron and step
    pooled_hw: tuple[int, int] | None = None  # conv: the size after a pooling that follows it

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]

    @property
    def elements(self) -> int:
        """Output elements per sample and step (neurons, for a neuron layer)."""
        return math.prod(self.out_shape)


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _activity(x: torch.Tensor, kernel, stride, padding, dilation, out_channels: int, rows: int):
    """(sops, active patches, active rows) of a conv (4-d ``x: [B, C, H, W]``) or linear (``[B, C]``)
    layer on spikes ``x``; B = steps x samples."""
    if x.ndim == 2:
        x = x[:, :, None, None]
    b, c = x.shape[:2]
    slices = math.ceil(c / rows)
    pad = slices * rows - c
    counts = F.pad(x.float(), (0, 0, 0, 0, 0, pad)).view(b, slices, rows, *x.shape[2:]).sum(2)  # [B, S, H, W]
    ones = torch.ones(slices, 1, *kernel, device=x.device)
    field = F.conv2d(counts, ones, stride=stride, padding=padding, dilation=dilation, groups=slices)
    positions = field.shape[0] * field.shape[2] * field.shape[3]
    sops = float(field.sum()) * out_channels
    active = float((field > 0).sum()) / (positions * slices)
    driven = float(field.sum()) / (positions * c * kernel[0] * kernel[1])
    return sops, active, driven


class _Recorder:
    """Forward hooks that append an :class:`Op` to ``ops`` for each layer as it runs on ``x: [T, N, ...]``
    (``t_steps`` T, ``n`` N; counts are divided by N to be per sample)."""

    def __init__(self, t_steps: int, n: int, rows: int) -> None:
        self.t_steps, self.n, self.rows = t_steps, n, rows
        self.ops: list[Op] = []

    def _weighted(self, name: str, kind: str, m: nn.Module, xin: torch.Tensor, macs: int, kernel, stride,
                  padding, dilation, in_shape, out_shape) -> None:
        binary = _is_binary(xin)
        sops, active, driven = (_activity(xin, kernel, stride, padding, dilation, out_shape[0], self.rows)
                                if binary else (macs * self.n, 1.0, 1.0))
        self.ops.append(Op(name, kind, in_shape, out_shape, self.t_steps, _pair(kernel), _pair(stride),
                           _w_bits(m), params=m.weight.numel(), macs=macs, sops=sops / self.n,
                           binary_input=binary, active_patches=active, active_rows=driven))

    def conv(self, name: str):
        def hook(m: nn.Conv2d, inputs, out):
            xin = inputs[0].reshape(-1, *inputs[0].shape[-3:])  # [T N, C, H, W]
            o = tuple(out.shape[-3:])
            kernel = tuple(m.kernel_size)
            macs = math.prod(o) * (m.in_channels // m.groups) * kernel[0] * kernel[1] * self.t_steps
            self._weighted(name, "conv", m, xin, macs, kernel, tuple(m.stride), m.padding, m.dilation,
                           tuple(xin.shape[1:]), o)
        return hook

    def linear(self, name: str):
        def hook(m: nn.Linear, inputs, out):
            xin = inputs[0].reshape(-1, m.in_features)  # [T N, F]
            macs = m.in_features * m.out_features * self.t_steps
            self._weighted(name, "linear", m, xin, macs, (1, 1), (1, 1), 0, 1, (m.in_features,),
                           (m.out_features,))
        return hook

    def shape(self, name: str, kind: str):
        def hook(m: nn.Module, inputs, out):
            self.ops.append(Op(name, kind, tuple(inputs[0].shape[-3:]), tuple(out.shape[-3:]), self.t_steps,
                               kernel=_pair(getattr(m, "kernel_size", 1)), stride=_pair(getattr(m, "stride", 1))))
        return hook

    def node(self, name: str):
        def hook(m: nn.Module, inputs, out):  # out: spikes [T, N, ...]
            shape = tuple(out.shape[2:])
            u_bits = m.u_bits if isinstance(m, QuantLIFNode) else None  # SpikingJelly's neurons: float
            self.ops.append(Op(name, "neuron", shape, shape, self.t_steps, u_bits=u_bits,
                               spike_rate=float(out.float().mean())))
        return hook

    def attach(self, model: nn.Module) -> list:
        """Register the hooks on ``model``'s layers; returns their handles."""
        from mdsnn_zoo.models.resnet import BasicBlock, MembraneShortcutBlock

        handles = []
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                hook = self.conv(name)
            elif isinstance(m, nn.Linear):
                hook = self.linear(name)
            elif isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
                hook = self.shape(name, "global_pool")
            elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
                hook = self.shape(name, "pool")
            elif isinstance(m, BasicBlock | MembraneShortcutBlock):
                hook = self.shape(name, "add")
            elif isinstance(m, NEURONS):
                hook = self.node(name)
            else:
                continue
            handles.append(m.register_forward_hook(hook))
        return handles


def _check(model: nn.Module, x: torch.Tensor, zoo: bool) -> None:
    """Raise a clear error unless ``model`` is a spiking network with weighted layers and ``x`` is
    ``[T, N, ...]`` (``[T, N, C, H, W]`` for a network with 2-d convolutions)."""
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"x must be a torch.Tensor [T, N, ...], got {type(x).__name__}")
    kind = type(model).__name__
    if not any(isinstance(m, NEURONS) for m in model.modules()):
        raise InvalidValueError(f"{kind} has no spiking neuron, and the cost models price spiking networks: build "
                                "it with mdsnn_zoo.neuron.QuantLIFNode or a SpikingJelly neuron (neuron.LIFNode, "
                                "IFNode, ParametricLIFNode... any neuron.BaseNode); a ReLU twin is priced as the "
                                "spiking network it starts")
    if not any(isinstance(m, WEIGHTED) for m in model.modules()):
        raise InvalidValueError(f"{kind} has no convolution or linear layer, so there is nothing to price: the "
                                "cost models compute torch.nn.Conv2d and nn.Linear (SpikingJelly's layer.Conv2d "
                                "and layer.Linear, mdsnn_zoo.quant.QuantConv2d and QuantLinear)")
    if (zoo or any(isinstance(m, nn.Conv2d) for m in model.modules())) and x.ndim != 5:
        raise InvalidValueError(f"x must be time-major [T, N, C, H, W] for a network of 2-d convolutions, got shape "
                                f"{tuple(x.shape)}; turn a batch [N, C, H, W] (or event frames [N, T, C, H, W]) "
                                "into one with mdsnn_zoo.data.to_time_major(x, T)")
    if x.ndim < 3:
        raise InvalidValueError(f"x must be time-major [T, N, ...] (T steps of a batch of N), got shape "
                                f"{tuple(x.shape)}; repeat a batch [N, F] over T steps with "
                                "x.unsqueeze(0).expand(T, *x.shape)")


@contextlib.contextmanager
def _multi_step(model: nn.Module, zoo: bool) -> Iterator[None]:
    """``model`` in eval and multi-step mode with fresh neuron state (a zoo net: ``share_stem`` off) for
    the block; afterwards its state is reset and its step modes, training flags and stem sharing are
    what they were."""
    modes = {m: m.step_mode for m in model.modules() if hasattr(m, "step_mode")}
    training = {m: m.training for m in model.modules()}
    share = model.share_stem if zoo else None
    try:
        if zoo:
            model.share_stem = False
        model.eval()
        functional.set_step_mode(model, "m")
        functional.reset_net(model)
        yield
    finally:
        functional.reset_net(model)
        for m, mode in modes.items():
            if m.step_mode != mode:
                m.step_mode = mode
        for m, was in training.items():
            m.training = was
        if zoo:
            model.share_stem = share


def trace(model: nn.Module, x: torch.Tensor, rows: int = 64) -> list[Op]:
    """The operations of ``model`` on ``x: [T, N, ...]`` (time-major: ``[T, N, C, H, W]`` for static
    images repeated or event frames, ``[T, N, F]`` for a network of linear layers), per sample.
    ``rows``: crossbar rows per input slice, for ``active_patches``."""
    from mdsnn_zoo.models.base import SpikingNet

    zoo = isinstance(model, SpikingNet)
    _check(model, x, zoo)
    recorder = _Recorder(x.shape[0], x.shape[1], rows)
    handles = recorder.attach(model)
    try:
        with torch.no_grad(), _multi_step(model, zoo):
            if zoo:
                model(x, time_major=True)
            else:
                model(x)
    finally:
        for h in handles:
            h.remove()
    ops = recorder.ops
    _fold_pooling(ops)
    _link_membranes(ops)
    return ops


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple | list) else (int(v), int(v))


def _w_bits(m: nn.Module) -> int | None:
    """The weight bits of the project's quantized layers; None (float) for any other layer."""
    return int(m.weight_quant.bits) if isinstance(m, QuantConv2d | QuantLinear) else None


def _fold_pooling(ops: list[Op]) -> None:
    """Give each convolution that a (local) pooling follows, before the next weighted layer or
    addition, the pooled size (SpikeSim charges such a layer at its pooled output)."""
    last_conv = None
    for op in ops:
        if op.kind == "conv":
            last_conv = op
        elif op.kind in ("linear", "add", "global_pool"):
            last_conv = None
        elif op.kind == "pool" and last_conv is not None:
            last_conv.pooled_hw = op.out_shape[1:]
            last_conv = None


def _link_membranes(ops: list[Op]) -> None:
    """Give each weighted layer and residual addition the membrane bits of the neuron layer after it
    (the membrane its results accumulate into)."""
    bits = None
    for op in reversed(ops):
        if op.kind == "neuron":
            bits = op.u_bits
        elif op.kind in ("conv", "linear", "add"):
            op.u_bits = bits
