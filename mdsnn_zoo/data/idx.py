"""Reader of the IDX format (MNIST, Fashion-MNIST), plain or gzip-compressed.

Layout: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), a byte with the number of dimensions d, then d big-endian uint32 sizes, then the
values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from mdsnn_zoo.errors import CorruptFileError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _parse_header(head: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _TYPES:
        raise CorruptFileError(f"{path} is not an IDX file (bad magic number); replace the file")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise CorruptFileError(f"{path} ends inside its IDX header; replace the file")
    shape = struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
    return np.dtype(_TYPES[head[2]]), tuple(shape), 4 + 4 * ndim


def read_idx_shape(path: str | Path) -> tuple[int, ...]:
    """The array shape in the header of IDX file ``path``, without reading the values."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4 + 4 * 255)
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"cannot read {path}: {exc}; replace the file") from None
    return _parse_header(head, path)[1]


def read_idx(path: str | Path) -> np.ndarray:
    """The whole array stored in IDX file ``path`` (native byte order)."""
    path = Path(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"cannot read {path}: {exc}; replace the file") from None
    dtype, shape, offset = _parse_header(raw, path)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise CorruptFileError(
            f"{path} holds {len(raw) - offset} bytes of values, its header promises {expected} "
            f"(shape {shape}); the file is truncated or corrupt: replace it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}
    code = codes[array.dtype.newbyteorder("=")]
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array).astype(_TYPES[code]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(head + body)
