"""The benchmark helpers measure what they say (timing itself is not asserted: it is machine-dependent)."""

import torch

from mdsnn_zoo.bench.common import profile_ops


def test_profile_ops_ranks_the_operators_of_a_step_by_their_share_of_time():
    conv = torch.nn.Conv2d(3, 16, 3)
    x = torch.rand(4, 3, 33, 33)

    def step():
        conv(x).relu().sum().backward()

    ops = profile_ops(step, torch.device("cpu"), steps=2, top=50)
    names = [name for name, _, _ in ops]
    shares = [pct for _, pct, _ in ops]
    assert any("conv" in n for n in names), names
    assert shares == sorted(shares, reverse=True)
    assert 0 < sum(shares) <= 100.0 + 1e-6
    relu_calls = dict((n, c) for n, _, c in ops).get("aten::relu")
    assert relu_calls == 1.0  # counted per step, not over all profiled steps
    assert len(profile_ops(step, torch.device("cpu"), steps=1, top=3)) == 3
