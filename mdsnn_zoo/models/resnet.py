"""Spiking ResNets: ``resnet19`` and ``resnet20`` as used in the SNN literature, and ``ms_resnet18``,
the membrane-shortcut ResNet.

``resnet19`` (tdBN's): a 3x3 stem of 128 channels, stages of 3, 3 and 2 basic blocks with 128, 256
and 512 channels, global pooling, a 256-unit spiking layer, the classifier. ``resnet20``: the CIFAR
ResNet-20 plan (a 16-channel stem, 3 stages of 3 blocks with 16, 32, 64 channels), spiking. In both a
basic block adds its residual to the *input current* of its last neuron:
``S = LIF(BN(conv(LIF(BN(conv(x))))) + shortcut(x))``.

``ms_resnet18``: ResNet-18's plan (64-128-256-512, 2 blocks each) with membrane shortcuts: the
residual stream is real-valued, each block is ``x + BN(conv(LIF(BN(conv(LIF(x))))))``, and its
down-sampling shortcut is a 1x1 conv + BN of the block's first spikes, so every convolution sees
spikes. A last LIF turns the stream into spikes before pooling.

Every conv-BN pair sits in an ``nn.Sequential`` so that ``quantize_model`` folds it. ``width``
scales channel counts; ``stem_stride`` is the stem's stride (unset: 2 for inputs of 64 pixels or more,
else 1), so that a wider network can spend on channels what it saves on the first stage's resolution.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import layer
from torch import nn

from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.models.base import SpikingNet
from mdsnn_zoo.neuron import QuantLIFNode


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(layer.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
                         layer.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """``[T, N, cin, H, W]`` spikes -> ``[T, N, cout, H/stride, W/stride]`` spikes."""

    def __init__(self, cin: int, cout: int, stride: int, lif: dict) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.lif1 = QuantLIFNode(**lif)
        self.conv2 = conv_bn(cout, cout)
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.lif2 = QuantLIFNode(**lif)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif2(self.conv2(self.lif1(self.conv1(x))) + self.shortcut(x))


class MembraneShortcutBlock(nn.Module):
    """``[T, N, cin, H, W]`` real-valued stream -> ``[T, N, cout, H/stride, W/stride]`` stream."""

    def __init__(self, cin: int, cout: int, stride: int, lif: dict) -> None:
        super().__init__()
        self.lif1 = QuantLIFNode(**lif)
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.lif2 = QuantLIFNode(**lif)
        self.conv2 = conv_bn(cout, cout)
        self.down = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif1(x)
        out = self.conv2(self.lif2(self.conv1(s)))
        return out + (self.down(s) if self.down is not None else x)


def _stages(block, cin: int, plan: list[tuple[int, int, int]], lif: dict) -> tuple[nn.Sequential, int]:
    """plan: (channels, blocks, first stride) per stage."""
    mods = []
    for cout, n, stride in plan:
        for i in range(n):
            mods.append(block(cin, cout, stride if i == 0 else 1, lif))
            cin = cout
    return nn.Sequential(*mods), cin


def _c(channels: int, width: float) -> int:
    return max(8, round(channels * width))


def _stem(in_channels: int, cout: int, input_size: int, stride: int | None) -> nn.Sequential:
    if stride is None:
        stride = 2 if input_size >= 64 else 1
    if isinstance(stride, bool) or stride not in (1, 2):
        raise InvalidValueError(f"stem_stride must be 1 or 2 (or unset: 2 for inputs of 64 pixels or more); "
                                f"got {stride!r}")
    return conv_bn(in_channels, cout, 3, stride)


def resnet19(num_classes: int = 10, in_channels: int = 3, time_steps: int = 4, width: float = 1.0,
             input_size: int = 32, hidden: int = 256, stem_stride: int | None = None, **lif) -> SpikingNet:
    """``[N, in_channels, input_size, input_size]`` -> ``[N, num_classes]``."""
    c = [_c(k, width) for k in (128, 256, 512)]
    body, cout = _stages(BasicBlock, c[0], [(c[0], 3, 1), (c[1], 3, 2), (c[2], 2, 2)], lif)
    h = _c(hidden, width)
    features = nn.Sequential(_stem(in_channels, c[0], input_size, stem_stride), QuantLIFNode(**lif), body,
                             layer.AdaptiveAvgPool2d(1), layer.Flatten(),
                             nn.Sequential(layer.Linear(cout, h, bias=False), layer.BatchNorm1d(h)),
                             QuantLIFNode(**lif))
    return SpikingNet(features, nn.Sequential(layer.Linear(h, num_classes)), time_steps)


def resnet20(num_classes: int = 10, in_channels: int = 3, time_steps: int = 4, width: float = 1.0,
             input_size: int = 32, stem_stride: int | None = None, **lif) -> SpikingNet:
    """``[N, in_channels, input_size, input_size]`` -> ``[N, num_classes]``; 19 conv + 1 linear layers."""
    c = [_c(k, width) for k in (16, 32, 64)]
    body, cout = _stages(BasicBlock, c[0], [(c[0], 3, 1), (c[1], 3, 2), (c[2], 3, 2)], lif)
    features = nn.Sequential(_stem(in_channels, c[0], input_size, stem_stride), QuantLIFNode(**lif), body,
                             layer.AdaptiveAvgPool2d(1), layer.Flatten())
    return SpikingNet(features, nn.Sequential(layer.Linear(cout, num_classes)), time_steps)


def ms_resnet18(num_classes: int = 10, in_channels: int = 3, time_steps: int = 4, width: float = 1.0,
                input_size: int = 32, stem_stride: int | None = None, **lif) -> SpikingNet:
    """``[N, in_channels, input_size, input_size]`` -> ``[N, num_classes]``; 17 conv + 1 linear layers
    (and three 1x1 shortcut convolutions)."""
    c = [_c(k, width) for k in (64, 128, 256, 512)]
    body, cout = _stages(MembraneShortcutBlock, c[0], [(c[0], 2, 1), (c[1], 2, 2), (c[2], 2, 2), (c[3], 2, 2)],
                         lif)
    features = nn.Sequential(_stem(in_channels, c[0], input_size, stem_stride), body, QuantLIFNode(**lif),
                             layer.AdaptiveAvgPool2d(1), layer.Flatten())
    return SpikingNet(features, nn.Sequential(layer.Linear(cout, num_classes)), time_steps)
