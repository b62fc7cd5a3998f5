"""Timing, the copy-bandwidth yardstick and markdown tables (the machine's description and the CPU
allocator switch are ``mdsnn_zoo.machine``'s)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, warmup: int = 2, budget_s: float = 1.0,
            min_repeats: int = 3, max_repeats: int = 30) -> float:
    """Median wall time of ``fn`` in milliseconds, repeated until ``budget_s`` or ``max_repeats``."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or (len(times) < max_repeats and time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_interleaved_ms(fns: list[Callable[[], object]], device: torch.device, warmup: int = 2,
                        budget_s: float = 1.0, min_rounds: int = 3, max_rounds: int = 30) -> list[float]:
    """Median wall time of each of ``fns`` in milliseconds, timed in alternation (one call of each per
    round) so that a machine whose speed drifts (other tenants, clocks) slows them all alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (rounds < max_rounds and time.perf_counter() - start < budget_s):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            ts.append((time.perf_counter() - t0) * 1e3)
        rounds += 1
    return [statistics.median(ts) for ts in times]


def profile_ops(fn: Callable[[], object], device: torch.device, steps: int = 3,
                top: int = 8) -> list[tuple[str, float, float]]:
    """The ``top`` operators by self time over ``steps`` calls of ``fn`` (after one warm-up call),
    as ``(name, percent of all self time, calls per step)``; CPU time on a CPU, kernel time on a GPU.
    Compiled regions appear under the name the profiler gives them (``CompiledFunction`` and kin)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    synchronize(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        synchronize(device)
    self_us = {e.key: (e.self_device_time_total if cuda else e.self_cpu_time_total, e.count)
               for e in prof.key_averages()}
    total = sum(t for t, _ in self_us.values()) or 1.0
    ranked = sorted(self_us.items(), key=lambda kv: kv[1][0], reverse=True)[:top]
    return [(_op_name(name), 100.0 * t / total, n / steps) for name, (t, n) in ranked]


def _op_name(key: str) -> str:
    """The profiler's key, with inductor's ``## Call CompiledFxGraph <hash> ##`` shortened."""
    if key.startswith("## Call CompiledFxGraph"):
        return f"inductor graph {key.split()[3][:8]}"
    return key


def copy_bandwidth_gbs(device: torch.device, nbytes: int | None = None) -> float:
    """GB/s of a large float32 copy, counting bytes read plus bytes written.

    The buffer (256 MiB on a CPU, 2 GiB on a GPU unless ``nbytes``) is larger than the caches,
    so this is the memory's bandwidth, the limit a streaming kernel can approach.
    """
    nbytes = nbytes or (2**31 if device.type == "cuda" else 2**28)
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, warmup=2, min_repeats=5)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
