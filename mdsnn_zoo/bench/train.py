"""Training throughput (images/s) of zoo architectures, through the trainer's own step function.

For each network, in one run: its float training step and its W2U2 MD step (teacher forward,
student forward and backward with the membrane MSE fused into its neurons) in the trainer's
current layout (channels_last activations, the stem run once per image: ``SpikingNet.share_stem``)
and in the layout used before (contiguous NCHW, the stem on every time step), with the ratio; and
the float step of the same network built from SpikingJelly's ``LIFNode``.
"""

from __future__ import annotations

import copy
import functools
import inspect

import torch
from spikingjelly.activation_based import neuron
from torch import nn

from mdsnn_zoo.bench.common import markdown_table, profile_ops, time_interleaved_ms
from mdsnn_zoo.data import dataset_info
from mdsnn_zoo.distill import MDLoss
from mdsnn_zoo.machine import describe_machine
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.precision import resolve_amp
from mdsnn_zoo.quant import quantize_model
from mdsnn_zoo.train import to_layout, train_step
from mdsnn_zoo.zoo.registry import ENTRIES, build_entry_model

DEFAULT = ["small_cnn.fmnist_t4_fp", "vgg9.fmnist_t4_fp", "ms_resnet18.fmnist_t4_fp"]
LAYOUTS = {"before": (False, False), "now": (True, True)}  # name: (channels_last, share_stem)


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


def _step(model: nn.Module, teacher: nn.Module | None, x, y, amp: bool):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    return functools.partial(train_step, model, model, teacher, opt, x, y, MDLoss(), amp=amp)


def _laid_out(model: nn.Module, layout: str) -> nn.Module:
    channels_last, share_stem = LAYOUTS[layout]
    model.share_stem = share_stem
    return to_layout(model, channels_last)


def run(device: str = "cpu", names: list[str] | None = None, batch_size: int = 64, amp: bool | None = None,
        budget_s: float = 5.0, profile_steps: int = 0, log=print) -> str:
    """The throughput table (markdown); with ``profile_steps``, also each network's operators by
    share of its float training step's time, profiled over that many steps."""
    dev = torch.device(device)
    amp, precision = resolve_amp(amp, dev)
    sj_backend = "cupy" if dev.type == "cuda" and "cupy" in QuantLIFNode.available_backends() else "torch"
    rows, profiles = [], []
    for name in names or DEFAULT:
        e = ENTRIES[name]
        info = dataset_info(e.dataset)
        frames = (e.time_steps,) if info.kind == "events" else ()  # event samples carry their T frames
        x = torch.rand(batch_size, *frames, *info.input_shape, device=dev)
        y = torch.randint(0, info.num_classes, (batch_size,), device=dev)
        steps = {}
        for layout in LAYOUTS:
            torch.manual_seed(0)
            net = _laid_out(build_entry_model(e).to(dev).train(), layout)
            steps["fp", layout] = _step(net, None, x, y, amp)
            teacher = copy.deepcopy(net).eval().requires_grad_(False)
            student = _laid_out(quantize_model(teacher, 2, 2).train(), layout)
            steps["md", layout] = _step(student, teacher, x, y, amp)
        ours = steps["fp", "now"].args[0]
        steps["sj", "now"] = _step(spikingjelly_twin(ours, sj_backend).train(), None, x, y, amp)
        ms = time_interleaved_ms(list(steps.values()), dev, budget_s=budget_s)
        speed = {key: batch_size / (t * 1e-3) for key, t in zip(steps, ms, strict=True)}
        fp = {k: speed["fp", k] for k in LAYOUTS}
        md = {k: speed["md", k] for k in LAYOUTS}
        sj = speed["sj", "now"]
        params = sum(p.numel() for p in ours.parameters())
        row = [e.arch, str(e.arch_kwargs or "-"), f"{params / 1e6:.2f} M",
               f"{fp['before']:.0f}", f"{fp['now']:.0f}", f"{fp['now'] / fp['before']:.2f}x",
               f"{md['before']:.0f}", f"{md['now']:.0f}", f"{md['now'] / md['before']:.2f}x",
               f"{sj:.0f}", f"{fp['now'] / sj:.2f}x"]
        rows.append(row)
        log(" | ".join(row))
        if profile_steps:
            ops = profile_ops(steps["fp", "now"], dev, steps=profile_steps)
            profiles.append(_profile_section(name, batch_size, profile_steps, ops))
    intro = (f"Machine: {describe_machine(dev)}. Training throughput in images/s (median step of the "
             f"trainer's `train_step`, the five steps timed in alternation), batch {batch_size}, each entry's T, "
             f"{precision}, SGD; inputs of each entry's data set. 'before': contiguous NCHW activations, "
             "the stem convolution on every time step; 'now': channels_last activations, the stem once per "
             "image (`SpikingNet.share_stem`). 'W2U2 MD': one distillation step (teacher forward, student "
             "forward and backward with the membrane MSE fused into its neurons). 'SpikingJelly': the same "
             "float network with `LIFNode`, in the 'now' layout.")
    header = ["arch", "arch kwargs", "params", "float before", "float now", "speed-up", "W2U2 MD before",
              "W2U2 MD now", "speed-up", "SpikingJelly LIFNode", "QuantLIFNode / LIFNode"]
    return intro + "\n\n" + markdown_table(header, rows) + "\n" + "".join(profiles)


def _profile_section(name: str, batch_size: int, steps: int, ops: list[tuple[str, float, float]]) -> str:
    rows = [[f"`{op}`", f"{pct:.1f}", f"{calls:g}"] for op, pct, calls in ops]
    return (f"\n{name}, float training step ('now' layout, batch {batch_size}), operators by self time over "
            f"{steps} profiled steps (`torch.profiler`):\n\n"
            + markdown_table(["operator", "% of self time", "calls per step"], rows) + "\n")
