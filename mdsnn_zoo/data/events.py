"""Event recordings: the 40-bit N-MNIST / N-Caltech101 file encoding, and binning events into frames.

An event stream is a dict of equal-length int64 arrays ``x, y, t, p``: pixel column and row, time in
microseconds, polarity (1 = ON, a brightness increase; 0 = OFF).

File encoding (N-MNIST and N-Caltech101, Orchard et al. 2015): 5 bytes per event, big-endian fields
``x`` (8 bits), ``y`` (8 bits), polarity (1 bit) and timestamp (23 bits, µs). An event with
``y == 240`` marks a timestamp overflow: every later timestamp is 2^13 µs later per marker seen.

Recording files other tools write are read too (:func:`read_recording`): a NumPy ``.npy`` structured
array with fields ``x, y, t, p`` (tonic's event arrays), or an ``.npz`` holding arrays ``x, y, t, p``.

Frames (``[T, 2, H, W]`` event counts, channel 0 OFF, channel 1 ON) come in two binnings, as in
SpikingJelly's ``split_by``: ``"time"``, T bins of equal duration over the recording, and ``"count"``,
T bins of equal numbers of events (the first ``n % T`` bins one event more). A split of recordings is
binned once and held in memory (:class:`EventFrames`), cached in ``$MDSNN_HOME/frames`` so that the
next run with the same files and options loads it at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mdsnn_zoo.checkpoint import atomic_write_bytes, atomic_writer
from mdsnn_zoo.errors import CorruptFileError, InvalidValueError
from mdsnn_zoo.paths import cache_dir

if TYPE_CHECKING:
    from mdsnn_zoo.data._base import Transform
    from mdsnn_zoo.data._registry import DatasetInfo

Events = dict[str, np.ndarray]
RECORDING_SUFFIXES = (".bin", ".npy", ".npz")
FIELDS = ("x", "y", "t", "p")
Binning = Literal["time", "count"]
BINNINGS = ("time", "count")
MAX_TIMESTAMP_US = (1 << 23) - 1  # what one event's 23 bits hold (8.39 s)
_OVERFLOW_Y = 240


def decode_events(raw: bytes | np.ndarray, path: Path | str = "<bytes>") -> Events:
    """Events of one recording's bytes as int64 arrays ``x, y, t, p`` (t in µs), overflow markers
    applied and dropped."""
    b = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes) else raw
    if b.size % 5:
        raise CorruptFileError(f"{path} has {b.size} bytes, not a multiple of 5; replace the file")
    b = b.reshape(-1, 5).astype(np.int64)
    x, y = b[:, 0], b[:, 1]
    p = b[:, 2] >> 7
    t = ((b[:, 2] & 0x7F) << 16) | (b[:, 3] << 8) | b[:, 4]
    overflow = y == _OVERFLOW_Y
    t = t + (np.cumsum(overflow) << 13)  # every overflow marker adds 2^13 from itself onwards
    keep = ~overflow
    return {"x": x[keep], "y": y[keep], "t": t[keep], "p": p[keep]}


def encode_events(events: Events) -> bytes:
    """The 40-bit encoding of ``events`` (no overflow markers: timestamps must fit 23 bits)."""
    x, y, t, p = (np.asarray(events[k], dtype=np.int64) for k in ("x", "y", "t", "p"))
    if not x.shape == y.shape == t.shape == p.shape or x.ndim != 1:
        raise InvalidValueError(f"events need 1-d x, y, t, p of one length, got shapes "
                                f"{x.shape}, {y.shape}, {t.shape}, {p.shape}")
    if x.size and (x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255 or (y == _OVERFLOW_Y).any()):
        raise InvalidValueError("event x and y must be in 0..255 with y != 240 (the overflow marker)")
    if t.size and (t.min() < 0 or t.max() > MAX_TIMESTAMP_US):
        raise InvalidValueError(f"event timestamps must be in 0..{MAX_TIMESTAMP_US} µs, got "
                                f"{t.min()}..{t.max()}")
    if p.size and not np.isin(p, (0, 1)).all():
        raise InvalidValueError("event polarity must be 0 (OFF) or 1 (ON)")
    out = np.empty((x.size, 5), dtype=np.uint8)
    out[:, 0], out[:, 1] = x, y
    out[:, 2] = (p << 7) | (t >> 16)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


def write_events(path: Path, events: Events) -> None:
    """Write ``events`` to ``path`` atomically (:func:`mdsnn_zoo.checkpoint.atomic_write_bytes`)."""
    atomic_write_bytes(path, encode_events(events))


def read_events(path: Path) -> Events:
    """Decode the 40-bit events of ``path`` (:func:`decode_events`; the one decoder, whatever else is
    installed: the tests check it against tonic's reader)."""
    return decode_events(path.read_bytes(), path)


def read_recording(path: Path) -> Events:
    """One recording of any of :data:`RECORDING_SUFFIXES` as int64 ``x, y, t, p`` in time order (a
    stable sort when the file's are not); polarity is 1 (ON) where the file's is above 0, else 0, so
    ``{0, 1}``, ``{-1, 1}`` and booleans all read."""
    suffix = path.suffix.lower()
    if suffix not in RECORDING_SUFFIXES:
        raise InvalidValueError(f"{path}: a recording is a {', '.join(RECORDING_SUFFIXES)} file, not {suffix!r}")
    arrays = read_events(path) if suffix == ".bin" else _load_arrays(path, suffix)
    x, y, t = (np.asarray(arrays[k], dtype=np.int64) for k in ("x", "y", "t"))
    p = (np.asarray(arrays["p"]) > 0).astype(np.int64)
    if x.size and (x.min() < 0 or y.min() < 0):
        raise CorruptFileError(f"{path} has negative pixel coordinates; replace the file")
    if t.size > 1 and (np.diff(t) < 0).any():
        order = np.argsort(t, kind="stable")
        x, y, t, p = x[order], y[order], t[order], p[order]
    return {"x": x, "y": y, "t": t, "p": p}


def _load_arrays(path: Path, suffix: str) -> dict[str, np.ndarray]:
    """``x, y, t, p`` of an ``.npy`` structured array or an ``.npz``, checked (never unpickled)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with loaded:
                arrays = {k: loaded[k] for k in FIELDS}
        else:
            arrays = {k: loaded[k] for k in FIELDS}
    except (KeyError, IndexError, ValueError, OSError, EOFError) as exc:
        raise CorruptFileError(
            f"cannot read events from {path} ({exc}): it needs fields {', '.join(FIELDS)} (a structured "
            ".npy array, or arrays of those names in an .npz); replace the file") from None
    if len({a.shape for a in arrays.values()}) != 1 or arrays["t"].ndim != 1:
        raise CorruptFileError(f"{path}: x, y, t, p must be 1-d and of one length, got shapes "
                               f"{[arrays[k].shape for k in FIELDS]}; replace the file")
    floats = [k for k in ("x", "y", "t") if not np.issubdtype(arrays[k].dtype, np.integer)]
    if floats:
        raise CorruptFileError(f"{path}: {', '.join(floats)} must be integers (pixels; time in a unit such as µs), "
                               f"got {arrays[floats[0]].dtype}; save timestamps in seconds as integer "
                               "microseconds (t * 1e6)")
    return arrays


def check_binning(binning: str) -> None:
    """Raise ``ValueError`` unless ``binning`` is one of ``BINNINGS``."""
    if binning not in BINNINGS:
        raise InvalidValueError(f"binning must be one of {', '.join(BINNINGS)}, got {binning!r}")


def _frame_index(t: np.ndarray, time_steps: int, binning: Binning) -> np.ndarray:
    """Which of ``time_steps`` frames each event (timestamps ``t``, in stream order) falls in."""
    if binning == "count":
        return np.arange(t.size, dtype=np.int64) * time_steps // max(t.size, 1)
    t0, span = t.min(), t.max() - t.min() + 1
    return (t - t0) * time_steps // span


def events_to_frames(events: Events, time_steps: int, sensor_size: tuple[int, int],
                     frame_size: tuple[int, int] | None = None, binning: Binning = "time") -> torch.Tensor:
    """Bin events into ``[time_steps, 2, H, W]`` float32 counts.

    ``sensor_size`` is the recording's (height, width); ``frame_size`` (default: the sensor's) scales
    pixel positions to another (H, W) by integer division.
    """
    check_binning(binning)
    sh, sw = sensor_size
    h, w = frame_size or sensor_size
    frames = np.zeros(time_steps * 2 * h * w, dtype=np.float32)
    t = events["t"]
    if t.size:
        step = _frame_index(t, time_steps, binning)
        row = np.clip(events["y"], 0, sh - 1) * h // sh
        col = np.clip(events["x"], 0, sw - 1) * w // sw
        flat = ((step * 2 + events["p"]) * h + row) * w + col
        frames += np.bincount(flat, minlength=frames.size).astype(np.float32)
    return torch.from_numpy(frames).view(time_steps, 2, h, w)


def check_frame_options(time_steps: int, binning: str, frame_size) -> tuple[int, int]:
    """Raise ``ValueError`` for a bad ``time_steps``, ``binning`` or ``frame_size``; returns the size
    as a tuple ``(height, width)``."""
    if not isinstance(time_steps, int) or time_steps < 1:
        raise InvalidValueError(f"time_steps must be a positive int, got {time_steps!r}")
    check_binning(binning)
    return check_size(frame_size, "frame_size")


def check_size(value, what: str) -> tuple[int, int]:
    """``value`` as a ``(height, width)`` tuple of positive ints, else ``ValueError`` naming ``what``."""
    size = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(size) != 2 or not all(isinstance(v, int) and v >= 1 for v in size):
        raise InvalidValueError(f"{what} must be (height, width) of positive ints, got {value!r}")
    return size


# -- a split of recordings, binned once ------------------------------------------------------------------------

class EventFrames(Dataset):
    """Binned recordings held in memory: ``frames: uint8 [N, T, 2, H, W]`` counts (saturating at 255),
    ``targets: int64 [N]``. Samples come as ``x: [T, 2, H, W] float32``."""

    def __init__(self, frames: torch.Tensor, targets: torch.Tensor, info: DatasetInfo,
                 transform: Transform | None = None) -> None:
        if frames.dtype != torch.uint8 or frames.ndim != 5 or len(frames) != len(targets):
            raise InvalidValueError(f"expected uint8 [N, T, 2, H, W] frames and N labels, got "
                                    f"{tuple(frames.shape)} {frames.dtype} and {len(targets)} labels")
        self.frames, self.targets = frames, targets.to(torch.int64)
        self.info, self.transform = info, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.frames[index].to(torch.float32)
        return (self.transform(x) if self.transform else x), int(self.targets[index])

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``indices`` at once: ``x: [N, T, 2, H, W] float32``, ``y: [N] int64``."""
        x = self.frames[indices].to(torch.float32)
        if self.transform is not None:
            x = torch.stack([self.transform(s) for s in x])
        return x, self.targets[indices]


Reader = Callable[[Path], Events]


def bin_recordings(paths: list[Path], time_steps: int, binning: Binning, frame_size: tuple[int, int],
                   sensor_size: tuple[int, int], read: Reader = read_events, progress: bool = False) -> np.ndarray:
    """``uint8 [N, T, 2, H, W]``: each recording's event counts (read by ``read``, on a sensor of
    ``sensor_size`` (height, width)) in ``time_steps`` frames of ``frame_size``; a progress bar if
    ``progress`` and on a terminal."""
    from tqdm import tqdm

    out = np.zeros((len(paths), time_steps, 2, *frame_size), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc="binning events", disable=None if progress else True, leave=False)):
        frames = events_to_frames(read(path), time_steps, sensor_size, frame_size, binning)
        out[i] = frames.clamp_(max=255).numpy()
    return out


def files_digest(paths: list[Path], **options) -> str:
    """A digest of the files (names, sizes, modification times) and the binning options."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cached_frames(name: str, split: str, paths: list[Path], time_steps: int, binning: Binning,
                  frame_size: tuple[int, int], sensor_size: tuple[int, int], read: Reader = read_events,
                  progress: bool = False) -> np.ndarray:
    """:func:`bin_recordings`, kept in ``$MDSNN_HOME/frames`` (written atomically) and loaded from
    there while the files and options stay the same."""
    key = files_digest(paths, time_steps=time_steps, binning=binning, frame_size=list(frame_size),
                     sensor_size=list(sensor_size))
    path = cache_dir() / "frames" / f"{name}-{split}-t{time_steps}-{binning}-{key}.npy"
    if path.exists():
        frames = np.load(path)
        if frames.shape == (len(paths), time_steps, 2, *frame_size) and frames.dtype == np.uint8:
            return frames
    frames = bin_recordings(paths, time_steps, binning, frame_size, sensor_size, read, progress)
    with atomic_writer(path) as f:
        np.save(f, frames)
    return frames
