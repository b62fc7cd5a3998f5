"""Several processes (``torchrun``: NCCL on GPUs, gloo on CPUs): who this process is, and the
collectives the trainer makes. Each of them is called by every rank at the same point of the run
(at a step count or an epoch's end that all ranks share), never inside a branch that ranks could
take differently; with one process each is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's ``rank`` among ``world`` processes, and its ``local`` rank on its machine."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints and logs."""
        return self.rank == 0


def init_distributed(device_hint: str) -> Dist:
    """Join the process group that ``torchrun`` describes (``$WORLD_SIZE`` above 1), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device_hint != "cpu" else "gloo"
        dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def sum_over_ranks(ddp: Dist, t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over every rank (the same tensor on all of them afterwards); ``t`` itself alone."""
    if ddp.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def share_buffers(ddp: Dist, model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics: each rank's last step updated its own),
    so that all ranks hold the network that rank 0 saves."""
    if ddp.world > 1:
        for b in model.buffers():
            flat = b if b.is_contiguous() else b.contiguous()  # a channels_last 4-d buffer
            dist.broadcast(flat, 0)
            if flat is not b:
                b.copy_(flat)


def gather_over_ranks(ddp: Dist, t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``t`` (a CPU tensor, e.g. a generator's state), in rank order, on every rank."""
    if ddp.world == 1:
        return [t]
    gathered: list = [None] * ddp.world
    dist.all_gather_object(gathered, t)
    return gathered


def barrier(ddp: Dist) -> None:
    """Wait until every rank is here."""
    if ddp.world > 1:
        dist.barrier()
