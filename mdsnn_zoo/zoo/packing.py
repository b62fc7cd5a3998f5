"""Zoo weight files: safetensors, with a student's low-bit weights packed as integers plus scales.

A quantized layer's weight ``[C_out, ...]`` is stored as its codes ``q - qmin`` (0 .. 2^b - 1),
b bits each, packed little-endian into a flat uint8 tensor ``<layer>.weight.codes``; its per-channel
scale, bias and everything else (membrane steps, batch-norm statistics of a teacher) stay float32.
The JSON header ``mdsnn_zoo`` records each packed layer's shape and bits. Unpacking sets the weight
to ``q · scale``, which the layer's quantizer maps back onto the same codes, so a student computes
exactly what it computed when it was saved. A 2-bit weight takes 1/16 of its float32 bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from mdsnn_zoo import runtime
from mdsnn_zoo.checkpoint import atomic_write_bytes
from mdsnn_zoo.errors import CorruptFileError
from mdsnn_zoo.quant import quantized_layers

FORMAT = "mdsnn-zoo-packed/1"


def pack_codes(u: torch.Tensor, bits: int) -> torch.Tensor:
    """Non-negative integers ``u < 2^bits`` (any shape) -> flat uint8, ``bits`` bits each (the layout of
    :func:`mdsnn_zoo.runtime.pack_codes`)."""
    return torch.from_numpy(runtime.pack_codes(u.detach().cpu().numpy(), bits))


def unpack_codes(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The inverse of :func:`pack_codes`: the first ``count`` integers, int64 ``[count]``."""
    return torch.from_numpy(runtime.unpack_codes(packed.cpu().numpy(), bits, count))


def packed_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
    """``model``'s state with every quantized layer's weight packed; returns (tensors, header)."""
    state = {k: v.detach().cpu().float().contiguous() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    layers = {}
    for name, layer in quantized_layers(model):
        wq = layer.weight_quant
        codes = wq.codes(layer.weight) - wq.qmin
        key = f"{name}.weight"
        del state[key]
        state[f"{key}.codes"] = pack_codes(codes, wq.bits)
        layers[name] = {"shape": list(layer.weight.shape), "bits": wq.bits}
    return state, {"format": FORMAT, "packed": layers}


def save_packed(model: nn.Module, path: str | os.PathLike, info: dict | None = None) -> str:
    """Write ``model`` as a zoo weight file (atomically); returns its sha256 (hex)."""
    tensors, header = packed_state(model)
    header["info"] = info or {}
    data = st_save(tensors, metadata={"mdsnn_zoo": json.dumps(header)})
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_packed(path: str | os.PathLike, sha256: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and header of a zoo weight file, after checking its sha256 (when given)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise CorruptFileError(f"{path}: sha256 {digest[:16]}... does not match the zoo's {sha256[:16]}...; "
                               "the file is corrupt or not this model's weights. Delete it and fetch it again.")
    try:  # tensors and header both from the bytes that were hashed, never from the path again
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(json.loads(data[8:8 + header_len])["__metadata__"]["mdsnn_zoo"])
        if header.get("format") != FORMAT:
            raise ValueError(f"format {header.get('format')!r}")
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing to the user
        raise CorruptFileError(f"{path} is not a readable mdsnn-zoo weight file ({exc})") from None
    return tensors, header


@torch.no_grad()
def load_packed(model: nn.Module, path: str | os.PathLike, sha256: str | None) -> dict:
    """Load a zoo weight file into ``model`` (built as the entry describes); returns the file's info.

    Nothing is loaded unless the sha256 matches and every tensor fits the model.
    """
    tensors, header = read_packed(path, sha256)
    layers = dict(quantized_layers(model))
    state = dict(tensors)
    for name, spec in header["packed"].items():
        layer = layers.get(name)
        if layer is None or list(layer.weight.shape) != spec["shape"] or layer.weight_quant.bits != spec["bits"]:
            raise CorruptFileError(f"{path}: packed layer {name!r} {spec} does not fit this model")
        del state[f"{name}.weight.codes"]
        state[f"{name}.weight"] = torch.zeros(spec["shape"])  # placeholder: set from the codes below
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise CorruptFileError(f"{path} does not fit this model: missing {missing[:3]}, unexpected "
                               f"{unexpected[:3]}, wrong shape {wrong[:3]}")
    model.load_state_dict(state)
    for name, spec in header["packed"].items():
        layer, wq = layers[name], layers[name].weight_quant
        count = int(np.prod(spec["shape"]))
        codes = unpack_codes(tensors[f"{name}.weight.codes"], spec["bits"], count) + wq.qmin
        scale = wq.step(layer.weight).detach().view(-1, *([1] * (layer.weight.ndim - 1)))
        layer.weight.copy_(codes.view(spec["shape"]).to(scale) * scale)
    return header.get("info", {})
