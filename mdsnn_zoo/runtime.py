"""Run an exported hardware-exact student with NumPy alone: ``IntegerModel.load(PATH).predict(x)``.

This module imports NumPy and the standard library only, so it runs where PyTorch is absent and can
be copied out alone. ``PATH`` is what ``mdsnn-zoo export NAME --format int --out PATH`` writes: a
folder with ``graph.json`` (the layers in order, their shapes, bit widths and integer constants, the
time steps and the input contract) and ``weights.safetensors`` (integer arrays: weight codes, the
per-channel multipliers ``M`` and shifts ``e`` of the scales ``M 2^e``, biases), whose sha256 the
graph records. A layer's b-bit weight codes are packed b bits each, least significant bit first, as
``code - code_offset`` (:func:`pack_codes`; the zoo's weight files use the same layout).

Every value between layers is a fixed-point array ``num 2^exp`` (``num`` int64, one ``exp`` for the
array): spikes are ``{0, 1}`` with ``exp = 0``. The input layer sums its codes over the float input
in float64 (exact for 8-bit pixels and event counts), adds its bias and rounds the current once to
the next neuron's bias grid, as the PyTorch student does; from there on the arithmetic is integer:

- conv / linear: ``acc = Σ q x`` (integer), then ``acc M_c 2^(e_c + exp) + B 2^bias_exp``;
- add (membrane shortcuts): both terms shifted to the smaller exponent;
- max pooling of spikes, global average pooling as a sum and a shift (a power-of-two area);
- LIF (``u_bits`` b, step ``Δ = 2^e``, leak ``tau = 2^k``), in grid units with F fraction bits:
  ``H = v 2^(F+k) + X_F - (v - r) 2^F``, ``q = clamp((H + 2^(F+k-1)) >> (F+k), -(2^b - 1), 0)``
  (ties up), spike ``q >= 0``, then ``v = r`` (hard reset) or ``q - θ`` (soft);
- the output: the classifier's logits summed over the T steps (its integer membrane); the class is
  their argmax.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT, VERSION = "mdsnn-int", 2
GRAPH_FILE, WEIGHTS_FILE = "graph.json", "weights.safetensors"
_DTYPES = {"I8": np.int8, "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
           "F32": np.float32, "F64": np.float64}
_CHUNK = 32  # images per matrix product (bounds the memory of the unfolded inputs)


def pack_codes(u: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers ``u < 2^bits`` (any shape) -> flat uint8, ``bits`` bits each, least
    significant bit first (``ceil(u.size * bits / 8)`` bytes)."""
    flat = np.asarray(u).reshape(-1).astype(np.uint8)
    planes = (flat[:, None] >> np.arange(bits, dtype=np.uint8)) & 1  # [n, bits]
    return np.packbits(planes.reshape(-1), bitorder="little")


def unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The inverse of :func:`pack_codes`: the first ``count`` integers, int64 ``[count]``."""
    planes = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[: count * bits].reshape(count, bits)
    return (planes.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(1)


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file; a damaged or truncated one raises ValueError naming it."""
    path = Path(path)
    raw = path.read_bytes()

    def damaged(why: str) -> ValueError:
        return ValueError(f"{path} is damaged ({why}); export the model again")

    if len(raw) < 8:
        raise damaged("shorter than its header")
    size = struct.unpack("<Q", raw[:8])[0]
    if 8 + size > len(raw):
        raise damaged("truncated header")
    try:
        header = json.loads(raw[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(f"unreadable header: {exc}") from None
    data = memoryview(raw)[8 + size:]
    arrays = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_DTYPES[spec["dtype"]])
            start, end = spec["data_offsets"]
            shape = tuple(spec["shape"])
        except (KeyError, TypeError, ValueError):
            raise damaged(f"bad entry for {name!r}") from None
        if not 0 <= start <= end <= len(data) or end - start != dtype.itemsize * int(np.prod(shape)):
            raise damaged(f"{name!r} lies outside the file")
        arrays[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(shape)
    return arrays


@dataclass
class Fixed:
    """A fixed-point array: the values ``num · 2^exp`` (``num`` int64)."""

    num: np.ndarray
    exp: int

    def at(self, exp: int) -> np.ndarray:
        """``num`` rescaled to the (smaller or equal) exponent ``exp``."""
        return self.num << (self.exp - exp)


def _unfold(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
            ) -> np.ndarray:
    """``x [B, C, H, W]`` -> patches ``[B, OH, OW, C kh kw]`` (zero padding)."""
    ph, pw = padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))  # [B, C, H', W', kh, kw]
    windows = windows[:, :, ::stride[0], ::stride[1]]
    b, c, oh, ow, kh, kw = windows.shape
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(b, oh, ow, c * kh * kw)


def _affine(x: np.ndarray, node: dict, codes: np.ndarray, dtype: type) -> np.ndarray:
    """``Σ q x`` of a convolution (``x [B, C, H, W]`` -> ``[B, O, OH, OW]``) or a linear layer
    (``x [B, F]`` -> ``[B, O]``), summed in ``dtype`` (exact: the sums are integers, or float64 sums
    of float32 inputs times small codes, below the significand's size)."""
    w = codes.reshape(codes.shape[0], -1).T.astype(dtype)  # [K, O]
    if node["op"] == "linear":
        return x.astype(dtype) @ w
    outs = []
    for i in range(0, len(x), _CHUNK):
        cols = _unfold(x[i:i + _CHUNK].astype(dtype), tuple(codes.shape[2:]), tuple(node["stride"]),
                       tuple(node["padding"]))
        out = cols.reshape(-1, cols.shape[-1]) @ w  # one matrix product: [B OH OW, K] @ [K, O]
        outs.append(out.reshape(*cols.shape[:3], -1).transpose(0, 3, 1, 2))
    return np.concatenate(outs)


class IntegerModel:
    """An exported hardware-exact student. ``load(PATH)``; ``predict(x)`` -> class indices ``[N]``;
    ``run(x)`` -> every LIF layer's spikes and the output's integer membrane."""

    def __init__(self, graph: dict, arrays: dict[str, np.ndarray], where: str = "the graph") -> None:
        if graph.get("format") != FORMAT or graph.get("version") != VERSION:
            raise ValueError(f"{where} is not an mdsnn-zoo integer model of version {VERSION} (format "
                             f"{graph.get('format')!r}, version {graph.get('version')!r}); export it again")
        self.graph, self.arrays = graph, arrays
        self.time_steps: int = graph["time_steps"]
        self.input: dict = graph["input"]
        missing = [name for node in graph["nodes"] for key, name in node.items()
                   if key in ("weight", "multiplier", "exponent", "bias") and name not in arrays]
        if missing:
            raise ValueError(f"{where} names arrays its weights file lacks ({', '.join(missing[:3])}); export it again")
        self.codes = {node["weight"]: self._unpacked(node, where) for node in graph["nodes"] if "weight" in node}

    def _unpacked(self, node: dict, where: str) -> np.ndarray:
        """A layer's weight codes, int64 of its ``shape``, from their packed bytes."""
        packed, bits, shape = self.arrays[node["weight"]], node["bits"], tuple(node["shape"])
        count = int(np.prod(shape))
        if packed.dtype != np.uint8 or packed.size != -(-count * bits // 8):
            raise ValueError(f"{where}: {node['weight']} holds {packed.size} {packed.dtype} values, not the "
                             f"{-(-count * bits // 8)} bytes of {count} {bits}-bit codes; export it again")
        return (unpack_codes(packed, bits, count) + node["code_offset"]).reshape(shape)

    @classmethod
    def load(cls, path: str | Path) -> IntegerModel:
        """Read the folder ``path`` (or its ``graph.json``) written by ``mdsnn-zoo export --format int``,
        checking the weights against the sha256 the graph records."""
        path = Path(path)
        folder = path.parent if path.is_file() else path
        graph_path, weights_path = folder / GRAPH_FILE, folder / WEIGHTS_FILE
        for p in (graph_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"no {p.name} in {folder}: give the folder `mdsnn-zoo export --format int "
                                        "--out PATH` wrote")
        try:
            graph = json.loads(graph_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{graph_path} is damaged ({exc}); export the model again") from None
        digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
        if digest != graph.get("weights_sha256"):
            raise ValueError(f"{weights_path} does not match its graph (sha256 {digest[:12]}..., the graph expects "
                             f"{str(graph.get('weights_sha256'))[:12]}...): a damaged or replaced file; export again")
        return cls(graph, read_safetensors(weights_path), str(graph_path))

    # -- input --------------------------------------------------------------------------------------

    def _time_major(self, x: Any) -> np.ndarray:
        """The checked input as ``[T, N, C, H, W]`` float (static images: ``T = 1``, broadcast)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a NumPy array, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x must be float32 (as a DataLoader over get_dataset yields it), got {x.dtype}")
        shape = tuple(self.input["shape"])
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"x has shape {list(x.shape)}, this model takes [N, {', '.join(map(str, shape))}] "
                             f"({self.input['kind']} input)")
        if self.input["kind"] == "events":
            return x.transpose(1, 0, 2, 3, 4)
        return x[None]

    # -- layers -------------------------------------------------------------------------------------

    def _linear(self, v: Fixed | np.ndarray, node: dict) -> Fixed:
        codes = self.codes[node["weight"]]
        m = self.arrays[node["multiplier"]].astype(np.int64)
        e = self.arrays[node["exponent"]].astype(np.int64)
        bias = self.arrays[node["bias"]].astype(np.int64) if node.get("bias") else np.zeros(len(m), np.int64)
        bias_exp = node.get("bias_exp", 0)
        if isinstance(v, np.ndarray):  # the input layer: float input, float64 sums, one rounding
            lead = v.shape[:2]
            acc = _affine(v.reshape(-1, *v.shape[2:]), node, codes, np.float64)
            shape = (1, -1) + (1,) * (acc.ndim - 2)
            scale = m.astype(np.float64) * np.exp2(e.astype(np.float64))
            current = acc * scale.reshape(shape) + (bias * 2.0**bias_exp).reshape(shape)
            num = np.rint(current / 2.0**bias_exp).astype(np.int64)
            return Fixed(num.reshape(*lead, *num.shape[1:]), bias_exp)
        lead = v.num.shape[:2]
        flat = v.num.reshape(-1, *v.num.shape[2:])
        bound = np.abs(flat).max(initial=0) * np.abs(codes).max(initial=0) * codes[0].size
        acc = _affine(flat, node, codes, np.float32 if bound < 2**24 else np.float64).astype(np.int64)
        shape = (1, -1) + (1,) * (acc.ndim - 2)
        exp = min(int(e.min()) + v.exp, bias_exp)
        num = (acc * m.reshape(shape)) << (e + v.exp - exp).reshape(shape)
        num = num + (bias << (bias_exp - exp)).reshape(shape)
        return Fixed(num.reshape(*lead, *num.shape[1:]), exp)

    def _lif(self, v: Fixed, node: dict) -> np.ndarray:
        """Spikes ``int8 [T, N, ...]`` of an integer LIF layer driven by the current ``v``."""
        k, e_delta = node["tau_shift"], node["delta_exp"]
        frac = max(0, e_delta - v.exp)
        x = v.num << (v.exp - e_delta + frac)  # x / Δ · 2^frac
        one = frac + k
        half = 1 << (one - 1) if one > 0 else 0
        qmin, theta, r = -(2 ** node["u_bits"] - 1), node["theta"], node["reset"]
        state = np.full(x.shape[1:], node["v0"], dtype=np.int64)
        spikes = np.empty((self.time_steps, *x.shape[1:]), dtype=np.int8)
        for t in range(self.time_steps):
            xt = x[t if len(x) > 1 else 0]
            leak = (state - r) << frac
            h = (state << one) + xt - leak if node["decay_input"] else (state << one) - leak + (xt << k)
            q = np.clip((h + half) >> one, qmin, 0)
            fired = q >= 0
            spikes[t] = fired
            state = np.where(fired, r, q) if node["hard_reset"] else q - theta * fired
        return spikes

    @staticmethod
    def _maxpool(v: Fixed, node: dict) -> Fixed:
        (kh, kw), (sh, sw) = node["kernel"], node["stride"]
        x = v.num
        oh, ow = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
        out = None
        for i in range(kh):
            for j in range(kw):
                part = x[..., i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                out = part if out is None else np.maximum(out, part)
        return Fixed(out, v.exp)

    @staticmethod
    def _avgpool(v: Fixed) -> Fixed:
        area = v.num.shape[-1] * v.num.shape[-2]
        if area & (area - 1):
            raise ValueError(f"global average pooling over {area} positions is not a shift; an input size whose "
                             "last feature map has a power-of-two area is needed")
        return Fixed(v.num.sum(axis=(-2, -1), keepdims=True), v.exp - (area.bit_length() - 1))

    # -- the network --------------------------------------------------------------------------------

    def _forward(self, x: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Every value of the graph by name, and every LIF layer's spikes by layer name."""
        values: dict[str, Any] = {"input": self._time_major(x)}
        spikes: dict[str, np.ndarray] = {}
        for node in self.graph["nodes"]:
            op, source = node["op"], node["in"]
            v = values[source] if isinstance(source, str) else None
            if op in ("conv", "linear"):
                out = self._linear(v, node)
            elif op == "lif":
                out = Fixed(self._lif(v, node).astype(np.int64), 0)
                spikes[node["name"]] = out.num.astype(np.int8)
            elif op == "maxpool":
                out = self._maxpool(v, node)
            elif op == "avgpool":
                out = self._avgpool(v)
            elif op == "flatten":
                out = Fixed(v.num.reshape(*v.num.shape[:2], -1), v.exp)
            elif op == "add":
                a, b = (values[name] for name in node["in"])
                exp = min(a.exp, b.exp)
                out = Fixed(a.at(exp) + b.at(exp), exp)
            else:
                raise ValueError(f"the graph has an operation this runtime does not know: {op!r}; update mdsnn-zoo")
            values[node["out"]] = out
        return values, spikes

    def trace(self, x: np.ndarray) -> dict[str, Fixed | np.ndarray]:
        """Every value the graph makes of ``x``, by name: the input ``[T, N, ...]`` float, then
        fixed-point values ``[T, N, ...]`` (``T`` 1 for a static image's input layer)."""
        return self._forward(x)[0]

    def run(self, x: np.ndarray) -> dict[str, Any]:
        """``{"spikes": {LIF layer name: int8 [T, N, ...]}, "output": int64 [N, classes],
        "output_exp": e}``: every LIF layer's spikes and the classifier's logits summed over the T
        steps, ``output · 2^output_exp`` (its integer membrane), for ``x`` as :meth:`predict` takes it."""
        values, spikes = self._forward(x)
        logits = values[self.graph["output"]]
        total = logits.num.sum(axis=0) if len(logits.num) > 1 else logits.num[0] * self.time_steps
        return {"spikes": spikes, "output": total, "output_exp": logits.exp}

    def predict(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class indices ``int64 [N]`` for a batch as a DataLoader over ``get_dataset(...)`` yields it:
        float32 images ``[N, C, H, W]`` or event frames ``[N, T, 2, H, W]``, run ``batch_size`` at a
        time (the membranes of every layer are held for a batch)."""
        self._time_major(x)  # checked whole, before any work
        return np.concatenate([self.run(x[i:i + batch_size])["output"].argmax(axis=1)
                               for i in range(0, len(x), batch_size)] or [np.zeros(0, np.int64)])
