"""Training: full precision, naive QAT, MD distillation and fine-tuning, on a CPU, a GPU or several
GPUs/processes through ``torchrun`` (DDP: NCCL on GPUs, gloo on CPUs).

    cfg = TrainConfig(method="md", arch="small_cnn", teacher="runs/fp/best.safetensors",
                      w_bits=2, u_bits=2, epochs=10, out_dir="runs/md")
    train(cfg)

Data order and augmentation come from generators seeded by ``seed`` (the epoch's permutation is a
function of seed and epoch; the augmentation generator's state is checkpointed), so a run resumed
from a checkpoint ends, on the CPU, with the same weights as one that never stopped. Checkpoints
(``last.safetensors`` every ``checkpoint_every`` steps and each epoch, ``best.safetensors`` by the
held-out validation accuracy) are written atomically; the test split is never used here.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.data import Dataset

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.bench.common import describe_machine
from mdsnn_zoo.data import complete_options, dataset_info, dataset_kind, get_dataset, shape_from_files
from mdsnn_zoo.data.batching import Batches, augment_batch, split_indices
from mdsnn_zoo.distill import MDLoss, MembraneRecorder, MembraneTargets, SpikeForcing, lif_layers
from mdsnn_zoo.errors import DatasetNotFoundError, InvalidValueError, UnknownNameError
from mdsnn_zoo.models import build_model, relu_twin
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.precision import autocast, resolve_amp
from mdsnn_zoo.quant import DEFAULT_BIAS_FRAC_BITS, WeightQuantizer, quantize_model

METHODS = ("fp", "qat", "md", "finetune")
ACTIVATIONS = ("lif", "relu")


def _opt(default: Any, help: str) -> Any:
    """A TrainConfig field with its description (the command line's ``--help`` for its flag)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in every checkpoint. Each field is a flag of ``mdsnn-zoo
    train``, ``distill`` and ``finetune`` (``w_bits`` -> ``--w-bits``), described by its ``help``."""

    method: str = _opt("fp", "fp | qat | md | finetune (set by the subcommand)")
    arch: str = _opt("small_cnn", "architecture name (mdsnn-zoo list shows the zoo's)")
    arch_kwargs: dict = field(default_factory=dict)
    dataset: str = _opt("fashion-mnist", "data set name (mdsnn-zoo data lists them)")
    data_root: str | None = _opt(None, "folder holding the data set's files (default: where it is found)")
    data_options: dict = field(default_factory=dict)  # get_dataset options (imagefolder: channels, size, mean, std)
    time_steps: int = _opt(4, "time steps T of the SNN (event data: frames per recording)")
    activation: str = _opt("lif", "lif: the SNN | relu: its ReLU twin clipped to [0, 1] (fp only; a start for "
                           "--init)")
    w_bits: int | None = _opt(None, "qat/md: weight bits (2-8); none: float")
    u_bits: int | None = _opt(None, "qat/md: membrane bits (2-8); none: float")
    first_last_bits: int | None = _opt(8, "qat/md: weight bits of the first and last layer; none: as --w-bits")
    pot: bool = _opt(False, "qat/md: power-of-two weight scales")
    bias_frac_bits: int = _opt(DEFAULT_BIAS_FRAC_BITS, "qat/md: a bias is a multiple of the membrane step / "
                               "2^this")
    learn_step: bool = _opt(True, "qat/md: train the membrane step (off: keep it at V_th / 2^(bits-1))")
    learn_edge_scales: bool = _opt(False, "qat/md: also train the weight scales of the 8-bit first and last "
                                   "layers")
    surrogate_shift: float | None = _opt(None, "qat/md: the surrogate gradient at (h + S) x step before rounding; "
                                         "none: at the rounded membrane")
    teacher: str | None = _opt(None, "md: checkpoint of the float teacher (also the student's start); fp: a float "
                               "network of the same data (e.g. the ReLU twin) whose soft labels the SNN also "
                               "learns (KD, no membrane term)")
    init: str | None = _opt(None, "fp/qat/finetune: checkpoint to start from (fp: e.g. a ReLU twin's weights)")
    zoo_model: str | None = _opt(None, "finetune/md: start from this zoo model's weights (and its teacher's)")
    epochs: int = _opt(10, "epochs over the training part of the training split")
    max_steps: int | None = _opt(None, "stop after this many steps (quick checks)")
    batch_size: int = _opt(128, "images per step (per process under torchrun)")
    optimizer: str = _opt("sgd", "sgd (Nesterov) | adamw")
    lr: float = _opt(0.1, "peak learning rate (cosine schedule after the warm-up)")
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(5e-4, "weight decay of weight matrices and kernels (none on biases, BN, scales)")
    warmup_epochs: float = _opt(0.5, "linear warm-up, in epochs")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy")
    grad_clip: float | None = _opt(None, "clip the gradient's global norm to this before each step")
    augment: bool = _opt(True, "random crop, horizontal flip and random erasing")
    val_size: int = _opt(5000, "images held out from the training split for choosing the best checkpoint")
    train_subset: int | None = _opt(None, "train on only this many training images (quick runs)")
    workers: int = _opt(2, "DataLoader processes for data read from files (in-memory sets need none)")
    kd_weight: float = _opt(0.5, "weight of KD, the KL divergence to the teacher's softened logits")
    temperature: float = _opt(2.0, "KD temperature")
    mem_weight: float = _opt(1.0, "md: weight of the membrane MSE to the teacher")
    mem_layers: str | None = _opt(None, "md: the LIF layers whose membranes are distilled, comma-separated module "
                                  "names (e.g. features.16,features.19); none: every LIF layer")
    spike_forcing: float = _opt(0.0, "md: the share of the distilled LIF layers' spikes replaced by the teacher's "
                                "(each at random) at the first step, falling linearly to 0 halfway through the "
                                "run; 0: off")
    fused_mse: bool = _opt(True, "md: the membrane MSE inside the student's LIF kernels (no membrane round trip)")
    amp: bool | None = _opt(None, "bfloat16 autocast; unset: where the hardware runs bfloat16 natively")
    val_amp: bool | None = _opt(None, "validate (choose the best checkpoint) under bfloat16 autocast; unset: as "
                                "training runs; --no-val-amp: float32, the arithmetic mdsnn-zoo eval publishes")
    channels_last: bool = _opt(True, "convolutions, pooling and neurons on channels_last activations")
    seed: int = _opt(0, "seed of the initialisation, data order and augmentation")
    out_dir: str = _opt("runs/run", "run folder: checkpoints, config.json, log.csv, epochs.csv, tb/")
    checkpoint_every: int = _opt(0, "write last.safetensors every this many steps too (0: each epoch only)")
    resume: bool = _opt(False, "continue from OUT_DIR/last.safetensors if it exists")
    device: str = _opt("auto", "auto (the GPU if there is one) | cpu | cuda | cuda:N")
    threads: int | None = _opt(None, "CPU threads (default: PyTorch's)")
    progress: bool = _opt(True, "a progress bar per epoch")
    tensorboard: bool = _opt(True, "TensorBoard logs in OUT_DIR/tb")


# -- data --------------------------------------------------------------------------------------------

def training_data(cfg: TrainConfig) -> tuple[Dataset, torch.Tensor, Dataset, torch.Tensor]:
    """(train data, its indices to train on, validation data, its indices): the data set's own
    validation split when it has one on disk (all of train is trained on), else the last
    ``val_size`` of a fixed permutation of train, held out. Never the test split."""
    data = get_dataset(cfg.dataset, "train", root=cfg.data_root, **cfg.data_options)
    val_split = dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options).validation_split
    val_data = None
    if val_split:
        with contextlib.suppress(DatasetNotFoundError):  # a folder without one: hold out part of train
            val_data = get_dataset(cfg.dataset, val_split, root=cfg.data_root, **cfg.data_options)
    if val_data is not None:
        train_idx, val_idx = torch.arange(len(data)), torch.arange(len(val_data))
    else:
        val_data = data
        train_idx, val_idx = split_indices(len(data), cfg.val_size)
    if cfg.train_subset:
        train_idx = train_idx[: cfg.train_subset]
    return data, train_idx, val_data, val_idx


# -- model setup ------------------------------------------------------------------------------------

def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() \
            else torch.device("cpu")
    return torch.device(name)


def make_model(cfg: TrainConfig) -> nn.Module:
    info = dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options)
    c, h, w = info.input_shape
    if h != w:
        raise InvalidValueError(f"the architectures take square inputs, and {cfg.dataset} reads as {h}x{w} (height x "
                                "width): read it at a square size (--data-options '{\"size\": [S, S]}' for an image "
                                "folder, '{\"frame_size\": [S, S]}' for an event folder)")
    kwargs = dict(num_classes=info.num_classes, in_channels=c, time_steps=cfg.time_steps, input_size=w)
    kwargs.update(cfg.arch_kwargs)
    model = build_model(cfg.arch, **kwargs)
    if cfg.activation not in ACTIVATIONS:
        raise InvalidValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {cfg.activation!r}")
    if cfg.activation == "relu":
        if cfg.w_bits is not None or cfg.method != "fp":
            raise InvalidValueError("activation 'relu' trains a float ReLU twin (method fp, no --w-bits); "
                                    "start the SNN from it with --init")
        model = relu_twin(model)
    return model


def load_weights(model: nn.Module, path: str) -> dict:
    """Load a checkpoint's model state into ``model``; returns the checkpoint's info."""
    tensors, header = ckpt.read_checkpoint(path)
    missing, unexpected = model.load_state_dict(ckpt.model_state(tensors), strict=False)
    if unexpected or missing:
        raise InvalidValueError(f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}; "
                                "check --arch and the bits")
    return header.get("info", {})


def model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, TrainConfig]:
    """The network a checkpoint was trained as (quantized if it was a student), with its weights."""
    _, header = ckpt.read_checkpoint(path)
    saved = header.get("info", {}).get("config")
    if saved is None:
        raise InvalidValueError(f"{path} has no training config; load its weights into a model you build yourself")
    cfg = config_from_dict(saved)
    model = make_model(cfg)
    if cfg.w_bits is not None:
        model = quantize_as(model, cfg)
    load_weights(model, str(path))
    return model.eval(), cfg


def quantize_as(model: nn.Module, cfg: TrainConfig, w_bits: int | None = None) -> nn.Module:
    """``model`` quantized the way ``cfg`` says (its bits, first/last bits, pot, bias grid)."""
    return quantize_model(model, w_bits or cfg.w_bits, cfg.u_bits, first_last_bits=cfg.first_last_bits,
                          pot=cfg.pot, bias_frac_bits=cfg.bias_frac_bits)


def build_student_and_teacher(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """The network to train and, for MD, the frozen float teacher."""
    if cfg.method not in METHODS:
        raise InvalidValueError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.zoo_model:
        return _zoo_student_and_teacher(cfg)
    model = make_model(cfg)
    teacher = None
    if cfg.method == "md":
        if not cfg.teacher:
            raise InvalidValueError("method 'md' needs a teacher checkpoint (--teacher PATH)")
        load_weights(model, cfg.teacher)
        teacher = model
        model = quantize_as(teacher, cfg, w_bits=cfg.w_bits or 8)
        teacher.eval().requires_grad_(False)
    elif cfg.method in ("fp", "qat", "finetune"):
        if cfg.init:
            _, header = ckpt.read_checkpoint(cfg.init)
            saved = header.get("info", {}).get("config", {})
            if saved.get("w_bits") is not None:  # a quantized checkpoint: same student, then its weights
                if cfg.method == "fp":
                    raise InvalidValueError(f"{cfg.init} is a quantized student; a float run starts from a "
                                            "float checkpoint (a teacher, or a ReLU twin)")
                model = quantize_as(model, config_from_dict(saved))
            load_weights(model, cfg.init)
        quantized = any(hasattr(m, "weight_quant") for m in model.modules())
        if cfg.w_bits is not None and not quantized:
            model = quantize_as(model, cfg)
        if cfg.teacher:
            if cfg.method != "fp":
                raise InvalidValueError(f"method {cfg.method!r} trains on cross-entropy alone and takes no --teacher; "
                                        "distill a quantized student with method 'md' (mdsnn-zoo distill)")
            teacher = float_teacher(cfg.teacher, cfg.dataset, "a float run distills its logits")
    return model, teacher


def float_teacher(path: str, dataset: str, why: str) -> nn.Module:
    """The frozen float network of checkpoint ``path``, refused unless it is float and trained on ``dataset``."""
    teacher, saved = model_from_checkpoint(path)
    if saved.w_bits is not None or saved.dataset != dataset:
        raise InvalidValueError(f"--teacher {path} is a {saved.w_bits or 'float'}-bit model of {saved.dataset}; "
                                f"{why} from a float network trained on {dataset}")
    return teacher.eval().requires_grad_(False)


def _zoo_student_and_teacher(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """A zoo model (pretrained, with a fresh head if ``cfg.dataset`` has other classes) and, for MD, a
    teacher that knows this data: the zoo teacher on its own data set, else ``cfg.teacher``, a float
    checkpoint fine-tuned on ``cfg.dataset`` (the zoo teacher's soft labels and membranes would be
    those of other data)."""
    from mdsnn_zoo.zoo.registry import create_model, get_entry

    e = get_entry(cfg.zoo_model)
    mine, theirs = dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options), dataset_info(e.dataset)
    if mine.input_shape != theirs.input_shape:
        raise InvalidValueError(f"{cfg.zoo_model} takes {e.dataset} inputs {list(theirs.input_shape)}, "
                                f"{cfg.dataset} has {list(mine.input_shape)}: fine-tune a zoo model of the same "
                                "input shape")
    model = create_model(cfg.zoo_model, pretrained=True, num_classes=mine.num_classes, **cfg.arch_kwargs).train()
    if cfg.method != "md":
        return model, None
    if not e.teacher:
        raise InvalidValueError(f"{cfg.zoo_model} is a float model: it has no teacher to distill from")
    if cfg.teacher and cfg.teacher != e.teacher:  # a checkpoint of a teacher trained on this data
        teacher = float_teacher(cfg.teacher, cfg.dataset, "MD distills")
    elif cfg.dataset == e.dataset:
        teacher = create_model(e.teacher, pretrained=True, **cfg.arch_kwargs)
    else:
        raise InvalidValueError(
            f"{e.teacher}, the teacher of {cfg.zoo_model}, never saw {cfg.dataset}: fine-tune it first "
            f"(mdsnn-zoo finetune {e.teacher} --dataset {cfg.dataset} --data-root DIR --out-dir runs/teacher), "
            "then pass --teacher runs/teacher/best.safetensors; or --no-distill for cross-entropy only")
    return model, teacher.eval().requires_grad_(False)


def _start_input_shape(cfg: TrainConfig) -> tuple[int, int, int] | None:
    """The ``(C, H, W)`` input of the model a run starts from (a zoo model, ``--init`` or ``--teacher``),
    or None for a fresh one (or one trained on a folder of data that is no longer there)."""
    if cfg.zoo_model:
        from mdsnn_zoo.zoo.registry import get_entry

        e = get_entry(cfg.zoo_model)
        return dataset_info(e.dataset, **e.data_options).input_shape
    if cfg.init or cfg.teacher:
        saved = ckpt.read_checkpoint(cfg.init or cfg.teacher)[1].get("info", {}).get("config")
        if saved is not None:
            start = config_from_dict(saved)
            try:
                return dataset_info(start.dataset, start.data_root, **start.data_options).input_shape
            except DatasetNotFoundError:  # its folder is gone: the options given, else the data's own shape
                return None
    return None


def resolve_data_options(cfg: TrainConfig) -> dict:
    """``cfg.data_options`` completed so that the stored config reads the data the same way again:
    event recordings binned into ``cfg.time_steps`` frames unless told otherwise, and for a data set
    read from what its folder holds (an image or event folder) the input shape of the model the run
    starts from (else the folder's own) and the rest of its defaults (``complete_options``)."""
    opts = dict(cfg.data_options)
    if dataset_kind(cfg.dataset) == "events":
        opts.setdefault("time_steps", cfg.time_steps)
    if not shape_from_files(cfg.dataset):
        return opts
    return complete_options(cfg.dataset, cfg.data_root, _start_input_shape(cfg), **opts)


# -- evaluation ----------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device, amp: bool = False,
             teacher: nn.Module | None = None) -> dict[str, float]:
    """Top-1 (%), mean spike rate, and for a student with a teacher the mean membrane MSE to it."""
    model.eval()
    correct = total = 0
    spikes = neurons = 0.0
    mse_sum, mse_batches = 0.0, 0
    from spikingjelly.activation_based import monitor

    from mdsnn_zoo.distill import membrane_mse
    from mdsnn_zoo.neuron import QuantLIFNode

    rate = monitor.OutputMonitor(model, QuantLIFNode, lambda s: (s.float().sum().item(), s.numel()))
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        functional.reset_net(model)
        with autocast(device, amp):
            if teacher is not None:
                functional.reset_net(teacher)
                with MembraneRecorder(teacher) as t_rec, MembraneRecorder(model) as s_rec:
                    teacher(x)
                    logits = model(x)
                mse_sum += membrane_mse(s_rec.membranes, t_rec.membranes).item()  # unclipped: the plain gap
                mse_batches += 1
            else:
                logits = model(x)
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
        for s, n in rate.records:
            spikes += s
            neurons += n
        rate.clear_recorded_data()
    rate.remove_hooks()
    out = {"top1": 100.0 * correct / max(total, 1), "spike_rate": spikes / max(neurons, 1), "samples": total}
    if teacher is not None:
        out["membrane_mse"] = mse_sum / max(mse_batches, 1)
    return out


# -- training ---------------------------------------------------------------------------------------

def _lr_lambda(total_steps: int, warmup_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on biases, BN, scales and steps
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise InvalidValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")


def train_step(net: nn.Module, model: nn.Module, teacher: nn.Module | None, optimizer: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor, loss_fn: MDLoss, *, amp: bool, fused_mse: bool = True,
               grad_clip: float | None = None, forcing: float = 0.0
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One optimisation step of ``model`` (run as ``net``: itself, or its DDP wrapper) on
    ``x: [N, C, H, W]``, ``y: [N]`` with ``loss_fn``: its cross-entropy alone without a teacher, with
    one also KD and, unless ``loss_fn.mem_weight`` is 0, the membrane MSE to the teacher's. ``forcing``:
    the share of the student's spikes replaced by the teacher's (:class:`SpikeForcing`). Returns
    (loss, logits ``[N, classes]``, loss parts), detached. The trainer and ``mdsnn-zoo bench train``
    both run this."""
    device = x.device
    functional.reset_net(model)
    with autocast(device, amp), contextlib.ExitStack() as stack:
        if teacher is not None:
            functional.reset_net(teacher)
            membranes = bool(loss_fn.mem_weight)  # without: KD on the logits alone (a ReLU twin has no membranes)
            recorder = MembraneRecorder(teacher, loss_fn.layers) if membranes or forcing else contextlib.nullcontext()
            with recorder as t_rec, torch.no_grad():
                t_logits = teacher(x)
            forced = SpikeForcing(model, t_rec.membranes, forcing) if forcing else contextlib.nullcontext()
            stack.enter_context(forced)
            if not membranes:
                logits = net(x)
                loss, parts = loss_fn(logits, y, t_logits)
            elif fused_mse:  # the MSE inside the student's LIF kernels
                with MembraneTargets(model, t_rec.membranes) as targets:
                    logits = net(x)
                loss, parts = loss_fn(logits, y, t_logits, membrane_loss=targets.loss())
            else:
                with MembraneRecorder(model, loss_fn.layers) as s_rec:
                    logits = net(x)
                loss, parts = loss_fn(logits, y, t_logits, s_rec.membranes, t_rec.membranes, clip=s_rec.ranges)
        else:
            logits = net(x)
            loss, parts = loss_fn(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach(), parts


def to_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """``model`` with its 4-d weights in channels_last order (its activations follow), or as is."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_hint: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device_hint != "cpu" else "gloo"
        dist.init_process_group(backend)
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def _arithmetic(amp: bool) -> str:
    return "bfloat16 autocast" if amp else "float32"


def train(cfg: TrainConfig, log=print) -> dict[str, Any]:
    """Run (or resume) a training; returns the final metrics. Rank 0 writes checkpoints and logs."""
    ddp = _init_distributed(cfg.device)
    device = _device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cfg = dataclasses.replace(cfg, data_options=resolve_data_options(cfg))
    out = Path(cfg.out_dir)
    last_path, best_path = out / "last.safetensors", out / "best.safetensors"

    model, teacher = build_student_and_teacher(cfg)
    _configure_student(model, cfg)
    mem_layers = _distilled_layers(cfg, model)
    forcing_start = _spike_forcing(cfg)
    amp, precision = resolve_amp(cfg.amp, device)
    val_amp = amp if cfg.val_amp is None else cfg.val_amp
    cfg = dataclasses.replace(cfg, amp=amp, val_amp=val_amp)  # the stored config records what ran
    if ddp.main:
        log(f"precision: {precision}")
        if val_amp != amp:
            log(f"validation: {_arithmetic(val_amp)}")
    to_layout(model.to(device), cfg.channels_last)
    if teacher is not None:
        to_layout(teacher.to(device), cfg.channels_last)

    data, train_idx, val_data, val_idx = training_data(cfg)
    if ddp.main and val_data is not data:
        log(f"validation: the {dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options).validation_split!r} "
            f"split ({len(val_idx)} samples)")
    train_batches = Batches(data, train_idx, cfg.batch_size, True, cfg.seed, ddp.rank, ddp.world, cfg.workers)
    val_batches = Batches(val_data, val_idx, 256, False, workers=cfg.workers)
    steps_per_epoch = train_batches.steps_per_epoch()
    if steps_per_epoch == 0:
        raise InvalidValueError(f"batch size {cfg.batch_size} is larger than the training data on each process")
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    optimizer = _make_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)))
    aug_gen = torch.Generator().manual_seed(cfg.seed * 7919 + ddp.rank)
    step, best = 0, -1.0
    if cfg.resume and last_path.exists():
        _check_same_network(cfg, last_path)
        info, extra = ckpt.restore(last_path, model, optimizer, scheduler)
        step, best = info["step"], info.get("best_val_top1", -1.0)
        aug_gen.set_state(extra[f"aug_rng_{ddp.rank}"] if f"aug_rng_{ddp.rank}" in extra else extra["aug_rng_0"])
        torch.set_rng_state(extra["torch_rng"])
        if ddp.main:
            log(f"resumed from {last_path} at step {step}")
            saved = info.get("config", {})
            if saved.get("val_amp", saved.get("amp", val_amp)) != val_amp:
                log(f"note: the best validation so far ({best:.2f}) was measured in {_arithmetic(not val_amp)}; "
                    f"from here on it is measured in {_arithmetic(val_amp)} (--val-amp / --no-val-amp)")

    net = nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model
    loss_fn = MDLoss(kd_weight=cfg.kd_weight, temperature=cfg.temperature, label_smoothing=cfg.label_smoothing,
                     mem_weight=cfg.mem_weight if teacher is not None and cfg.method == "md" else 0.0,
                     layers=mem_layers)
    logger = _RunLog(out, cfg) if ddp.main else None

    def save(path: Path, **metrics) -> None:
        rngs = {"torch_rng": torch.get_rng_state()}
        states = [aug_gen.get_state()]
        if ddp.world > 1:
            gathered = [torch.empty_like(states[0]) for _ in range(ddp.world)]
            dist.all_gather_object(gathered, states[0])
            states = gathered
        for r, s in enumerate(states):
            rngs[f"aug_rng_{r}"] = s
        if ddp.main:
            ckpt.save_checkpoint(path, model, optimizer, scheduler, rngs, config=asdict(cfg), step=step,
                                 epoch=step / steps_per_epoch, best_val_top1=best, precision=precision,
                                 machine=describe_machine(device), **metrics)

    start = time.perf_counter()
    seen = 0
    while step < total_steps:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        net.train()
        if teacher is not None:
            teacher.eval()
        bar = _progress(cfg, ddp, steps_per_epoch, in_epoch, epoch)
        for x, y in train_batches.epoch(epoch, in_epoch):
            if cfg.augment:
                x = augment_batch(x, aug_gen)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            forcing = forcing_start * max(0.0, 1.0 - 2.0 * step / (cfg.epochs * steps_per_epoch))
            loss, logits, parts = train_step(net, model, teacher, optimizer, x, y, loss_fn, amp=amp,
                                             fused_mse=cfg.fused_mse, grad_clip=cfg.grad_clip, forcing=forcing)
            scheduler.step()
            step += 1
            seen += len(y) * ddp.world
            acc = (logits.argmax(1) == y).float().mean().item() * 100
            rate = seen / (time.perf_counter() - start)
            if logger:
                logger.step(step, epoch, loss.item(), {k: v.item() for k, v in parts.items()}, acc,
                            scheduler.get_last_lr()[0], rate)
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.1f}", img_s=f"{rate:.0f}")
                bar.update(1)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                if logger:
                    logger.flush()  # a run stopped after this checkpoint resumes with its log complete
                save(last_path)
            if step >= total_steps:
                break
        if bar is not None:
            bar.close()
        if step % steps_per_epoch == 0 or step >= total_steps:
            val = evaluate(model, val_batches.epoch(0), device, val_amp) if len(val_idx) else {"top1": 0.0}
            if ddp.main:
                log(f"epoch {step / steps_per_epoch:.2f}: val top-1 {val['top1']:.2f}%")
                if logger:
                    logger.epoch(step, val)
            if val["top1"] > best:
                best = val["top1"]
                save(best_path, val_top1=val["top1"])
            save(last_path, val_top1=val["top1"])
    if logger:
        logger.close()
    result = {"step": step, "best_val_top1": best}
    if ddp.world > 1:
        dist.barrier()
    return result


def finetune_config(cfg: TrainConfig, name: str | None, teacher: str | None = None, distill: bool = True
                    ) -> TrainConfig:
    """``cfg`` made the fine-tuning run of zoo model ``name`` (its architecture, T and bits; MD from a
    teacher that knows ``cfg.dataset`` when it is a student and ``distill``), or, with ``name`` None,
    of the checkpoint ``cfg.init`` (MD when ``teacher`` is given)."""
    if name is None:
        if not cfg.init:
            raise InvalidValueError("finetune needs a zoo model NAME or a checkpoint (--init PATH)")
        return dataclasses.replace(cfg, method="md" if teacher else "finetune", teacher=teacher)
    from mdsnn_zoo.zoo.registry import get_entry

    e = get_entry(name)
    method = "md" if e.teacher and distill else "finetune"
    # on its own data set the zoo teacher; on other data a teacher fine-tuned on it, or an error
    teacher = teacher or (e.teacher if method == "md" and cfg.dataset == e.dataset else None)
    return dataclasses.replace(cfg, method=method, zoo_model=e.name, arch=e.arch,
                               arch_kwargs={**e.arch_kwargs, **cfg.arch_kwargs}, time_steps=e.time_steps,
                               w_bits=e.w_bits, u_bits=e.u_bits, first_last_bits=e.first_last_bits, teacher=teacher)


def finetune(model: str, train_set: Dataset, val_set: Dataset | None = None, *, teacher: str | None = None,
             distill: bool = True, dataset_name: str = "custom", log=print, **config: Any) -> dict[str, Any]:
    """Fine-tune zoo model ``model`` (a name) on ``Dataset`` objects, as ``mdsnn-zoo finetune`` does on
    files: a fresh head for other classes, checkpoints chosen on ``val_set`` (else a held-out part of
    ``train_set``), a student with MD from ``teacher`` (a float checkpoint fine-tuned on this data:
    ``finetune(teacher_name, ...)`` first) unless ``distill=False``. Samples: ``(x [C, H, W], label)``
    shaped as the model takes them. ``config``: any ``TrainConfig`` field (``epochs``, ``lr``,
    ``out_dir``...). Returns ``train``'s result (step, best validation top-1) and ``out_dir``."""
    from mdsnn_zoo.data import from_datasets

    from_datasets(dataset_name, train_set, val_set)
    base = TrainConfig(**{"lr": 0.01, "warmup_epochs": 0.0, "learn_step": False, "out_dir": "runs/finetune",
                          **config, "dataset": dataset_name})
    cfg = finetune_config(base, model, teacher, distill)
    return {**train(cfg, log=log), "out_dir": cfg.out_dir}


_NETWORK_FIELDS = ("arch", "arch_kwargs", "time_steps", "w_bits", "activation")
_QUANT_FIELDS = ("u_bits", "first_last_bits", "pot", "bias_frac_bits")  # compared for students only


def _distilled_layers(cfg: TrainConfig, model: nn.Module) -> list[str] | None:
    """The LIF layers of ``model`` that ``cfg.mem_layers`` names, checked; None: every one."""
    if cfg.mem_layers is None:
        return None
    if cfg.method != "md":
        raise InvalidValueError("--mem-layers chooses the layers of the membrane term, which only distillation has: "
                                "use mdsnn-zoo distill, or finetune with a teacher")
    names = [n.strip() for n in cfg.mem_layers.split(",") if n.strip()]
    known = lif_layers(model)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        problem = f"{unknown[0]!r} is not a LIF layer of {cfg.arch}" if unknown else "no layer named"
        raise UnknownNameError(f"--mem-layers: {problem}; its LIF layers are {','.join(known)}")
    return [n for n in known if n in names]  # in the network's order, each once


def _spike_forcing(cfg: TrainConfig) -> float:
    """``cfg.spike_forcing``, checked: the share of spikes forced at the first step."""
    if not cfg.spike_forcing:
        return 0.0
    if cfg.method != "md":
        raise InvalidValueError("--spike-forcing passes on the teacher's spikes, which only distillation has: use "
                                "mdsnn-zoo distill, or finetune with a teacher")
    if not 0.0 < cfg.spike_forcing <= 1.0:
        raise InvalidValueError(f"--spike-forcing is a share of the spikes, in [0, 1]; got {cfg.spike_forcing}")
    return cfg.spike_forcing


def _configure_student(model: nn.Module, cfg: TrainConfig) -> None:
    """What ``cfg`` says to train of a quantized model and where its neurons take the surrogate."""
    for m in model.modules():
        if not cfg.learn_step and isinstance(getattr(m, "delta", None), nn.Parameter):
            m.delta.requires_grad_(False)
        if not cfg.learn_edge_scales and isinstance(m, WeightQuantizer) and m.bits >= 8:
            m.scale.requires_grad_(False)  # an 8-bit LSQ scale moved by more than itself and crossed zero
        if cfg.surrogate_shift is not None and isinstance(m, QuantLIFNode) and m.u_bits is not None:
            try:  # gradients only: the forward pass is the same
                m.set_surrogate_shift(cfg.surrogate_shift)
            except ValueError as err:
                raise InvalidValueError(f"--surrogate-shift: {err}") from None


def _check_same_network(cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume ``path`` as a different network (the weights would load into other arithmetic)."""
    _, header = ckpt.read_checkpoint(path)
    saved = header.get("info", {}).get("config")
    if saved is None:
        return
    before = config_from_dict(saved)
    for name in _NETWORK_FIELDS + (_QUANT_FIELDS if cfg.w_bits is not None else ()):
        old, new = getattr(before, name), getattr(cfg, name)
        if old != new:
            flag = "--" + name.replace("_", "-")
            raise InvalidValueError(f"{path} was trained with {name}={old!r}, this run asks for {new!r}: pass "
                                    f"{flag} {json.dumps(old) if name == 'arch_kwargs' else old} to resume it, "
                                    "or a new --out-dir")


def _progress(cfg: TrainConfig, ddp: _Dist, total: int, initial: int, epoch: int):
    if not (cfg.progress and ddp.main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)


class _RunLog:
    """CSV (``log.csv``, ``epochs.csv``), TensorBoard (``tb/``) and ``config.json`` in the run folder."""

    def __init__(self, out: Path, cfg: TrainConfig) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        self.steps = open(out / "log.csv", "a", newline="")
        self.epochs = open(out / "epochs.csv", "a", newline="")
        self.step_writer = csv.writer(self.steps)
        self.epoch_writer = csv.writer(self.epochs)
        if self.steps.tell() == 0:
            self.step_writer.writerow(["step", "epoch", "loss", "ce", "kd", "mem", "train_acc", "lr", "img_s"])
        if self.epochs.tell() == 0:
            self.epoch_writer.writerow(["step", "val_top1", "spike_rate"])
        self.tb = None
        if cfg.tensorboard:
            with contextlib.suppress(ImportError):
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))

    def step(self, step: int, epoch: int, loss: float, parts: dict, acc: float, lr: float, rate: float) -> None:
        losses = (f"{parts.get(k, 0.0):.5f}" for k in ("ce", "kd", "mem"))
        self.step_writer.writerow([step, epoch, f"{loss:.5f}", *losses, f"{acc:.2f}", f"{lr:.6f}", f"{rate:.1f}"])
        if self.tb:
            self.tb.add_scalar("train/loss", loss, step)
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.add_scalar("train/lr", lr, step)

    def epoch(self, step: int, val: dict) -> None:
        self.epoch_writer.writerow([step, f"{val['top1']:.3f}", f"{val.get('spike_rate', 0):.4f}"])
        self.flush()
        if self.tb:
            self.tb.add_scalar("val/top1", val["top1"], step)

    def flush(self) -> None:
        self.epochs.flush()
        self.steps.flush()

    def close(self) -> None:
        self.steps.close()
        self.epochs.close()
        if self.tb:
            self.tb.close()


def config_from_dict(d: dict) -> TrainConfig:
    """A stored config; one saved before ``bias_frac_bits`` and ``learn_edge_scales`` existed had its biases
    on the membrane grid (0) and learned every weight scale."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    known = {k: v for k, v in d.items() if k in names}
    known.setdefault("bias_frac_bits", 0)
    known.setdefault("learn_edge_scales", True)  # and every weight scale was learned
    return TrainConfig(**known)
