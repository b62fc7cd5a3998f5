"""One real forward pass, recorded as the operations a hardware model prices.

:func:`trace` runs ``model`` on ``x: [T, N, ...]`` with every layer on every time step (the stem too:
``share_stem`` is turned off, as hardware would run it) and returns, in execution order, one
:class:`Op` per convolution, linear layer, pooling, residual addition and neuron layer, with its
shapes, bit widths and the activity measured on ``x`` (counts are per sample, over all T steps).

Activity of a layer whose input is spikes (binary): ``sops``, the synaptic operations (each input
spike times the outputs it reaches: multiply-accumulates with a non-zero input); and, for a
compute-in-memory mapping with ``rows`` crossbar rows per input slice, ``active_patches`` (the
fraction of (output position, input slice) pairs whose receptive field holds a spike) and
``active_rows`` (the fraction of crossbar rows driven by a spike). A layer whose input is real-valued
(the first) is dense: ``sops = macs`` and both fractions 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.neuron import QuantLIFNode


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


def trace(model: nn.Module, x: torch.Tensor, rows: int = 64) -> list[Op]:
    """The operations of ``model`` on ``x: [T, N, C, H, W]`` (time-major, static images repeated or
    event frames), per sample. ``rows``: crossbar rows per input slice, for ``active_patches``."""
    if x.ndim != 5:
        raise InvalidValueError(f"x must be time-major [T, N, C, H, W], got shape {tuple(x.shape)}; "
                                "turn a batch [N, C, H, W] into one with mdsnn_zoo.data.to_time_major")
    t_steps, n = x.shape[:2]
    ops: list[Op] = []
    handles = []

    def conv_hook(name):
        def hook(m: nn.Conv2d, inputs, out):
            xin = inputs[0].reshape(-1, *inputs[0].shape[-3:])
            o = out.shape[-3:]
            kernel, stride = tuple(m.kernel_size), tuple(m.stride)
            macs = math.prod(o) * (m.in_channels // m.groups) * kernel[0] * kernel[1] * t_steps
            binary = _is_binary(xin)
            sops, active, driven = (_activity(xin, kernel, stride, m.padding, m.dilation, m.out_channels, rows)
                                    if binary else (macs * n, 1.0, 1.0))
            ops.append(Op(name, "conv", tuple(xin.shape[1:]), tuple(o), t_steps, kernel, stride,
                          _w_bits(m), params=m.weight.numel(), macs=macs, sops=sops / n,
                          binary_input=binary, active_patches=active, active_rows=driven))
        return hook

    def linear_hook(name):
        def hook(m: nn.Linear, inputs, out):
            xin = inputs[0].reshape(-1, m.in_features)
            macs = m.in_features * m.out_features * t_steps
            binary = _is_binary(xin)
            sops, active, driven = (_activity(xin, (1, 1), 1, 0, 1, m.out_features, rows)
                                    if binary else (macs * n, 1.0, 1.0))
            ops.append(Op(name, "linear", (m.in_features,), (m.out_features,), t_steps, w_bits=_w_bits(m),
                          params=m.weight.numel(), macs=macs, sops=sops / n, binary_input=binary,
                          active_patches=active, active_rows=driven))
        return hook

    def shape_hook(name, kind):
        def hook(m, inputs, out):
            ops.append(Op(name, kind, tuple(inputs[0].shape[-3:]), tuple(out.shape[-3:]), t_steps,
                          kernel=_pair(getattr(m, "kernel_size", 1)), stride=_pair(getattr(m, "stride", 1))))
        return hook

    def neuron_hook(name):
        def hook(m: QuantLIFNode, inputs, out):
            shape = tuple(out.shape[2:])
            ops.append(Op(name, "neuron", shape, shape, t_steps, u_bits=m.u_bits,
                          spike_rate=float(out.float().mean())))
        return hook

    from mdsnn_zoo.models.resnet import BasicBlock, MembraneShortcutBlock

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook(name)))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook(name)))
        elif isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            handles.append(m.register_forward_hook(shape_hook(name, "global_pool")))
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            handles.append(m.register_forward_hook(shape_hook(name, "pool")))
        elif isinstance(m, BasicBlock | MembraneShortcutBlock):
            handles.append(m.register_forward_hook(shape_hook(name, "add")))
        elif isinstance(m, QuantLIFNode):
            handles.append(m.register_forward_hook(neuron_hook(name)))
    share = getattr(model, "share_stem", None)
    was_training = model.training
    try:
        if share is not None:
            model.share_stem = False
        model.eval()
        functional.reset_net(model)
        with torch.no_grad():
            model(x, time_major=True)
    finally:
        for h in handles:
            h.remove()
        if share is not None:
            model.share_stem = share
        model.train(was_training)
        functional.reset_net(model)
    _fold_pooling(ops)
    _link_membranes(ops)
    return ops


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple | list) else (int(v), int(v))


def _w_bits(m: nn.Module) -> int | None:
    quant = getattr(m, "weight_quant", None)
    return int(quant.bits) if quant is not None else None


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
