"""What a spiking network costs on hardware, from one real forward pass (``mdsnn-zoo cost``).

    report = estimate(model, x, hardware="spikesim", activity="spikes")   # x: [T, N, C, H, W]
    report = measure("small_cnn.fmnist_t4_w2u2_md")   # a zoo name or checkpoint, on its own test data
    report.energy_pj, report.latency_ns, report.area_um2, report.edap, report.tops_per_w
    print(report.table())

``model``: a zoo ``SpikingNet`` or any SpikingJelly network (an ``nn.Sequential`` of ``layer.Conv2d``,
``layer.Linear`` and neurons, or a module of your own), float or quantized, with ``QuantLIFNode`` or
SpikingJelly's neurons (any ``neuron.BaseNode``: LIFNode, IFNode, ParametricLIFNode...); it runs in
multi-step mode for the pass and gets its step modes and state back (:mod:`mdsnn_zoo.cost.trace`).
Float weights are priced at 32 bits, float membranes at the hardware's full word.

Two hardware models: ``"spikesim"``, SpikeSim's compute-in-memory accelerator
(:mod:`mdsnn_zoo.cost.spikesim`, with where bits and spikes enter), and ``"digital"``, a simple
digital accelerator with 45 nm energies (:mod:`mdsnn_zoo.cost.digital`). Figures are per sample (one
inference of T steps). ``edap`` is energy x latency x area in pJ x ns x µm²; ``ops`` counts two
operations per dense multiply-accumulate over all T steps (the work a dense network does), so
``tops_per_w`` = ops / energy (ops per pJ) and ``tops_per_mm2`` = ops / latency / area.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mdsnn_zoo.cost import digital, spikesim
from mdsnn_zoo.cost.digital import DigitalConfig
from mdsnn_zoo.cost.spikesim import SpikeSimConfig
from mdsnn_zoo.cost.trace import trace
from mdsnn_zoo.errors import InvalidValueError

HARDWARE = ("spikesim", "digital")
ACTIVITY = ("dense", "spikes")


@dataclass(frozen=True)
class LayerCost:
    """One layer's row: dense ops, measured synaptic ops, bits, crossbars (SpikeSim), cost."""

    name: str
    kind: str
    ops: float
    synaptic_ops: float
    weight_bits: int | None
    membrane_bits: int | None
    crossbars: int | None
    energy_pj: float
    area_um2: float | None
    latency_ns: float


@dataclass(frozen=True)
class CostReport:
    """Totals per sample and a row per layer; ``unmapped`` lists what the hardware model does not
    price (never silently dropped)."""

    hardware: str
    activity: str
    energy_pj: float
    latency_ns: float
    area_um2: float
    ops: float
    layers: tuple[LayerCost, ...]
    unmapped: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)

    @property
    def edap(self) -> float:
        """Energy x latency x area, pJ x ns x µm²."""
        return self.energy_pj * self.latency_ns * self.area_um2

    @property
    def tops_per_w(self) -> float:
        return self.ops / self.energy_pj if self.energy_pj else 0.0

    @property
    def tops_per_mm2(self) -> float:
        return self.ops / self.latency_ns * 1e-3 / (self.area_um2 * 1e-6) if self.latency_ns and self.area_um2 else 0.0

    def totals(self) -> dict[str, Any]:
        """The figures the zoo's metadata and ``--json`` carry."""
        return {"hardware": self.hardware, "activity": self.activity, "energy_pj": self.energy_pj,
                "latency_ns": self.latency_ns, "area_um2": self.area_um2, "edap": self.edap,
                "tops_per_w": self.tops_per_w, "tops_per_mm2": self.tops_per_mm2, "ops": self.ops}

    def as_dict(self) -> dict[str, Any]:
        return {**self.totals(), "layers": [dataclasses.asdict(r) for r in self.layers],
                "unmapped": list(self.unmapped), "config": self.config}

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    def table(self) -> str:
        """A markdown table of the layers and the totals."""
        head = "| layer | kind | ops | synaptic ops | W bits | U bits | crossbars | energy pJ | area µm² | latency ns |"
        lines = [head, "|" + "---|" * 10]
        for r in self.layers:
            cells = [r.name, r.kind, f"{r.ops:.3g}", f"{r.synaptic_ops:.3g}", _bits(r.weight_bits),
                     _bits(r.membrane_bits), "-" if r.crossbars is None else str(r.crossbars), f"{r.energy_pj:.4g}",
                     "-" if r.area_um2 is None else f"{r.area_um2:.4g}", f"{r.latency_ns:.4g}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append(f"\n{self.hardware}, activity {self.activity}: energy {self.energy_pj:.4g} pJ, latency "
                     f"{self.latency_ns:.4g} ns, area {self.area_um2:.4g} µm², EDAP {self.edap:.4g} pJ·ns·µm², "
                     f"{self.tops_per_w:.4g} TOPS/W, {self.tops_per_mm2:.4g} TOPS/mm²")
        lines += [f"not priced: {u}" for u in self.unmapped]
        return "\n".join(lines)


def _bits(b: int | None) -> str:
    return "fp" if b is None else str(b)


def estimate(model: nn.Module, x: torch.Tensor, hardware: str = "spikesim", activity: str = "dense",
             config: SpikeSimConfig | DigitalConfig | None = None) -> CostReport:
    """The cost of ``model`` on ``x: [T, N, C, H, W]`` (time-major; ``[T, N, F]`` for a network of linear
    layers) under ``hardware``, per sample: energy pJ, latency ns, area µm², a row per weighted layer.

    ``model``: a zoo ``SpikingNet`` (called with ``time_major=True``) or any SpikingJelly network
    (called ``model(x)`` in multi-step mode) with spiking neurons and conv/linear layers.
    ``activity="dense"``: every operation of every layer at every step; ``"spikes"``: the work follows
    the spikes measured in this forward pass. ``config``: the hardware's parameters (default: the
    published ones)."""
    if hardware not in HARDWARE:
        raise InvalidValueError(f"hardware must be one of {', '.join(HARDWARE)}, got {hardware!r}")
    if activity not in ACTIVITY:
        raise InvalidValueError(f"activity must be one of {', '.join(ACTIVITY)}, got {activity!r}")
    expected = SpikeSimConfig if hardware == "spikesim" else DigitalConfig
    config = config or expected()
    if not isinstance(config, expected):
        raise InvalidValueError(f"hardware {hardware!r} takes a {expected.__name__}, got {type(config).__name__}")
    ops = trace(model, x, rows=config.xbar if hardware == "spikesim" else 64)
    dense_ops = 2.0 * sum(op.macs for op in ops if op.kind in ("conv", "linear"))
    weighted = [(i, op) for i, op in enumerate(ops) if op.kind in ("conv", "linear")]
    if hardware == "spikesim":
        layers, unmapped = spikesim.layers_from_ops(ops)
        t_steps = ops[0].time_steps if ops else 1
        totals = spikesim.cost(layers, t_steps, config, activity)
        rows = tuple(LayerCost(op.name, op.kind, 2.0 * op.macs, op.sops, op.w_bits, op.u_bits,
                               r["crossbars"], r["energy_pj"], r["area_um2"], r["latency_ns"])
                     for (i, op), r in zip(weighted, totals["layers"], strict=True))
    else:
        totals = digital.cost(ops, config, activity)
        unmapped = []
        rows = tuple(LayerCost(op.name, op.kind, 2.0 * op.macs, op.sops, op.w_bits, op.u_bits, None,
                               r["energy_pj"], None, r["latency_ns"])
                     for op, r in zip(ops, totals["layers"], strict=True))
    return CostReport(hardware, activity, totals["energy_pj"], totals["latency_ns"], totals["area_um2"],
                      dense_ops, rows, tuple(unmapped), dataclasses.asdict(config))


def measure(ref: str, hardware: str = "spikesim", activity: str = "dense", samples: int = 64,
            data_root: str | None = None) -> CostReport:
    """The :class:`CostReport` of a zoo name or checkpoint (any trained architecture, built
    by ``load_model`` as ``eval`` builds it) on its test split's first ``samples`` samples, per sample."""
    from mdsnn_zoo.data import get_dataset, to_time_major
    from mdsnn_zoo.evaluation import load_model

    if samples < 1:
        raise InvalidValueError(f"samples must be >= 1, got {samples}")
    model, dataset, options, _ = load_model(ref)
    data = get_dataset(dataset, "test", root=data_root, **options)
    idx = torch.arange(min(samples, len(data)))
    x = data.batch(idx)[0] if hasattr(data, "batch") else torch.stack([data[int(i)][0] for i in idx])
    return estimate(model, to_time_major(x, model.time_steps), hardware, activity)


__all__ = ["CostReport", "DigitalConfig", "LayerCost", "SpikeSimConfig", "estimate", "measure", "trace"]
