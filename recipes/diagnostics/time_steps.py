"""How does a model's top-1 change with the number of time steps it runs? Each model classifies the held-out
validation images of its training split (the trainer's: the last 5,000 of a fixed permutation, never the test
split, in the trainer's validation batches of 256, float32) with its static input repeated over each T in
``--steps``, its weights as trained. A static-image SNN's weights do not depend on T, so this asks whether a
student's distance from its teacher grows as the membrane runs longer. How recipes/RESULTS.md (session 24) probed
vgg9's W2U2 gain.

    python recipes/diagnostics/time_steps.py vgg9.fmnist_t4_fp vgg9.fmnist_t4_w2u2_qat --steps 2,4,8
"""

from __future__ import annotations

import argparse

import torch

from mdsnn_zoo.data import get_dataset
from mdsnn_zoo.data.batching import Batches, split_indices
from mdsnn_zoo.evaluation import data_options_for, evaluate, load_model


def top1_per_steps(ref: str, steps: list[int], val_size: int = 5000) -> dict[int, float]:
    """{T: top-1 % on the validation images} for zoo name or checkpoint ``ref``."""
    model, dataset, options, _ = load_model(ref)
    data = get_dataset(dataset, "train", **data_options_for(dataset, options, dataset))
    _, val_idx = split_indices(len(data), val_size)
    if data[0][0].dim() != 3:  # [C, H, W]; event frames are [T, C, H, W] and fix T themselves
        raise ValueError(f"{ref} reads {dataset}, whose samples are {tuple(data[0][0].shape)} frames over time, "
                         "not static images: its number of time steps is the recording's; run this on an image model")
    batches = Batches(data, val_idx, 256, shuffle=False)  # the trainer's validation batches
    top1 = {}
    for t in steps:
        model.time_steps = t
        top1[t] = evaluate(model, batches.epoch(0), torch.device("cpu"))["top1"]
    return top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="zoo names or checkpoints (.safetensors)")
    parser.add_argument("--steps", default="2,4,6,8", help="time steps to run, comma-separated")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    for ref in args.models:
        top1 = top1_per_steps(ref, steps)
        print(ref, "  ".join(f"T={t}: {v:.2f}" for t, v in top1.items()), flush=True)


if __name__ == "__main__":
    main()
