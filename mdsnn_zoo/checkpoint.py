"""Training checkpoints: safetensors (no pickle), written atomically, with everything resume needs;
and the one atomic write of the package.

A checkpoint holds the model's state, the optimizer's tensors, the random-number state and a JSON
header (config, epoch, step, scheduler, optimizer hyper-parameters, metrics). Every file the package
writes for keeps (checkpoints, weights, event recordings, frame caches, run configs) goes through
:func:`atomic_writer`: a temporary file in the same folder, flushed and fsynced, renamed over the
old one, the folder fsynced, so a process killed mid-write leaves the previous file intact, never a
broken one. :func:`load_checkpoint` is the one reader: tensors, header and the typed config.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mdsnn_zoo.errors import CorruptFileError

if TYPE_CHECKING:
    from mdsnn_zoo.train.config import TrainConfig

_META_KEY = "mdsnn"


# -- the atomic write ----------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: readers see the old file or the whole new one, never
    a part. Streams (``np.save(f, ...)``, a download in chunks); on an exception nothing changes and
    no temporary is left. The file gets the usual permissions (umask), not a temporary's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_writer`."""
    with atomic_writer(path) as f:
        f.write(data)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open a folder)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows: folders cannot be opened, and renames are durable there
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# -- writing -------------------------------------------------------------------------------------------

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


def _write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], header: dict) -> None:
    atomic_write_bytes(path, st_save(tensors, metadata={_META_KEY: json.dumps(header)}))


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
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
    _write(path, tensors, header)


def save_without_optimizer(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy checkpoint ``src`` to ``dst`` without its optimizer state (about half the size for SGD
    with momentum): enough to evaluate, export, distil from, or to stand for a finished run."""
    ck = load_checkpoint(src)
    header = {k: v for k, v in ck.header.items() if k != "optimizer"}
    _write(dst, {k: v for k, v in ck.tensors.items() if not k.startswith("optim.")}, header)


# -- reading -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read: its tensors by stored name (``model.*``, ``optim.*``, ``extra.*``; empty
    when read with ``tensors=False``) and its JSON header (``info``, ``optimizer``, ``scheduler``)."""

    path: Path
    header: dict
    tensors: dict[str, torch.Tensor]

    @property
    def info(self) -> dict:
        """What the run recorded: ``config``, ``step``, ``epoch``, ``best_val_top1``, ``machine``..."""
        return self.header.get("info", {})

    @property
    def config(self) -> TrainConfig | None:
        """The run's :class:`~mdsnn_zoo.train.TrainConfig` (older configs completed as they ran), or
        None for a checkpoint written without one."""
        from mdsnn_zoo.train.config import config_from_dict

        saved = self.info.get("config")
        return None if saved is None else config_from_dict(saved)

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict."""
        return model_state(self.tensors)

    @property
    def extra(self) -> dict[str, torch.Tensor]:
        """The extra tensors (random-number states) by the names they were saved under."""
        return {k[len("extra."):]: v for k, v in self.tensors.items() if k.startswith("extra.")}


def _corrupt(path: Path, why: object) -> CorruptFileError:
    return CorruptFileError(f"{path} is not a readable mdsnn-zoo checkpoint ({why}); delete it and resume from an "
                            "earlier one or start again")


def _parse_header(path: Path, head: bytes, size: int) -> dict:
    """The mdsnn header of a safetensors file from its first bytes (``head``: at least the 8-byte
    length and the JSON table), checked against the file's ``size`` in bytes."""
    if len(head) < 8:
        raise _corrupt(path, "shorter than a safetensors header")
    (n,) = struct.unpack("<Q", head[:8])
    if 8 + n > len(head):
        raise _corrupt(path, "its header runs past the end of the file")
    try:
        table = json.loads(head[8:8 + n])
        ends = [v["data_offsets"][1] for k, v in table.items() if k != "__metadata__"]
        if 8 + n + max(ends, default=0) != size:
            raise ValueError(f"{size} bytes where its table says {8 + n + max(ends, default=0)}")
        return json.loads((table.get("__metadata__") or {}).get(_META_KEY, "{}"))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise _corrupt(path, exc) from None


def load_checkpoint(path: str | os.PathLike, *, tensors: bool = True) -> Checkpoint:
    """Read a checkpoint: its header and (unless ``tensors=False``, for the header alone without
    reading the weights) its tensors. A missing file raises FileNotFoundError, a damaged one
    :class:`~mdsnn_zoo.errors.CorruptFileError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if tensors:
            raw = f.read()
        else:
            head = f.read(8)
            raw = head + f.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else head
    header = _parse_header(path, raw, size)
    if not tensors:
        return Checkpoint(path, header, {})
    try:
        return Checkpoint(path, header, st_load(raw))
    except (SafetensorError, ValueError) as exc:
        raise _corrupt(path, exc) from None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors of a checkpoint (by their stored names) and its JSON header: :func:`load_checkpoint`
    as a pair."""
    ck = load_checkpoint(path)
    return ck.tensors, ck.header


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict inside a checkpoint's tensors."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def restore(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
            scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Load a checkpoint into ``model`` (and optimizer, scheduler); returns ``(info, extra_tensors)``."""
    ck = load_checkpoint(path)
    model.load_state_dict(ck.model_state)
    if optimizer is not None and "optimizer" in ck.header:
        opt = {k: v for k, v in ck.tensors.items() if k.startswith("optim.")}
        optimizer.load_state_dict(_unflatten_optimizer(opt, ck.header["optimizer"]))
    if scheduler is not None and "scheduler" in ck.header:
        scheduler.load_state_dict(ck.header["scheduler"])
    return ck.info, ck.extra
