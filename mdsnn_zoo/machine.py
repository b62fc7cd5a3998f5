"""The machine a run is on: which device to use, a one-line description for the record, and the
CPU allocator switch that makes large CPU tensors cheap to reallocate."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch

from mdsnn_zoo.precision import native_bf16

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def resolve_device(name: str) -> torch.device:
    """``auto``: this process's GPU (``$LOCAL_RANK`` under torchrun) if there is one, else the CPU;
    otherwise the device named (``cpu``, ``cuda``, ``cuda:N``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)


def describe_machine(device: torch.device) -> str:
    """One line: the processor (its vector capability, native bfloat16) or GPU, threads, and the
    versions that matter."""
    import importlib.metadata as md

    try:
        sj = md.version("spikingjelly")
    except Exception:  # an unusual install: fall back to the module's own
        import spikingjelly

        sj = getattr(spikingjelly, "__version__", "?")
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = (f"{_cpu_name()} ({torch.backends.cpu.get_cpu_capability()}, native bfloat16: "
                f"{'yes' if native_bf16(device) else 'no'}), {torch.get_num_threads()} threads")
    return f"{what}; torch {torch.__version__}; spikingjelly {sj}; python {platform.python_version()}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the system.

    PyTorch's CPU tensors come from malloc; glibc serves blocks of 32 MiB and more with a fresh
    ``mmap`` each time, so every large output tensor is page-faulted and zeroed by the kernel
    again (about 3.6 GB/s here, slower than the computation). With mmap off and trimming off,
    freed blocks are reused, as PyTorch's caching allocator does on a GPU. Process-wide; the
    resident memory stays at its peak. Returns False where glibc's ``mallopt`` is not available.
    """
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30 * 64))
