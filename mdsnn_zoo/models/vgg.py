"""Spiking VGG (``vgg9``, ``vgg11``, ``vgg16``): conv-BN-LIF blocks, pooling, a linear head.

Channel plans follow the SNN literature (VGG9: 64-64-P-128-128-P-256-256-256-P, then a 1024-unit
spiking layer; VGG11 and VGG16: the ImageNet plans, then the classifier on globally pooled spikes).
``width`` scales every channel count (0.5: half as wide), so that a VGG can be sized to a CPU.
A pooling step is skipped once the feature map is smaller than 4 pixels, so 28x28 inputs work.
"""

from __future__ import annotations

from spikingjelly.activation_based import layer
from torch import nn

from mdsnn_zoo.models.base import SpikingNet
from mdsnn_zoo.neuron import QuantLIFNode

PLANS: dict[str, list[int | str]] = {
    "vgg9": [64, 64, "P", 128, 128, "P", 256, 256, 256, "P"],
    "vgg11": [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"],
    "vgg16": [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"],
}


def conv_bn_lif(cin: int, cout: int, lif: dict, stride: int = 1) -> list[nn.Module]:
    """3x3 convolution (no bias: the batch norm has one), batch norm, LIF neuron."""
    return [layer.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), layer.BatchNorm2d(cout),
            QuantLIFNode(**lif)]


def _vgg(plan_name: str, num_classes: int, in_channels: int, time_steps: int, width: float, input_size: int,
         hidden: int | None, dropout: float, lif: dict) -> SpikingNet:
    mods: list[nn.Module] = []
    cin, side = in_channels, input_size
    for item in PLANS[plan_name]:
        if item == "P":
            if side >= 4:
                mods.append(layer.MaxPool2d(2))
                side //= 2
            continue
        cout = max(8, round(item * width))
        mods += conv_bn_lif(cin, cout, lif)
        cin = cout
    if hidden:  # VGG9: flattened spikes -> a spiking hidden layer -> classes
        mods += [layer.Flatten(), layer.Linear(cin * side * side, hidden, bias=False), layer.BatchNorm1d(hidden),
                 QuantLIFNode(**lif)]
        head = nn.Sequential(layer.Dropout(dropout), layer.Linear(hidden, num_classes))
    else:
        mods += [layer.AdaptiveAvgPool2d(1), layer.Flatten()]
        head = nn.Sequential(layer.Dropout(dropout), layer.Linear(cin, num_classes))
    return SpikingNet(nn.Sequential(*mods), head, time_steps)


def vgg9(num_classes: int = 10, in_channels: int = 3, time_steps: int = 4, width: float = 1.0,
         input_size: int = 32, hidden: int = 1024, dropout: float = 0.0, **lif) -> SpikingNet:
    """``[N, in_channels, input_size, input_size]`` -> ``[N, num_classes]``; 7 conv + 2 linear layers.
    ``hidden`` is scaled by ``width`` too."""
    return _vgg("vgg9", num_classes, in_channels, time_steps, width, input_size,
                max(16, round(hidden * width)), dropout, lif)


def vgg11(num_classes: int = 10, in_channels: int = 3, time_steps: int = 4, width: float = 1.0,
          input_size: int = 32, dropout: float = 0.0, **lif) -> SpikingNet:
    """8 conv layers, global average pooling of the last spikes, one linear classifier."""
    return _vgg("vgg11", num_classes, in_channels, time_steps, width, input_size, None, dropout, lif)


def vgg16(num_classes: int = 10, in_channels: int = 3, time_steps: int = 4, width: float = 1.0,
          input_size: int = 32, dropout: float = 0.0, **lif) -> SpikingNet:
    """13 conv layers, global average pooling of the last spikes, one linear classifier."""
    return _vgg("vgg16", num_classes, in_channels, time_steps, width, input_size, None, dropout, lif)
