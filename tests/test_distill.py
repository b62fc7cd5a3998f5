"""Membrane recording, the fused membrane MSE against its reference, MDLoss and spike forcing."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from mdsnn_zoo import backends
from mdsnn_zoo.distill import MDLoss, MembraneRecorder, MembraneTargets, SpikeForcing, lif_layers, membrane_mse
from mdsnn_zoo.errors import MdsnnError
from mdsnn_zoo.kernels import mse_reference
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import quantize_model


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(6, 9), QuantLIFNode(backend="torch"), layer.Linear(9, 7),
                        QuantLIFNode(backend="torch"), layer.Linear(7, 3))
    functional.set_step_mode(net, "m")
    with torch.no_grad():  # strong enough weights that every layer fires
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(4.0)
    return net


def test_recorder_records_every_layer_and_restores():
    net = _net()
    x = torch.rand(4, 5, 6) * 3
    with MembraneRecorder(net) as rec:
        net(x)
        first = rec.membranes
        assert list(first) == lif_layers(net) == ["1", "3"]
        assert first["1"].shape == (4, 5, 9) and first["3"].shape == (4, 5, 7)
        functional.reset_net(net)
        net(x[:, :2])  # a new forward starts a new record
        assert rec.membranes["1"].shape == (4, 2, 9)
    assert not net[1].store_h_seq and net[1].h_seq is None
    with MembraneRecorder(net, layers=["3"]) as rec:
        functional.reset_net(net)
        net(x)
        assert list(rec.membranes) == ["3"]
    with pytest.raises(MdsnnError, match="no QuantLIFNode named 'lif9'"):
        MembraneRecorder(net, layers=["lif9"])


def test_recorder_single_step_concatenates_steps():
    net = _net()
    functional.set_step_mode(net, "s")
    x = torch.rand(4, 5, 6) * 3
    with MembraneRecorder(net) as rec:
        for t in range(4):
            net(x[t])
        assert rec.membranes["1"].shape == (4, 5, 9)
        rec.clear()
        assert not rec.membranes


def test_membrane_mse_reference_value_and_student_only_gradient():
    g = torch.Generator().manual_seed(0)
    s = {"a": torch.randn(3, 4, 5, generator=g, requires_grad=True),
         "b": torch.randn(3, 4, 2, generator=g, requires_grad=True)}
    t = {"a": torch.randn(3, 4, 5, generator=g, requires_grad=True),
         "b": torch.randn(3, 4, 2, generator=g, requires_grad=True)}
    loss = membrane_mse(s, t, backend="torch")
    want = ((s["a"] - t["a"]) ** 2).mean() / 2 + ((s["b"] - t["b"]) ** 2).mean() / 2
    torch.testing.assert_close(loss, want)
    (2.5 * loss).backward()
    auto = torch.autograd.grad(2.5 * want, [s["a"], s["b"]])
    torch.testing.assert_close(s["a"].grad, auto[0])
    torch.testing.assert_close(s["b"].grad, auto[1])
    assert t["a"].grad is None and t["b"].grad is None
    only_b = membrane_mse(s, t, layers=["b"], backend="torch")
    torch.testing.assert_close(only_b, ((s["b"] - t["b"]) ** 2).mean())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fused_triton_mse_matches_reference_across_hundreds_of_blocks(dtype):
    if "triton" not in QuantLIFNode.available_backends():
        pytest.skip("triton needs a GPU or TRITON_INTERPRET=1")
    from mdsnn_zoo.kernels import mse_triton

    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(1)
    n = mse_triton.BLOCK * 300 + 123  # 301 blocks, the last one partial
    s = torch.randn(n, generator=g).to(device, dtype)
    t = torch.randn(n, generator=g).to(device, dtype)
    want_sum, want_grad = mse_reference.forward(s, t, 0.37, True)
    got_sum, got_grad = mse_triton.forward(s, t, 0.37, True)
    torch.testing.assert_close(got_sum, want_sum, rtol=1e-5, atol=0)
    if dtype == torch.bfloat16 and device == "cpu":  # the interpreter truncates to bfloat16
        torch.testing.assert_close(got_grad, want_grad, rtol=2**-7, atol=0)
    else:
        assert torch.equal(got_grad, want_grad)
    s2 = {"x": s.view(1, -1).requires_grad_()}
    t2 = {"x": t.view(1, -1)}
    torch.testing.assert_close(membrane_mse(s2, t2, backend="triton"), want_sum / n, rtol=1e-5, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_cupy_mse_matches_reference():
    pytest.importorskip("cupy")
    from mdsnn_zoo.kernels import mse_cupy

    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        s = torch.randn(256 * 4096 * 3 + 7, device="cuda").to(dtype)
        for t in (torch.randn_like(s), torch.randn(s.shape, device="cuda")):  # the student's dtype, float32
            want = mse_reference.forward(s, t, 0.5, True)
            got = mse_cupy.forward(s, t, 0.5, True)
            torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=0)
            assert torch.equal(got[1], want[1])


def test_a_float32_teacher_is_widened_never_narrowed_to_a_bfloat16_student():
    """One contract on every backend: the teacher membrane is read in its own dtype, widened to float32."""
    g = torch.Generator().manual_seed(3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    s = {"a": torch.randn(4, 3, 333, generator=g).to(device, torch.bfloat16).requires_grad_()}
    t = {"a": torch.randn(4, 3, 333, generator=g).to(device) * 0.37}  # not representable in bfloat16
    want = ((s["a"].detach().float() - t["a"]) ** 2).mean()
    narrowed = ((s["a"].detach().float() - t["a"].bfloat16().float()) ** 2).mean()
    assert abs(narrowed - want) > 1e-5 * want  # what narrowing the teacher would have given
    for backend in backends.available_backends("mse"):
        torch.testing.assert_close(membrane_mse(s, t, backend=backend), want, rtol=1e-6, atol=0)


def test_membrane_mse_errors():
    s = {"a": torch.zeros(2, 3)}
    with pytest.raises(MdsnnError, match="layer 'b' has no recorded student membrane"):
        membrane_mse(s, {"b": torch.zeros(2, 3)}, layers=["b"])
    with pytest.raises(MdsnnError, match="differ in shape"):
        membrane_mse(s, {"a": torch.zeros(2, 4)})
    with pytest.raises(MdsnnError, match="unknown membrane_mse backend"):
        membrane_mse(s, s, backend="numba")
    with pytest.raises(MdsnnError, match="got no layers"):
        membrane_mse({}, {})


def test_mdloss_parts_and_distillation_gradient_reaches_the_student():
    torch.manual_seed(0)
    teacher = _net()
    student = quantize_model(teacher, w_bits=2, u_bits=2, first_last_bits=None)
    x, y = torch.rand(4, 8, 6) * 3, torch.randint(0, 3, (8,))
    with MembraneRecorder(teacher) as t_rec, MembraneRecorder(student) as s_rec:
        with torch.no_grad():
            t_logits = teacher(x).mean(0)
        s_logits = student(x).mean(0)
        loss, parts = MDLoss(kd_weight=0.5, mem_weight=2.0)(s_logits, y, t_logits, s_rec.membranes,
                                                             t_rec.membranes)
    mem = membrane_mse(s_rec.membranes, t_rec.membranes, backend="torch")
    torch.testing.assert_close(loss, parts["ce"] + 0.5 * parts["kd"] + 2.0 * parts["mem"])
    torch.testing.assert_close(parts["mem"], mem.detach())
    assert parts["kd"] > 0 and parts["mem"] > 0
    loss.backward()
    assert student[1].delta.grad is not None and student[2].weight_quant.scale.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(MdsnnError, match="temperature must be > 0"):
        MDLoss(temperature=0)


@pytest.mark.parametrize("backend", ["torch", "triton", "inductor"])
def test_fused_membrane_targets_equal_recorded_mse(backend):
    """The MSE fused into the neurons gives the loss and the gradients of the recorded-membrane path."""
    if backend not in QuantLIFNode.available_backends():
        pytest.skip(f"{backend} not available")
    torch.manual_seed(1)
    teacher = _net()
    student = quantize_model(teacher, w_bits=4, u_bits=3, first_last_bits=None)
    for m in student.modules():
        if isinstance(m, QuantLIFNode):
            m.backend = backend
    x = torch.rand(4, 8, 6) * 3
    with MembraneRecorder(teacher) as t_rec, torch.no_grad():
        teacher(x)
    grads = []
    for fused in (False, True):
        functional.reset_net(student)
        student.zero_grad()
        if fused:
            with MembraneTargets(student, t_rec.membranes) as targets:
                out = student(x)
            loss = targets.loss()
        else:
            with MembraneRecorder(student) as s_rec:
                out = student(x)
            assert set(s_rec.ranges) == {"1", "3"}
            loss = membrane_mse(s_rec.membranes, t_rec.membranes, backend="torch", clip=s_rec.ranges)
        (3.0 * loss + out.sum()).backward()
        grads.append((loss.detach(), [p.grad.clone() for p in student.parameters()]))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-7)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert student[1]._membrane_target is None  # cleared on exit
    with pytest.raises(MdsnnError, match="not a QuantLIFNode of the student"):
        MembraneTargets(student, {"7": torch.zeros(1)})


def test_mdloss_takes_label_smoothing():
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(2)
    logits, teacher = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    total, parts = MDLoss(label_smoothing=0.1)(logits, y, teacher)
    assert torch.equal(parts["ce"], F.cross_entropy(logits, y, label_smoothing=0.1))
    assert not torch.equal(parts["ce"], MDLoss()(logits, y, teacher)[1]["ce"])
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        MDLoss(label_smoothing=1.0)


class _Logits(nn.Module):
    """``_net`` averaged over time: [T, N, 6] -> [N, 3], what a training step expects of a model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(0)


@pytest.mark.parametrize("fused", [False, True])
def test_a_training_step_distils_only_the_layers_asked_for(fused):
    from mdsnn_zoo.train import train_step

    torch.manual_seed(4)
    teacher = _Logits(_net())
    x, y = torch.rand(4, 8, 6) * 3, torch.randint(0, 3, (8,))
    with MembraneRecorder(teacher) as t_rec, torch.no_grad():
        teacher(x)
    mems = {}
    for layers in (None, ["net.3"]):
        student = quantize_model(teacher, w_bits=4, u_bits=3, first_last_bits=None)
        functional.reset_net(student)  # the copy holds the teacher's last state
        with MembraneRecorder(student) as s_rec, torch.no_grad():
            student(x)
        expected = membrane_mse(s_rec.membranes, t_rec.membranes, layers, backend="torch", clip=s_rec.ranges)
        optimizer = torch.optim.SGD(student.parameters(), lr=0.0)
        _, _, parts = train_step(student, student, teacher, optimizer, x, y, MDLoss(layers=layers), amp=False,
                                 fused_mse=fused)
        torch.testing.assert_close(parts["mem"], expected, rtol=1e-5, atol=1e-7)
        mems[layers is None] = parts["mem"]
    assert mems[True] != mems[False]  # the first layer's term is left out


def _outputs_under_forcing(student: nn.Module, x: torch.Tensor, membranes: dict, rate: float) -> dict:
    """Each LIF layer's output spikes of ``student`` on ``x`` (forced at ``rate``), and its first weight's gradient."""
    out, handles = {}, []
    student.zero_grad(set_to_none=True)
    functional.reset_net(student)
    with SpikeForcing(student, membranes, rate):
        for name in lif_layers(student):  # registered after SpikeForcing's hooks: they see the forced spikes
            node = student.get_submodule(name)
            handles.append(node.register_forward_hook(lambda m, a, o, name=name: out.__setitem__(name, o.detach())))
        student(x).sum().backward()
    for handle in handles:
        handle.remove()
    return {**out, "grad": student[0].weight.grad}


def test_spike_forcing_passes_on_the_teachers_spikes_in_the_share_asked_for():
    teacher = _net()
    x = torch.rand(4, 64, 6) * 3
    with MembraneRecorder(teacher) as t_rec, torch.no_grad():
        teacher(x)
    t_spikes = {n: (h >= 1.0).float() for n, h in t_rec.membranes.items()}
    student = quantize_model(teacher, w_bits=2, u_bits=2, first_last_bits=None)
    functional.reset_net(student)
    with MembraneRecorder(student) as s_rec, torch.no_grad():
        student(x)
    own = {n: (h >= 1.0).float() for n, h in s_rec.membranes.items()}  # on the grid: H_q >= V_th is a spike
    assert not torch.equal(own["1"], t_spikes["1"])  # the 2-bit student fires otherwise

    every = _outputs_under_forcing(student, x, t_rec.membranes, 1.0)
    assert all(torch.equal(every[n], t_spikes[n]) for n in t_spikes)
    assert every["grad"] is None or not every["grad"].any()  # no gradient reaches a neuron whose spikes are all forced
    none = _outputs_under_forcing(student, x, t_rec.membranes, 0.0)
    assert torch.equal(none["1"], own["1"]) and torch.equal(none["3"], own["3"]) and none["grad"].abs().sum() > 0

    torch.manual_seed(1)
    half = _outputs_under_forcing(student, x, t_rec.membranes, 0.5)["1"]  # layer 1's input does not depend on forcing
    differ = own["1"] != t_spikes["1"]
    assert ((half == own["1"]) | (half == t_spikes["1"])).all()
    taken = (half[differ] == t_spikes["1"][differ]).float().mean()
    assert differ.sum() > 100 and 0.4 < taken < 0.6, (int(differ.sum()), float(taken))


def test_spike_forcing_refuses_what_it_cannot_do():
    student = _net()
    h = {"1": torch.zeros(4, 2, 9)}
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got 1.5"):
        SpikeForcing(student, h, 1.5)
    with pytest.raises(KeyError, match="layer '2' of the teacher's membranes is not a QuantLIFNode"):
        SpikeForcing(student, {"2": h["1"]}, 0.5)
    with pytest.raises(ValueError, match="no teacher membranes"):
        SpikeForcing(student, {}, 0.5)
    with pytest.raises(ValueError, match=r"teacher membrane \(4, 2, 9\) and student spikes \(4, 3, 9\) differ"):
        with SpikeForcing(student, h, 0.5):
            student(torch.rand(4, 3, 6))
