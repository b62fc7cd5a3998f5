"""Training checkpoints: safetensors (no pickle), written atomically, with everything resume needs.

A checkpoint holds the model's state, the optimizer's tensors, the random-number state and a JSON
header (config, epoch, step, scheduler, optimizer hyper-parameters, metrics). It is written to a
temporary file in the same folder, flushed and fsynced, then renamed over the old one, so a run
killed mid-write leaves the previous checkpoint intact, never a broken one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mdsnn_zoo.errors import CorruptFileError

_META_KEY = "mdsnn"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, numbers = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                numbers[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "numbers": numbers}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["numbers"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer=None, scheduler=None,
                    extra_tensors: dict[str, torch.Tensor] | None = None, **info: Any) -> None:
    """Write model (+ optimizer, scheduler, extra tensors such as RNG states, JSON ``info``) to ``path``."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    header: dict[str, Any] = {"info": info}
    if optimizer is not None:
        opt_tensors, header["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    if scheduler is not None:
        header["scheduler"] = {k: v for k, v in scheduler.state_dict().items() if not callable(v)}
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous().clone()
    atomic_write_bytes(path, st_save(tensors, metadata={_META_KEY: json.dumps(header)}))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors of a checkpoint (by their stored names) and its JSON header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    raw = path.read_bytes()
    try:
        tensors = st_load(raw)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        header = json.loads(meta.get(_META_KEY, "{}"))
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path} is not a readable mdsnn-zoo checkpoint ({exc}); delete it and "
                               "resume from an earlier one or start again") from None
    return tensors, header


def save_without_optimizer(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy checkpoint ``src`` to ``dst`` without its optimizer state (about half the size for SGD
    with momentum): enough to evaluate, export, distil from, or to stand for a finished run."""
    tensors, header = read_checkpoint(src)
    header.pop("optimizer", None)
    kept = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    atomic_write_bytes(dst, st_save(kept, metadata={_META_KEY: json.dumps(header)}))


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict inside a checkpoint's tensors."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def restore(path: str | os.PathLike, model: torch.nn.Module, optimizer=None, scheduler=None):
    """Load a checkpoint into ``model`` (and optimizer, scheduler); returns ``(info, extra_tensors)``."""
    tensors, header = read_checkpoint(path)
    model.load_state_dict(model_state(tensors))
    if optimizer is not None and "optimizer" in header:
        opt = {k: v for k, v in tensors.items() if k.startswith("optim.")}
        optimizer.load_state_dict(_unflatten_optimizer(opt, header["optimizer"]))
    if scheduler is not None and "scheduler" in header:
        scheduler.load_state_dict(header["scheduler"])
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return header.get("info", {}), extra
