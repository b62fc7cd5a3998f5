"""The one batching path of training and validation, and the batch augmentation.

A split's samples come in the order of a permutation fixed by (seed, epoch), sharded across DDP
ranks and started part-way on resume, so a resumed run sees the batches an uninterrupted one would.
In-memory sets (image tensors, binned event frames: any data set with a ``batch(indices)`` method)
are batched by indexing their tensors (no per-sample calls); any other map-style data set (image
files, event recordings read on access) through a ``DataLoader`` with ``workers`` processes, over
the same indices in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from mdsnn_zoo.errors import InvalidValueError


def split_indices(n: int, val_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices of a training split: a fixed permutation (seed 0), the last val_size held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    if not 0 <= val_size < n:
        raise InvalidValueError(f"val_size must be in [0, {n}), got {val_size}")
    return perm[: n - val_size], perm[n - val_size:]


class Batches:
    """Batches ``(x, y)`` of ``dataset[indices]``: ``x: [N, C, H, W]`` (images) or ``[N, T, C, H, W]``
    (event frames) float32, ``y: [N]`` int64. ``shuffle`` (training): a (seed, epoch) permutation and
    whole batches only, equal on every rank; else in order, every sample once."""

    def __init__(self, dataset: Dataset, indices: torch.Tensor, batch_size: int, shuffle: bool,
                 seed: int = 0, rank: int = 0, world: int = 1, workers: int = 0) -> None:
        self.dataset, self.indices, self.batch_size = dataset, indices, batch_size
        self.shuffle, self.seed, self.rank, self.world, self.workers = shuffle, seed, rank, world, workers

    def steps_per_epoch(self) -> int:
        if self.shuffle:  # training: equal whole batches on every rank, the remainder dropped
            return len(self.indices) // self.world // self.batch_size
        return math.ceil(math.ceil(len(self.indices) / self.world) / self.batch_size)

    def _order(self, epoch: int) -> torch.Tensor:
        """This rank's indices for ``epoch``, in the order they are batched."""
        idx = self.indices
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            idx = idx[torch.randperm(len(idx), generator=g)]
            idx = idx[: len(idx) // self.world * self.world]
        return idx[self.rank::self.world]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._order(epoch)
        steps = self.steps_per_epoch()
        if callable(getattr(self.dataset, "batch", None)):
            for step in range(start_step, steps):
                yield self.dataset.batch(idx[step * self.batch_size:(step + 1) * self.batch_size])
            return
        chosen = idx[start_step * self.batch_size: steps * self.batch_size]  # steps * size >= len(idx) in order
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=chosen.tolist(),
                            num_workers=self.workers, drop_last=self.shuffle)
        for x, y in loader:
            yield x, torch.as_tensor(y, dtype=torch.int64)


AUGMENTATIONS = ("crop", "flip", "erase")  # what a policy may name, in the order they are applied


def augment_policy(text: str | bool) -> tuple[str, ...]:
    """The augmentations a policy names: ``"crop,flip,erase"``, a subset, or ``"none"`` (also ``True``
    for all three and ``False`` for none, as configs saved before policies said it)."""
    if isinstance(text, bool):
        return AUGMENTATIONS if text else ()
    names = [n.strip() for n in str(text).split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise InvalidValueError(f"unknown augmentation {unknown[0]!r}: name any of {', '.join(AUGMENTATIONS)} "
                                "separated by commas (e.g. crop,flip), or none")
    return tuple(a for a in AUGMENTATIONS if a in names)


def background(dataset: Dataset) -> torch.Tensor | float:
    """What a data set's empty pixel is: ``[C]`` float32, a black pixel after its normalisation, for
    image sets that say (``dataset.background()``); else 0.0 (event frames: no events)."""
    fn = getattr(dataset, "background", None)
    return fn() if callable(fn) else 0.0


def augment(x: torch.Tensor, gen: torch.Generator, policy: tuple[str, ...],
            fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``x`` augmented by ``policy`` (:func:`augment_policy`): a crop padded by 2, a horizontal flip,
    random erasing (a quarter of the samples), with ``fill`` in the padding and the erased patches."""
    return augment_batch(x, gen, pad=2 if "crop" in policy else 0, flip="flip" in policy,
                         erase_p=0.25 if "erase" in policy else 0.0, fill=fill)


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 2, flip: bool = True,
                  erase_p: float = 0.25, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Random crop (padding ``pad``), horizontal flip and random erasing, per sample, batched.

    ``x: [N, C, H, W]`` float (normalised images), or ``[N, T, C, H, W]`` event frames (each sample's
    frames moved, flipped and erased alike); draws from ``gen`` only, so it replays on resume. The
    padding and the erased patches take ``fill``: a number, or ``[C]`` per channel (``background``:
    a black pixel after normalisation, not the normalised mean grey that 0 would be).
    """
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    if x.ndim == 5:
        n, t, c, h, w = x.shape
        fill = fill.expand(c).repeat(t) if fill.ndim else fill  # [T * C]: each frame's channels
        return augment_batch(x.reshape(n, t * c, h, w), gen, pad, flip, erase_p, fill).view(n, t, c, h, w)
    n, c, h, w = x.shape
    fill = fill.expand(c).view(1, c, 1, 1)
    padded = fill.expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, c, h, w)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, c, h, w)
    n_idx = torch.arange(n)[:, None, None, None]
    c_idx = torch.arange(c)[None, :, None, None]
    out = padded[n_idx, c_idx, rows, cols]  # [N, C, H, W], each sample its own offset
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    if erase_p > 0:
        apply = torch.rand(n, generator=gen) < erase_p
        eh = torch.randint(h // 8, h // 2 + 1, (n,), generator=gen)
        ew = torch.randint(w // 8, w // 2 + 1, (n,), generator=gen)
        y0 = (torch.rand(n, generator=gen) * (h - eh + 1)).long()
        x0 = (torch.rand(n, generator=gen) * (w - ew + 1)).long()
        ys, xs = torch.arange(h)[None, :], torch.arange(w)[None, :]
        inside = ((ys >= y0[:, None]) & (ys < (y0 + eh)[:, None]))[:, :, None] & \
                 ((xs >= x0[:, None]) & (xs < (x0 + ew)[:, None]))[:, None, :]
        out = torch.where((inside & apply[:, None, None])[:, None], fill, out)
    return out
