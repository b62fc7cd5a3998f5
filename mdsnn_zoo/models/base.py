"""The shape every zoo network shares: direct encoding in, a multi-step body, the mean over T out."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base, functional
from torch import nn

from mdsnn_zoo.data.encoding import to_time_major
from mdsnn_zoo.errors import InvalidValueError


def _stateless(module: nn.Module) -> bool:
    return not any(isinstance(m, base.MemoryModule) for m in module.modules())


class SpikingNet(nn.Module):
    """``features`` (multi-step SpikingJelly layers) then ``head``; logits are averaged over time.

    Input: a batch ``[N, C, H, W]`` (static images, repeated over ``time_steps`` steps), or event
    frames ``[N, T, C, H, W]`` or time-major ``[T, N, C, H, W]``. ``time_major`` says which a 5-d input
    is; None (default) tells them apart by which axis has ``time_steps`` entries, and refuses a batch
    where both have (N = T: pass ``time_major`` then). Output: logits ``[N, classes]``. Call
    ``functional.reset_net`` between batches (the trainer and ``evaluate`` do).

    ``share_stem`` (default True): a static image is the same at every step, so the stateless layers
    before the first neuron (the stem's convolution and batch norm) run once on ``[1, N, ...]`` and
    their output is repeated over T as a stride-0 view: the same values (a batch norm's batch
    statistics of T copies are those of one), a quarter of the stem's work at T=4. False runs the
    stem on all T copies.
    """

    def __init__(self, features: nn.Module, head: nn.Module, time_steps: int) -> None:
        super().__init__()
        if not isinstance(time_steps, int) or time_steps < 1:
            raise InvalidValueError(f"time_steps must be a positive int, got {time_steps!r}")
        self.features = features
        self.head = head
        self.time_steps = time_steps
        self.share_stem = True
        functional.set_step_mode(self, "m")

    def _stem_length(self) -> int:
        """How many leading children of ``features`` hold no state (0 unless it is a Sequential)."""
        if not isinstance(self.features, nn.Sequential):
            return 0
        n = 0
        for child in self.features:
            if not _stateless(child):
                break
            n += 1
        return n

    def _is_time_major(self, x: torch.Tensor, time_major: bool | None) -> bool:
        if x.ndim != 5 or time_major is not None:
            return bool(time_major)
        t = self.time_steps
        if x.shape[0] == t and x.shape[1] == t:
            raise InvalidValueError(f"input {tuple(x.shape)} is ambiguous with time_steps={t}: both of its first "
                                    "axes could be time; pass time_major=True for [T, N, C, H, W] or False for "
                                    "[N, T, C, H, W]")
        return x.shape[0] == t and x.shape[1] != t

    def forward(self, x: torch.Tensor, time_major: bool | None = None) -> torch.Tensor:
        time_major = self._is_time_major(x, time_major)
        stem = self._stem_length() if self.share_stem and not time_major and x.ndim == 4 else 0
        if stem:
            once = self.features[:stem](x.unsqueeze(0))  # [1, N, C', H', W']: the stem on one step
            x_seq = once.expand(self.time_steps, *once.shape[1:])  # [T, N, C', H', W'], stride 0 over T
            out = self.head(self.features[stem:](x_seq))
        else:
            x_seq = x if time_major else to_time_major(x, self.time_steps)  # [T, N, C, H, W]
            out = self.head(self.features(x_seq))  # [T, N, classes]
        return out.mean(0)


class ClippedReLU(nn.Module):
    """``x.clamp(0, 1)``: the range of a spiking neuron's firing rate (spikes per step), for ReLU twins."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


def relu_twin(model: nn.Module) -> nn.Module:
    """``model`` with every neuron (a SpikingJelly ``MemoryModule`` such as ``QuantLIFNode``) replaced,
    in place, by a ``ClippedReLU``: the non-spiking network of the same shape and the same state_dict
    keys, whose trained weights can start the spiking one (``--activation relu``, then ``--init``).
    With no state it computes the same at every time step, so it is trained with ``time_steps=1``."""
    for name, m in list(model.named_modules()):
        if isinstance(m, base.MemoryModule):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, ClippedReLU())
    return model
