"""The shape every zoo network shares: direct encoding in, a multi-step body, the mean over T out."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional
from torch import nn

from mdsnn_zoo.data.encoding import to_time_major


class SpikingNet(nn.Module):
    """``features`` (multi-step SpikingJelly layers) then ``head``; logits are averaged over time.

    Input: a batch ``[N, C, H, W]`` (static images, repeated over ``time_steps`` steps) or
    ``[N, T, C, H, W]`` (event frames), or already time-major ``[T, N, C, H, W]`` when
    ``time_major=True``. Output: logits ``[N, classes]``. Call ``functional.reset_net`` between
    batches (the trainer and ``evaluate`` do).
    """

    def __init__(self, features: nn.Module, head: nn.Module, time_steps: int) -> None:
        super().__init__()
        if not isinstance(time_steps, int) or time_steps < 1:
            raise ValueError(f"time_steps must be a positive int, got {time_steps!r}")
        self.features = features
        self.head = head
        self.time_steps = time_steps
        functional.set_step_mode(self, "m")

    def forward(self, x: torch.Tensor, time_major: bool = False) -> torch.Tensor:
        x_seq = x if time_major else to_time_major(x, self.time_steps)  # [T, N, C, H, W]
        out = self.head(self.features(x_seq))  # [T, N, classes]
        return out.mean(0)
