"""Figures: the membrane mismatch that membrane distillation removes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from spikingjelly.activation_based import functional
from torch import nn

from mdsnn_zoo.distill import MembraneRecorder
from mdsnn_zoo.errors import InvalidValueError


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
        raise InvalidValueError(f"the reference membrane {reference!r} is missing; have {', '.join(membranes)}")
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
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def validation_curve(run_dir: str | Path) -> tuple[list[float], list[float]]:
    """(epochs, validation top-1 %) of a training run folder, from its ``log.csv`` (steps and the
    epoch each fell in, which gives the steps per epoch) and ``epochs.csv`` (step, top-1 per check)."""
    import csv

    run = Path(run_dir)
    try:
        with open(run / "log.csv", newline="") as f:
            first_epoch = [int(r["step"]) for r in csv.DictReader(f) if r["epoch"] == "0"]
        with open(run / "epochs.csv", newline="") as f:
            checks = {int(r["step"]): float(r["val_top1"]) for r in csv.DictReader(f)}  # a resume rewrites a step
    except (OSError, KeyError, ValueError) as err:
        raise InvalidValueError(f"{run} is not a readable training run folder (log.csv, epochs.csv): {err}") from None
    if not first_epoch or not checks:
        raise InvalidValueError(f"{run} has not finished an epoch yet: no validation top-1 to plot")
    steps_per_epoch = max(first_epoch)
    steps = sorted(checks)
    return [s / steps_per_epoch for s in steps], [checks[s] for s in steps]


def _run_label(run: Path) -> tuple[str, str]:
    """(family, variant) of a run folder from its ``config.json``: ('vgg9 width 0.5', 'W2U2 md'),
    ('vgg9 width 0.5', 'fp relu twin, T=1'), ('vgg9 width 0.5', 'fp, soft labels')."""
    import json

    cfg = json.loads((run / "config.json").read_text())
    kwargs = " ".join(f"{k} {v}" for k, v in sorted(cfg.get("arch_kwargs", {}).items()))
    family = f"{cfg['arch']} {kwargs}".strip()
    bits = "" if cfg.get("w_bits") is None else f"W{cfg['w_bits']}U{cfg['u_bits']} "
    twin = f" {cfg['activation']} twin, T={cfg['time_steps']}" if cfg.get("activation", "lif") != "lif" else ""
    soft = ", soft labels" if cfg["method"] == "fp" and cfg.get("teacher") else ""
    seed = f" (seed {cfg['seed']})" if cfg.get("seed") else ""
    return family, f"{bits}{cfg['method']}{twin}{soft}{seed}"


def plot_curves(runs: list[str | Path], path: str | Path, title: str | None = None) -> Path:
    """PNG: validation top-1 per epoch of each run, one panel per architecture family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_family: dict[str, list[tuple[str, list[float], list[float]]]] = {}
    for run in map(Path, runs):
        family, variant = _run_label(run)
        epochs, top1 = validation_curve(run)
        by_family.setdefault(family, []).append((variant, epochs, top1))
    fig, axes = plt.subplots(1, len(by_family), figsize=(6 * len(by_family), 4.2), squeeze=False)
    for ax, (family, curves) in zip(axes[0], by_family.items(), strict=True):
        for variant, epochs, top1 in curves:
            ax.plot(epochs, top1, marker=".", label=f"{variant} (best {max(top1):.2f})")
        ax.set_title(family)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_events(samples: list[tuple[dict, str]], path: str | Path, sensor_size: tuple[int, int],
                phases: int = 3) -> Path:
    """PNG: one row per recording (events ``x, y, t, p`` and a title), one column per equal-duration
    phase (the saccades of N-MNIST-style data); ON events red, OFF events blue, brighter for more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdsnn_zoo.data.events import events_to_frames

    if not samples:
        raise InvalidValueError("plot_events needs at least one recording")
    fig, axes = plt.subplots(len(samples), phases, figsize=(2.2 * phases, 2.2 * len(samples)), squeeze=False)
    for i, (events, title) in enumerate(samples):
        frames = events_to_frames(events, phases, sensor_size, binning="time")  # [phases, 2, H, W]
        scale = max(float(frames.amax()), 1.0)
        for j in range(phases):
            off, on = (frames[j, c] / scale for c in (0, 1))
            rgb = torch.stack([on, torch.zeros_like(on), off], dim=-1).clamp(0, 1) ** 0.5  # [H, W, 3]
            ax = axes[i, j]
            ax.imshow(rgb.numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"saccade {j + 1}" if phases == 3 else f"phase {j + 1}")
            if j == 0:
                ax.set_ylabel(f"{title}\n{events['t'].size} events", fontsize=8)
    fig.suptitle("ON (red) and OFF (blue) events per saccade")
    return _save(fig, path)


def plot_accuracy_cost(lines: Mapping[str, list[tuple[str, float, float]]], path: str | Path) -> Path:
    """PNG: top-1 against EDAP (log scale), one line per family through its (label, edap, top1) points
    (float teacher to the lowest bits); points labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, points in lines.items():
        md = [p for p in points if not p[0].endswith("_qat")]
        line = ax.plot([p[1] for p in md], [p[2] for p in md], marker="o", label=family)[0]
        for label, edap, top1 in points:
            marker = "x" if label.endswith("_qat") else None
            if marker:
                ax.plot([edap], [top1], marker=marker, color=line.get_color(), linestyle="none")
            ax.annotate(label, (edap, top1), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("EDAP on SpikeSim, dense (pJ x ns x µm², log scale)")
    ax.set_ylabel("top-1 % (test)")
    ax.set_title("Accuracy against hardware cost: float teacher to W2U2 (x: naive QAT)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)
