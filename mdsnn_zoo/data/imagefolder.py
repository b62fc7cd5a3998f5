"""Your own images in torchvision's ``ImageFolder`` layout: ``DIR/<split>/<class>/<image>``.

Splits, classes and labels follow :mod:`mdsnn_zoo.data._folders`. Files with torchvision's image
extensions are read (``.jpg``, ``.jpeg``, ``.png``, ``.ppm``, ``.bmp``, ``.pgm``, ``.tif``, ``.tiff``,
``.webp``, any case); others are ignored.

Each image, whatever its size and PIL mode (16-bit greyscale is scaled to 8 bits; 32-bit float is
refused), becomes the model's input: converted to greyscale (``channels=1``, PIL mode ``L``) or RGB
(``channels=3``) and resized to ``size`` (an int or ``(height, width)``; bilinear) when it differs.
Without ``channels``/``size`` they are the first training image's (greyscale if its mode is a single
band); fine-tuning a zoo model passes that model's own. Normalisation uses ``mean``/``std`` when
given, else the per-channel mean and standard deviation of the train split's pixels (scaled to
[0, 1]). A split is decoded once into memory (``uint8 [N, C, H, W]``) and kept for the process, so
the trainer's fast in-memory path reads it.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import torch

from mdsnn_zoo.data._base import TensorImageDataset, Transform
from mdsnn_zoo.data._folders import ClassFolders, classes, find_split, first_split, template_info
from mdsnn_zoo.data._registry import DatasetInfo, DatasetSpec, register_dataset
from mdsnn_zoo.errors import CorruptFileError, InvalidValueError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
INFO = template_info("imagefolder", "static", 3, "your own labelled images", "that of your images")
FILES = ClassFolders(IMAGE_SUFFIXES, "image")


def _shape_options(root: Path, channels: int | None, size: int | tuple[int, int] | list[int] | None
                   ) -> tuple[int, int, int]:
    """(channels, height, width) the images become; defaults from the first training image."""
    if channels is None or size is None:
        with _open(FILES.samples(first_split(root), root)[0][0]) as img:
            channels = channels or (1 if len(img.getbands()) == 1 else 3)
            size = size or (img.height, img.width)
    if channels not in (1, 3):
        raise InvalidValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not (isinstance(h, int) and isinstance(w, int) and h >= 1 and w >= 1):
        raise InvalidValueError(f"size must be an int or (height, width) of positive ints, got {size!r}")
    return channels, h, w


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CorruptFileError(f"cannot decode image {path}: {exc}; replace or remove the file") from None


def _eight_bit(img: Any, path: Path) -> Any:
    """``img`` with 8-bit bands: a 16-bit greyscale image (PIL modes ``I;16*``, or ``I`` within 16
    bits) scaled from 0-65535 to 0-255, which PIL's own conversion would clip to white."""
    if img.mode.startswith("I;16") or img.mode == "I":
        import numpy as np

        pixels = np.asarray(img, dtype=np.int64)
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
            raise InvalidValueError(f"{path} is a 32-bit integer image with values outside 0-65535; save it "
                                    "with 8 or 16 bits per channel")
        from PIL import Image

        return Image.fromarray(np.rint(pixels / 257).astype(np.uint8))
    if img.mode == "F":
        raise InvalidValueError(f"{path} is a 32-bit floating-point image; save it with 8 or 16 bits per channel")
    return img


@functools.lru_cache(maxsize=8)
def _decode(root: Path, split: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a split as ``uint8 [N, C, H, W]`` and their labels ``int64 [N]`` (cached)."""
    from PIL import Image

    c, h, w = shape
    paths, labels = FILES.samples(split, root)
    data = torch.empty(len(paths), c, h, w, dtype=torch.uint8)
    for i, path in enumerate(paths):
        with _open(path) as img:
            img = _eight_bit(img, path).convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        data[i] = pixels.view(h, w, c).permute(2, 0, 1)  # [H, W, C] -> [C, H, W]
    return data, torch.tensor(labels, dtype=torch.int64)


@functools.lru_cache(maxsize=8)
def _statistics(root: Path, shape: tuple[int, int, int]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of the train split's pixels in [0, 1]."""
    data, _ = _decode(root, first_split(root), shape)
    x = data.to(torch.float64).div_(255.0).transpose(0, 1).reshape(shape[0], -1)  # [C, N * H * W]
    std = x.std(1, correction=0).clamp(min=1e-3)  # a constant channel keeps a usable scale
    return tuple(x.mean(1).tolist()), tuple(std.tolist())


def describe(root: Path, channels: int | None = None, size: Any = None, mean: Any = None, std: Any = None,
             **_: Any) -> DatasetInfo:
    """The metadata of the image folder at ``root`` as it will be read with these options."""
    shape = _shape_options(root, channels, size)
    if (mean is None) != (std is None):
        raise InvalidValueError("give both mean and std (one value per channel), or neither")
    if mean is None:
        mean, std = _statistics(root, shape)
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != shape[0] or len(std) != shape[0] or min(std) <= 0:
        raise InvalidValueError(f"mean and std need {shape[0]} values (one per channel, std > 0), got "
                                f"{mean} and {std}")
    names = classes(root)
    return dataclasses.replace(INFO, num_classes=len(names), input_shape=shape, mean=mean, std=std,
                               classes=names)


def complete(root: Path, input_shape: tuple[int, int, int] | None = None, **options: Any) -> dict:
    """``options`` with the shape and statistics filled in: ``channels`` and ``size`` from
    ``input_shape`` (a model's ``(C, H, W)``) where not given, then as :func:`describe` reads them."""
    if input_shape is not None:
        options.setdefault("channels", input_shape[0])
        options.setdefault("size", list(input_shape[1:]))
    info = describe(root, **options)
    return {**options, "channels": info.input_shape[0], "size": list(info.input_shape[1:]),
            "mean": list(info.mean), "std": list(info.std)}


def _load(split: str, root: Path, transform: Transform | None = None, normalize: bool = True,
          **options: Any) -> TensorImageDataset:
    info = describe(root, **options)
    data, targets = _decode(root, split, info.input_shape)
    return TensorImageDataset(data, targets, info, transform, normalize)


SPEC = register_dataset(DatasetSpec(
    info=INFO, find=find_split, count=FILES.count, load=_load, expects=FILES.expects, describe=describe,
    complete=complete,
))
