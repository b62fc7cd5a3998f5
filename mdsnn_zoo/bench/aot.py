"""The GPU kernels compiled ahead of time, with no GPU: what a CUDA machine would build on first use.

Triton: the public API (``QuantLIFNode`` forward and backward, ``MembraneTargets``, ``membrane_mse``)
runs on CPU tensors with every Triton launch recorded instead of run (``record``); each launch is
specialised by Triton's own binder for a CUDA target, exactly as ``JITFunction.run`` would on a GPU
of that target, and compiled to a cubin (``compile_launches``). CUDA C: ``lif.cu`` and ``mse.cu``
compiled by NVRTC with the name expressions ``cupy.RawModule`` asks for (``compile_cuda_sources``).
Each cubin's resources are read with the ``cuobjdump`` bundled with Triton: registers, spills
(local memory), shared memory, and the widths of its global loads and stores.

Run it in a process where ``TRITON_INTERPRET`` is unset (the interpreter replaces the kernels by
Python functions): ``mdsnn-zoo bench aot`` prints the table; the test suite and
``benchmarks/gpu_check.sh`` hold every configuration to no spill and at most ``MAX_REGISTERS``.
A compile that aborts the process inside LLVM is isolated in a subprocess and reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

ARCHS = (80, 90)
MAX_REGISTERS = 128  # per thread on sm_90: at 4 warps a block, 4 blocks (16 warps) fit an SM
SURROGATE_CLASSES = {"atan": "ATan", "sigmoid": "Sigmoid", "piecewise_quadratic": "PiecewiseQuadratic",
                     "rect": "Rect"}
TRITON_KERNELS = ("mdsnn_zoo.kernels.lif_triton:_lif_fwd_kernel", "mdsnn_zoo.kernels.lif_triton:_lif_bwd_kernel",
                  "mdsnn_zoo.kernels.mse_triton:_mse_kernel")


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One way the public API runs a neuron: what it launches depends on these alone.

    ``grads``: the gradient the spikes get, ``"sum"`` (stride 0, from ``.sum().backward()``),
    ``"random"`` or ``"none"`` (inference under ``torch.no_grad``). ``chunks``: forward passes
    without a reset (2: the first chunk's last state gets a gradient). ``h_grad``: the recorded
    membrane ``h_seq`` is part of the loss. ``target``: the dtype of a fused teacher membrane
    (``MembraneTargets``), or None. ``shape``: ``[N, *]`` of one step.
    """

    dtype: str = "float32"
    T: int = 4
    u_bits: int | None = 4
    v_reset: float | None = 0.0
    decay: bool = True
    detach: bool = False
    surrogate: str = "atan"
    shift: float | None = None
    grads: str = "sum"
    chunks: int = 1
    h_grad: bool = False
    target: str | None = None
    shape: tuple[int, ...] = (8, 16, 32)

    def label(self) -> str:
        bits = f"U{self.u_bits}" if self.u_bits else "float"
        reset = "soft" if self.v_reset is None else "hard"
        parts = [self.dtype, f"T={self.T}", bits, reset, "decay" if self.decay else "nodecay",
                 self.surrogate]
        parts += ["detach"] if self.detach else []
        parts += [f"shift={self.shift}"] if self.shift is not None else []
        parts += [f"grad={self.grads}"] + ([f"chunks={self.chunks}"] if self.chunks > 1 else [])
        parts += ["grad_h"] if self.h_grad else []
        parts += [f"target={self.target}"] if self.target else []
        m = 1
        for n in self.shape:
            m *= n
        parts += [f"M={m}" + ("" if m % 16 == 0 else " (unaligned)")]
        return " ".join(parts)


def scenarios() -> list[Scenario]:
    """The configurations the gate compiles: the hot ones (float32/bfloat16, U2/U4/U8 and float,
    T = 4 and 10, training with and without the fused target), then a covering set in which every
    level of every factor appears (dtypes, T = 1..16, 2..8 bits, resets, decay, detach, surrogates,
    the shifted surrogate, gradients present or absent, stride-0 gradients, aligned or not)."""
    hot = [Scenario(dtype=dt, T=T, u_bits=b, target=tg, grads="random")
           for dt in ("float32", "bfloat16") for T in (4, 10) for b in (None, 2, 4, 8)
           for tg in (None, dt)]
    odd = (3, 5, 7)  # M = 105: not a multiple of 16
    cover = [
        Scenario(dtype="float16", T=1, u_bits=3, v_reset=None, surrogate="sigmoid", shape=odd),
        Scenario(dtype="float16", T=16, u_bits=5, decay=False, detach=True, surrogate="piecewise_quadratic",
                 shift=0.5, grads="random", chunks=2, h_grad=True, target="float32"),
        Scenario(dtype="float32", T=7, u_bits=6, v_reset=-0.25, surrogate="rect", shift=0.0, shape=odd,
                 target="float32"),
        Scenario(dtype="bfloat16", T=2, u_bits=7, v_reset=None, decay=False, surrogate="sigmoid", grads="random",
                 h_grad=True, shape=odd, target="float32"),
        Scenario(dtype="float32", T=13, u_bits=8, detach=True, surrogate="piecewise_quadratic", shift=0.5,
                 chunks=2, target="bfloat16"),
        Scenario(dtype="bfloat16", T=16, u_bits=2, v_reset=None, surrogate="rect", grads="none"),
        Scenario(dtype="float16", T=3, u_bits=None, v_reset=None, decay=False, detach=True, surrogate="rect",
                 grads="random", h_grad=True, shape=odd, target="float16"),
        Scenario(dtype="float32", T=16, u_bits=None, surrogate="sigmoid", chunks=2, h_grad=True, shape=odd),
        Scenario(dtype="bfloat16", T=5, u_bits=None, v_reset=-0.25, surrogate="piecewise_quadratic",
                 grads="none", shape=odd, target="bfloat16"),
        Scenario(dtype="float16", T=10, u_bits=4, v_reset=None, shift=0.5, grads="none", h_grad=True),
        Scenario(dtype="float32", T=1, u_bits=2, decay=False, detach=True, surrogate="sigmoid", shift=0.5,
                 grads="random", chunks=2, shape=odd),
        Scenario(dtype="bfloat16", T=4, u_bits=4, surrogate="rect", detach=True, shape=odd, target="bfloat16"),
    ]
    return hot + cover


@dataclasses.dataclass
class Launch:
    """A recorded Triton launch: the kernel (``module:name``), its arguments, and what asked for it."""

    kernel: str
    args: tuple
    kwargs: dict
    origin: str


class Launches(list):
    """Recorded launches; ``origin`` names what the launches being recorded now come from."""

    origin = ""


@contextlib.contextmanager
def record() -> Iterator[Launches]:
    """Inside: every Triton kernel of the package is recorded instead of run (outputs stay
    uninitialised), and the ``triton`` backend is usable on CPU tensors."""
    from mdsnn_zoo import backends

    kernels = [_kernel(name) for name in TRITON_KERNELS]
    if any(not hasattr(k, "_pack_args") for k in kernels):
        raise RuntimeError("the kernels are interpreted (TRITON_INTERPRET=1): compile ahead of time in a process "
                           "without it")
    launches = Launches()

    def recorder(name: str):
        def run(*args, grid, warmup, **kwargs):
            gets_v = " grad_v" if kwargs.get("HAS_GV") else ""  # only the first of two chunks gets one
            launches.append(Launch(name, args, kwargs, launches.origin + gets_v))
        return run

    saved = dict(backends.BACKENDS)
    backends.BACKENDS["triton"] = dataclasses.replace(saved["triton"], runs=lambda: True)
    backends.available.cache_clear()
    for name, k in zip(TRITON_KERNELS, kernels, strict=True):
        k.run = recorder(name)
    try:
        yield launches
    finally:
        for k in kernels:
            del k.run
        backends.BACKENDS.clear()
        backends.BACKENDS.update(saved)
        backends.available.cache_clear()


def _kernel(name: str):
    module, attr = name.split(":")
    return getattr(importlib.import_module(module), attr)


def drive(s: Scenario, launches: Launches) -> None:
    """Run scenario ``s`` through the public API on CPU tensors (launches recorded, not run)."""
    import torch
    from spikingjelly.activation_based import functional, surrogate

    from mdsnn_zoo.distill import MembraneTargets
    from mdsnn_zoo.neuron import QuantLIFNode

    launches.origin = s.label()
    dtype = getattr(torch, s.dtype)
    fn = getattr(surrogate, SURROGATE_CLASSES[s.surrogate])(alpha=1.6)
    node = QuantLIFNode(decay_input=s.decay, v_reset=s.v_reset, surrogate_function=fn, detach_reset=s.detach,
                        step_mode="m", backend="triton", u_bits=s.u_bits, store_h_seq=s.h_grad,
                        surrogate_shift=s.shift)
    student = torch.nn.Sequential(node)
    xs = [torch.randn(s.T, *s.shape, dtype=dtype, requires_grad=s.grads != "none") for _ in range(s.chunks)]
    teacher = {"0": torch.randn(s.T, *s.shape, dtype=getattr(torch, s.target))} if s.target else {}
    with torch.set_grad_enabled(s.grads != "none"), contextlib.ExitStack() as stack:
        targets = stack.enter_context(MembraneTargets(student, teacher)) if teacher else None
        loss = 0
        for x in xs:
            out = student(x)
            part = out.sum() if s.grads == "sum" else (out * torch.randn_like(out)).sum()
            if s.h_grad:
                part = part + (node.h_seq.float() ** 2).sum()
            loss = loss + part
        if targets is not None:
            loss = loss + targets.loss()
    if s.grads != "none":
        loss.backward()
    functional.reset_net(student)


def drive_mse(launches: Launches) -> None:
    """``membrane_mse`` on the triton backend: each dtype, a teacher of that dtype or float32, with and
    without a gradient, a 16-aligned size and an odd one."""
    import torch

    from mdsnn_zoo.distill import membrane_mse

    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for teacher in sorted({dtype, torch.float32}, key=str):
            for grad in (True, False):
                for shape in ((4, 8, 16), (4, 5, 77)):
                    n = shape[0] * shape[1] * shape[2]
                    launches.origin = (f"membrane_mse {str(dtype)[6:]} teacher={str(teacher)[6:]} grad={grad} n={n}"
                                       + ("" if n % 16 == 0 else " (unaligned)"))
                    s = {"a": torch.randn(shape, dtype=dtype, requires_grad=grad)}
                    loss = membrane_mse(s, {"a": torch.randn(shape, dtype=teacher)}, backend="triton")
                    if grad:
                        loss.backward()


@dataclasses.dataclass
class Job:
    """One compile: a kernel specialised for one target, as ``JITFunction.run`` would build it, and the
    launches it serves (``origins``: several scenarios share a binary when they differ only in sizes or T)."""

    kernel: str
    arch: int
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict
    origins: list[str]

    def key(self) -> tuple:
        return (self.kernel, self.arch, repr(sorted(self.signature.items())), repr(sorted(self.constexprs.items())),
                repr(sorted(self.attrs.items())), repr(sorted(self.options.items())))


def jobs_for(launches: list[Launch], archs: tuple[int, ...] = ARCHS) -> list[Job]:
    """Each distinct specialisation of the recorded launches, for each target architecture."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    jobs: dict[tuple, Job] = {}
    for arch in archs:
        backend = make_backend(GPUTarget("cuda", arch, 32))
        for launch in launches:
            k = _kernel(launch.kernel)
            binder = create_function_from_signature(k.signature, k.params, backend)
            bound, spec, opts = binder(*launch.args, **launch.kwargs)
            options, signature, constexprs, attrs = k._pack_args(backend, dict(launch.kwargs), bound, spec, opts)
            job = Job(launch.kernel, arch, signature, constexprs, attrs, dict(options.__dict__), [])
            job = jobs.setdefault(job.key(), job)
            if launch.origin not in job.origins:
                job.origins.append(launch.origin)
    return list(jobs.values())


@dataclasses.dataclass
class Resources:
    """What one compiled kernel uses per thread and block, and how wide its memory accesses are."""

    kernel: str
    arch: int
    origins: list[str]
    registers: int = -1
    spill_bytes: int = -1  # local memory per thread: > 0 means registers spilled
    shared_bytes: int = -1
    num_warps: int = 0
    loads: str = ""
    stores: str = ""
    narrow_offsets: int = 0  # vector address computations in fewer than 64 bits (Triton TTIR)
    error: str = ""
    seconds: float = 0.0

    def configuration(self) -> str:
        """The first launch this binary serves, and how many more share it."""
        more = f" (+{len(self.origins) - 1} more)" if len(self.origins) > 1 else ""
        return (self.origins[0] if self.origins else "") + more

    def warps_per_sm(self) -> int:
        """Theoretical resident warps per SM on an H100 (sm_90): 64K registers allocated per warp in
        units of 256, at most 64 warps and 32 blocks, 228 KiB shared memory (cuobjdump's figure for sm_90
        already holds the 1 KiB reserved a block)."""
        if self.registers <= 0 or not self.num_warps:
            return 0
        per_warp = -(-self.registers * 32 // 256) * 256
        by_regs = 65536 // (per_warp * self.num_warps)
        by_shared = 233472 // max(self.shared_bytes, 1024)
        return min(by_regs, by_shared, 64 // self.num_warps, 32) * self.num_warps


def _cuobjdump() -> str:
    import triton

    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")


def read_cubin(cubin: bytes, function: str | None = None) -> dict[str, dict]:
    """Per function in ``cubin``: registers, local (spill) and shared bytes, and the global load/store
    widths its SASS uses (e.g. ``{'loads': '128,32', 'stores': '128,64'}``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        usage = subprocess.run([_cuobjdump(), "-res-usage", str(path)], capture_output=True, text=True, check=True)
        sass = subprocess.run([_cuobjdump(), "-sass", str(path)], capture_output=True, text=True, check=True)
    out: dict[str, dict] = {}
    for name, line in re.findall(r"Function ([^\s:]+):\s*\n\s*(REG:.*)", usage.stdout):
        fields = dict(re.findall(r"(\w+):(\d+)", line))
        out[name] = {"registers": int(fields["REG"]), "spill_bytes": int(fields["LOCAL"]),
                     "shared_bytes": int(fields["SHARED"])}
    for name, body in re.findall(r"Function : (\S+)\n(.*?)(?=\n\s*Function : |\Z)", sass.stdout, re.S):
        if name in out:
            out[name]["loads"] = _widths(body, "LDG")
            out[name]["stores"] = _widths(body, "STG")
    return out


def _widths(sass: str, op: str) -> str:
    bits = {"128": 128, "64": 64, "U16": 16, "S16": 16, "U8": 8, "S8": 8}
    seen = set()
    for suffix in re.findall(rf"\b{op}\.E((?:\.[\w]+)*)", sass):
        width = next((bits[p] for p in suffix.split(".") if p in bits), 32)
        seen.add(width)
    return ",".join(str(w) for w in sorted(seen, reverse=True))


def _narrow_offsets(ttir: str) -> int:
    """Address arithmetic that could wrap past 2^31 elements: vector ``tt.addptr`` with offsets that are
    not 64-bit, and any 32-bit integer multiply (a step offset ``t * M`` computed in 32 bits, then widened)."""
    count = 0
    for line in ttir.splitlines():
        m = re.search(r"tt\.addptr .*: tensor<[^>]*!tt\.ptr<[^>]*>>, tensor<\w*?x(i\d+)>", line)
        if m and m.group(1) != "i64":
            count += 1
        elif re.search(r"arith\.muli .*: (?:tensor<\w*?x)?i32\b", line):
            count += 1
    return count


def compile_job(job: Job) -> Resources:
    """Compile one job to a cubin and read its resources (errors are caught and reported)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    res = Resources(job.kernel, job.arch, job.origins, num_warps=job.options.get("num_warps", 4))
    start = time.perf_counter()
    try:
        src = ASTSource(_kernel(job.kernel), job.signature, job.constexprs, job.attrs)
        compiled = triton.compile(src, target=GPUTarget("cuda", job.arch, 32), options=job.options)
        (info,) = read_cubin(compiled.asm["cubin"]).values()
        res = dataclasses.replace(res, **info, narrow_offsets=_narrow_offsets(compiled.asm["ttir"]))
    except Exception as exc:  # a compile error is the finding, not a crash of the gate
        res.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"[:300]
    res.seconds = time.perf_counter() - start
    return res


def _compile_isolated(job: Job) -> Resources:
    """``compile_job`` in its own process: a compile that aborts inside LLVM kills only that process."""
    code = ("import pickle, sys\nfrom mdsnn_zoo.bench import aot\n"
            "sys.stdout.buffer.write(pickle.dumps(aot.compile_job(pickle.loads(sys.stdin.buffer.read()))))\n")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(job), capture_output=True,
                          env=_compile_env())
    if done.returncode == 0:
        return pickle.loads(done.stdout)
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    error = f"compiler process died ({done.returncode}): {tail[0]}"
    return Resources(job.kernel, job.arch, job.origins, error=error[:300])


# What would hide a compile error: the interpreter (kernels become Python), and leave to read plain
# module globals (not part of Triton's cache key either).
_HIDING = ("TRITON_INTERPRET", "TRITON_ALLOW_NON_CONSTEXPR_GLOBALS")


def _compile_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in _HIDING}


def compile_jobs(jobs: list[Job], workers: int = 2) -> list[Resources]:
    """Compile every job in ``workers`` processes; jobs left when a process dies are retried one
    process each, so an abort is pinned to its job."""
    results: dict[int, Resources] = {}
    with contextlib.suppress(BrokenProcessPool), \
            ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {i: pool.submit(compile_job, job) for i, job in enumerate(jobs)}
        for i, future in futures.items():
            with contextlib.suppress(BrokenProcessPool):
                results[i] = future.result()
    for i, job in enumerate(jobs):
        if i not in results:
            results[i] = _compile_isolated(job)
    return [results[i] for i in range(len(jobs))]


def cuda_c_names() -> dict[str, list[str]]:
    """The CUDA C sources and the kernel instantiations the CuPy launchers ask for, by file."""
    from mdsnn_zoo.kernels import lif_cupy, mse_cupy

    return {str(lif_cupy.SOURCE): lif_cupy.name_expressions(), str(mse_cupy.SOURCE): mse_cupy.name_expressions()}


def compile_cuda_source(path: str, names: list[str], arch: int) -> tuple[bytes, dict[str, str]]:
    """``path`` compiled by NVRTC for ``sm_<arch>`` with ``names`` as name expressions, as
    ``cupy.RawModule`` compiles it: (cubin, {name expression: lowered name})."""
    from cuda.bindings import nvrtc

    def check(result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"NVRTC: {err}")
        return rest[0] if len(rest) == 1 else rest

    source = Path(path)
    prog = check(nvrtc.nvrtcCreateProgram(source.read_bytes(), source.name.encode(), 0, [], []))
    try:
        for name in names:
            check(nvrtc.nvrtcAddNameExpression(prog, name.encode()))
        opts = [b"--std=c++17", f"-I{source.parent}".encode(), f"--gpu-architecture=sm_{arch}".encode()]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            size = check(nvrtc.nvrtcGetProgramLogSize(prog))
            log = b" " * size
            check(nvrtc.nvrtcGetProgramLog(prog, log))
            raise RuntimeError(f"NVRTC could not compile {source.name} for sm_{arch}: "
                               f"{log.decode(errors='replace').strip()}")
        size = check(nvrtc.nvrtcGetCUBINSize(prog))
        cubin = b" " * size
        check(nvrtc.nvrtcGetCUBIN(prog, cubin))
        lowered = {n: check(nvrtc.nvrtcGetLoweredName(prog, n.encode())).decode() for n in names}
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return cubin, lowered


def cuda_c_resources(archs: tuple[int, ...] = ARCHS) -> list[Resources]:
    """Every CUDA C instantiation compiled for each target, with its resources (256 threads a block), or
    an error where NVRTC's Python bindings (``cuda-bindings``, which CUDA builds of torch bring) are missing."""
    try:
        from cuda.bindings import nvrtc  # noqa: F401
    except ImportError:
        missing = "not compiled: no cuda.bindings.nvrtc here (pip install cuda-bindings)"
        return [Resources(f"{Path(path).name}:{name}", arch, [], error=missing)
                for path, names in cuda_c_names().items() for name in names for arch in archs]
    out = []
    for path, names in cuda_c_names().items():
        for arch in archs:
            start = time.perf_counter()
            try:
                cubin, lowered = compile_cuda_source(path, names, arch)
                info = read_cubin(cubin)
            except Exception as exc:
                out.append(Resources(Path(path).name, arch, [], error=f"{type(exc).__name__}: {exc}"[:300]))
                continue
            for name, symbol in lowered.items():
                out.append(Resources(f"{Path(path).name}:{name}", arch, ["cupy.RawModule"], num_warps=8,
                                     seconds=time.perf_counter() - start, **info[symbol]))
    return out


def run(workers: int = 2, archs: tuple[int, ...] = ARCHS, log: Callable[[str], object] = print) -> list[Resources]:
    """Record every scenario's launches, compile them for ``archs``, then the CUDA C sources."""
    for name in _HIDING:  # for this process and the compiler processes it starts
        os.environ.pop(name, None)
    start = time.perf_counter()
    with record() as launches:
        for s in scenarios():
            drive(s, launches)
        drive_mse(launches)
    jobs = jobs_for(launches, archs)
    log(f"# {len(launches)} launches recorded, {len(jobs)} distinct compiles for sm_{', sm_'.join(map(str, archs))}")
    results = compile_jobs(jobs, workers)
    results += cuda_c_resources(archs)
    log(f"# compiled in {time.perf_counter() - start:.0f} s")
    return results


def problems(results: list[Resources], max_registers: int = MAX_REGISTERS) -> list[str]:
    """What the gate fails on: compile errors, spills, more than ``max_registers`` on sm_90, narrow offsets."""
    out = []
    for r in results:
        where = f"{r.kernel} sm_{r.arch} [{r.configuration()}]"
        if r.error:
            out.append(f"{where}: {r.error}")
            continue
        if r.spill_bytes:
            out.append(f"{where}: spills {r.spill_bytes} bytes a thread to local memory")
        if r.arch == 90 and r.registers > max_registers:
            out.append(f"{where}: {r.registers} registers a thread (at most {max_registers})")
        if r.narrow_offsets:
            out.append(f"{where}: {r.narrow_offsets} vector addresses computed in 32 bits")
    return out


def to_markdown(results: list[Resources], max_registers: int = MAX_REGISTERS) -> str:
    """One row per compiled configuration: registers, spills, shared memory, H100 warps per SM, widths."""
    import triton

    header = ["kernel", "arch", "configuration", "regs", "spill B", "shared B", "warps/SM (H100)", "loads (bits)",
              "stores (bits)", "compile s"]
    rows = []
    for r in sorted(results, key=lambda r: (r.kernel, r.arch, r.origins)):
        name = r.kernel.split(":")[-1].lstrip("_")
        if r.error:
            rows.append([name, f"sm_{r.arch}", r.configuration(), "error", "", "", "", "", r.error, ""])
            continue
        rows.append([name, f"sm_{r.arch}", r.configuration(), str(r.registers), str(r.spill_bytes), str(r.shared_bytes),
                     str(r.warps_per_sm()) if r.arch == 90 else "", r.loads, r.stores, f"{r.seconds:.1f}"])
    from mdsnn_zoo.bench.common import markdown_table

    worst = max((r.registers for r in results if r.arch == 90 and not r.error), default=0)
    intro = (f"Compiled ahead of time with no GPU (Triton {triton.__version__}, NVRTC for the CUDA C), by "
             f"`mdsnn-zoo bench aot --out benchmarks/results/kernel_resources.md`. {len(results)} compiles; "
             f"most registers on sm_90: {worst} (limit {max_registers}). Registers and local memory (spill) per "
             "thread and shared memory per block from `cuobjdump -res-usage`; load/store widths from the SASS "
             "(`LDG.E.128` = 128 bits). Warps per SM: the theoretical occupancy on an H100.")
    return intro + "\n\n" + markdown_table(header, rows) + "\n"
