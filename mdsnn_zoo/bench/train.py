"""Training throughput (images/s) of zoo architectures: built from QuantLIFNode against the same
network built from SpikingJelly's ``LIFNode``, float; and the W2U2 student's MD step (teacher
forward + student forward/backward with the membrane MSE fused into its neurons)."""

from __future__ import annotations

import copy
import functools
import inspect

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron
from torch import nn

from mdsnn_zoo.bench.common import describe_machine, markdown_table, time_ms
from mdsnn_zoo.data import dataset_info
from mdsnn_zoo.distill import MDLoss, MembraneRecorder, MembraneTargets
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import quantize_model
from mdsnn_zoo.zoo.registry import ENTRIES, build_entry_model

DEFAULT = ["small_cnn.fmnist_t4_fp", "vgg9.fmnist_t4_fp", "resnet20.fmnist_t4_fp"]


def spikingjelly_twin(model: nn.Module, backend: str = "torch") -> nn.Module:
    """A copy of ``model`` with every (float) QuantLIFNode replaced by SpikingJelly's LIFNode
    (``backend`` where the installed release takes one: 0.0.0.0.14; 2.0.0 picks its own path)."""
    extra = {"backend": backend} if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters else {}
    twin = copy.deepcopy(model)
    for name, m in list(twin.named_modules()):
        if isinstance(m, QuantLIFNode):
            lif = neuron.LIFNode(tau=m.tau, decay_input=m.decay_input, v_threshold=m.v_threshold,
                                 v_reset=m.v_reset, detach_reset=m.detach_reset,
                                 surrogate_function=m.surrogate_function, step_mode="m", **extra)
            parent, _, child = name.rpartition(".")
            setattr(twin.get_submodule(parent) if parent else twin, child, lif)
    return twin


def _amp(device: torch.device, on: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def _train_step(model, opt, x, y, amp):
    functional.reset_net(model)
    with _amp(x.device, amp):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _md_step(student, teacher, opt, x, y, amp, loss_fn):
    functional.reset_net(student)
    functional.reset_net(teacher)
    with _amp(x.device, amp):
        with MembraneRecorder(teacher) as rec, torch.no_grad():
            t_logits = teacher(x)
        with MembraneTargets(student, rec.membranes) as targets:
            logits = student(x)
        loss, _ = loss_fn(logits, y, t_logits, membrane_loss=targets.loss())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def run(device: str = "cpu", names: list[str] | None = None, batch_size: int = 64, amp: bool = True,
        budget_s: float = 5.0, log=print) -> str:
    dev = torch.device(device)
    sj_backend = "cupy" if dev.type == "cuda" and "cupy" in QuantLIFNode.available_backends() else "torch"
    rows = []
    for name in names or DEFAULT:
        e = ENTRIES[name]
        info = dataset_info(e.dataset)
        x = torch.rand(batch_size, *info.input_shape, device=dev)
        y = torch.randint(0, info.num_classes, (batch_size,), device=dev)
        ours = build_entry_model(e).to(dev).train()
        sj = spikingjelly_twin(ours, sj_backend).train()
        speeds = []
        for model in (ours, sj):
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            ms = time_ms(functools.partial(_train_step, model, opt, x, y, amp), dev, warmup=2, budget_s=budget_s,
                         min_repeats=3)
            speeds.append(batch_size / (ms * 1e-3))
        teacher = ours.eval().requires_grad_(False)
        functional.reset_net(teacher)  # drop the last step's state (a graph node) before it is copied
        student = quantize_model(teacher, 2, 2).train()
        opt = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
        ms = time_ms(functools.partial(_md_step, student, teacher, opt, x, y, amp, MDLoss()), dev, warmup=2,
                     budget_s=budget_s, min_repeats=3)
        md = batch_size / (ms * 1e-3)
        params = sum(p.numel() for p in ours.parameters())
        row = [e.arch, str(e.arch_kwargs or "-"), f"{params / 1e6:.2f} M", f"{speeds[0]:.0f}", f"{speeds[1]:.0f}",
               f"{speeds[0] / speeds[1]:.2f}x", f"{md:.0f}"]
        rows.append(row)
        log(" | ".join(row))
    intro = (f"Machine: {describe_machine(dev)}. Training throughput in images/s (median step), "
             f"batch {batch_size}, T=4, {'bfloat16 autocast' if amp else 'float32'}, SGD; inputs of each "
             f"entry's data set. 'SpikingJelly' is the same network with `LIFNode`. "
             "'W2U2 MD' is one distillation step: teacher forward, student forward and backward with the "
             "membrane MSE fused into its neurons.")
    header = ["arch", "arch kwargs", "params", "QuantLIFNode (float)", "SpikingJelly LIFNode", "ratio",
              "W2U2 MD step"]
    return intro + "\n\n" + markdown_table(header, rows) + "\n"
