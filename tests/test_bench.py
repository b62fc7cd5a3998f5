"""The benchmark helpers measure what they say (timing itself is not asserted: it is machine-dependent)."""

import pytest
import torch

from mdsnn_zoo.bench.common import profile_ops
from mdsnn_zoo.bench.lif import bytes_moved
from mdsnn_zoo.kernels import lif_reference
from mdsnn_zoo.kernels.lif_reference import LIFParams


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("u_bits", [None, 4])
def test_bytes_moved_counts_every_buffer_the_fused_kernels_read_and_write(dtype, u_bits):
    T, M = 4, 96
    p = LIFParams(u_bits=u_bits)
    x, v0 = torch.randn(T, M).to(dtype), torch.zeros(M)
    delta = torch.tensor(0.25) if u_bits else None
    spikes, v_last, _, _, _, _ = lif_reference.forward(x, v0, delta, p, False, save=False)
    fwd = x.nbytes + v0.nbytes + spikes.nbytes + v_last.nbytes
    assert bytes_moved(M, T, dtype, "fwd", u_bits is not None) == fwd
    _, _, _, state, frac, _ = lif_reference.forward(x, v0, delta, p, False, save=True)
    saved = state.nbytes + (frac.nbytes if frac is not None else 0)  # written, then read back
    grad_s = torch.ones_like(spikes)
    grad_x, grad_v0, _ = lif_reference.backward(grad_s, None, None, state, frac, delta, p, dtype)
    both = fwd + 2 * saved + grad_s.nbytes + grad_x.nbytes + grad_v0.nbytes
    assert bytes_moved(M, T, dtype, "fwd+bwd", u_bits is not None) == both
    if dtype == torch.float32 and u_bits:
        assert both == 25 * T * M  # at T = 4: 22 bytes an element and step, plus 12 a neuron = 3 a step
