"""Membrane distillation cost: the MSE between student and teacher membranes computed separately
(record the student's membrane, then a torch or fused MSE pass) against the MSE fused into the
student's LIF kernels (``MembraneTargets``). Measured on one quantized LIF layer, forward + backward:
time, and the bytes kept for backward (everything autograd saves, counted by a saved-tensor hook).
"""

from __future__ import annotations

import contextlib

import torch

from mdsnn_zoo.bench.common import copy_bandwidth_gbs, markdown_table, time_ms
from mdsnn_zoo.distill import MembraneRecorder, MembraneTargets, membrane_mse
from mdsnn_zoo.machine import describe_machine
from mdsnn_zoo.neuron import QuantLIFNode


@contextlib.contextmanager
def saved_bytes():
    """Counts the bytes of distinct tensors autograd saves for backward inside the block."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if t.device.type != "meta":
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    box = {"bytes": 0}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield box
    box["bytes"] = sum(seen.values())


def _step(node: QuantLIFNode, x: torch.Tensor, target: torch.Tensor, mode: str, mse_backend: str | None,
          backward: bool = True) -> None:
    node.reset()
    xg = x.detach().requires_grad_()
    if mode == "fused":
        with MembraneTargets(_Wrap(node), {"node": target}) as targets:
            s = node(xg)
        loss = targets.loss()
    else:
        with MembraneRecorder(_Wrap(node)) as rec:
            s = node(xg)
        loss = membrane_mse({"node": rec.membranes["node"]}, {"node": target}, backend=mse_backend)
    if backward:
        (s.sum() + loss).backward()


class _Wrap(torch.nn.Module):
    def __init__(self, node: QuantLIFNode) -> None:
        super().__init__()
        self.node = node

    def forward(self, x):
        return self.node(x)


def run(device: str = "cpu", sizes: list[int] | None = None, T: int = 4, u_bits: int = 2,
        budget_s: float = 0.5, log=print) -> str:
    dev = torch.device(device)
    sizes = sizes or [2**k for k in (18, 20, 22)]
    backends = ["torch"] + [b for b in ("triton", "cupy") if dev.type == "cuda" and b in
                            QuantLIFNode.available_backends()]
    machine, copy = describe_machine(dev), copy_bandwidth_gbs(dev)
    rows = []
    for n in sizes:
        x = torch.randn(T, n, device=dev) * 1.5
        target = (torch.randn(T, n, device=dev) * 0.5).clamp(-1, 1)
        node = QuantLIFNode(step_mode="m", u_bits=u_bits).to(dev)
        cases = [(f"recorded + membrane_mse[{b}]", "separate", b) for b in backends] + \
                [("fused in the LIF kernels (MembraneTargets)", "fused", None)]
        base = None
        for name, mode, b in cases:
            args = (node, x, target, mode, b)
            ms = time_ms(lambda args=args: _step(*args), dev, budget_s=budget_s)
            with saved_bytes() as box:
                _step(*args, backward=False)
            base = base or ms
            rows.append([name, f"2^{n.bit_length() - 1}", f"{ms:.3f}", f"{base / ms:.2f}",
                         f"{box['bytes'] / 2**20:.1f}"])
            log(f"{name:45s} N=2^{n.bit_length() - 1} {ms:8.3f} ms  saved {box['bytes'] / 2**20:.1f} MiB")
    intro = (f"Machine: {machine}. Copy bandwidth {copy:.1f} GB/s. One QuantLIFNode (u_bits={u_bits}, T={T}), "
             "forward + backward of spikes.sum() + membrane MSE to a teacher membrane; times are medians; "
             "'saved' is what autograd keeps for backward.")
    return intro + "\n\n" + markdown_table(["method", "neurons", "ms", "speed-up", "saved MiB"], rows) + "\n"
