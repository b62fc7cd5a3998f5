"""Membrane potential-aware distillation (MD-SNN): record membranes, compare them, combine the losses.

    with MembraneRecorder(teacher) as t_rec, MembraneRecorder(student) as s_rec:
        with torch.no_grad():
            t_logits = teacher(x)
        s_logits = student(x)
        loss, parts = MDLoss()(s_logits, y, t_logits, s_rec.membranes, t_rec.membranes)

or, with the MSE fused into the student's neurons (no student membrane written to memory):

    with MembraneRecorder(teacher) as t_rec, torch.no_grad():
        t_logits = teacher(x)
    with MembraneTargets(student, t_rec.membranes) as targets:
        s_logits = student(x)
    loss, parts = MDLoss()(s_logits, y, t_logits, membrane_loss=targets.loss())

The membrane is the pre-spike potential H[t] of every :class:`QuantLIFNode` (after quantization in
the student), ``[T, N, *]``, at every time step. Its MSE gradient reaches the neuron's backward
through ``h_seq`` and is folded into the reverse-time recurrence there.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from mdsnn_zoo import backends
from mdsnn_zoo.errors import InvalidValueError, UnknownNameError, UsageError
from mdsnn_zoo.kernels.mse_reference import clip_target
from mdsnn_zoo.neuron import QuantLIFNode


def lif_layers(model: nn.Module) -> list[str]:
    """Module names of the QuantLIFNode layers of ``model``, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, QuantLIFNode)]


class MembraneRecorder:
    """Context manager: every QuantLIFNode of ``model`` (or those named in ``layers``) keeps its
    membrane while active; ``.membranes`` maps module name -> H ``[T, N, *]`` of the last forward.

    In multi-step mode each forward of ``model`` starts a new record. In single-step mode the steps
    are concatenated along T until :meth:`clear` is called.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str] | None = None) -> None:
        nodes = {n: m for n, m in model.named_modules() if isinstance(m, QuantLIFNode)}
        if not nodes:
            raise InvalidValueError("MembraneRecorder needs a model with QuantLIFNode layers; this one has none")
        names = list(nodes) if layers is None else list(layers)
        unknown = [n for n in names if n not in nodes]
        if unknown:
            raise UnknownNameError(f"no QuantLIFNode named {unknown[0]!r}; the model has {', '.join(nodes)}")
        self.model = model
        self.nodes = {n: nodes[n] for n in names}
        self._steps: dict[str, list[torch.Tensor]] = OrderedDict((n, []) for n in names)
        self._handles: list = []
        self._saved_flags: dict[str, bool] = {}

    def __enter__(self) -> MembraneRecorder:
        for name, node in self.nodes.items():
            self._saved_flags[name] = node.store_h_seq
            node.store_h_seq = True
            self._handles.append(node.register_forward_hook(functools.partial(self._record, name)))
        self._handles.append(self.model.register_forward_pre_hook(self._new_forward))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for name, node in self.nodes.items():
            node.store_h_seq = self._saved_flags[name]
            if not node.store_h_seq:
                node.h_seq = None

    def _new_forward(self, module, args) -> None:
        if all(node.step_mode == "m" for node in self.nodes.values()):
            self.clear()

    def _record(self, name: str, node: QuantLIFNode, args, output) -> None:
        self._steps[name].append(node.h_seq)

    def clear(self) -> None:
        for steps in self._steps.values():
            steps.clear()

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """Per quantized layer, the (lowest, highest) membrane its grid holds (volts): distillation
        clips the teacher's membrane to it (a student cannot be asked for what it cannot hold)."""
        return {n: r for n, node in self.nodes.items() if (r := node.grid_range()) is not None}

    @property
    def membranes(self) -> OrderedDict[str, torch.Tensor]:
        out = OrderedDict()
        for name, steps in self._steps.items():
            if steps:
                out[name] = steps[0] if len(steps) == 1 else torch.cat(steps)
        return out


class MembraneTargets:
    """Context manager: membrane distillation fused into the student's neurons.

    Each QuantLIFNode of ``student`` named in ``teacher_membranes`` (or in ``layers``) gets the
    teacher's membrane as its target: its forward kernel accumulates the squared difference while it
    computes the student's membrane, and its backward kernel adds the MSE's gradient inside the
    reverse-time recurrence. The student's membranes are never written out and read back. After
    the student's forward, :meth:`loss` is what :func:`membrane_mse` would give on recorded membranes.
    """

    def __init__(self, student: nn.Module, teacher_membranes: Mapping[str, torch.Tensor],
                 layers: Iterable[str] | None = None) -> None:
        nodes = {n: m for n, m in student.named_modules() if isinstance(m, QuantLIFNode)}
        names = list(teacher_membranes) if layers is None else list(layers)
        missing = [n for n in names if n not in nodes or n not in teacher_membranes]
        if missing:
            raise UnknownNameError(f"layer {missing[0]!r} is not a QuantLIFNode of the student with a teacher "
                                   f"membrane; student layers: {', '.join(nodes)}")
        if not names:
            raise InvalidValueError("MembraneTargets got no teacher membranes: record the teacher first")
        self.nodes = {n: nodes[n] for n in names}
        self.targets = {n: teacher_membranes[n] for n in names}

    def __enter__(self) -> MembraneTargets:
        self._stack = contextlib.ExitStack()
        for name, node in self.nodes.items():
            self._stack.enter_context(node.distill_to(self.targets[name]))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def loss(self) -> torch.Tensor:
        """Mean over the layers of each layer's mean squared membrane difference (differentiable)."""
        losses = []
        for name, node in self.nodes.items():
            if node.membrane_mse is None:
                raise UsageError(f"layer {name!r} did not run with its target: call the student inside the "
                                 "MembraneTargets block")
            losses.append(node.membrane_mse)
        return torch.stack(losses).mean()


class SpikeForcing:
    """Context manager: the student's LIF layers pass on some of the teacher's spikes in place of their own.

    Each multi-step QuantLIFNode of ``student`` named in ``teacher_membranes`` (the teacher's recorded
    pre-spike membranes ``[T, N, *]``) replaces each of its output spikes, independently with probability
    ``rate``, by the teacher's spike at that place (``H >= v_threshold``). A replaced spike carries no
    gradient to the student's neuron, and the layers after it see the teacher's spike there: QDrop's
    random mix of float and quantized activations (Wei et al., ICLR 2022), on spikes, so that early in
    training each layer learns from inputs closer to the teacher's. Draws from torch's global generator.
    """

    def __init__(self, student: nn.Module, teacher_membranes: Mapping[str, torch.Tensor], rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise InvalidValueError(f"spike forcing rate must be in [0, 1], got {rate}")
        nodes = {n: m for n, m in student.named_modules() if isinstance(m, QuantLIFNode)}
        if not teacher_membranes:
            raise InvalidValueError("SpikeForcing got no teacher membranes: record the teacher first")
        missing = [n for n in teacher_membranes if n not in nodes]
        if missing:
            raise UnknownNameError(f"layer {missing[0]!r} of the teacher's membranes is not a QuantLIFNode of the "
                                   f"student; student layers: {', '.join(nodes)}")
        self.nodes = {n: nodes[n] for n in teacher_membranes}
        self.membranes, self.rate = teacher_membranes, rate
        self._handles: list = []

    def __enter__(self) -> SpikeForcing:
        for name, node in self.nodes.items():
            if node.step_mode != "m":
                raise UsageError(f"SpikeForcing needs multi-step neurons; layer {name!r} is in single-step mode")
            self._handles.append(node.register_forward_hook(functools.partial(self._force, name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _force(self, name: str, node: QuantLIFNode, args, spikes: torch.Tensor) -> torch.Tensor:
        membrane = self.membranes[name]
        if membrane.shape != spikes.shape:
            raise InvalidValueError(f"layer {name!r}: teacher membrane {tuple(membrane.shape)} and student spikes "
                                    f"{tuple(spikes.shape)} differ in shape")
        teacher_spikes = (membrane >= node.v_threshold).to(spikes.dtype)
        forced = torch.rand(spikes.shape, device=spikes.device) < self.rate
        return torch.where(forced, teacher_spikes, spikes)


class _MembraneMSE(torch.autograd.Function):
    """Loss and gradient of every layer in one fused pass each; the teacher gets no gradient."""

    @staticmethod
    def forward(ctx, backend: ModuleType, n_layers: int, *tensors: torch.Tensor) -> torch.Tensor:
        students, teachers = tensors[:n_layers], tensors[n_layers:]
        total = torch.zeros((), dtype=torch.float32, device=students[0].device)
        grads = []
        for i, (s, t) in enumerate(zip(students, teachers, strict=True)):
            n = max(s.numel(), 1)
            need = ctx.needs_input_grad[2 + i]
            with torch.autocast(s.device.type, enabled=False):
                loss_sum, g = backend.forward(s, t, 2.0 / (n * n_layers), need)
            total = total + loss_sum / n
            grads.append(g)
        ctx.with_grad = [g is not None for g in grads]
        ctx.save_for_backward(*[g for g in grads if g is not None])
        return total / n_layers

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        saved = iter(ctx.saved_tensors)
        grads = []
        for has_grad in ctx.with_grad:
            g = next(saved) if has_grad else None
            grads.append(None if g is None else g * grad_out.to(g.dtype))
        return (None, None, *grads, *([None] * len(grads)))


def membrane_mse(student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor],
                 layers: Iterable[str] | None = None, backend: str = "auto",
                 clip: Mapping[str, tuple[float, float]] | None = None) -> torch.Tensor:
    """Mean over layers of each layer's mean squared membrane difference (over T, N and features).

    ``student`` and ``teacher`` are the ``.membranes`` of two :class:`MembraneRecorder` s; ``layers``
    selects module names (default: every layer the student recorded). The gradient flows to the
    student only. ``clip`` (``MembraneRecorder.ranges`` of the student) clips each teacher membrane
    to what the student's grid holds. Backends: ``torch`` (reference), ``triton`` and ``cupy`` (one
    fused pass per layer for the loss and its gradient); ``auto`` picks a fused one on CUDA.
    """
    names = list(student) if layers is None else list(layers)
    if not names:
        raise InvalidValueError("membrane_mse got no layers: record the student with MembraneRecorder first")
    for name in names:
        if name not in student or name not in teacher:
            side, recorded = ("student", student) if name not in student else ("teacher", teacher)
            raise UnknownNameError(f"layer {name!r} has no recorded {side} membrane; the {side} recorded: "
                                   f"{', '.join(recorded) or 'nothing'}")
        if student[name].shape != teacher[name].shape:
            raise InvalidValueError(f"layer {name!r}: student membrane {tuple(student[name].shape)} and teacher "
                                    f"membrane {tuple(teacher[name].shape)} differ in shape")
    s = [student[n] for n in names]
    clip = clip or {}
    t = [clip_target(teacher[n].detach(), clip.get(n)) for n in names]
    chosen = backends.resolve(backend, "mse", s[0].device.type)
    return _MembraneMSE.apply(backends.module(chosen, "mse"), len(names), *s, *t)


class MDLoss(nn.Module):
    """MD-SNN's objective: ``ce_weight · CE + kd_weight · KD + mem_weight · membrane MSE``.

    KD is the KL divergence between the teacher's and the student's softened class distributions
    at ``temperature`` (times temperature², as usual). Returns the total and its parts (for logs).
    Defaults (kd_weight=0.5, temperature=2, mem_weight=1) were chosen on held-out data with W2U2
    students of a Fashion-MNIST teacher (``recipes/mdloss_sweep.sh``; README, "Quantization and
    membrane distillation"): Hinton's usual temperature 4 made the 2-bit students diverge.
    """

    def __init__(self, ce_weight: float = 1.0, kd_weight: float = 0.5, temperature: float = 2.0,
                 mem_weight: float = 1.0, layers: Iterable[str] | None = None, backend: str = "auto",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise InvalidValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= label_smoothing < 1.0:
            raise InvalidValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.ce_weight, self.kd_weight, self.temperature = ce_weight, kd_weight, temperature
        self.label_smoothing = label_smoothing
        self.mem_weight, self.backend = mem_weight, backend
        self.layers = None if layers is None else list(layers)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                student_membranes: Mapping[str, torch.Tensor] | None = None,
                teacher_membranes: Mapping[str, torch.Tensor] | None = None,
                membrane_loss: torch.Tensor | None = None,
                clip: Mapping[str, tuple[float, float]] | None = None):
        """``membrane_loss`` (from :class:`MembraneTargets`) replaces the recorded membranes;
        ``clip``: the student recorder's ``ranges``."""
        zero = logits.new_zeros((), dtype=torch.float32)
        ce = F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)
        kd = mem = zero
        if self.kd_weight and teacher_logits is not None:
            T = self.temperature
            kd = F.kl_div(F.log_softmax(logits.float() / T, -1),
                          F.log_softmax(teacher_logits.float().detach() / T, -1),
                          reduction="batchmean", log_target=True) * T * T
        if self.mem_weight and membrane_loss is not None:
            mem = membrane_loss
        elif self.mem_weight and student_membranes is not None and teacher_membranes is not None:
            mem = membrane_mse(student_membranes, teacher_membranes, self.layers, self.backend, clip)
        total = self.ce_weight * ce + self.kd_weight * kd + self.mem_weight * mem
        return total, {"ce": ce.detach(), "kd": kd.detach(), "mem": mem.detach()}
