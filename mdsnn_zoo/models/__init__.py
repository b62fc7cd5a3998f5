"""Network definitions. ``build_model(arch, ...)`` makes an untrained network by family name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mdsnn_zoo.errors import MdsnnError
from mdsnn_zoo.models.base import SpikingNet
from mdsnn_zoo.models.small import small_cnn

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"small_cnn": small_cnn}


def build_model(arch: str, **kwargs) -> nn.Module:
    """An untrained ``arch`` network; kwargs go to its builder (num_classes, in_channels, time_steps...)."""
    if arch not in ARCHITECTURES:
        raise MdsnnError(f"unknown architecture {arch!r}: choose one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](**kwargs)


__all__ = ["ARCHITECTURES", "SpikingNet", "build_model", "small_cnn"]
