"""From a batch of samples to the time-major input ``[T, N, ...]`` of a multi-step SNN.

Static images use direct encoding: the same frame at every step. The repeat happens here, as a
stride-0 view (``expand``), so it costs no memory; a first layer that must see contiguous
``[T * N, ...]`` pays the copy there, once. Event samples already carry T frames and are only
transposed from ``[N, T, ...]`` to ``[T, N, ...]``.
"""

from __future__ import annotations

import torch

from mdsnn_zoo.errors import InvalidValueError


def to_time_major(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """``[N, C, H, W]`` (static) -> ``[T, N, C, H, W]`` view; ``[N, T, C, H, W]`` (events) -> transposed.

    Raises ``ValueError`` on another rank, or when event data hold a T other than ``time_steps``.
    """
    if x.ndim == 4:
        return x.unsqueeze(0).expand(time_steps, *x.shape)
    if x.ndim == 5:
        if x.shape[1] != time_steps:
            raise InvalidValueError(f"event batch has T={x.shape[1]} frames but time_steps={time_steps}; "
                                    f"load the data set with time_steps={time_steps}")
        return x.transpose(0, 1)
    raise InvalidValueError(f"expected a batch [N, C, H, W] (static) or [N, T, C, H, W] (events), "
                            f"got shape {tuple(x.shape)}")
