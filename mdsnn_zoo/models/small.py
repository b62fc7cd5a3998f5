"""A small, fast spiking CNN for 28x28 greyscale inputs (Fashion-MNIST): the zoo's quick network.

Four conv-BN-LIF blocks (two pooled), then a linear classifier; about 0.1 M parameters at width 32.
"""

from __future__ import annotations

from spikingjelly.activation_based import layer
from torch import nn

from mdsnn_zoo.models.base import SpikingNet
from mdsnn_zoo.neuron import QuantLIFNode


def _block(cin: int, cout: int, lif: dict) -> list[nn.Module]:
    return [layer.Conv2d(cin, cout, 3, padding=1, bias=False), layer.BatchNorm2d(cout), QuantLIFNode(**lif)]


def small_cnn(num_classes: int = 10, in_channels: int = 1, time_steps: int = 4, width: int = 32,
              input_size: int = 28, **lif) -> SpikingNet:
    """``[N, in_channels, input_size, input_size]`` -> ``[N, num_classes]``."""
    w = width
    features = nn.Sequential(
        *_block(in_channels, w, lif), *_block(w, w, lif), layer.MaxPool2d(2),          # 28 -> 14
        *_block(w, 2 * w, lif), *_block(2 * w, 2 * w, lif), layer.MaxPool2d(2),        # 14 -> 7
        layer.Flatten(),
    )
    side = input_size // 4
    head = nn.Sequential(layer.Dropout(0.0), layer.Linear(2 * w * side * side, num_classes))
    return SpikingNet(features, head, time_steps)
