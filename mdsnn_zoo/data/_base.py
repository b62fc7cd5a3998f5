"""Dataset classes shared by the readers: images held in memory, and images decoded from files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mdsnn_zoo.data._registry import DatasetInfo
from mdsnn_zoo.errors import CorruptFileError

Transform = Callable[[torch.Tensor], torch.Tensor]


class _ImageDataset(Dataset):
    """Turns ``uint8 [C, H, W]`` images into ``float32`` in [0, 1], normalised, then transformed."""

    def __init__(self, info: DatasetInfo, transform: Transform | None, normalize: bool) -> None:
        self.info = info
        self.transform = transform
        self.normalize = normalize
        c = info.input_shape[0]
        self._mean = torch.tensor(info.mean, dtype=torch.float32).view(c, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32).view(c, 1, 1)

    def background(self) -> torch.Tensor:
        """``[C]`` float32: a black pixel as this data set gives it (normalised as every image is), what
        augmentation pads and erases with."""
        black = torch.zeros_like(self._mean)
        return ((black - self._mean) / self._std if self.normalize else black).view(-1)

    def _to_float(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(torch.float32).div_(255.0)  # [C, H, W] in [0, 1]
        if self.normalize:
            x = x.sub_(self._mean).div_(self._std)
        if self.transform is not None:
            x = self.transform(x)
        return x


class TensorImageDataset(_ImageDataset):
    """A split held in memory: ``data: uint8 [N, C, H, W]``, ``targets: int64 [N]``."""

    def __init__(
        self,
        data: torch.Tensor,
        targets: torch.Tensor,
        info: DatasetInfo,
        transform: Transform | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(info, transform, normalize)
        if data.dtype != torch.uint8 or data.ndim != 4 or len(data) != len(targets):
            raise ValueError(f"expected uint8 [N, C, H, W] images and N labels, got "
                             f"{tuple(data.shape)} {data.dtype} and {len(targets)} labels")
        self.data = data
        self.targets = targets.to(torch.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._to_float(self.data[index]), int(self.targets[index])

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``indices`` at once: ``x: [N, C, H, W] float32`` (as ``__getitem__`` gives each one),
        ``y: [N] int64``."""
        images = self.data[indices].to(torch.float32).div_(255.0)
        if self.normalize:
            images = (images - self._mean) / self._std
        if self.transform is not None:
            images = torch.stack([self.transform(x) for x in images])
        return images, self.targets[indices]


class FileImageDataset(_ImageDataset):
    """A split of image files decoded on access (RGB, resized to ``info.input_shape`` if needed)."""

    def __init__(
        self,
        paths: Sequence[Path],
        targets: Sequence[int],
        info: DatasetInfo,
        transform: Transform | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(info, transform, normalize)
        self.paths = list(paths)
        self.targets = torch.as_tensor(list(targets), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[index]
        _, h, w = self.info.input_shape
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if img.size != (w, h):
                    img = img.resize((w, h), Image.BILINEAR)
                image = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise CorruptFileError(f"cannot decode image {path}: {exc}; replace the file") from None
        image = image.view(h, w, 3).permute(2, 0, 1)  # [H, W, C] -> [C, H, W]
        return self._to_float(image), int(self.targets[index])
