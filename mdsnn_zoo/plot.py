"""Figures: the membrane mismatch that membrane distillation removes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from spikingjelly.activation_based import functional
from torch import nn

from mdsnn_zoo.distill import MembraneRecorder
from mdsnn_zoo.errors import MdsnnError


@torch.no_grad()
def record_layer(models: Mapping[str, nn.Module], layer: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Membrane ``[T, N, *]`` of ``layer`` in each model, all on the same input ``x`` (float32, CPU)."""
    out = {}
    for name, model in models.items():
        model.eval()
        functional.reset_net(model)
        with MembraneRecorder(model, layers=[layer]) as rec:
            model(x)
        out[name] = rec.membranes[layer].float().cpu()
    return out


def plot_membranes(membranes: Mapping[str, torch.Tensor], layer: str, path: str | Path,
                   neurons: int = 4, reference: str = "teacher") -> Path:
    """PNG: traces of a few neurons over T (top) and the distribution of H (bottom) for each model;
    the legend gives each model's mean squared difference to ``reference``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if reference not in membranes:
        raise MdsnnError(f"the reference membrane {reference!r} is missing; have {', '.join(membranes)}")
    ref = membranes[reference]
    flat = {k: v.reshape(v.shape[0], -1) for k, v in membranes.items()}  # [T, N * features]
    # neurons whose reference trace moves most while it reaches the upper half of its range (near the
    # threshold, where spikes are decided): traces that show something
    r = flat[reference]
    top = r.max(0).values
    score = r.std(0) * (top >= top.quantile(0.5)).float()
    picks = score.topk(neurons).indices
    fig, axes = plt.subplots(2, neurons, figsize=(3.2 * neurons, 6), squeeze=False)
    colors = {"teacher": "black", "qat": "tab:red", "md": "tab:blue"}
    for j, idx in enumerate(picks.tolist()):
        ax = axes[0, j]
        for name, h in flat.items():
            ax.plot(range(h.shape[0]), h[:, idx], marker="o", label=name, color=colors.get(name))
        ax.set_title(f"neuron {idx}")
        ax.set_xlabel("time step")
        if j == 0:
            ax.set_ylabel("membrane H[t]")
    merged = fig.add_subplot(2, 1, 2)
    for ax in axes[1]:
        ax.remove()
    lo, hi = float(ref.quantile(0.001)), float(ref.quantile(0.999))
    for name, h in membranes.items():
        mse = float((h - ref).pow(2).mean())
        label = name if name == reference else f"{name} (MSE to {reference} {mse:.4f})"
        merged.hist(h.flatten().clamp(lo, hi).numpy(), bins=120, histtype="step", density=True,
                    label=label, color=colors.get(name))
    merged.set_xlabel(f"membrane potential H of layer {layer!r}, all steps and neurons")
    merged.set_ylabel("density (log scale)")
    merged.set_yscale("log")
    merged.legend()
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Membrane potentials of layer {layer!r}: teacher vs quantized students")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
