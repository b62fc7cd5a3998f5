"""Is one student's lead over another on the test split more than the split's noise? Both models classify
the same test images (as ``mdsnn-zoo eval`` reads them); the lead of B over A is (c - b) / N, where b counts
the images only A gets right and c those only B gets right. Printed with a 95% interval for the paired
difference (normal approximation) and McNemar's exact two-sided p-value (under "no difference", each of the
b + c disagreements is a fair coin). How recipes/RESULTS.md judged the W2U2 MD-over-QAT gains.

    python recipes/diagnostics/paired_gain.py A B [A B ...]     # zoo names or checkpoints; B's lead over A
"""

from __future__ import annotations

import math
import sys

import torch
from torch.utils.data import DataLoader

from mdsnn_zoo.data import get_dataset
from mdsnn_zoo.evaluation import data_options_for, evaluate, load_model


def correct_per_image(ref: str) -> tuple[torch.Tensor, str]:
    """``[N]`` bool: which test images ``ref`` classifies correctly (float32, batches of 256), and its data set."""
    model, dataset, options, _ = load_model(ref)
    data = get_dataset(dataset, "test", **data_options_for(dataset, options, dataset))
    loader = DataLoader(data, batch_size=256, shuffle=False)
    return evaluate(model, loader, torch.device("cpu"), per_sample=True)["hits"], dataset


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: P(a fair coin over b + c flips is at least as lopsided)."""
    n, k = b + c, min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_lead(a: torch.Tensor, b: torch.Tensor) -> dict:
    """B's lead over A from their ``[N]`` bool hits: ``lead`` and its 95% interval ``low``..``high``
    (fractions), ``only_a``, ``only_b`` (images only A / only B gets right) and McNemar's ``p``."""
    n = len(a)
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    lead = (only_b - only_a) / n
    half = 1.96 * math.sqrt(max((only_a + only_b) / n - lead**2, 0.0) / n)
    return {"lead": lead, "low": lead - half, "high": lead + half, "only_a": only_a, "only_b": only_b,
            "p": mcnemar_p(only_a, only_b)}


def main(refs: list[str]) -> None:
    if len(refs) % 2:
        sys.exit("paired_gain: give the models in pairs, A B [A B ...] (B's lead over A)")
    for a_ref, b_ref in zip(refs[::2], refs[1::2], strict=True):
        (a_hits, a_data), (b_hits, b_data) = correct_per_image(a_ref), correct_per_image(b_ref)
        if a_data != b_data:
            sys.exit(f"paired_gain: {a_ref} is of {a_data}, {b_ref} of {b_data}; pair models of one data set")
        r = paired_lead(a_hits, b_hits)
        print(f"{b_ref} over {a_ref} ({b_data} test, {len(a_hits)} images): top-1 {100 * a_hits.float().mean():.2f} -> "
              f"{100 * b_hits.float().mean():.2f}, lead {100 * r['lead']:+.2f} points (95%: {100 * r['low']:+.2f} "
              f"to {100 * r['high']:+.2f}); only A right {r['only_a']}, only B right {r['only_b']}, "
              f"McNemar p = {r['p']:.3g}")


if __name__ == "__main__":
    main(sys.argv[1:])
