"""``mdsnn-zoo bench lif|mse|train|aot``: kernel throughput tables, and the GPU kernels compiled ahead of
time (the scripts in benchmarks/ call this too)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdsnn_zoo.bench import aot as aot_module  # constants only: its heavy imports happen when it runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    lif = sub.add_parser("lif", help="multi-step LIF neuron: every backend vs SpikingJelly",
                         description="Forward and forward+backward time of every available "
                         "QuantLIFNode backend, SpikingJelly's LIFNode and LIFNode + fake-quant.")
    lif.add_argument("--device", default="cuda" if _cuda() else "cpu")
    lif.add_argument("--sizes", type=lambda s: [2 ** int(k) for k in s.split(",")], default=None,
                     metavar="K,K,...", help="neuron counts as powers of two (default 16..24, GPU ..26)")
    lif.add_argument("--dtypes", type=lambda s: s.split(","), default=None,
                     help="comma-separated: float32,bfloat16,float16 (default float32,bfloat16)")
    lif.add_argument("--backends", type=lambda s: s.split(","), default=None,
                     help="QuantLIFNode backends to time (default: all available here)")
    lif.add_argument("-T", "--time-steps", type=int, default=4)
    lif.add_argument("--u-bits", type=int, default=4, help="bits of the quantized rows")
    lif.add_argument("--budget", type=float, default=0.5, help="seconds of repeats per measurement")
    lif.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    lif.add_argument("--system-allocator", action="store_true",
                     help="keep glibc's default (fresh mmap for every large tensor) instead of reuse")
    lif.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    mse = sub.add_parser("mse", help="membrane distillation: separate MSE pass vs fused into the LIF kernels")
    mse.add_argument("--device", default="cuda" if _cuda() else "cpu")
    mse.add_argument("--sizes", type=lambda s: [2 ** int(k) for k in s.split(",")], default=None,
                     metavar="K,K,...", help="neuron counts as powers of two (default 18,20,22)")
    mse.add_argument("--budget", type=float, default=0.5)
    mse.add_argument("--out", type=Path, default=None)
    train = sub.add_parser("train", help="training images/s of zoo architectures vs the same network with "
                           "SpikingJelly's LIFNode")
    train.add_argument("--device", default="cuda" if _cuda() else "cpu")
    train.add_argument("--models", type=lambda s: s.split(","), default=None,
                       help="zoo entries whose architecture and data shape to time (default: the Fashion-MNIST "
                       "teachers)")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="bfloat16 autocast (default: where the hardware runs bfloat16 natively)")
    train.add_argument("--budget", type=float, default=5.0)
    train.add_argument("--profile", type=int, default=0, metavar="STEPS",
                       help="also profile each float step over STEPS steps, list its top operators (default: 0, off)")
    train.add_argument("--out", type=Path, default=None)
    aot = sub.add_parser("aot", help="compile every GPU kernel launch for sm_80/sm_90 with no GPU; registers, spills",
                         description="Record every Triton launch the public API makes (on CPU tensors), compile "
                         "each for sm_80 and sm_90, compile the CUDA C sources with NVRTC, and print each "
                         "kernel's registers, spills, shared memory and load/store widths. Exits 1 on a compile "
                         "error, a spill, or more registers than the limit on sm_90.")
    aot.add_argument("--workers", type=int, default=2, help="compiler processes (default 2)")
    aot.add_argument("--archs", type=lambda s: tuple(int(a) for a in s.split(",")), default=aot_module.ARCHS,
                     metavar="80,90", help="compute capabilities to compile for (default 80,90)")
    aot.add_argument("--max-registers", type=int, default=aot_module.MAX_REGISTERS,
                     help="per thread on sm_90 (default 128)")
    aot.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    aot.add_argument("--json", type=Path, default=None, help="also write every result as JSON")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run(args: argparse.Namespace) -> int:
    if args.bench == "aot":
        return _aot(args)
    import torch

    from mdsnn_zoo.bench import lif
    from mdsnn_zoo.machine import tune_cpu_allocator

    if args.bench == "train":
        from mdsnn_zoo.bench import train

        tune_cpu_allocator()
        table = train.run(args.device, args.models, args.batch_size, args.amp, args.budget, args.profile)
        print(table)
        _write(args.out, table)
        return 0
    if args.bench == "mse":
        from mdsnn_zoo.bench import mse

        tune_cpu_allocator()
        table = mse.run(args.device, args.sizes, budget_s=args.budget)
        print(table)
        _write(args.out, table)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False if args.system_allocator else tune_cpu_allocator()
    results, meta = lif.run(args.device, args.sizes, args.dtypes, args.time_steps, args.u_bits,
                            args.backends, args.budget)
    allocator = "glibc, reuse on (tune_cpu_allocator)" if tuned else "system default"
    meta["machine"] += f"; allocator: {allocator}"
    table = lif.to_markdown(results, meta)
    print(table)
    _write(args.out, table)
    return 0


def _aot(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import os
    import sys

    if os.environ.get("TRITON_INTERPRET") == "1":
        print("mdsnn-zoo bench aot: unset TRITON_INTERPRET (the interpreter replaces the kernels it compiles)",
              file=sys.stderr)
        return 2
    from mdsnn_zoo.bench import aot

    results = aot.run(args.workers, args.archs)
    table = aot.to_markdown(results, args.max_registers)
    _write(args.out, table)
    if args.json:
        _write(args.json, json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    print(table)
    problems = aot.problems(results, args.max_registers)
    for line in problems:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if problems else 0


def _write(path: Path | None, text: str) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
