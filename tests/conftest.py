"""Fixtures that write tiny data sets in the real on-disk formats, for the loaders to read."""

from __future__ import annotations

import dataclasses
import os

import torch

# Triton kernels run on CPU tensors through the interpreter when there is no GPU. It must be set
# before triton is first imported, so here, before any test module loads.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mdsnn_zoo.data import _registry
from mdsnn_zoo.data.idx import write_idx


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch, tmp_path_factory):
    """Tests see only the folders they make: no $MDSNN_DATA from the machine, and an empty
    $MDSNN_HOME (no data sets made, frames cached or weights downloaded on this machine)."""
    monkeypatch.delenv("MDSNN_DATA", raising=False)
    monkeypatch.setenv("MDSNN_HOME", str(tmp_path_factory.mktemp("mdsnn_home")))


@pytest.fixture
def no_system_dirs(monkeypatch):
    """Hide system folders (Debian's Fashion-MNIST) so that only root/env/shipped are searched."""
    specs = {k: dataclasses.replace(v, system_dirs=()) for k, v in _registry._SPECS.items()}
    monkeypatch.setattr(_registry, "_SPECS", specs)


@pytest.fixture
def recipe_script():
    """Import a script of recipes/ as a module: ``recipe_script("carry")``, ``recipe_script("diagnostics/x")``."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parent.parent / "recipes" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(Path(name).name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture
def fmnist_root(tmp_path: Path) -> Path:
    """torchvision's layout: <root>/FashionMNIST/raw/{train,t10k}-{images,labels}-*.gz (7 / 5 samples)."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = _rng(1)
    for prefix, n in (("train", 7), ("t10k", 5)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    return tmp_path


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str) -> None:
    """A batch as the original files hold it: a protocol-2 pickle of a dict with bytes keys."""
    entry = {b"batch_label": b"fixture", b"data": images.reshape(len(images), -1),
             label_key.encode(): labels}
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = _rng(2)
    for name, n in [(f"data_batch_{i}", 3) for i in range(1, 6)] + [("test_batch", 4)]:
        write_cifar_batch(folder / name, rng.integers(0, 256, (n, 3, 32, 32), np.uint8),
                          rng.integers(0, 10, n).tolist(), "labels")
    return tmp_path


@pytest.fixture
def cifar100_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = _rng(3)
    for name, n in (("train", 6), ("test", 2)):
        write_cifar_batch(folder / name, rng.integers(0, 256, (n, 3, 32, 32), np.uint8),
                          rng.integers(0, 100, n).tolist(), "fine_labels")
    return tmp_path


@pytest.fixture
def tiny_imagenet_root(tmp_path: Path) -> Path:
    """tiny-imagenet-200 with 3 classes, 2 train JPEGs each, 4 val JPEGs."""
    from PIL import Image

    folder = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = _rng(4)

    def jpeg(path: Path) -> None:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(path, "JPEG")

    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(2):
            jpeg(images / f"{wnid}_{i}.JPEG")
    lines = []
    for i, wnid in enumerate(["n03", "n01", "n01", "n02"]):
        jpeg(folder / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def encode_events(x, y, t, p) -> bytes:
    """N-Caltech101 .bin bytes for events (t in µs, increasing); inserts overflow markers past 2^23."""
    out = bytearray()
    base = 0
    for xi, yi, ti, pi in zip(x, y, t, p, strict=True):
        while ti - base >= 1 << 23:
            base += 1 << 13
            out += bytes([0, 240, 0, 0, 0])  # overflow marker: y == 240, adds 2^13
        rel = ti - base
        out += bytes([xi, yi, (pi << 7) | (rel >> 16), (rel >> 8) & 0xFF, rel & 0xFF])
    return bytes(out)


@pytest.fixture
def ncaltech_root(tmp_path: Path) -> Path:
    """tonic's layout: <root>/NCALTECH101/Caltech101/<class>/image_NNNN.bin, 3 classes."""
    folder = tmp_path / "NCALTECH101" / "Caltech101"
    rng = _rng(5)
    for cls, n in (("accordion", 12), ("airplanes", 3), ("anchor", 1), ("BACKGROUND_Google", 2)):
        (folder / cls).mkdir(parents=True)
        for i in range(n):
            m = int(rng.integers(5, 40))
            t = np.sort(rng.integers(0, 1 << 24, m))
            data = encode_events(rng.integers(0, 240, m).tolist(), rng.integers(0, 180, m).tolist(),
                                 t.tolist(), rng.integers(0, 2, m).tolist())
            (folder / cls / f"image_{i + 1:04d}.bin").write_bytes(data)
    return tmp_path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder tree of real image files: train/ with classes 'b-dog', 'a-cat', 'c-bird' (PNG and
    JPEG, greyscale and RGB, 12x10 and 20x16, 8 per class; a class's images are bright in a band
    whose row encodes it), val/ with 3 per class, and a stray text file that is not an image."""
    from PIL import Image

    rng = _rng(7)
    names = ["b-dog", "a-cat", "c-bird"]

    def image(path: Path, label: int, i: int) -> None:
        h, w = (12, 10) if i % 2 == 0 else (20, 16)
        pixels = rng.integers(0, 50, (h, w, 3), np.uint8)
        row = (sorted(names).index(names[label]) * h) // 3
        pixels[row:row + h // 3] = 230
        img = Image.fromarray(pixels)
        if i % 3 == 0:
            img = img.convert("L")
        img.save(path, "PNG" if i % 2 == 0 else "JPEG")

    for split, count in (("train", 8), ("val", 3)):
        for label, name in enumerate(names):
            folder = tmp_path / "pets" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image(folder / f"{i}.{'png' if i % 2 == 0 else 'JPG'}", label, i)
    (tmp_path / "pets" / "train" / "a-cat" / "notes.txt").write_text("not an image")
    return tmp_path / "pets"


@pytest.fixture
def event_folder(tmp_path: Path) -> SimpleNamespace:
    """``root``: a folder of one's own event recordings, ``<split>/<class>/<file>``, on a 24x40 (height x
    width) sensor: train/ with classes 'b-wave', 'a-clap', 'c-spin' (6 recordings each, by turns a
    structured .npy with polarity -1/1, an .npz with boolean polarity and timestamps out of order, and a
    40-bit .bin), val/ with 2 each, and a stray text file. ``events``: each file's events (relative path
    -> int64 x, y, t, p in time order, p in {0, 1}). A class's events sit in its own band of rows."""
    from mdsnn_zoo.data.events import write_events

    rng = _rng(11)
    names = ["b-wave", "a-clap", "c-spin"]
    structured = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "i1")])
    root, recorded = tmp_path / "gestures", {}
    for split, count in (("train", 6), ("val", 2)):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True)
            band = sorted(names).index(name) * 8
            for i in range(count):
                n = int(rng.integers(30, 90))
                ev = {"x": rng.integers(0, 40, n), "y": band + rng.integers(0, 8, n),
                      "t": np.sort(rng.choice(50_000, n, replace=False)), "p": rng.integers(0, 2, n)}
                ev["x"][0], ev["y"][-1] = 39, 23  # the sensor's far corner is reached
                ev = {k: v.astype(np.int64) for k, v in ev.items()}
                if i % 3 == 0:
                    path = folder / f"{i}.npy"
                    arr = np.zeros(n, structured)
                    arr["x"], arr["y"], arr["t"], arr["p"] = ev["x"], ev["y"], ev["t"], 2 * ev["p"] - 1
                    np.save(path, arr)
                elif i % 3 == 1:
                    path = folder / f"{i}.npz"
                    shuffled = rng.permutation(n)
                    np.savez(path, **{k: (v > 0 if k == "p" else v)[shuffled] for k, v in ev.items()})
                else:
                    path = folder / f"{i}.bin"
                    write_events(path, ev)
                recorded[str(path.relative_to(root))] = ev
    (root / "train" / "a-clap" / "notes.txt").write_text("not a recording")
    return SimpleNamespace(root=root, events=recorded)
