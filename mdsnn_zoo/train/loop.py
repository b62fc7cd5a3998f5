"""The training loop: :func:`train` sets a run up (:func:`setup`, which continues it from its last
checkpoint if asked: :func:`resume`), and runs epochs (:func:`run_epoch`), each ended by a
validation that chooses the best checkpoint (:func:`end_epoch`).

Under DDP every rank validates its share of the held-out images and the counts are summed over
the ranks, so the top-1 that decides "best" is the same number on every rank; the collectives
(summing the counts, gathering the augmentation generators' states for a checkpoint) are made by
every rank at the same step, and only the writing is rank 0's. The step metrics reach the host at
the log interval only (:class:`~mdsnn_zoo.train.runlog.RunLog`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.data import dataset_info
from mdsnn_zoo.data.batching import Batches, augment, augment_policy, background
from mdsnn_zoo.distill import MDLoss
from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.evaluation import summarize, tally
from mdsnn_zoo.machine import describe_machine, resolve_device
from mdsnn_zoo.precision import resolve_amp
from mdsnn_zoo.train.build import (
    build_student_and_teacher,
    configure_student,
    distilled_layers,
    spike_forcing_share,
    to_layout,
)
from mdsnn_zoo.train.config import TrainConfig, arithmetic, check_same_network
from mdsnn_zoo.train.data import batch_size_for, epochs_for, resolve_data_options, training_data
from mdsnn_zoo.train.distributed import (
    Dist,
    barrier,
    gather_over_ranks,
    init_distributed,
    share_buffers,
    sum_over_ranks,
)
from mdsnn_zoo.train.runlog import RunLog
from mdsnn_zoo.train.step import lr_lambda, make_optimizer, train_step, update_average

Log = Callable[[str], Any]


@dataclass
class Run:
    """Everything a run holds while it trains; ``step`` and ``best`` (the best validation top-1 so
    far, %, -1 before the first) move, the rest is fixed by :func:`setup`."""

    cfg: TrainConfig
    ddp: Dist
    device: torch.device
    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper
    teacher: nn.Module | None
    average: nn.Module | None  # the moving average of the model's weights (--ema-decay), else None
    loss_fn: MDLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_batches: Batches
    val_batches: Batches  # this rank's share of the validation images
    steps_per_epoch: int
    total_steps: int
    aug_gen: torch.Generator
    forcing_start: float
    precision: str
    machine: str
    say: Log  # the log's lines: rank 0's, the others' go nowhere
    step: int = 0
    best: float = -1.0

    @property
    def out(self) -> Path:
        """The run folder."""
        return Path(self.cfg.out_dir)

    @property
    def chosen(self) -> nn.Module:
        """The network that is validated and saved as best: the weight average, else the model."""
        return self.model if self.average is None else self.average


def _networks(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, nn.Module | None, MDLoss, float]:
    """The student and teacher on ``device``, the loss, the share of spikes forced at the first step."""
    model, teacher = build_student_and_teacher(cfg)
    configure_student(model, cfg)
    loss_fn = MDLoss(kd_weight=cfg.kd_weight, temperature=cfg.temperature, label_smoothing=cfg.label_smoothing,
                     mem_weight=cfg.mem_weight if teacher is not None and cfg.method == "md" else 0.0,
                     layers=distilled_layers(cfg, model))
    forcing = spike_forcing_share(cfg)
    to_layout(model.to(device), cfg.channels_last)
    if teacher is not None:
        to_layout(teacher.to(device), cfg.channels_last)
    return model, teacher, loss_fn, forcing


def _batches(cfg: TrainConfig, ddp: Dist, say: Log) -> tuple[TrainConfig, Batches, Batches]:
    """This rank's training batches (its shard of each epoch) and validation batches (its share), and
    ``cfg`` with its batch size and epochs decided (``None``: sized by the data, :func:`batch_size_for`,
    :func:`epochs_for`)."""
    data, train_idx, val_data, val_idx = training_data(cfg)
    if cfg.batch_size is None:
        cfg = dataclasses.replace(cfg, batch_size=batch_size_for(len(train_idx), ddp.world))
        say(f"batch size {cfg.batch_size} for {len(train_idx)} training samples")
    if val_data is not data:
        split = dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options).validation_split
        say(f"validation: the {split!r} split ({len(val_idx)} samples)")
    train_batches = Batches(data, train_idx, cfg.batch_size, True, cfg.seed, ddp.rank, ddp.world, cfg.workers)
    val_batches = Batches(val_data, val_idx, 256, False, rank=ddp.rank, world=ddp.world, workers=cfg.workers)
    if train_batches.steps_per_epoch() == 0:
        raise InvalidValueError(f"batch size {cfg.batch_size} is larger than the training data on each process")
    if cfg.epochs is None:
        cfg = dataclasses.replace(cfg, epochs=epochs_for(train_batches.steps_per_epoch()))
        say(f"{cfg.epochs} epochs of {train_batches.steps_per_epoch()} steps")
    return cfg, train_batches, val_batches


def setup(cfg: TrainConfig, log: Log = print) -> Run:
    """Join the processes, choose the device and arithmetic, build the networks, data and optimizer
    of ``cfg``, and continue from the run folder's last checkpoint if ``cfg.resume``; nothing is
    written yet. The stored config records what runs (data options, amp)."""
    ddp = init_distributed(cfg.device)
    say = log if ddp.main else _quiet
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    augment_policy(cfg.augment)  # an unknown augmentation stops the run before anything is built
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise InvalidValueError(f"ema_decay must be in [0, 1) (0: no weight average; 0.99 averages about the last "
                                f"100 steps), got {cfg.ema_decay}")
    cfg = dataclasses.replace(cfg, data_options=resolve_data_options(cfg))
    model, teacher, loss_fn, forcing = _networks(cfg, device)
    amp, precision = resolve_amp(cfg.amp, device)
    cfg = dataclasses.replace(cfg, amp=amp, val_amp=amp if cfg.val_amp is None else cfg.val_amp)
    say(f"precision: {precision}")
    if cfg.val_amp != amp:
        say(f"validation: {arithmetic(cfg.val_amp)}")
    cfg, train_batches, val_batches = _batches(cfg, ddp, say)
    steps_per_epoch = train_batches.steps_per_epoch()
    total = cfg.epochs * steps_per_epoch
    optimizer = make_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, int(cfg.warmup_epochs * steps_per_epoch)))
    average = copy.deepcopy(model).requires_grad_(False) if cfg.ema_decay else None
    run = Run(cfg, ddp, device, model, model, teacher, average, loss_fn, optimizer, scheduler, train_batches,
              val_batches, steps_per_epoch, min(total, cfg.max_steps) if cfg.max_steps else total,
              torch.Generator().manual_seed(cfg.seed * 7919 + ddp.rank), forcing, precision,
              describe_machine(device), say)
    if cfg.resume:
        resume(run)
    if ddp.world > 1:
        run.net = nn.parallel.DistributedDataParallel(model)
    return run


def resume(run: Run) -> None:
    """Continue ``run`` from ``last.safetensors`` in its folder (if there is one): weights, optimizer,
    schedule, step, best so far and random-number states, refused if it was another network."""
    path = run.out / "last.safetensors"
    if not path.exists():
        return
    saved = ckpt.load_checkpoint(path, tensors=False).config
    if saved is not None:
        check_same_network(run.cfg, saved, path)
    info, extra = ckpt.restore(path, run.model, run.optimizer, run.scheduler)
    if run.average is not None:  # started from the weights where a run without an average stopped
        averaged = {k[len("average."):]: v for k, v in extra.items() if k.startswith("average.")}
        run.average.load_state_dict(averaged or run.model.state_dict())
    run.step, run.best = info["step"], info.get("best_val_top1", -1.0)
    run.aug_gen.set_state(extra.get(f"aug_rng_{run.ddp.rank}", extra["aug_rng_0"]))
    torch.set_rng_state(extra["torch_rng"])
    run.say(f"resumed from {path} at step {run.step}")
    before = info.get("config", {})
    if before.get("val_amp", before.get("amp", run.cfg.val_amp)) != run.cfg.val_amp:
        was, now = arithmetic(not run.cfg.val_amp), arithmetic(run.cfg.val_amp)
        run.say(f"note: the best validation so far ({run.best:.2f}) was measured in {was}; from here on it is "
                f"measured in {now} (--val-amp / --no-val-amp)")


def _random_states(run: Run) -> dict[str, torch.Tensor]:
    """The random-number states a checkpoint keeps: the global one and every rank's augmentation
    generator's. A collective: every rank calls it at the same step."""
    states = {"torch_rng": torch.get_rng_state()}
    for r, s in enumerate(gather_over_ranks(run.ddp, run.aug_gen.get_state())):
        states[f"aug_rng_{r}"] = s
    return states


def save(run: Run, names: tuple[str, ...] = ("last",), **metrics: Any) -> None:
    """Write ``NAME.safetensors`` for each of ``names`` (rank 0), with the states to resume from.
    Every rank calls it at the same step (it gathers the ranks' generator states first)."""
    states = _random_states(run)
    if not run.ddp.main:
        return
    if run.average is not None:  # last keeps the average to resume it; best holds it as the model
        states |= {f"average.{k}": v for k, v in run.average.state_dict().items()}
    for name in names:
        net = run.chosen if name == "best" else run.model
        ckpt.save_checkpoint(run.out / f"{name}.safetensors", net, run.optimizer, run.scheduler, states,
                             config=asdict(run.cfg), step=run.step, epoch=run.step / run.steps_per_epoch,
                             best_val_top1=run.best, precision=run.precision, machine=run.machine, **metrics)


def validate(run: Run) -> dict[str, float]:
    """Top-1 (%) and spike rate on the held-out images: each rank counts its share (with rank 0's
    buffers), the counts are summed over the ranks, so every rank returns the same numbers."""
    share_buffers(run.ddp, run.chosen)
    counts = tally(run.chosen, run.val_batches.epoch(0), run.device, run.cfg.val_amp)
    return summarize(sum_over_ranks(run.ddp, counts))


def run_epoch(run: Run, log: RunLog) -> None:
    """Train from ``run.step`` to the end of its epoch (or ``run.total_steps``), writing
    ``last.safetensors`` every ``checkpoint_every`` steps."""
    cfg = run.cfg
    epoch, done = divmod(run.step, run.steps_per_epoch)
    run.net.train()
    if run.teacher is not None:
        run.teacher.eval()
    log.start_epoch(epoch, run.steps_per_epoch, done)
    policy = augment_policy(cfg.augment)
    for x, y in run.train_batches.epoch(epoch, done):
        if policy:  # padded and erased with the data's own background (black, or no events)
            x = augment(x, run.aug_gen, policy, fill=background(run.train_batches.dataset))
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        forcing = run.forcing_start * max(0.0, 1.0 - 2.0 * run.step / (cfg.epochs * run.steps_per_epoch))
        loss, logits, parts = train_step(run.net, run.model, run.teacher, run.optimizer, x, y, run.loss_fn,
                                         amp=cfg.amp, fused_mse=cfg.fused_mse, grad_clip=cfg.grad_clip,
                                         forcing=forcing)
        run.scheduler.step()
        run.step += 1
        if run.average is not None:
            update_average(run.average, run.model, cfg.ema_decay, run.step)
        log.step(run.step, epoch, loss, parts, (logits.argmax(1) == y).float().mean(),
                 run.scheduler.get_last_lr()[0], len(y) * run.ddp.world)
        if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
            log.flush()  # a run stopped after this checkpoint resumes with its log complete
            save(run)
        if run.step >= run.total_steps:
            break
    log.end_epoch()


def end_epoch(run: Run, log: RunLog) -> None:
    """Validate, keep the best checkpoint and write the last: the decision is taken from the summed
    counts, the same on every rank, and every rank makes the same collectives whatever it is."""
    val = validate(run)
    run.say(f"epoch {run.step / run.steps_per_epoch:.2f}: val top-1 {val['top1']:.2f}%")
    log.epoch(run.step, val)
    improved = val["top1"] > run.best
    if improved:
        run.best = val["top1"]
    save(run, ("best", "last") if improved else ("last",), val_top1=val["top1"])


def train(cfg: TrainConfig, log: Log = print) -> dict[str, Any]:
    """Run (or, with ``cfg.resume``, continue) a training; returns ``{"step", "best_val_top1"}``
    (the same on every rank). Rank 0 writes the checkpoints and logs in ``cfg.out_dir``."""
    run = setup(cfg, log)
    record = RunLog(run.out, run.cfg, active=run.ddp.main)
    try:
        if cfg.validate_start and run.step == 0:
            end_epoch(run, record)
        while run.step < run.total_steps:
            run_epoch(run, record)
            if run.step % run.steps_per_epoch == 0 or run.step >= run.total_steps:
                end_epoch(run, record)
    finally:
        record.close()
    barrier(run.ddp)
    return {"step": run.step, "best_val_top1": run.best}


def _quiet(*_: Any) -> None:
    return None
