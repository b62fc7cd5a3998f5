"""QuantLIFNode as a SpikingJelly neuron: parity with LIFNode, the quantized grid, state handling,
step modes, SpikingJelly's utilities, and clear errors for bad arguments."""

from __future__ import annotations

import itertools
import os
import warnings

import pytest
import torch
from spikingjelly.activation_based import functional, layer, monitor, neuron, surrogate

from mdsnn_zoo.neuron import QuantLIFNode

SURROGATES = [surrogate.ATan(), surrogate.Sigmoid(alpha=3.0), surrogate.PiecewiseQuadratic(alpha=1.5),
              surrogate.Rect(alpha=0.8)]


def _pair(**kw):
    ours = QuantLIFNode(backend=kw.pop("backend", "torch"), **kw)
    theirs = neuron.LIFNode(**kw)
    return ours, theirs


@pytest.mark.parametrize("decay,v_reset,detach,sg", list(itertools.product(
    (True, False), (0.0, None, -0.3), (False, True), SURROGATES)))
def test_float_membrane_equals_spikingjelly(decay, v_reset, detach, sg):
    ours, theirs = _pair(tau=2.5, decay_input=decay, v_reset=v_reset, detach_reset=detach,
                         surrogate_function=sg, step_mode="m", store_v_seq=True)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(6, 3, 5, 7, generator=g) * 1.5).requires_grad_()
    w = torch.randn(6, 3, 5, 7, generator=g)
    grads = []
    for node in (ours, theirs):
        s1 = node(x[:3])  # two calls without reset: the state (and its gradient) carries over
        s2 = node(x[3:])
        loss = (torch.cat([s1, s2]) * w).sum() + node.v.sum() + node.v_seq.sum()
        grads.append((torch.cat([s1, s2]), node.v_seq, torch.autograd.grad(loss, x)[0]))
    (sa, va, ga), (sb, vb, gb) = grads
    assert torch.equal(sa, sb)
    torch.testing.assert_close(va, vb, rtol=0, atol=1e-6)
    assert ((ga - gb).abs().max() / gb.abs().max()) < 1e-5


@pytest.mark.parametrize("backend", ["torch", "inductor", "triton"])
def test_single_step_equals_multi_step(backend):
    if backend not in QuantLIFNode.available_backends():
        pytest.skip(f"{backend} not available")
    x = torch.randn(4, 2, 9) * 2
    multi = QuantLIFNode(step_mode="m", backend=backend, u_bits=3)
    single = QuantLIFNode(step_mode="s", backend=backend, u_bits=3)
    seq = multi(x)
    steps = torch.stack([single(x[t]) for t in range(4)])
    assert torch.equal(seq, steps)
    torch.testing.assert_close(multi.v, single.v)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_quantized_membrane_lies_on_the_grid(bits):
    node = QuantLIFNode(step_mode="m", backend="torch", u_bits=bits, store_h_seq=True, v_reset=None)
    x = torch.randn(5, 64, 33) * 3
    spikes = node(x)
    h, delta = node.h_seq, node.delta.detach()
    codes = ((h - 1.0) / delta).detach()  # the grid is anchored at v_threshold = 1
    assert torch.allclose(codes, codes.round(), rtol=0, atol=1e-4)
    assert h.unique().numel() <= 2**bits
    assert codes.min() >= -(2**bits - 1) - 1e-4 and codes.max() <= 1e-4  # the threshold is the top level
    state = (node.v - 1.0) / delta
    assert torch.allclose(state, state.round(), atol=1e-4)
    assert delta.item() == pytest.approx(2.0 ** (1 - bits))  # v_threshold / 2^(b-1)
    assert torch.equal(spikes.bool(), codes.round() >= 0)  # fires exactly when H_q >= v_threshold


def test_quantized_step_is_learned_with_lsq_gradient():
    node = QuantLIFNode(step_mode="m", backend="torch", u_bits=4, store_h_seq=True)
    x = (torch.randn(4, 8, 16) * 2).requires_grad_()
    s = node(x)
    (s.sum() + node.h_seq.pow(2).sum()).backward()
    assert node.delta.grad is not None and torch.isfinite(node.delta.grad) and node.delta.grad != 0
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", ["torch", "inductor"])
def test_surrogate_shift_moves_gradients_not_spikes(backend):
    """surrogate_shift: the same spikes and membrane; x's gradient is autograd's with σ' at (h + S)Δ."""
    from mdsnn_zoo.kernels.lif_reference import lif_autograd

    x = (torch.randn(4, 3, 37) * 1.5 + 0.5).requires_grad_()
    grads, outs = {}, {}
    for shift in (None, 0.0, 0.5):
        node = QuantLIFNode(step_mode="m", backend=backend, u_bits=4, store_h_seq=True, surrogate_shift=shift)
        outs[shift] = (node(x), node.h_seq)
        grads[shift], = torch.autograd.grad((outs[shift][0] * torch.linspace(-1, 1, 37)).sum(), x)
        auto_x = x.detach().clone().requires_grad_()
        s, _, _ = lif_autograd(auto_x.flatten(1), torch.zeros(3 * 37), node.step_in_use().detach(), node.params,
                               surrogate.ATan(), False)
        want, = torch.autograd.grad((s.view(4, 3, 37) * torch.linspace(-1, 1, 37)).sum(), auto_x)
        assert (grads[shift] - want).abs().max() <= 2e-3 * want.abs().max()
    for shift in (0.0, 0.5):
        assert torch.equal(outs[shift][0], outs[None][0]) and torch.equal(outs[shift][1], outs[None][1])
        assert not torch.allclose(grads[shift], grads[None])
    assert "surrogate_shift=0.5" in repr(QuantLIFNode(u_bits=2, surrogate_shift=0.5))
    with pytest.raises(ValueError, match="surrogate_shift must be a finite number"):
        QuantLIFNode(u_bits=2, surrogate_shift=float("nan"))
    with pytest.raises(ValueError, match="surrogate_shift needs a surrogate the kernels implement"):
        QuantLIFNode(u_bits=2, surrogate_function=surrogate.SoftSign(), surrogate_shift=0.0)


def test_h_seq_gradient_folds_into_the_backward():
    """A loss on h_seq moves x's gradient exactly as autograd through the same forward would."""
    from mdsnn_zoo.kernels.lif_reference import lif_autograd

    x = (torch.randn(4, 50) * 1.5).requires_grad_()
    node = QuantLIFNode(step_mode="m", backend="torch", store_h_seq=True)
    node(x)
    g1, = torch.autograd.grad(node.h_seq.pow(2).mean(), x)
    _, _, h = lif_autograd(x, torch.zeros(50), None, node.params, surrogate.ATan(), True)
    g2, = torch.autograd.grad(h.pow(2).mean(), x)
    torch.testing.assert_close(g1, g2)


def test_reset_step_mode_detach_and_monitors():
    net = torch.nn.Sequential(layer.Linear(6, 5), QuantLIFNode(u_bits=4, backend="torch"),
                              layer.Linear(5, 3), QuantLIFNode(backend="torch"))
    functional.set_step_mode(net, "m")
    assert net[1].step_mode == "m"
    mon = monitor.OutputMonitor(net, QuantLIFNode)
    vmon = monitor.AttributeMonitor("v", pre_forward=False, net=net, instance=QuantLIFNode)
    x = torch.rand(4, 2, 6)
    out = net(x)
    assert out.shape == (4, 2, 3) and len(mon.records) == 2 and len(vmon.records) == 2
    assert isinstance(net[1].v, torch.Tensor) and net[1].v.shape == (2, 5)
    functional.detach_net(net)
    assert not net[1].v.requires_grad
    functional.reset_net(net)
    assert net[1].v == 0.0 and net[1].h_seq is None
    net(torch.rand(4, 3, 6))  # after reset a new batch size is fine
    with pytest.raises(ValueError, match="does not match the neuron's state.*reset_net"):
        net(torch.rand(4, 2, 6))
    mon.remove_hooks()
    vmon.remove_hooks()


def test_unknown_surrogate_falls_back_with_one_warning():
    sg = surrogate.SoftSign(alpha=2.0)
    node = QuantLIFNode(step_mode="m", surrogate_function=sg)
    ref = neuron.LIFNode(step_mode="m", surrogate_function=sg)
    x = (torch.randn(3, 10) * 2).requires_grad_()
    with pytest.warns(UserWarning, match="SoftSign has no fused kernel"):
        s = node(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        node.reset()
        s = node(x)  # no second warning
    g1, = torch.autograd.grad(s.sum(), x)
    s2 = ref(x)
    g2, = torch.autograd.grad(s2.sum(), x)
    assert torch.equal(s, s2)
    torch.testing.assert_close(g1, g2)


def test_available_backends_on_this_machine():
    names = QuantLIFNode.available_backends()
    assert names[:2] == ["torch", "inductor"] or not torch.cuda.is_available() and names[0] == "torch"
    assert ("triton" in names) == (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1")
    if not torch.cuda.is_available():
        assert "cupy" not in names
        assert QuantLIFNode()._pick_backend(torch.zeros(1, 1)) == "inductor"


def test_nan_input_never_fires():
    x = torch.full((3, 4), float("nan"))
    x[:, 0] = 2.0
    s = QuantLIFNode(step_mode="m", backend="torch")(x)
    assert s[:, 1:].sum() == 0 and s[:, 0].sum() == 3
    node = QuantLIFNode(step_mode="m", backend="torch", u_bits=3, store_h_seq=True)
    s = node(x)
    assert s[:, 1:].sum() == 0
    assert torch.all(node.h_seq[:, 1:] == 1.0 - 7 * node.delta.detach())  # V_th + qmin Δ


def test_float64_runs_on_torch_backend_only():
    x = torch.randn(2, 3, dtype=torch.float64)
    assert QuantLIFNode(step_mode="m")(x).dtype == torch.float64
    with pytest.raises(ValueError, match="float64 input runs only on backend='torch'"):
        QuantLIFNode(step_mode="m", backend="inductor")(x)


@pytest.mark.parametrize("kwargs,match", [
    (dict(u_bits=0), "u_bits must be an int from 2 to 8"),
    (dict(u_bits=1), "u_bits must be an int from 2 to 8"),
    (dict(u_bits=9), "u_bits must be an int from 2 to 8"),
    (dict(u_bits=4.0), "u_bits must be an int from 2 to 8"),
    (dict(u_bits="4"), "u_bits must be an int from 2 to 8"),
    (dict(u_bits=True), "u_bits must be an int from 2 to 8"),
    (dict(tau=1.0), "tau must be a number > 1"),
    (dict(tau=0.5), "tau must be a number > 1"),
    (dict(tau="2"), "tau must be a number > 1"),
    (dict(backend="numba"), "unknown backend 'numba'"),
    (dict(step_mode="x"), "step_mode must be 's'"),
    (dict(v_threshold=float("nan")), "v_threshold must be a finite number"),
    (dict(v_reset=1.5), "v_reset .* must be below v_threshold"),
    (dict(surrogate_function="atan"), "surrogate_function must be a SpikingJelly surrogate"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        QuantLIFNode(**kwargs)


def test_unavailable_backend_and_wrong_rank():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="backend 'cupy' is not available here.*available: torch"):
            QuantLIFNode(backend="cupy")
    with pytest.raises(ValueError, match=r"multi-step mode takes x_seq: \[T, N, \*\], got \(5,\)"):
        QuantLIFNode(step_mode="m")(torch.randn(5))
    with pytest.raises(ValueError, match=r"single-step mode takes x: \[N, \*\]"):
        QuantLIFNode(step_mode="s")(torch.tensor(1.0))
    with pytest.raises(ValueError, match="floating-point input"):
        QuantLIFNode(step_mode="m")(torch.ones(2, 3, dtype=torch.int64))


_LEGACY_CHECK = r"""
import torch, spikingjelly
from spikingjelly.activation_based import neuron, surrogate, functional, layer
from mdsnn_zoo.neuron import QuantLIFNode
assert spikingjelly.__file__.startswith(LEGACY), spikingjelly.__file__
g = torch.Generator().manual_seed(0)
for sg in (surrogate.ATan(), surrogate.Sigmoid(alpha=3.0), surrogate.PiecewiseQuadratic(alpha=1.5)):
    for decay in (True, False):
        for v_reset in (0.0, None):
            for detach in (False, True):
                kw = dict(tau=2.5, decay_input=decay, v_reset=v_reset, detach_reset=detach,
                          surrogate_function=sg, step_mode="m", store_v_seq=True)
                ours, theirs = QuantLIFNode(backend="torch", **kw), neuron.LIFNode(**kw)
                x = (torch.randn(5, 3, 8, generator=g) * 1.5).requires_grad_()
                out = []
                for node in (ours, theirs):
                    s = node(x)
                    out.append((s, node.v_seq, torch.autograd.grad(s.sum() + node.v.sum(), x)[0]))
                assert torch.equal(out[0][0], out[1][0])
                assert torch.allclose(out[0][1], out[1][1], atol=1e-6)
                assert ((out[0][2] - out[1][2]).abs().max() / out[1][2].abs().max()) < 1e-5
net = torch.nn.Sequential(layer.Linear(4, 3), QuantLIFNode(u_bits=3, backend="torch"))
functional.set_step_mode(net, "m")
net(torch.rand(2, 5, 4))
functional.reset_net(net)
assert net[1].v == 0.0
print("legacy ok")
"""


def test_spikingjelly_0_0_0_0_14(tmp_path):
    """The same parity under SpikingJelly 0.0.0.0.14, installed with
    ``pip install --no-deps --target .sj-legacy spikingjelly==0.0.0.0.14`` (README, Tests)."""
    import subprocess
    import sys
    from pathlib import Path

    legacy = os.environ.get("MDSNN_SJ_LEGACY") or str(Path(__file__).resolve().parents[1] / ".sj-legacy")
    if not (Path(legacy) / "spikingjelly").is_dir():
        pytest.skip(f"SpikingJelly 0.0.0.0.14 not installed in {legacy}")
    legacy = str(Path(legacy).resolve())
    env = {**os.environ, "PYTHONPATH": legacy + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", f"LEGACY = {legacy!r}\n" + _LEGACY_CHECK], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "legacy ok" in out.stdout


@pytest.mark.parametrize("u_bits", [None, 2, 4])
def test_channels_last_input_runs_in_memory_order_with_the_same_results(u_bits):
    """A channels_last [T, N, C, H, W] sequence gives what the contiguous one gives (spikes, state, H,
    fused membrane MSE, input gradient) and its outputs keep the input's layout, with no copy."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 2, 5, 6, 7, generator=gen) * 1.5
    target = torch.randn(3, 2, 5, 6, 7, generator=gen) * 0.5

    def channels_last(t):
        return t.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(t.shape)

    results = []
    for inp, tgt in ((x, target), (channels_last(x), channels_last(target))):
        node = QuantLIFNode(step_mode="m", u_bits=u_bits, store_h_seq=True, backend="torch")
        leaf = inp.clone().requires_grad_()
        with node.distill_to(tgt):
            s = node(leaf)
            s2 = node(leaf)  # a second call continues from the stored state
        ((s + 2 * s2) * torch.linspace(-1, 1, s.numel()).view(s.shape)).sum().add(node.membrane_mse).backward()
        results.append((s, s2, node.v, node.h_seq, node.membrane_mse.detach(), leaf.grad))
        functional.detach_net(node)  # the state is not a view: SpikingJelly detaches it in place
    (a, b) = results
    assert b[0].stride() == channels_last(x).stride()  # spikes laid out like the input
    assert b[2].shape == x.shape[1:]
    for want, got in zip(a, b, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sg", [surrogate.ATan(), surrogate.SoftSign()])  # fused kernels, plain autograd
def test_distill_to_gives_the_one_membrane_mse_definition(sg):
    from mdsnn_zoo.kernels.mse_reference import clip_target, mean_squared

    gen = torch.Generator().manual_seed(9)
    x, target = torch.randn(3, 4, 7, generator=gen), torch.randn(3, 4, 7, generator=gen) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SoftSign has no fused kernel: one warning
        node = QuantLIFNode(step_mode="m", u_bits=2, store_h_seq=True, backend="torch", surrogate_function=sg)
        with node.distill_to(target):
            node(x)
    assert node._membrane_target is None and node.membrane_mse is not None
    want = mean_squared(node.h_seq, clip_target(target, node.grid_range()))
    torch.testing.assert_close(node.membrane_mse.float(), want, rtol=1e-6, atol=1e-7)
