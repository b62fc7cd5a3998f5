"""Network definitions. ``build_model(arch, ...)`` makes an untrained network by family name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mdsnn_zoo.errors import UnknownNameError
from mdsnn_zoo.models.base import ClippedReLU, SpikingNet, relu_twin
from mdsnn_zoo.models.resnet import ms_resnet18, resnet19, resnet20
from mdsnn_zoo.models.small import small_cnn
from mdsnn_zoo.models.vgg import vgg9, vgg11, vgg16

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": small_cnn, "vgg9": vgg9, "vgg11": vgg11, "vgg16": vgg16,
    "resnet19": resnet19, "resnet20": resnet20, "ms_resnet18": ms_resnet18,
}


def build_model(arch: str, **kwargs) -> nn.Module:
    """An untrained ``arch`` network; kwargs go to its builder (num_classes, in_channels, time_steps...)."""
    if arch not in ARCHITECTURES:
        raise UnknownNameError(f"unknown architecture {arch!r}: choose one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](**kwargs)


__all__ = ["ARCHITECTURES", "ClippedReLU", "SpikingNet", "build_model", "ms_resnet18", "relu_twin", "resnet19",
           "resnet20", "small_cnn", "vgg9", "vgg11", "vgg16"]
