"""Building networks: :func:`build_network`, the one function that makes the network a config
describes (the trainer's, and the zoo's through :func:`mdsnn_zoo.zoo.registry.create_model`), and
what a run starts from: the student with its weights, the frozen teacher, the checked options."""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.data import DatasetInfo, dataset_info
from mdsnn_zoo.distill import lif_layers
from mdsnn_zoo.errors import DatasetNotFoundError, InvalidValueError, UnknownNameError
from mdsnn_zoo.models import build_model, relu_twin
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import WeightQuantizer, quantize_model, set_scale_bits
from mdsnn_zoo.train.config import ACTIVATIONS, METHODS, TrainConfig


def build_network(cfg: TrainConfig, *, quantized: bool = True, info: DatasetInfo | None = None) -> nn.Module:
    """The untrained network of ``cfg``: ``cfg.arch`` for the classes and ``(C, H, W)`` inputs of
    ``cfg.dataset`` read with ``cfg.data_options`` (or of ``info``), running ``cfg.time_steps`` steps,
    ``cfg.arch_kwargs`` on top; its clipped-ReLU twin for ``activation="relu"``; quantized as
    ``cfg`` says (:func:`quantize_as`) when ``quantized`` and ``cfg.w_bits`` is set."""
    info = info or dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options)
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
    if quantized and cfg.w_bits is not None:
        model = quantize_as(model, cfg)
    return model


def quantize_as(model: nn.Module, cfg: TrainConfig, w_bits: int | None = None) -> nn.Module:
    """``model`` quantized the way ``cfg`` says (its bits, first/last bits, scale grid, bias grid)."""
    return quantize_model(model, w_bits or cfg.w_bits, cfg.u_bits, first_last_bits=cfg.first_last_bits,
                          bias_frac_bits=cfg.bias_frac_bits, scale_bits=cfg.scale_bits)


def _load_state(model: nn.Module, start: ckpt.Checkpoint) -> None:
    try:
        missing, unexpected = model.load_state_dict(start.model_state, strict=False)
    except RuntimeError as exc:  # tensors of other shapes: another network
        raise InvalidValueError(f"{start.path} does not fit this model ({str(exc).splitlines()[-1].strip()}); "
                                "check --arch, --arch-kwargs and the bits") from None
    if unexpected or missing:
        raise InvalidValueError(f"{start.path} does not fit this model: missing {missing[:3]}, unexpected "
                                f"{unexpected[:3]}; check --arch and the bits")


def load_weights(model: nn.Module, path: str | os.PathLike) -> dict:
    """Load a checkpoint's model state into ``model``; returns the checkpoint's info."""
    start = ckpt.load_checkpoint(path)
    _load_state(model, start)
    return start.info


def model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, TrainConfig]:
    """The network a checkpoint was trained as (quantized if it was a student), with its weights, in
    eval mode, and the config it was trained with."""
    start = ckpt.load_checkpoint(path)
    cfg = start.config
    if cfg is None:
        raise InvalidValueError(f"{path} has no training config; load its weights into a model you build yourself")
    model = build_network(cfg)
    _load_state(model, start)
    return model.eval(), cfg


def float_teacher(path: str, dataset: str, why: str, student: TrainConfig | None = None) -> nn.Module:
    """The frozen float network of checkpoint ``path``, refused unless it is float and trained on ``dataset``
    (and, for MD, the ``student``'s architecture: its membranes are matched layer by layer)."""
    teacher, saved = model_from_checkpoint(path)
    if saved.w_bits is not None or saved.dataset != dataset:
        raise InvalidValueError(f"--teacher {path} is a {saved.w_bits or 'float'}-bit model of {saved.dataset}; "
                                f"{why} from a float network trained on {dataset}")
    if student is not None:
        _check_same_family(path, saved, student)
    return teacher.eval().requires_grad_(False)


def _check_same_family(path: str, teacher: TrainConfig, student: TrainConfig) -> None:
    """MD matches membranes layer by layer: the teacher must be the student's network (architecture,
    width, T) on the student's input shape."""
    def network(cfg: TrainConfig) -> str:
        kwargs = {k: v for k, v in cfg.arch_kwargs.items() if k != "backend"}
        return f"{cfg.arch} {json.dumps(kwargs, sort_keys=True)} at T={cfg.time_steps}"

    def shape(cfg: TrainConfig) -> tuple[int, ...] | None:
        try:
            return tuple(dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options).input_shape)
        except DatasetNotFoundError:  # a folder no longer there: not comparable
            return None

    theirs, mine = network(teacher), network(student)
    if theirs != mine:
        raise InvalidValueError(f"--teacher {path} is {theirs}, the student is {mine}: MD matches their membranes "
                                "layer by layer, so the teacher must be the student's network; fine-tune the float "
                                "model of the student's family on this data and pass that")
    a, b = shape(teacher), shape(student)
    if a and b and a != b:
        raise InvalidValueError(f"--teacher {path} read its data as {list(a)}, the student reads {list(b)}: give the "
                                "student the teacher's --data-options, or fine-tune a teacher at the student's size")


def build_student_and_teacher(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """The network to train and, for MD (or a float run with ``--teacher``), the frozen teacher."""
    if cfg.method not in METHODS:
        raise InvalidValueError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.zoo_model:
        return _zoo_student_and_teacher(cfg)
    model = build_network(cfg, quantized=False)
    if cfg.method == "md":
        if not cfg.teacher:
            raise InvalidValueError("method 'md' needs a teacher checkpoint (--teacher PATH)")
        teacher = float_teacher(cfg.teacher, cfg.dataset, "MD distills", cfg)
        load_weights(model, cfg.teacher)  # the student starts as its teacher, quantized
        return quantize_as(model, cfg, w_bits=cfg.w_bits or 8), teacher
    model = _started_student(cfg, model)
    if not cfg.teacher:
        return model, None
    if cfg.method != "fp":
        raise InvalidValueError(f"method {cfg.method!r} trains on cross-entropy alone and takes no --teacher; "
                                "distill a quantized student with method 'md' (mdsnn-zoo distill)")
    return model, float_teacher(cfg.teacher, cfg.dataset, "a float run distills its logits")


def _started_student(cfg: TrainConfig, model: nn.Module) -> nn.Module:
    """fp, qat, finetune: the float ``model`` with the weights of ``cfg.init`` (quantized first if that
    is a student's), then quantized as ``cfg`` says if it is not yet."""
    if cfg.init:
        start = ckpt.load_checkpoint(cfg.init)
        saved = start.config
        if saved is not None and saved.w_bits is not None:  # a quantized checkpoint: same student, then its weights
            if cfg.method == "fp":
                raise InvalidValueError(f"{cfg.init} is a quantized student; a float run starts from a "
                                        "float checkpoint (a teacher, or a ReLU twin)")
            model = quantize_as(model, saved)
        _load_state(model, start)
    quantized = any(hasattr(m, "weight_quant") for m in model.modules())
    if cfg.w_bits is not None and not quantized:
        model = quantize_as(model, cfg)
    return model


def _zoo_student_and_teacher(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """A zoo model (pretrained, with a fresh head if ``cfg.dataset`` has other classes) and, for MD, a
    teacher that knows this data: the zoo teacher on its own data set, else ``cfg.teacher``, a float
    checkpoint fine-tuned on ``cfg.dataset`` (the zoo teacher's soft labels and membranes would be
    those of other data)."""
    from mdsnn_zoo.zoo.registry import create_model, get_entry, get_weights

    e = get_entry(cfg.zoo_model)
    mine, theirs = dataset_info(cfg.dataset, cfg.data_root, **cfg.data_options), dataset_info(e.dataset)
    if mine.input_shape != theirs.input_shape:
        raise InvalidValueError(f"{cfg.zoo_model} takes {e.dataset} inputs {list(theirs.input_shape)}, "
                                f"{cfg.dataset} has {list(mine.input_shape)}: fine-tune a zoo model of the same "
                                "input shape")
    model = create_model(cfg.zoo_model, pretrained=True, num_classes=mine.num_classes, **cfg.arch_kwargs).train()
    if e.method != "fp" and cfg.scale_bits != get_weights(cfg.zoo_model).scale_bits:
        set_scale_bits(model, cfg.scale_bits)  # e.g. a student fine-tuned onto the integer grid
    if cfg.method != "md":
        return model, None
    if not e.teacher:
        raise InvalidValueError(f"{cfg.zoo_model} is a float model: it has no teacher to distill from")
    if cfg.teacher and cfg.teacher != e.teacher:  # a checkpoint of a teacher trained on this data
        teacher = float_teacher(cfg.teacher, cfg.dataset, "MD distills", cfg)
    elif cfg.dataset == e.dataset:
        teacher = create_model(e.teacher, pretrained=True, **cfg.arch_kwargs)
    else:
        raise InvalidValueError(
            f"{e.teacher}, the teacher of {cfg.zoo_model}, never saw {cfg.dataset}: fine-tune it first "
            f"(mdsnn-zoo finetune {e.teacher} --dataset {cfg.dataset} --data-root DIR --out-dir runs/teacher), "
            "then pass --teacher runs/teacher/best.safetensors; or --no-distill for cross-entropy only")
    return model, teacher.eval().requires_grad_(False)


def configure_student(model: nn.Module, cfg: TrainConfig) -> None:
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


def distilled_layers(cfg: TrainConfig, model: nn.Module) -> list[str] | None:
    """The LIF layers of ``model`` that ``cfg.mem_layers`` names, checked, in the network's order;
    None: every one."""
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


def spike_forcing_share(cfg: TrainConfig) -> float:
    """``cfg.spike_forcing``, checked: the share of spikes forced at the first step (0: off)."""
    if not cfg.spike_forcing:
        return 0.0
    if cfg.method != "md":
        raise InvalidValueError("--spike-forcing passes on the teacher's spikes, which only distillation has: use "
                                "mdsnn-zoo distill, or finetune with a teacher")
    if not 0.0 < cfg.spike_forcing <= 1.0:
        raise InvalidValueError(f"--spike-forcing is a share of the spikes, in [0, 1]; got {cfg.spike_forcing}")
    return cfg.spike_forcing


def to_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """``model`` with its 4-d weights in channels_last order (its activations follow), or as is."""
    return model.to(memory_format=torch.channels_last) if channels_last else model
