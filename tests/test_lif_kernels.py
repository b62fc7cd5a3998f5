"""Every LIF backend against the torch reference: random inputs of odd sizes, every dtype, both
resets, detach_reset, both decay_input settings, u_bits None/2/3/4/8, T in {1, 2, 4, 7}, the
surrogate at the quantized membrane or shifted before rounding, strided inputs and stride-0
gradients. Spikes, codes and the membrane must agree exactly; gradients closely.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import zlib

import pytest
import torch

from mdsnn_zoo.kernels import lif_reference as ref
from mdsnn_zoo.kernels.lif_reference import SURROGATES, LIFParams
from mdsnn_zoo.neuron import QuantLIFNode

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FACTORS = dict(T=(1, 2, 4, 7), u_bits=(None, 2, 3, 4, 8), v_reset=(0.0, None, -0.25),
               detach=(False, True), decay=(True, False), dtype=DTYPES, surrogate=SURROGATES,
               layout=("contiguous", "time-strided", "transposed"), shift=(None, 0.0, 0.5))


def _configs(n: int, seed: int) -> list[dict]:
    """n seeded random configurations in which every level of every factor appears."""
    rng = random.Random(seed)
    width = max(len(v) for v in FACTORS.values())
    configs = [{k: v[i % len(v)] for k, v in FACTORS.items()} for i in range(width)]
    for c in configs:  # decorrelate the covering rows
        for k, v in FACTORS.items():
            if rng.random() < 0.5:
                c[k] = rng.choice(v)
    while len(configs) < n:
        configs.append({k: rng.choice(v) for k, v in FACTORS.items()})
    return configs


def _inputs(c: dict, m: int, device: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    T, dtype = c["T"], c["dtype"]
    base = torch.randn(T, m, generator=g) * 1.5 + 0.3
    if c["layout"] == "time-strided":  # every other time step of a longer sequence
        x = torch.zeros(2 * T, m).index_copy_(0, torch.arange(0, 2 * T, 2), base).to(device, dtype)[::2]
    elif c["layout"] == "transposed":  # [M, T] storage viewed as [T, M]: inner stride T, copied
        x = base.t().contiguous().to(device, dtype).t()
    else:
        x = base.to(device, dtype)
    p = LIFParams(tau=2.0 if c["u_bits"] else 1.7, decay_input=c["decay"], v_reset=c["v_reset"],
                  detach_reset=c["detach"], surrogate=c["surrogate"], alpha=1.6, u_bits=c["u_bits"],
                  surrogate_shift=c.get("shift"))
    delta = torch.tensor(0.29, device=device) if c["u_bits"] else None
    v0 = torch.randn(m, generator=g).to(device) * 0.4
    if delta is not None:  # a state on the grid, which is anchored at v_threshold
        v0 = p.v_threshold + torch.floor((v0 - p.v_threshold) / delta + 0.5) * delta
    grads = (torch.randn(T, m, generator=g).to(device, dtype), torch.randn(m, generator=g).to(device),
             torch.randn(T, m, generator=g).to(device, dtype))
    return x, v0, delta, p, grads


def _assert_same(name: str, a: torch.Tensor | None, b: torch.Tensor | None, c: dict) -> None:
    if a is None:
        assert b is None, name
        return
    assert a.dtype == b.dtype and a.shape == b.shape, name
    if name == "h_seq" and a.dtype == torch.bfloat16 and INTERPRETED and a.device.type == "cpu":
        # Triton's interpreter casts float32 to bfloat16 by truncation, the GPU rounds to nearest
        # even like torch: allow one bfloat16 step there (spikes stay exact)
        torch.testing.assert_close(a, b, rtol=2**-7, atol=0)
        return
    assert torch.equal(a, b), f"{name} differs for {c}"


def _compare(backend, c: dict, m: int, device: str, seed: int) -> None:
    x, v0, delta, p, (gs, gv, gh) = _inputs(c, m, device, seed)
    # the fused membrane MSE (a teacher's membrane as target) in half of the configurations
    target = (gh * 0.5).flip(0) if c["layout"] != "transposed" else None
    if target is not None and c["T"] % 2:  # a float32 teacher, not representable in a half-precision x
        target = target.float() + 1e-3
    want = ref.forward(x, v0, delta, p, True, True, target)
    got = backend.forward(x, v0, delta, p, True, True, target)
    names = ("spikes", "v_last", "h_seq", "state", "frac")
    for name, a, b in zip(names, want[:5], got[:5], strict=True):
        _assert_same(name, a, b, c)
    if target is None:
        assert want[5] is None and got[5] is None
    else:
        torch.testing.assert_close(got[5], want[5].float(), rtol=1e-5, atol=1e-5)
    lean = backend.forward(x, v0, delta, p, c["T"] % 2 == 0, False)  # inference: nothing saved
    assert lean[3] is None and lean[4] is None
    for i in (0, 1, 2):
        _assert_same(names[i], want[i] if i < 2 or c["T"] % 2 == 0 else None, lean[i], c)
    if c["layout"] == "contiguous":  # the stride-0 gradient that .sum().backward() passes
        gs = torch.ones((), device=device, dtype=x.dtype).expand_as(x)
    coef = torch.tensor(0.7, device=device) if target is not None else None
    g_want = ref.backward(gs, gv, gh, want[3], want[4], delta, p, x.dtype, target, coef)
    g_got = backend.backward(gs, gv, gh, got[3], got[4], delta, p, x.dtype, target, coef)
    for name, a, b in zip(("grad_x", "grad_v0", "grad_delta"), g_want, g_got, strict=True):
        if a is None:
            assert b is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape
        rtol = 1e-3 if name == "grad_delta" else (1e-5 if x.dtype == torch.float32 else 1e-2)
        scale = a.abs().max().clamp_min(1e-6)
        err = ((a.float() - b.float()).abs().max() / scale).item()
        assert err <= rtol, f"{name} off by {err:.2e} (relative to its max) for {c}"


@pytest.mark.parametrize("c", _configs(48, seed=1), ids=lambda c: "-".join(map(str, c.values())))
def test_triton_matches_reference(c):
    if "triton" not in QuantLIFNode.available_backends():
        pytest.skip("triton needs a GPU or TRITON_INTERPRET=1")
    from mdsnn_zoo.kernels import lif_triton

    device = "cuda" if torch.cuda.is_available() else "cpu"
    seed = zlib.crc32(str(c).encode()) % 1000
    # half the sizes 16-aligned (128-bit vectors, 4 or 8 neurons a thread) with a partial last block, half odd
    m = 1040 + 16 * c["T"] if seed % 2 else 1021 + 2 * c["T"]
    _compare(lif_triton, c, m=m, device=device, seed=seed)


@pytest.mark.parametrize("c", _configs(8, seed=2), ids=lambda c: "-".join(map(str, c.values())))
def test_inductor_matches_reference(c):
    from mdsnn_zoo.kernels import lif_inductor

    _compare(lif_inductor, c, m=333, device="cpu", seed=7)
    _compare(lif_inductor, c, m=97, device="cpu", seed=8)  # a new size: no recompile needed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cupy_matches_reference():
    pytest.importorskip("cupy")
    from mdsnn_zoo.kernels import lif_cupy

    for c in _configs(48, seed=3):
        _compare(lif_cupy, c, m=4099 + c["T"], device="cuda", seed=11)


def test_reference_backward_matches_autograd_derivation():
    """The hand-written backward against autograd through the same forward (SpikingJelly surrogates)."""
    from spikingjelly.activation_based import surrogate

    fns = {"atan": surrogate.ATan(alpha=1.6), "sigmoid": surrogate.Sigmoid(alpha=1.6),
           "piecewise_quadratic": surrogate.PiecewiseQuadratic(alpha=1.6), "rect": surrogate.Rect(alpha=1.6)}
    for i, (bits, v_reset, detach, decay, sg) in enumerate(itertools.product(
            (None, 2, 4, 8), (0.0, None, -0.25), (False, True), (True, False), SURROGATES)):
        shift = (None, 0.0, 0.5)[i % 3] if bits else None
        c = dict(T=3 + i % 3, u_bits=bits, v_reset=v_reset, detach=detach, decay=decay,
                 dtype=torch.float32, surrogate=sg, layout="contiguous", shift=shift)
        x, v0, delta, p, (gs, gv, gh) = _inputs(c, 67, "cpu", seed=i)
        xa = x.clone().requires_grad_()
        da = delta.clone().requires_grad_() if delta is not None else None
        s, v_last, h = ref.lif_autograd(xa, v0, da, p, fns[sg], True)
        loss = (s * gs).sum() + (v_last * gv).sum() + (h * gh).sum()
        auto = torch.autograd.grad(loss, [xa] + ([da] if da is not None else []))
        out = ref.forward(x, v0, delta, p, True)
        assert torch.equal(out[0], s) and torch.equal(out[2], h)
        mine = ref.backward(gs, gv, gh, out[3], out[4], delta, p, x.dtype)
        if shift is None:
            torch.testing.assert_close(mine[0], auto[0], rtol=1e-5, atol=1e-6)
        else:  # σ' at h read back from the float16 residual (2^-11 relative above the threshold)
            assert (mine[0] - auto[0]).abs().max() <= 2e-3 * auto[0].abs().max(), c
        if da is not None:  # the residual q - h is saved in float16
            assert abs(mine[2] - auto[1]) <= 5e-3 * auto[1].abs() + 1e-3  # 2^-12 per element


class _Smooth(torch.autograd.Function):
    """The reference with Θ replaced by the surrogate's primitive: its backward is then exact."""

    @staticmethod
    def forward(ctx, x, v0, p):
        s, v_last, _, state, _, _ = ref.lif_forward(x, v0, None, p, False, smooth=True)
        ctx.save_for_backward(state)
        ctx.p = p
        return s, v_last

    @staticmethod
    def backward(ctx, gs, gv):
        (state,) = ctx.saved_tensors
        gx, gv0, _ = ref.lif_backward(gs, gv, None, state, None, None, ctx.p, torch.float64, smooth=True)
        return gx, gv0, None


@pytest.mark.parametrize("sg", SURROGATES)
@pytest.mark.parametrize("v_reset,decay", [(0.0, True), (None, False), (-0.2, False), (None, True)])
def test_reference_gradcheck_float64(sg, v_reset, decay):
    """detach_reset is left out: by design it is not the derivative of the forward pass (it is
    checked against SpikingJelly and the autograd derivation instead)."""
    p = LIFParams(tau=1.8, decay_input=decay, v_reset=v_reset, surrogate=sg, alpha=1.3)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 9, generator=g, dtype=torch.float64) * 1.2).requires_grad_()
    v0 = (torch.randn(9, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    if sg == "rect":  # stay off the window's kinks, where finite differences are meaningless
        x = (x.detach() * 0 + torch.linspace(-0.3, 0.3, 36, dtype=torch.float64).view(4, 9)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: _Smooth.apply(a, b, p), (x, v0), eps=1e-6, atol=1e-6)


def test_a_bfloat16_quantized_neuron_compiles_without_inductors_warnings():
    """The float16 residuals beside bfloat16 input are by design, and compiling for the CPU needs no CUDA
    runtime: users should see neither warning (the second printed in the middle of eval's progress bar)."""
    code = ("import torch\nfrom mdsnn_zoo import QuantLIFNode\n"
            "x = torch.rand(3, 2, 19, dtype=torch.bfloat16, requires_grad=True)\n"
            "QuantLIFNode(u_bits=2, backend='inductor')(x).float().sum().backward()\nprint('ran')\n")
    env = {**os.environ, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}  # compile afresh: the warning is at compile
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "ran" in done.stdout, done.stderr[-2000:]
    assert "bf16 and fp16 are mixed" not in done.stderr and "No CUDA runtime is found" not in done.stderr
