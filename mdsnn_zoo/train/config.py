"""The run's configuration: :class:`TrainConfig`, every field a flag of ``mdsnn-zoo train``,
``distill`` and ``finetune``, stored in every checkpoint, read back by :func:`config_from_dict`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.quant import DEFAULT_BIAS_FRAC_BITS

METHODS = ("fp", "qat", "md", "finetune")
ACTIVATIONS = ("lif", "relu")


def _opt(default: Any, help: str) -> Any:
    """A TrainConfig field with its description (the command line's ``--help`` for its flag)."""
    return field(default=default, metadata={"help": help})


MIN_STEPS = 640  # what epochs=None gives a small data set at the least: enough steps for a low-bit student


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
    scale_bits: int | None = _opt(None, "qat/md: weight scales M 2^e with a multiplier M of this many bits + 1 "
                                  "(0: powers of two) and power-of-two membrane steps: a hardware-exact student; "
                                  "none: float scales")
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
    epochs: int | None = _opt(10, "epochs over the training part of the training split; none: sized by the data, "
                              f"at least 10 epochs and {MIN_STEPS} optimizer steps")
    max_steps: int | None = _opt(None, "stop after this many steps (quick checks)")
    batch_size: int | None = _opt(128, "images per step (per process under torchrun); none: sized by the data, "
                                  "a power of two from 16 to 128 that makes an epoch at least 32 steps")
    optimizer: str = _opt("sgd", "sgd (Nesterov) | adamw")
    lr: float = _opt(0.1, "peak learning rate (cosine schedule after the warm-up)")
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(5e-4, "weight decay of weight matrices and kernels (none on biases, BN, scales)")
    warmup_epochs: float = _opt(0.5, "linear warm-up, in epochs")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy")
    grad_clip: float | None = _opt(None, "clip the gradient's global norm to this before each step")
    ema_decay: float = _opt(0.0, "keep an exponential moving average of the weights with this decay per step "
                            "(warmed up as (1 + step) / (10 + step)); it is what is validated and saved as "
                            "best.safetensors; 0: off")
    validate_start: bool = _opt(False, "validate the network before the first step too, so that the start itself "
                                "can be best.safetensors (a fine-tune that does not improve on it)")
    augment: str = _opt("crop,flip,erase", "augmentations of the training batches, comma-separated: crop (padded "
                         "with the image's background), flip (horizontal), erase (random patches); none: off")
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
    log_every: int = _opt(25, "fetch the step metrics from the device every this many steps (one host sync), "
                          "then write their rows to log.csv and update the progress bar")
    resume: bool = _opt(False, "continue from OUT_DIR/last.safetensors if it exists")
    device: str = _opt("auto", "auto (the GPU if there is one) | cpu | cuda | cuda:N")
    threads: int | None = _opt(None, "CPU threads (default: PyTorch's)")
    progress: bool = _opt(True, "a progress bar per epoch")
    tensorboard: bool = _opt(True, "TensorBoard logs in OUT_DIR/tb")


def config_from_dict(d: dict) -> TrainConfig:
    """A stored config; one saved before ``bias_frac_bits`` and ``learn_edge_scales`` existed had its biases
    on the membrane grid (0) and learned every weight scale, one with ``pot`` had ``scale_bits`` 0.
    Unknown keys (of a newer version) are dropped."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    known = {k: v for k, v in d.items() if k in names}
    known.setdefault("bias_frac_bits", 0)
    known.setdefault("learn_edge_scales", True)  # and every weight scale was learned
    if d.get("pot"):  # saved before scale_bits: power-of-two scales
        known["scale_bits"] = 0
    if isinstance(known.get("augment"), bool):  # saved before policies: on meant all three
        known["augment"] = "crop,flip,erase" if known["augment"] else "none"
    return TrainConfig(**known)


NETWORK_FIELDS = ("arch", "arch_kwargs", "time_steps", "w_bits", "activation")
QUANT_FIELDS = ("u_bits", "first_last_bits", "scale_bits", "bias_frac_bits")  # compared for students only


def check_same_network(cfg: TrainConfig, before: TrainConfig, where: object) -> None:
    """Refuse to continue a run saved (at ``where``) as ``before`` as a different network: its weights
    would load into other arithmetic."""
    for name in NETWORK_FIELDS + (QUANT_FIELDS if cfg.w_bits is not None else ()):
        old, new = getattr(before, name), getattr(cfg, name)
        if old != new:
            flag = "--" + name.replace("_", "-")
            raise InvalidValueError(f"{where} was trained with {name}={old!r}, this run asks for {new!r}: pass "
                                    f"{flag} {json.dumps(old) if name == 'arch_kwargs' else old} to resume it, "
                                    "or a new --out-dir")


def arithmetic(amp: bool) -> str:
    """How a pass ran, in words: ``bfloat16 autocast`` or ``float32``."""
    return "bfloat16 autocast" if amp else "float32"
