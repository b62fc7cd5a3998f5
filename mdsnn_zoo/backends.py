"""The one table of compute backends: which kernel module computes the LIF neuron and the membrane
MSE on each, on which devices, whether it runs on this machine (probed once per process), and the
order in which ``'auto'`` tries them.

    resolve("auto", "lif", "cpu")   -> "inductor" (or "torch" without a C++ compiler)
    module("triton", "mse")         -> mdsnn_zoo.kernels.mse_triton
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from mdsnn_zoo.errors import InvalidValueError

Kind = Literal["lif", "mse"]


def _triton_runs() -> bool:
    import torch

    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def _cupy_runs() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA errors when no driver or GPU is present
        return False


def _inductor_runs() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))


@dataclass(frozen=True)
class Backend:
    """A backend: its kernel module per kind (None: it has no such kernel), the device types whose
    tensors it takes, its probe, and what it needs when the probe fails."""

    modules: dict[str, str | None]
    devices: tuple[str, ...]
    runs: Callable[[], bool]
    needs: str


BACKENDS: dict[str, Backend] = {
    "torch": Backend({"lif": "mdsnn_zoo.kernels.lif_reference", "mse": "mdsnn_zoo.kernels.mse_reference"},
                     ("cpu", "cuda"), lambda: True, ""),
    "inductor": Backend({"lif": "mdsnn_zoo.kernels.lif_inductor", "mse": None}, ("cpu", "cuda"), _inductor_runs,
                        "torch.compile needs a C++ compiler (g++) on the CPU"),
    "triton": Backend({"lif": "mdsnn_zoo.kernels.lif_triton", "mse": "mdsnn_zoo.kernels.mse_triton"},
                      ("cpu", "cuda"), _triton_runs, "it needs a CUDA GPU, or TRITON_INTERPRET=1 set before import "
                      "for the CPU"),
    "cupy": Backend({"lif": "mdsnn_zoo.kernels.lif_cupy", "mse": "mdsnn_zoo.kernels.mse_cupy"}, ("cuda",),
                    _cupy_runs, "install mdsnn-zoo[cuda] (cupy-cuda13x) and use a CUDA GPU"),
}
AUTO_ORDER: dict[tuple[str, str], tuple[str, ...]] = {  # (kind, device type): what 'auto' tries, in order
    ("lif", "cuda"): ("triton", "cupy", "torch"),
    ("lif", "cpu"): ("inductor", "torch"),
    ("mse", "cuda"): ("triton", "cupy", "torch"),
    ("mse", "cpu"): ("torch",),
}


@functools.cache
def available(name: str) -> bool:
    """Whether backend ``name`` runs on this machine (probed once)."""
    return BACKENDS[name].runs()


def available_backends(kind: Kind = "lif") -> list[str]:
    """The backends with a ``kind`` kernel that run here, in table order, e.g. ``['torch', 'inductor']``."""
    return [n for n, b in BACKENDS.items() if b.modules[kind] is not None and available(n)]


def check(name: str, kind: Kind = "lif") -> str:
    """``name`` if it is ``'auto'`` or a backend with a ``kind`` kernel that runs here, else a clear error."""
    if name == "auto":
        return name
    names = [n for n, b in BACKENDS.items() if b.modules[kind] is not None]
    if name not in names:
        what = "backend" if kind == "lif" else "membrane_mse backend"
        raise InvalidValueError(f"unknown {what} {name!r}: choose 'auto' or one of {', '.join(names)}")
    if not available(name):
        raise InvalidValueError(f"backend {name!r} is not available here ({BACKENDS[name].needs}); available: "
                                f"{', '.join(available_backends(kind))}")
    return name


def resolve(name: str, kind: Kind, device_type: str) -> str:
    """The backend that computes ``kind`` for tensors on ``device_type``: ``name`` checked, or for
    ``'auto'`` the first of ``AUTO_ORDER`` that runs here."""
    if check(name, kind) == "auto":
        order = AUTO_ORDER.get((kind, device_type), ("torch",))
        return next(n for n in order if available(n))
    if device_type not in BACKENDS[name].devices:
        raise InvalidValueError(f"backend {name!r} needs CUDA tensors; move the input to a GPU or use "
                                "backend='auto'")
    return name


@functools.cache
def module(name: str, kind: Kind) -> ModuleType:
    """The kernel module of backend ``name`` for ``kind`` (imported on first use)."""
    path = BACKENDS[name].modules[kind]
    if path is None:
        raise InvalidValueError(f"backend {name!r} has no {kind} kernel")
    return importlib.import_module(path)
