"""A hardware-exact student out of PyTorch: :func:`export_integer` writes the integer model that
:class:`mdsnn_zoo.runtime.IntegerModel` runs with NumPy alone (the format is described there), and
:func:`export` does it for a zoo name or a checkpoint (``mdsnn-zoo export SOURCE --format int``).

Only a student whose arithmetic an integer machine reproduces is exported: weight scales that are a
multiplier and a shift (``scale_bits``), power-of-two membrane steps, quantized membranes, a leak
``tau = 2^k``, the input layer summed exactly (see :mod:`mdsnn_zoo.quant`); anything else is
refused with the reason. Supported layers: quantized convolutions and linear layers, LIF neurons,
max pooling, global average pooling over a power-of-two area, flatten, and membrane-shortcut blocks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import layer
from torch import nn

from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.kernels.lif_reference import grid_constants
from mdsnn_zoo.models.base import SpikingNet
from mdsnn_zoo.models.resnet import MembraneShortcutBlock
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import QuantConv2d, QuantLinear, dyadic_parts
from mdsnn_zoo.runtime import FORMAT, GRAPH_FILE, VERSION, WEIGHTS_FILE, IntegerModel, pack_codes

ROUNDING = ("membranes in grid units relative to the threshold, codes -(2^b - 1)..0; q = floor(h + 1/2) (ties "
            "up), clamped; a spike where q >= 0; the input layer's current rounded half to even to its bias grid")


def _pair(v: int | tuple[int, ...]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


def _power_of_two(x: torch.Tensor, what: str) -> int:
    """The exponent of ``x`` (a 0-d power of two), refused otherwise."""
    mult, exp = dyadic_parts(x.reshape(1))
    if int(mult[0]) != 1:
        raise InvalidValueError(f"{what} is {float(x):g}, not a power of two: the student is not hardware-exact; "
                                "fine-tune it with --scale-bits 7")
    return int(exp[0])


class _Builder:
    """The graph's nodes and arrays, emitted module by module in the order the network runs."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}

    def _node(self, op: str, source: str | list[str], **attrs: Any) -> str:
        out = f"v{len(self.nodes)}"
        self.nodes.append({"op": op, "in": source, "out": out, **attrs})
        return out

    def emit(self, m: nn.Module, v: str, name: str) -> str:
        """The value ``m`` makes of value ``v`` (``name``: its module name)."""
        if isinstance(m, nn.Sequential):
            for child, module in m.named_children():
                v = self.emit(module, v, f"{name}.{child}" if name else child)
            return v
        if isinstance(m, (QuantConv2d, QuantLinear)):
            return self._weights(m, v, name)
        if isinstance(m, QuantLIFNode):
            return self._lif(m, v, name)
        if isinstance(m, MembraneShortcutBlock):
            s = self.emit(m.lif1, v, f"{name}.lif1")
            out = self.emit(m.conv2, self.emit(m.lif2, self.emit(m.conv1, s, f"{name}.conv1"), f"{name}.lif2"),
                            f"{name}.conv2")
            return self._node("add", [out, self.emit(m.down, s, f"{name}.down") if m.down is not None else v])
        if isinstance(m, nn.MaxPool2d):
            if _pair(m.padding) != [0, 0] or _pair(m.dilation) != [1, 1] or m.ceil_mode:
                raise InvalidValueError(f"export takes max pooling without padding, dilation or ceil_mode ({name})")
            return self._node("maxpool", v, kernel=_pair(m.kernel_size), stride=_pair(m.stride or m.kernel_size))
        if isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != [1, 1]:
                raise InvalidValueError(f"export takes global average pooling only (output size 1; {name})")
            return self._node("avgpool", v)
        if isinstance(m, nn.Flatten):
            return self._node("flatten", v)
        if isinstance(m, (nn.Identity, nn.Dropout, layer.Dropout)):  # dropout: identity in eval
            return v
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            raise InvalidValueError(f"{name} is a float layer: only a quantized student has an integer form; export "
                                    "one of the zoo's students, not its float teacher")
        raise InvalidValueError(f"export does not support {type(m).__name__} ({name})")

    def _weights(self, m: QuantConv2d | QuantLinear, v: str, name: str) -> str:
        wq = m.weight_quant
        if wq.scale_bits is None:
            raise InvalidValueError(f"{name} has float weight scales: the student is not hardware-exact; fine-tune "
                                    "it with --scale-bits 7 (a multiplier of 8 bits and a shift per channel)")
        if (v == "input") != m.accumulates_exactly:
            raise InvalidValueError(f"{name}: only the input layer may take float input, summed exactly "
                                    "(quantize_model marks the first layer)")
        mult, exp = dyadic_parts(wq.step(m.weight))
        codes = wq.codes(m.weight)
        attrs: dict[str, Any] = {"name": name, "bits": wq.bits, "input_layer": m.accumulates_exactly,
                                 "weight": f"{name}.weight", "multiplier": f"{name}.multiplier",
                                 "exponent": f"{name}.exponent", "shape": list(codes.shape), "code_offset": wq.qmin}
        self.arrays[attrs["weight"]] = pack_codes((codes.to(torch.int64) - wq.qmin).numpy(), wq.bits)
        self.arrays[attrs["multiplier"]] = mult.to(torch.int32).numpy()
        self.arrays[attrs["exponent"]] = exp.to(torch.int32).numpy()
        bias = m.bias_codes()
        if bias is not None:
            attrs["bias"] = f"{name}.bias"
            attrs["bias_exp"] = _power_of_two(m._bias_unit().detach(), f"{name}'s bias unit")
            self.arrays[attrs["bias"]] = bias.to(torch.int32).numpy()
        elif m.bias is not None:
            raise InvalidValueError(f"{name} has a float bias: the student is not hardware-exact")
        if isinstance(m, QuantConv2d):
            if m.groups != 1 or _pair(m.dilation) != [1, 1] or m.padding_mode != "zeros":
                raise InvalidValueError(f"export takes plain convolutions (groups 1, dilation 1, zero padding; {name})")
            return self._node("conv", v, stride=_pair(m.stride), padding=_pair(m.padding), **attrs)
        return self._node("linear", v, **attrs)

    def _lif(self, m: QuantLIFNode, v: str, name: str) -> str:
        p = m.params
        if p.u_bits is None:
            raise InvalidValueError(f"{name} has a float membrane: export needs every LIF layer quantized (u_bits)")
        k = math.log2(p.tau)
        if k != round(k):
            raise InvalidValueError(f"{name} has tau = {p.tau}: the leak must be a shift (tau a power of two)")
        delta = m.step_in_use().detach()
        theta, r = (int(t) for t in grid_constants(delta, p))
        v0 = int(torch.floor((torch.tensor(p.reset_value) - p.v_threshold) / delta + 0.5))
        return self._node("lif", v, name=name, u_bits=p.u_bits, delta_exp=_power_of_two(delta, f"{name}'s step"),
                          tau_shift=int(k), decay_input=p.decay_input, hard_reset=p.hard_reset, theta=theta,
                          reset=r, v0=v0)


def integer_graph(model: SpikingNet, input_kind: str, input_shape: tuple[int, ...]) -> tuple[dict, dict]:
    """``(graph, arrays)`` of the hardware-exact student ``model``: the JSON graph (without the
    weights' sha256) and its integer arrays by name. ``input_shape``: one sample, ``(C, H, W)`` for
    images, ``(T, 2, H, W)`` for event frames."""
    if not isinstance(model, SpikingNet):
        raise InvalidValueError(f"export takes a zoo network (SpikingNet), got {type(model).__name__}")
    if not any(isinstance(m, (QuantConv2d, QuantLinear)) for m in model.modules()):
        raise InvalidValueError("this is a float model: only a quantized student has an integer form; export one "
                                "of the zoo's students, not its float teacher")
    builder = _Builder()
    with torch.no_grad():
        out = builder.emit(model.head, builder.emit(model.features, "input", "features"), "head")
    graph = {"format": FORMAT, "version": VERSION, "time_steps": model.time_steps,
             "input": {"kind": input_kind, "shape": list(input_shape), "dtype": "float32"},
             "rounding": ROUNDING, "scales": "per output channel, multiplier x 2^exponent",
             "nodes": builder.nodes, "output": out}
    return graph, builder.arrays


def export_integer(model: SpikingNet, out_dir: str | os.PathLike, input_kind: str, input_shape: tuple[int, ...],
                   source: str = "") -> Path:
    """Write ``model`` (a hardware-exact student) as an integer model in ``out_dir`` (``graph.json``
    and ``weights.safetensors``, each written whole or not at all) and check that the runtime reads
    it; returns ``out_dir``."""
    from safetensors.numpy import save

    from mdsnn_zoo.checkpoint import atomic_writer

    model = model.eval()
    graph, arrays = integer_graph(model, input_kind, input_shape)
    blob = save(arrays)
    graph = {**graph, "source": source, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    runtime = IntegerModel(graph, arrays)
    values = runtime.trace(np.zeros((1, *input_shape), dtype=np.float32))  # every layer runs; their shapes
    for node in graph["nodes"]:
        node["out_shape"] = list(values[node["out"]].num.shape[2:])
    out_dir = Path(out_dir)
    with atomic_writer(out_dir / WEIGHTS_FILE) as f:
        f.write(blob)
    with atomic_writer(out_dir / GRAPH_FILE) as f:
        f.write(json.dumps(graph, indent=1).encode())
    return out_dir


def export(source: str, out_dir: str | os.PathLike) -> Path:
    """Export zoo model ``source`` (its published weights) or the checkpoint at path ``source``."""
    from mdsnn_zoo.data import dataset_info, dataset_kind

    if Path(source).suffix == ".safetensors" or os.sep in source:
        from mdsnn_zoo.train import model_from_checkpoint

        model, cfg = model_from_checkpoint(source)
        dataset, root, options = cfg.dataset, cfg.data_root, cfg.data_options
    else:
        from mdsnn_zoo.zoo.registry import create_model, get_entry

        entry = get_entry(source)
        model = create_model(source, pretrained=True)
        dataset, root, options = entry.dataset, None, entry.data_options
    kind = dataset_kind(dataset)
    shape = tuple(dataset_info(dataset, root, **options).input_shape)
    if kind == "events":
        shape = (model.time_steps, *shape)
    return export_integer(model, out_dir, kind, shape, source=str(source))
