"""Quantized layers, batch-norm folding, quantize_model, and integer-only inference."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from mdsnn_zoo.errors import MdsnnError
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import QuantConv2d, QuantLinear, WeightQuantizer, fold_batchnorm, quantize_model


def _net(tau: float = 2.0, v_reset: float | None = 0.0, decay: bool = True) -> nn.Sequential:
    lif = dict(tau=tau, v_reset=v_reset, decay_input=decay, backend="torch")
    with torch.random.fork_rng():  # the same weights whatever ran before
        torch.manual_seed(0)
        net = nn.Sequential(
            layer.Conv2d(2, 6, 3, padding=1, bias=False), layer.BatchNorm2d(6), QuantLIFNode(**lif),
            layer.Conv2d(6, 8, 3, stride=2, padding=1), layer.BatchNorm2d(8), QuantLIFNode(**lif),
            layer.MaxPool2d(2),
            layer.Flatten(), layer.Linear(8 * 2 * 2, 12), QuantLIFNode(**lif),
            layer.Linear(12, 5),
        )
    functional.set_step_mode(net, "m")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial batch-norm statistics to fold
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(3.0)
    return net.eval()


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weight_quantizer_levels_and_gradients(bits):
    w = torch.randn(5, 3, 3, 3, requires_grad=True)
    wq = WeightQuantizer(bits, 5)
    wq.init_scale(w)
    out = wq(w)
    for c in range(5):
        assert out[c].unique().numel() <= 2**bits
    codes = wq.codes(w)
    assert codes.min() >= -(2 ** (bits - 1)) and codes.max() <= 2 ** (bits - 1) - 1
    torch.testing.assert_close(out, codes.float() * wq.scale.view(-1, 1, 1, 1))
    out.pow(2).sum().backward()
    assert wq.scale.grad is not None and wq.scale.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


def test_quant_layers_in_both_step_modes():
    conv = QuantConv2d.from_float(layer.Conv2d(3, 4, 3, padding=1), w_bits=3)
    x = torch.rand(2, 5, 3, 8, 8)
    ref = torch.nn.functional.conv2d(x.flatten(0, 1), conv.quantized_weight(), conv.bias, padding=1)
    conv.step_mode = "m"
    torch.testing.assert_close(conv(x).flatten(0, 1), ref)
    conv.step_mode = "s"
    torch.testing.assert_close(conv(x[0]), ref[:5])
    lin = QuantLinear.from_float(nn.Linear(7, 3), w_bits=2)
    y = torch.rand(4, 2, 7)
    torch.testing.assert_close(lin(y), y @ lin.quantized_weight().t() + lin.bias)
    assert all(lin.quantized_weight()[c].unique().numel() <= 4 for c in range(3))


@pytest.mark.parametrize("layer,norm,x_shape", [
    (lambda: nn.Conv2d(3, 4, 3, bias=True), lambda: nn.BatchNorm2d(4), (2, 3, 9, 9)),
    (lambda: nn.Linear(7, 4, bias=False), lambda: nn.BatchNorm1d(4), (9, 7)),  # a spiking FC layer's BN
])
def test_fold_batchnorm_matches_layer_then_bn(layer, norm, x_shape):
    conv, bn = layer(), norm()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(x_shape)
    want = bn(conv(x))
    fold_batchnorm(conv, bn)
    torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5)


def test_quantize_model_builds_a_student_and_leaves_the_teacher():
    teacher = _net()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = quantize_model(teacher, w_bits=2, u_bits=2)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    lif_names = [n for n, m in teacher.named_modules() if isinstance(m, QuantLIFNode)]
    assert lif_names == [n for n, m in student.named_modules() if isinstance(m, QuantLIFNode)]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in student.modules())
    bits = [m.weight_quant.bits for m in student.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    assert bits == [8, 2, 2, 8]  # first and last layers at first_last_bits
    assert all(m.u_bits == 2 for m in student.modules() if isinstance(m, QuantLIFNode))
    same = quantize_model(teacher, w_bits=4, u_bits=None, first_last_bits=None)
    assert [m.weight_quant.bits for m in same.modules() if hasattr(m, "weight_quant")] == [4] * 4
    x = torch.rand(3, 2, 2, 8, 8)
    assert student(x).shape == teacher(x).shape == (3, 2, 5)


def test_folded_8_bit_layer_tracks_conv_and_batchnorm():
    teacher = _net()
    student = quantize_model(teacher, w_bits=8, u_bits=None)
    assert isinstance(student[1], nn.Identity) and isinstance(student[4], nn.Identity)
    x = torch.rand(4, 8, 2, 8, 8) * 2
    with torch.no_grad():
        want = teacher[1](teacher[0](x))
        got = student[0](x)
    assert (got - want).abs().max() < 0.02 * want.abs().max()


@pytest.mark.parametrize("kwargs,match", [
    (dict(w_bits=1, u_bits=2), "w_bits must be an int from 2 to 8"),
    (dict(w_bits=9, u_bits=2), "w_bits must be an int from 2 to 8"),
    (dict(w_bits="4", u_bits=2), "w_bits must be an int from 2 to 8"),
    (dict(w_bits=4, u_bits=0), "u_bits must be an int from 2 to 8, or None"),
    (dict(w_bits=4, u_bits=4, first_last_bits=12), "first_last_bits must be"),
    (dict(w_bits=4, u_bits=4, bn="merge"), "bn must be 'fold'"),
    (dict(w_bits=4, u_bits=4, bias_frac_bits=-1), "bias_frac_bits must be an int from 0 to 16"),
    (dict(w_bits=4, u_bits=4, bias_frac_bits=17), "bias_frac_bits must be an int from 0 to 16"),
    (dict(w_bits=4, u_bits=4, bias_frac_bits=2.0), "bias_frac_bits must be an int from 0 to 16"),
])
def test_quantize_model_bad_arguments(kwargs, match):
    with pytest.raises(MdsnnError, match=match):
        quantize_model(_net(), **kwargs)


def test_quantize_model_needs_lif_and_foldable_bn():
    from spikingjelly.activation_based import neuron

    with pytest.raises(MdsnnError, match="has none"):
        quantize_model(nn.Sequential(nn.Linear(3, 3), neuron.LIFNode()), 4, 4)
    odd = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 2, 1), QuantLIFNode())
    with pytest.raises(MdsnnError, match=r"no convolution \(or linear layer\) right before BatchNorm '0'"):
        quantize_model(odd, 4, 4)


@pytest.mark.parametrize("frac_bits", [0, 3, 4])
def test_bias_sits_on_a_refined_membrane_grid(frac_bits):
    student = quantize_model(_net(), w_bits=2, u_bits=2, bias_frac_bits=frac_bits)
    layers = [m for m in student.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    linked = [m for m in layers if m.grid_node is not None]
    assert len(linked) == 3 and layers[-1].grid_node is None  # the head's bias feeds no neuron
    for m in linked:
        unit = m.grid_node.step_in_use().detach() / 2**frac_bits
        b = m.quantized_bias().detach()
        codes = m.bias_codes()
        torch.testing.assert_close(b, codes.to(b.dtype) * unit)
        assert (b - m.bias.detach()).abs().max() <= unit / 2 + 1e-6  # the nearest level
    assert layers[-1].bias_codes() is None
    if frac_bits == 0:  # on the membrane grid itself: multiples of the 2-bit step V_th / 2
        assert all(torch.equal(m.quantized_bias().detach() % 0.5, torch.zeros_like(m.bias)) for m in linked)
    fine, coarse = (quantize_model(_net(), w_bits=2, u_bits=2, bias_frac_bits=f) for f in (4, 0))
    err = [sum((m.quantized_bias() - m.bias).abs().sum().item() for m in net.modules() if getattr(m, "grid_node", None))
           for net in (fine, coarse)]
    assert err[0] < err[1] / 4


@pytest.mark.parametrize("m", [0, 1, 4, 8])
def test_dyadic_scales_are_the_nearest_multiplier_and_shift(m):
    from mdsnn_zoo._ste import dyadic_ste
    from mdsnn_zoo.quant import dyadic_parts

    x = torch.cat([torch.rand(500) * 10 + 1e-3, torch.tensor([0.5, 4.0, 2.0**-20])]).requires_grad_(True)
    y = dyadic_ste(x, m)
    mult, e = dyadic_parts(y)
    assert torch.equal(mult.double() * torch.exp2(e.double()), y.detach().double())  # exactly M 2^e
    assert int(mult.max()) < 2 ** (m + 1) and (mult % 2 == 1).all()  # M odd, at most m + 1 bits
    assert ((y - x).abs() <= x * 2.0 ** -(m + 1) * 1.0001).all()  # the nearest: half a step of 2^-m
    assert torch.equal(y[-3:].detach(), x[-3:].detach())  # on the grid already: unchanged
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("scale_bits", [None, 3])
def test_a_hardware_exact_input_layer_sums_in_float64_and_rounds_once(scale_bits):
    """The first layer of a hardware-exact student computes ``conv(x, q) s + b`` in float64 (the same
    function, rounded once, so that an integer runtime can reproduce it) with the same gradients; the
    other layers, and every layer of a float-scale student, keep the float32 path."""
    student = quantize_model(_net(), w_bits=4, u_bits=4, scale_bits=scale_bits)
    layers = [m for m in student.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    assert [m.accumulates_exactly for m in layers] == [scale_bits is not None] + [False] * 3
    first = layers[0]
    x = torch.randn(3, 2, 2, 9, 7)  # [T, N, C, H, W], odd sizes
    out = first(x).detach()
    first.input_layer = False
    ref = first(x).detach()
    if scale_bits is None:
        assert torch.equal(out, ref)
    else:  # a fixed-point current on the next neuron's bias grid, the nearest to the float one
        unit = first.grid_node.step_in_use().detach() / 2**first.bias_frac_bits
        assert torch.equal(out, torch.round(out / unit) * unit)
        assert (out - ref).abs().max() <= unit / 2 + 1e-5 and (out != ref).any()
    grads = []
    for flag in (True, False):
        first.input_layer = flag
        first.zero_grad()
        (first(x) * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()  # straight through
        grads.append((first.weight.grad.clone(), first.weight_quant.scale.grad.clone()))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=1e-3)  # float32 sums of many terms
    if scale_bits is not None:  # the classifier's bias: on a 2^-8 grid
        codes = layers[-1].bias_codes()
        torch.testing.assert_close(layers[-1].quantized_bias().detach(), codes.float() / 256)


def test_scale_bits_and_pot_are_checked_and_one_thing():
    exact = quantize_model(_net(), w_bits=4, u_bits=4, pot=True)
    layers = [m for m in exact.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    assert {m.weight_quant.scale_bits for m in layers} == {0}
    assert all(m.pot_delta for m in exact.modules() if isinstance(m, QuantLIFNode))
    with pytest.raises(ValueError, match="scale_bits must be None .float scales. or an int from 0"):
        quantize_model(_net(), w_bits=4, u_bits=4, scale_bits=9)
    with pytest.raises(ValueError, match="pot=True is scale_bits=0; got scale_bits=3 too"):
        quantize_model(_net(), w_bits=4, u_bits=4, pot=True, scale_bits=3)
