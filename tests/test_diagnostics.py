"""The recipes' diagnostics that recipes/RESULTS.md quotes."""

import pytest
import torch


def test_paired_lead_counts_disagreements_and_mcnemar_is_exact(recipe_script):
    gain = recipe_script("diagnostics/paired_gain")
    assert gain.mcnemar_p(0, 0) == 1.0 and gain.mcnemar_p(5, 5) == 1.0
    assert gain.mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024) == gain.mcnemar_p(9, 1)  # 2 P(X <= 1), X ~ B(10, 1/2)
    a = torch.tensor([True] * 90 + [False] * 10 + [True] * 2 + [False] * 98)
    b = torch.tensor([True] * 90 + [True] * 10 + [False] * 2 + [False] * 98)
    r = gain.paired_lead(a, b)
    assert (r["only_a"], r["only_b"]) == (2, 10)
    assert r["lead"] == pytest.approx(8 / 200)  # B gets 8 more of the 200 right
    assert r["low"] < r["lead"] < r["high"] and r["p"] == pytest.approx(gain.mcnemar_p(2, 10))
    assert gain.paired_lead(a, a)["lead"] == 0 and gain.paired_lead(a, a)["p"] == 1.0
