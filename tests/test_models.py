"""The zoo's networks: running the stem once per image (``SpikingNet.share_stem``) and in channels_last
layout computes what the plain NCHW network running the stem on every time step computes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional

from mdsnn_zoo.models import build_model
from mdsnn_zoo.quant import quantize_model


def _grads_and_logits(net, x, y):
    functional.reset_net(net)
    net.zero_grad(set_to_none=True)
    logits = net(x)
    F.cross_entropy(logits, y).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ["vgg9", "resnet20", "ms_resnet18", "small_cnn"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("w_bits", [None, 2])
def test_shared_stem_and_channels_last_change_nothing(arch, channels_last, w_bits):
    torch.manual_seed(0)
    kwargs = {"width": 8} if arch == "small_cnn" else {"width": 0.25}
    net = build_model(arch, num_classes=5, in_channels=1, time_steps=3, input_size=16, backend="torch", **kwargs)
    if w_bits is not None:
        net = quantize_model(net.eval(), w_bits, w_bits).train()
    x, y = torch.randn(6, 1, 16, 16), torch.randint(0, 5, (6,))
    plain = copy.deepcopy(net)
    plain.share_stem = False
    fast = copy.deepcopy(net)
    assert fast.share_stem
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    want_logits, want_grads = _grads_and_logits(plain.train(), x, y)
    got_logits, got_grads = _grads_and_logits(fast.train(), x, y)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-5)
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-3, atol=1e-5, msg=name)
    for a, b in zip(plain.buffers(), fast.buffers(), strict=True):  # batch-norm running statistics
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # and in eval mode, on running statistics
        functional.reset_net(plain)
        functional.reset_net(fast)
        torch.testing.assert_close(fast.eval()(x), plain.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet19", "resnet20", "ms_resnet18"])
def test_a_resnet_stem_of_stride_two_halves_every_feature_map(arch):
    from spikingjelly.activation_based import layer

    from mdsnn_zoo.errors import InvalidValueError

    def sizes(**kw):
        net = build_model(arch, num_classes=3, in_channels=1, time_steps=2, input_size=16, width=0.125,
                          backend="torch", **kw).eval()
        seen = []
        hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
                 for m in net.modules() if isinstance(m, layer.Conv2d)]
        functional.reset_net(net)
        with torch.no_grad():
            assert net(torch.rand(4, 1, 16, 16)).shape == (4, 3)
        for h in hooks:
            h.remove()
        return seen

    full, halved = sizes(), sizes(stem_stride=2)
    assert sizes(stem_stride=1) == full and full[0] == 16  # unset below 64 pixels: stride 1
    assert halved == [-(-n // 2) for n in full]
    for bad in (3, 0, True):
        with pytest.raises(InvalidValueError, match="stem_stride must be 1 or 2"):
            build_model(arch, input_size=16, stem_stride=bad)


def test_five_dimensional_input_is_read_by_its_time_axis_and_ambiguity_is_refused():
    torch.manual_seed(1)
    net = build_model("small_cnn", num_classes=3, in_channels=2, time_steps=3, input_size=8, width=4,
                      backend="torch").eval()
    events = torch.rand(5, 3, 2, 8, 8)  # [N, T, C, H, W]

    def run(x, **kw):
        functional.reset_net(net)
        with torch.no_grad():
            return net(x, **kw)

    want = run(events)
    torch.testing.assert_close(run(events.transpose(0, 1).contiguous()), want)  # [T, N, ...]: found by T
    torch.testing.assert_close(run(events.transpose(0, 1), time_major=True), want)
    square = torch.rand(3, 3, 2, 8, 8)
    with pytest.raises(ValueError, match="ambiguous with time_steps=3.*pass time_major=True"):
        run(square)
    torch.testing.assert_close(run(square, time_major=False), run(square.transpose(0, 1), time_major=True))
