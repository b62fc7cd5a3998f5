"""Per-layer look at trained students against their teacher (how recipes/RESULTS.md found the bias-grid
and weight-scale problems): membrane MSE, step Δ and spike rates per LIF layer on 256 training images;
biases near a rounding boundary; non-positive weight scales. ``mse`` is to the teacher's membrane clipped
to the student's grid (what distillation minimises); ``in grid`` is the share of the teacher's membrane
values inside that grid's range (the rest adds to the unclipped distance whatever the student does).
``floor`` is the membrane MSE that the student's grid alone forces: the teacher's (clipped) membrane
against its own nearest level on the student's grid, the distance a student that matched the teacher
perfectly would still show.

    python recipes/diagnostics/student_layers.py TEACHER.safetensors STUDENT.safetensors [...]
"""

from __future__ import annotations

import sys

import torch
from spikingjelly.activation_based import functional

from mdsnn_zoo.data import get_dataset
from mdsnn_zoo.distill import MembraneRecorder
from mdsnn_zoo.quant import quantized_layers
from mdsnn_zoo.train.build import model_from_checkpoint


def record(path: str, x: torch.Tensor):
    model, _ = model_from_checkpoint(path)
    functional.reset_net(model)
    with MembraneRecorder(model) as rec, torch.no_grad():
        model(x)
    return model, rec.membranes, dict(rec.nodes)


def main(teacher_path: str, *students: str) -> None:
    data = get_dataset("fashion-mnist", "train")
    x = torch.stack([data[i][0] for i in range(0, 60000, 235)][:256])
    _, t_mem, _ = record(teacher_path, x)
    for path in students:
        model, s_mem, nodes = record(path, x)
        print(path)
        for name, h in s_mem.items():
            node = nodes[name]
            low, high = node.grid_range()
            t = t_mem[name].clamp(low, high)
            in_grid = ((t_mem[name] >= low) & (t_mem[name] <= high)).float().mean()
            delta = node.step_in_use().detach()
            levels = ((t - node.v_threshold) / delta).round().clamp(1 - 2**node.u_bits, 0)
            floor = ((node.v_threshold + levels * delta - t) ** 2).mean()
            print(f"  {name:24s} mse {((h - t) ** 2).mean():6.3f}  floor {floor:6.3f}  in grid {in_grid:5.2f}  "
                  f"delta {delta.item():6.3f}  rate {(h >= 1).float().mean():6.3f} "
                  f"(teacher {(t_mem[name] >= 1).float().mean():6.3f})")
        for name, layer in quantized_layers(model):
            dead = int((layer.weight_quant.scale <= 0).sum())
            d = layer._bias_unit()
            near = ""
            if d is not None:
                r = (layer.bias / d).detach()
                near = f"  biases near a rounding boundary {((r - r.round()).abs() > 0.4).float().mean():.2f}"
            print(f"  {name:24s} non-positive weight scales {dead}{near}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
