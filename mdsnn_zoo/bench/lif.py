"""Throughput of the multi-step LIF neuron: every available QuantLIFNode backend against
SpikingJelly's ``LIFNode`` (whatever path it takes on the device) and against ``LIFNode`` followed
by a torch fake-quant of the membrane (what a user writes today for a quantized membrane).

Bytes moved, what the fused kernels (Triton, CuPy) read and write for ``x: [T, M]`` (b = bytes of
the input dtype), counted by ``bytes_moved``:

- per element and step, forward alone (inference, nothing kept for backward): x read, spikes
  written, 2b. Forward + backward adds what backward needs, written then read back (a float
  membrane: H in float32, 4 + 4; a quantized one: the int8 code and the float16 residual, 3 + 3),
  the spike gradient read and the input gradient written, 2b: 4b + 8 (float) or 4b + 6 (quantized);
- per neuron, once: v0 read and the last state written (float32, 4 + 4), and in backward the
  gradient on v0 written (4; the benchmark's loss does not use the last state, so no gradient on it
  is read).

So float32, quantized, T = 4, forward + backward: 22 bytes an element and step plus 12 a neuron, 25
an element and step. The GB/s column divides these bytes by each method's time, whatever the method
moves itself: for the fused backends it is their real traffic; for SpikingJelly's LIFNode (which
saves H in float32, as the float count assumes) and LIFNode + fake-quant (many more passes) it is
the rate at which they do the same work, comparable across rows.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from spikingjelly.activation_based import functional, neuron

from mdsnn_zoo.bench.common import copy_bandwidth_gbs, markdown_table, time_ms
from mdsnn_zoo.machine import describe_machine
from mdsnn_zoo.neuron import QuantLIFNode

SJ = "spikingjelly LIFNode"
SJ_FQ = "spikingjelly LIFNode + fake-quant"


@dataclasses.dataclass
class Result:
    method: str
    u_bits: int | None
    dtype: torch.dtype
    neurons: int
    passes: str  # "fwd" or "fwd+bwd"
    ms: float
    bytes_moved: int


class FakeQuantLIF(torch.nn.Module):
    """SpikingJelly's LIFNode stepped one time step at a time, its membrane fake-quantized after
    each step with a straight-through round (the user-level way to quantize the membrane today)."""

    def __init__(self, u_bits: int) -> None:
        super().__init__()
        self.node = neuron.LIFNode(tau=2.0, step_mode="s")
        self.qmax = 2 ** (u_bits - 1) - 1
        self.delta = torch.nn.Parameter(torch.tensor(1.0 / self.qmax))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        out = []
        for x in x_seq:
            out.append(self.node(x))
            v = self.node.v / self.delta
            q = v + (v.round().clamp(-self.qmax - 1, self.qmax) - v).detach()
            self.node.v = q * self.delta
        return torch.stack(out)


def bytes_moved(neurons: int, T: int, dtype: torch.dtype, passes: str, quant: bool) -> int:
    """Bytes the fused kernels read and write for ``neurons`` neurons over ``T`` steps (module docstring)."""
    b = dtype.itemsize
    per_step = 2 * b if passes == "fwd" else 4 * b + (6 if quant else 8)
    per_neuron = 8 if passes == "fwd" else 12
    return (per_step * T + per_neuron) * neurons


def _measure(module: torch.nn.Module, x: torch.Tensor, passes: str, device: torch.device,
             budget_s: float) -> float:
    grad = torch.ones_like(x)

    def fwd() -> None:
        functional.reset_net(module)
        with torch.no_grad():
            module(x)

    def fwd_bwd() -> None:
        functional.reset_net(module)
        xg = x.detach().requires_grad_()
        module(xg).backward(grad)

    return time_ms(fwd if passes == "fwd" else fwd_bwd, device, budget_s=budget_s)


def _methods(device: torch.device, backends: list[str] | None, u_bits: int):
    """(name, u_bits, factory) for every method measured on ``device``."""
    yield SJ, None, lambda: neuron.LIFNode(tau=2.0, step_mode="m")
    yield SJ_FQ, u_bits, lambda: FakeQuantLIF(u_bits)
    available = [b for b in QuantLIFNode.available_backends()
                 if device.type == "cuda" or b in ("torch", "inductor")]
    for backend in backends or available:
        if device.type == "cpu" and backend == "triton":
            continue  # the interpreter is for tests, not for timing
        for bits in (None, u_bits):
            yield (f"QuantLIFNode[{backend}]", bits,
                   lambda backend=backend, bits=bits: QuantLIFNode(step_mode="m", backend=backend,
                                                                   u_bits=bits))


def run(device: str = "cpu", sizes: list[int] | None = None, dtypes: list[str] | None = None,
        T: int = 4, u_bits: int = 4, backends: list[str] | None = None, budget_s: float = 0.5,
        log=print) -> tuple[list[Result], dict]:
    """Measure every method at every size and dtype; returns the results and the run's metadata."""
    dev = torch.device(device)
    sizes = sizes or ([2**k for k in (16, 18, 20, 22, 24, 26)] if dev.type == "cuda"
                      else [2**k for k in (16, 18, 20, 21, 22, 24)])
    dtypes = [getattr(torch, d) for d in (dtypes or ["float32", "bfloat16"])]
    meta = {"machine": describe_machine(dev), "T": T, "copy_gbs": copy_bandwidth_gbs(dev)}
    log(f"# {meta['machine']}; copy bandwidth {meta['copy_gbs']:.1f} GB/s")
    results: list[Result] = []
    for dtype in dtypes:
        for n in sizes:
            g = torch.Generator(device="cpu").manual_seed(0)
            x = (torch.randn(T, n, generator=g) * 1.5).to(dev, dtype)
            for name, bits, make in _methods(dev, backends, u_bits):
                module = make().to(dev)
                for passes in ("fwd", "fwd+bwd"):
                    ms = _measure(module, x, passes, dev, budget_s)
                    r = Result(name, bits, dtype, n, passes, ms,
                               bytes_moved(n, T, dtype, passes, bits is not None))
                    results.append(r)
                    log(f"{name:36s} u_bits={bits!s:4s} {str(dtype)[6:]:8s} N=2^{int(math.log2(n)):<2d} "
                        f"{passes:7s} {ms:9.3f} ms")
                del module
    return results, meta


def to_markdown(results: list[Result], meta: dict) -> str:
    """The table: time, elements/s, GB/s of the bytes that must move, % of copy bandwidth, and
    the ratio to SpikingJelly's LIFNode (and, for quantized rows, to LIFNode + fake-quant)."""
    base = {(r.method, r.dtype, r.neurons, r.passes): r.ms for r in results if r.method in (SJ, SJ_FQ)}
    header = ["method", "u_bits", "dtype", "neurons", "pass", "ms", "Gelem/s", "GB/s", "% copy",
              "x SJ", "x SJ+fq"]
    rows = []
    for r in results:
        elems = r.neurons * meta["T"]
        gbs = r.bytes_moved / (r.ms * 1e-3) / 1e9
        sj = base.get((SJ, r.dtype, r.neurons, r.passes))
        sjfq = base.get((SJ_FQ, r.dtype, r.neurons, r.passes))
        rows.append([
            r.method, str(r.u_bits or "-"), str(r.dtype).replace("torch.", ""),
            f"2^{int(math.log2(r.neurons))}", r.passes, f"{r.ms:.3f}", f"{elems / (r.ms * 1e-3) / 1e9:.2f}",
            f"{gbs:.1f}", f"{100 * gbs / meta['copy_gbs']:.0f}", f"{sj / r.ms:.2f}" if sj else "-",
            f"{sjfq / r.ms:.2f}" if sjfq and r.u_bits else "-",
        ])
    intro = (f"Machine: {meta['machine']}. T = {meta['T']}. Copy bandwidth (large float32 copy, "
             f"read + write): {meta['copy_gbs']:.1f} GB/s. Times are medians. GB/s: the bytes the fused kernels "
             "move for the row's dtype, membrane and passes (`mdsnn_zoo.bench.lif` docstring), divided by the "
             "row's time, for every method alike.")
    return intro + "\n\n" + markdown_table(header, rows) + "\n"
