"""The run log: what rank 0 records of a run in its folder (``config.json``, ``log.csv``: a row per
step, ``epochs.csv``: a row per validation, TensorBoard in ``tb/``) and shows (a progress bar per
epoch). A step's loss and accuracy stay on the device until the log interval, when the rows since
the last are fetched together (one host sync) and written; a checkpoint or a validation fetches them
first, so a run stopped after a checkpoint resumes with its log complete."""

from __future__ import annotations

import contextlib
import csv
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.train.config import TrainConfig

STEP_COLUMNS = ["step", "epoch", "loss", "ce", "kd", "mem", "train_acc", "lr", "img_s"]
EPOCH_COLUMNS = ["step", "val_top1", "spike_rate"]


class RunLog:
    """The record of the run ``cfg`` in ``out`` (appended to on resume). ``active=False`` (ranks
    other than 0): records nothing, fetches nothing."""

    def __init__(self, out: Path, cfg: TrainConfig, active: bool = True) -> None:
        self.active, self.cfg, self.every = active, cfg, max(1, cfg.log_every)
        self.pending: list[tuple[int, int, float, float, list[str], list[torch.Tensor]]] = []
        self.bar: Any = None
        self.tb: Any = None
        self.seen, self.start = 0, time.perf_counter()
        if not active:
            return
        ckpt.atomic_write_bytes(out / "config.json", json.dumps(asdict(cfg), indent=2).encode())
        self.steps = open(out / "log.csv", "a", newline="")
        self.epochs = open(out / "epochs.csv", "a", newline="")
        self.step_writer, self.epoch_writer = csv.writer(self.steps), csv.writer(self.epochs)
        if self.steps.tell() == 0:
            self.step_writer.writerow(STEP_COLUMNS)
        if self.epochs.tell() == 0:
            self.epoch_writer.writerow(EPOCH_COLUMNS)
        if cfg.tensorboard:
            with contextlib.suppress(ImportError):
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))

    def start_epoch(self, epoch: int, steps: int, done: int) -> None:
        """A progress bar for ``epoch`` (0-based) of ``steps`` steps, ``done`` of them already run."""
        if self.active and self.cfg.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, initial=done, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False)

    def end_epoch(self) -> None:
        """Close the epoch's progress bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def step(self, step: int, epoch: int, loss: torch.Tensor, parts: dict[str, torch.Tensor], acc: torch.Tensor,
             lr: float, images: int) -> None:
        """Record step ``step`` (1-based) of ``epoch``: its loss and loss ``parts`` (0-d tensors), its
        training accuracy (a 0-d tensor, a fraction), learning rate and the ``images`` it took over all
        processes. Nothing leaves the device until the log interval."""
        if not self.active:
            return
        self.seen += images
        rate = self.seen / (time.perf_counter() - self.start)
        self.pending.append((step, epoch, lr, rate, list(parts), [loss, acc, *parts.values()]))
        if self.bar is not None:
            self.bar.update(1)
        if step % self.every == 0:
            self._write_steps()

    def _write_steps(self) -> None:
        """Fetch the pending steps' numbers (one host sync) and write their rows."""
        if not self.pending:
            return
        flat = torch.stack([t.detach().reshape(()).double() for *_, ts in self.pending for t in ts]).tolist()
        at = 0
        for step, epoch, lr, rate, keys, ts in self.pending:
            loss, acc, *values = flat[at:at + len(ts)]
            at += len(ts)
            parts = dict(zip(keys, values, strict=True))
            self._row(step, epoch, loss, parts, acc * 100, lr, rate)
        self.pending.clear()
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc * 100:.1f}", img_s=f"{rate:.0f}")

    def _row(self, step: int, epoch: int, loss: float, parts: dict[str, float], acc: float, lr: float,
             rate: float) -> None:
        losses = (f"{parts.get(k, 0.0):.5f}" for k in ("ce", "kd", "mem"))
        self.step_writer.writerow([step, epoch, f"{loss:.5f}", *losses, f"{acc:.2f}", f"{lr:.6f}", f"{rate:.1f}"])
        if self.tb:
            self.tb.add_scalar("train/loss", loss, step)
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.add_scalar("train/lr", lr, step)

    def flush(self) -> None:
        """Every step so far on disk (before a checkpoint)."""
        if self.active:
            self._write_steps()
            self.epochs.flush()
            self.steps.flush()

    def epoch(self, step: int, val: dict[str, float]) -> None:
        """Record a validation at ``step``: ``val``'s ``top1`` (%) and ``spike_rate``."""
        if not self.active:
            return
        self._write_steps()
        self.epoch_writer.writerow([step, f"{val['top1']:.3f}", f"{val.get('spike_rate', 0):.4f}"])
        self.flush()
        if self.tb:
            self.tb.add_scalar("val/top1", val["top1"], step)

    def close(self) -> None:
        """Write what is pending and close the files."""
        self.end_epoch()
        if self.active:
            self._write_steps()
            self.steps.close()
            self.epochs.close()
            if self.tb:
                self.tb.close()
