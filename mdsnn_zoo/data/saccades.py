"""Still images to event recordings: a DVS pixel model watching an image move in three saccades.

This is how N-MNIST and N-Caltech101 were recorded (Orchard et al., "Converting static image datasets
to spiking neuromorphic datasets using saccades", Front. Neurosci. 2015): an ATIS camera on a pan-tilt
unit made three straight saccades of about 100 ms each, a triangle of a few pixels, in front of a
monitor showing the image; 28x28 digits became 34x34 recordings of about 300 ms. v2e (Hu et al.,
CVPR-W 2021) and ESIM (Rebecq et al., CoRL 2018) simulate such a sensor from rendered frames; the
pixel model below is theirs in its simplest form, written for this project.

The model, with every parameter in :class:`DVSParams`:

1. **Motion.** The image (intensities in [0, 1], black 0) is placed on a ``sensor_size`` grid with its
   top-left corner at a point that moves along the triangle ``vertices`` (pixels), one straight
   saccade of ``saccade_us`` per side, rendered every ``frame_us`` (1 kHz by default) with bilinear
   sub-pixel shifts (positions in 1/256 pixel). Outside the image the sensor sees black.
2. **Pixel.** Each pixel holds log(I + ``dark_floor``), the floor standing for the monitor's black
   level and the photoreceptor's dark current (v2e and ESIM add a small offset for the same reason),
   and a reference level, first set to the first frame's value (as both simulators do). Whenever the
   log intensity moves one threshold above (below) the reference, the pixel emits an ON (OFF) event
   and the reference moves one threshold that way; several crossings between two frames give several
   events. ON and OFF thresholds are drawn per pixel, once per sensor, from a normal distribution of
   mean ``threshold`` and spread ``threshold_sigma`` (v2e's defaults: 0.2 and 0.03), floored at
   ``min_threshold``.
3. **Timestamps.** Between two frames the log intensity is taken to change linearly, and each crossing
   is stamped where it falls on that line, in whole microseconds.
4. **Noise** (``noise="noisy"``; off by default, as v2e's ``clean`` preset): leak events, the reference
   drifting down by ``leak_rate_hz`` thresholds a second so that ON events appear on their own, and
   shot noise, events of random polarity at random times at ``shot_noise_rate_hz`` per pixel.

Everything after drawing the random numbers is integer arithmetic (log intensity in fixed point
through a table, exact sub-pixel weights), and the random numbers come from generators seeded by
(``seed``, sample key), so a recording is the same on every machine, byte for byte, whatever order
samples are made in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mdsnn_zoo.data.events import Events
from mdsnn_zoo.errors import InvalidValueError

_SUBPIXEL = 256  # positions and bilinear weights in 1/256 pixel
_FULL = 255 * 16 * _SUBPIXEL * _SUBPIXEL  # white: uint8 x16 (the optics kernel's sum) x bilinear weights
_LOG_ONE = 1 << 16  # fixed-point log intensity: 2^16 units per natural-log unit
_TABLE_SHIFT = 16  # the log table has one entry per 2^16 intensity units (4081 entries)


@dataclass(frozen=True)
class DVSParams:
    """The sensor, the saccades and the pixel model (defaults: N-MNIST's recording, v2e's pixel)."""

    sensor_size: tuple[int, int] = (34, 34)  # (height, width), N-MNIST's
    vertices: tuple[tuple[float, float], ...] = ((0.0, 0.0), (3.0, 6.0), (6.0, 0.0))  # (x, y) of the corner
    saccade_us: int = 105_000  # one side of the triangle; three make a 315 ms recording
    frame_us: int = 1_000  # rendering interval: 1 kHz
    blur: bool = True  # the lens and the monitor: a 3x3 binomial kernel (sigma ~0.7 px)
    dark_floor: float = 0.05  # added to intensity in [0, 1] before the log
    threshold: float = 0.2  # mean ON and OFF contrast threshold, natural-log units (v2e)
    threshold_sigma: float = 0.03  # per-pixel spread of the thresholds (v2e)
    min_threshold: float = 0.01  # no pixel's threshold below this
    noise: Literal["clean", "noisy"] = "clean"
    leak_rate_hz: float = 0.1  # "noisy" only: reference drift, thresholds per second (v2e noisy preset)
    shot_noise_rate_hz: float = 5.0  # "noisy" only: random events per pixel per second (v2e noisy preset)
    seed: int = 0

    def __post_init__(self) -> None:
        h, w = self.sensor_size
        if min(h, w) < 1 or max(h, w) > 240:
            raise InvalidValueError(f"sensor_size must be (height, width) in 1..240, got {self.sensor_size}")
        if len(self.vertices) < 2:
            raise InvalidValueError("vertices must name at least two points of the saccade path")
        if self.frame_us < 1 or self.saccade_us % self.frame_us:
            raise InvalidValueError(f"saccade_us ({self.saccade_us}) must be a positive multiple of "
                                    f"frame_us ({self.frame_us})")
        if self.duration_us() > (1 << 23) - 1:
            raise InvalidValueError(f"a recording of {self.duration_us()} µs does not fit 23-bit "
                                    "timestamps (8.39 s); use fewer or shorter saccades")
        if not 0 < self.dark_floor <= 1:
            raise InvalidValueError(f"dark_floor must be in (0, 1], got {self.dark_floor}")
        if self.threshold <= 0 or self.threshold_sigma < 0 or self.min_threshold <= 0:
            raise InvalidValueError("threshold and min_threshold must be > 0 and threshold_sigma >= 0")
        if self.noise not in ("clean", "noisy"):
            raise InvalidValueError(f"noise must be 'clean' or 'noisy', got {self.noise!r}")
        if self.leak_rate_hz < 0 or self.shot_noise_rate_hz < 0:
            raise InvalidValueError("leak_rate_hz and shot_noise_rate_hz must be >= 0")

    def duration_us(self) -> int:
        """Length of a recording: one saccade per side of the closed path."""
        return len(self.vertices) * self.saccade_us

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _log_table(dark_floor: float) -> np.ndarray:
    """Fixed-point log(I + dark_floor) at every 2^_TABLE_SHIFT-th intensity unit (I = units / _FULL)."""
    units = np.arange((_FULL >> _TABLE_SHIFT) + 2, dtype=np.float64) * (1 << _TABLE_SHIFT)
    return np.rint(np.log(units / _FULL + dark_floor) * _LOG_ONE).astype(np.int64)


def _log_intensity(units: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Fixed-point log intensity of integer intensities, linear between table entries."""
    i, frac = units >> _TABLE_SHIFT, units & ((1 << _TABLE_SHIFT) - 1)
    return table[i] + (((table[i + 1] - table[i]) * frac) >> _TABLE_SHIFT)


def corner_path(params: DVSParams) -> np.ndarray:
    """``int64 [F + 1, 2]``: the image's top-left corner (x, y) at each rendered frame, 1/256 pixel."""
    v = np.rint(np.asarray(params.vertices, dtype=np.float64) * _SUBPIXEL).astype(np.int64)
    v = np.concatenate([v, v[:1]])  # a closed path: back to the start
    steps = params.saccade_us // params.frame_us
    s = np.arange(steps, dtype=np.int64)[:, None]
    sides = [v[i] + (v[i + 1] - v[i]) * s // steps for i in range(len(v) - 1)]
    return np.concatenate(sides + [v[-1:]])


def _optics(images: np.ndarray, blur: bool) -> np.ndarray:
    """``int64 [B, h + 2, w + 2]``: the images x16 through the 3x3 binomial kernel (or not), on a
    black border one pixel wide."""
    x = np.pad(images.astype(np.int64), ((0, 0), (2, 2), (2, 2)))
    if blur:
        x = x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]
        return x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]
    return x[:, 1:-1, 1:-1] * 16


def _frame(padded: np.ndarray, corner: np.ndarray, sensor_size: tuple[int, int]) -> np.ndarray:
    """``int64 [B, H * W]``: what the sensor sees with the images' corner at ``corner`` (x, y in
    1/256 pixel), intensity in 1/_FULL units. Image pixel (i, j) covers sensor area [x + j, x + j + 1)
    x [y + i, y + i + 1); ``padded`` is :func:`_optics`' output."""
    h, w = sensor_size
    out = padded
    for axis, size, pos in ((1, h, corner[1]), (2, w, corner[0])):  # bilinear: rows, then columns
        whole, frac = pos // _SUBPIXEL, pos % _SUBPIXEL
        # sensor row r sees image rows r - y - 1 and r - y (padded: one more), weighted frac and
        # 256 - frac; indices past the image land on the black border
        first = np.clip(np.arange(size) - whole, 0, padded.shape[axis] - 1)
        second = np.clip(np.arange(size) - whole + 1, 0, padded.shape[axis] - 1)
        out = np.take(out, first, axis=axis) * frac + np.take(out, second, axis=axis) * (_SUBPIXEL - frac)
    return out.reshape(len(padded), h * w)


def sensor_thresholds(params: DVSParams) -> tuple[np.ndarray, np.ndarray]:
    """The sensor's per-pixel (ON, OFF) thresholds, fixed-point ``int64 [H, W]``, drawn from ``seed``."""
    rng = np.random.default_rng([params.seed, 0x5E45])
    out = []
    for _ in range(2):
        theta = params.threshold + params.threshold_sigma * rng.standard_normal(params.sensor_size)
        out.append(np.rint(np.maximum(theta, params.min_threshold) * _LOG_ONE).astype(np.int64))
    return out[0], out[1]


def _crossings(count: np.ndarray, start: np.ndarray, step: np.ndarray, prev: np.ndarray, cur: np.ndarray,
               frame_us: int, sign: int) -> np.ndarray:
    """Times (µs into the frame) of ``count`` crossings of levels ``start + sign * j * step``
    (j = 1..count) by a log intensity going linearly from ``prev`` to ``cur``; per pixel in order."""
    first = np.cumsum(count) - count
    j = np.arange(int(count.sum())) - np.repeat(first, count) + 1
    gone = np.repeat(start - prev, count) * sign + j * np.repeat(step, count)  # distance to the level
    rise = np.repeat((cur - prev) * sign, count)  # > 0 wherever a level was crossed
    return np.clip(gone * frame_us // np.maximum(rise, 1), 0, frame_us)


def _noise(params: DVSParams, key: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shot-noise events of one recording: (pixel, t, p), from a generator seeded by (seed, *key)."""
    h, w = params.sensor_size
    rng = np.random.default_rng([params.seed, *key])
    n = int(rng.poisson(params.shot_noise_rate_hz * params.duration_us() / 1e6 * h * w))
    return rng.integers(0, h * w, n), rng.integers(0, params.duration_us(), n), rng.integers(0, 2, n)


def saccade_recordings(images: np.ndarray, params: DVSParams, keys: list[tuple[int, ...]]) -> list[Events]:
    """The recordings of ``images`` (``uint8 [B, h, w]``): per image, events ``x, y, t, p`` sorted by
    time (stable). ``keys[b]`` (e.g. ``(split, index)``) seeds image b's noise; the thresholds are the
    sensor's, the same for every image."""
    if len(keys) != len(images):
        raise InvalidValueError(f"{len(images)} images need as many keys, got {len(keys)}")
    h, w = params.sensor_size
    b, hw = len(images), h * w
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InvalidValueError(f"images must be uint8 [N, height, width], got {images.dtype} {images.shape}")
    padded, corners, table = _optics(images, params.blur), corner_path(params), _log_table(params.dark_floor)
    thresholds = [np.tile(t.reshape(-1), b) for t in sensor_thresholds(params)]  # [B * H * W] each
    noisy = params.noise == "noisy"
    leak = np.rint(thresholds[0] * (params.leak_rate_hz * params.frame_us / 1e6)).astype(np.int64)
    cur = _log_intensity(_frame(padded, corners[0], params.sensor_size).reshape(-1), table)
    ref = cur.copy()
    pixels, times, polarity = [], [], []
    for k in range(1, len(corners)):
        prev, cur = cur, _log_intensity(_frame(padded, corners[k], params.sensor_size).reshape(-1), table)
        if noisy:
            ref -= leak
        for pol, sign in ((1, 1), (0, -1)):
            theta = thresholds[pol == 0]
            count = np.maximum((cur - ref) * sign, 0) // theta
            fired = np.flatnonzero(count)
            if fired.size == 0:
                continue
            n = count[fired]
            t = _crossings(n, ref[fired], theta[fired], prev[fired], cur[fired], params.frame_us, sign)
            ref[fired] += sign * n * theta[fired]
            pixels.append(np.repeat(fired, n))
            times.append(t + (k - 1) * params.frame_us)
            polarity.append(np.full(t.size, pol, dtype=np.int64))
    pix, t, p = (np.concatenate(a) if a else np.zeros(0, dtype=np.int64) for a in (pixels, times, polarity))
    sample = pix // hw
    order = np.lexsort((t, sample))  # by sample, then time; stable
    pix, t, p, sample = pix[order] % hw, t[order], p[order], sample[order]
    bounds = np.searchsorted(sample, np.arange(b + 1))
    out = []
    for i in range(b):
        s = slice(bounds[i], bounds[i + 1])
        ev_pix, ev_t, ev_p = pix[s], t[s], p[s]
        if noisy:
            n_pix, n_t, n_p = _noise(params, keys[i])
            ev_pix, ev_t, ev_p = (np.concatenate(a) for a in ((ev_pix, n_pix), (ev_t, n_t), (ev_p, n_p)))
            by_time = np.argsort(ev_t, kind="stable")
            ev_pix, ev_t, ev_p = ev_pix[by_time], ev_t[by_time], ev_p[by_time]
        out.append({"x": ev_pix % w, "y": ev_pix // w, "t": ev_t, "p": ev_p})
    return out


def saccade_events(image: np.ndarray, params: DVSParams, key: tuple[int, ...] = ()) -> Events:
    """The recording of one ``uint8 [h, w]`` image (see :func:`saccade_recordings`)."""
    return saccade_recordings(image[None], params, [key])[0]
