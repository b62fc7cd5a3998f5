"""How large the cross-entropy gradient on the first layer's weights is when a float teacher is quantized
at several weight/membrane bit widths (how recipes/RESULTS.md found why resnet20's W4U4 student diverged
in one step). One batch of 128 training images, train mode, float32, the default neuron backend.

    python recipes/diagnostics/gradient_scale.py TEACHER.safetensors [--shift S]

By default the spike's surrogate is evaluated at the quantized membrane (u = qΔ). ``--shift S`` sets
``QuantLIFNode.surrogate_shift`` (``--surrogate-shift`` of the trainer): u = (h + S)Δ before rounding, h in
grid units (S = 0.5 centres it on the real decision boundary V_th - Δ/2); the forward pass is unchanged.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional

from mdsnn_zoo.data import get_dataset
from mdsnn_zoo.data.batching import Batches, split_indices
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import quantize_model
from mdsnn_zoo.train.build import model_from_checkpoint

SETTINGS = [(None, None), (8, None), (8, 8), (4, 4), (2, 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher")
    ap.add_argument("--shift", type=float, default=None)
    args = ap.parse_args()
    teacher, _ = model_from_checkpoint(args.teacher)
    teacher.eval()
    data = get_dataset("fashion-mnist", "train")
    train_idx, _ = split_indices(len(data), 5000)
    x, y = next(iter(Batches(data, train_idx, 128, True, 0).epoch(0, 0)))
    print(f"surrogate at: {'q Δ (the kernels)' if args.shift is None else f'(h + {args.shift}) Δ'}")
    for w_bits, u_bits in SETTINGS:
        model = teacher if w_bits is None else quantize_model(teacher, w_bits, u_bits)
        model.train()
        for node in model.modules():
            if isinstance(node, QuantLIFNode) and node.u_bits is not None:
                node.set_surrogate_shift(args.shift)
        functional.reset_net(model)
        out = model(x)
        ce = F.cross_entropy(out.float(), y)
        weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1]
        first, last = torch.autograd.grad(ce, [weights[0], weights[-1]])
        functional.reset_net(model)  # drop the membrane state (part of the graph) before the next copy
        name = "float (BN in train mode)" if w_bits is None else f"W{w_bits}U{u_bits}"
        print(f"{name:26s} ce {ce.item():.3f}  batch acc {(out.argmax(1) == y).float().mean().item() * 100:5.1f}  "
              f"|grad first| {first.norm().item():9.4g} (|w| {weights[0].norm().item():6.3g})  "
              f"|grad last| {last.norm().item():8.4g}", flush=True)


if __name__ == "__main__":
    main()
