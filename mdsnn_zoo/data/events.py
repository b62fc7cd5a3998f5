"""Event recordings: the 40-bit N-MNIST / N-Caltech101 file encoding, and binning events into frames.

An event stream is a dict of equal-length int64 arrays ``x, y, t, p``: pixel column and row, time in
microseconds, polarity (1 = ON, a brightness increase; 0 = OFF).

File encoding (N-MNIST and N-Caltech101, Orchard et al. 2015): 5 bytes per event, big-endian fields
``x`` (8 bits), ``y`` (8 bits), polarity (1 bit) and timestamp (23 bits, µs). An event with
``y == 240`` marks a timestamp overflow: every later timestamp is 2^13 µs later per marker seen.

Frames (``[T, 2, H, W]`` event counts, channel 0 OFF, channel 1 ON) come in two binnings, as in
SpikingJelly's ``split_by``: ``"time"``, T bins of equal duration over the recording, and ``"count"``,
T bins of equal numbers of events (the first ``n % T`` bins one event more).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mdsnn_zoo.errors import CorruptFileError, InvalidValueError

Events = dict[str, np.ndarray]
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
    """Write ``events`` to ``path`` atomically (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(encode_events(events))
    os.replace(tmp, path)


def read_events(path: Path) -> Events:
    """Decode ``path`` with tonic when the ``events`` extra is installed, else with numpy."""
    try:
        from tonic.io import read_mnist_file
    except ImportError:
        return decode_events(path.read_bytes(), path)
    dtype = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
    if path.stat().st_size % 5:
        raise CorruptFileError(f"{path} has a size that is not a multiple of 5; replace the file")
    events = read_mnist_file(str(path), dtype=dtype)
    return {k: np.asarray(events[k], dtype=np.int64) for k in ("x", "y", "t", "p")}


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
