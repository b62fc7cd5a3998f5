"""The integer export and the NumPy runtime: spikes equal to the PyTorch student's at every LIF layer,
bit for bit, on odd shapes, every bit width and several seeds; the runtime without torch; bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional, monitor
from torch import nn

from mdsnn_zoo.export import export_integer
from mdsnn_zoo.models import ms_resnet18, small_cnn, vgg9
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import quantize_model
from mdsnn_zoo.runtime import GRAPH_FILE, WEIGHTS_FILE, Fixed, IntegerModel, read_safetensors

LIF = {"backend": "torch"}
FAMILIES = {  # family: (float network, one sample's shape, input kind)
    "small_cnn": (lambda: small_cnn(num_classes=5, in_channels=1, time_steps=3, width=6, input_size=12, **LIF),
                  (1, 12, 12), "static"),
    "vgg9_events": (lambda: vgg9(num_classes=4, in_channels=2, time_steps=3, width=0.125, input_size=11, hidden=40,
                                 **LIF), (3, 2, 11, 11), "events"),
    "ms_resnet18": (lambda: ms_resnet18(num_classes=7, in_channels=3, time_steps=2, width=0.125, input_size=16, **LIF),
                    (3, 16, 16), "static"),
}


def _student(family: str, bits: int, scale_bits: int, seed: int) -> tuple[nn.Module, tuple[int, ...], str]:
    """A hardware-exact student of ``family`` with random weights and batch norms that make it fire."""
    make, shape, kind = FAMILIES[family]
    torch.manual_seed(seed)
    net = make()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(1.0, 3.0)
                m.bias.normal_(0.3, 0.5)
    return quantize_model(net.eval(), w_bits=bits, u_bits=bits, scale_bits=scale_bits).eval(), shape, kind


def _input(shape: tuple[int, ...], kind: str, seed: int, n: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "events":  # event counts
        return torch.randint(0, 4, (n, *shape), generator=g).float()
    return torch.randn(n, *shape, generator=g) * 1.5  # normalised images


def _torch_spikes(student: nn.Module, x: torch.Tensor) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    rec = monitor.OutputMonitor(student, QuantLIFNode)
    with torch.no_grad():
        logits = student(x)
    spikes = {name: s.numpy().astype(np.int8) for name, s in zip(rec.monitored_layers, rec.records, strict=True)}
    rec.remove_hooks()
    functional.reset_net(student)
    return spikes, logits


def _ties(runtime: IntegerModel, x: np.ndarray) -> float:
    """The share of first-step pre-rounding membranes exactly halfway between two levels, over the
    integer LIF layers (the input layer's excepted)."""
    values = runtime.trace(x)
    ties = total = 0
    for node in runtime.graph["nodes"][2:]:
        if node["op"] != "lif":
            continue
        v: Fixed = values[node["in"]]
        frac = max(0, node["delta_exp"] - v.exp)
        one = frac + node["tau_shift"]
        x0 = v.num[0] << (v.exp - node["delta_exp"] + frac)
        h = (node["v0"] << one) + x0 - ((node["v0"] - node["reset"]) << frac)
        ties += int(((h & ((1 << one) - 1)) == (1 << (one - 1))).sum())
        total += h.size
    return ties / total


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("bits,scale_bits,seed", [(2, 7, 0), (3, 0, 1), (4, 4, 2), (8, 7, 3), (5, 2, 4)])
def test_runtime_spikes_equal_the_students_bit_for_bit(family, bits, scale_bits, seed, tmp_path):
    student, shape, kind = _student(family, bits, scale_bits, seed)
    x = _input(shape, kind, seed)
    want, logits = _torch_spikes(student, x)
    runtime = IntegerModel.load(export_integer(student, tmp_path / "int", kind, shape))
    got = runtime.run(x.numpy())
    assert got["spikes"].keys() == want.keys()
    for name, s in want.items():
        assert got["spikes"][name].shape == s.shape and np.array_equal(got["spikes"][name], s), name
    rates = [s.mean() for s in want.values()]
    assert 0.02 < np.mean(rates) < 0.9  # the layers fire: the comparison is not of silence
    # the output's integer membrane is T times the logits PyTorch averages over time
    membrane = got["output"] * 2.0 ** got["output_exp"]
    np.testing.assert_allclose(membrane / student.time_steps, logits.numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(runtime.predict(x.numpy()), logits.argmax(1).numpy())
    if bits <= 4:
        assert _ties(runtime, x.numpy()) > 0.002  # halfway cases occur (0.7-2% here), and round the same way


def test_the_runtime_runs_without_torch_and_the_graph_describes_the_model(tmp_path):
    student, shape, kind = _student("small_cnn", 2, 7, 5)
    x = _input(shape, kind, 5, n=4)
    out = export_integer(student, tmp_path / "int", kind, shape, source="a test")
    np.save(tmp_path / "x.npy", x.numpy())
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of torch fails
            "import numpy as np\n"
            "from mdsnn_zoo.runtime import IntegerModel\n"
            f"m = IntegerModel.load({str(out)!r})\n"
            f"print(m.predict(np.load({str(tmp_path / 'x.npy')!r})).tolist())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    _, logits = _torch_spikes(student, x)
    assert json.loads(done.stdout) == logits.argmax(1).tolist()
    graph = json.loads((out / GRAPH_FILE).read_text())
    assert (graph["time_steps"], graph["input"], graph["source"]) == (3, {"kind": "static", "shape": [1, 12, 12],
                                                                         "dtype": "float32"}, "a test")
    lifs = [n for n in graph["nodes"] if n["op"] == "lif"]
    assert [n["u_bits"] for n in lifs] == [2] * 4 and all(n["tau_shift"] == 1 for n in lifs)
    convs = [n for n in graph["nodes"] if n["op"] == "conv"]
    assert [n["bits"] for n in convs] == [8, 2, 2, 2] and convs[0]["input_layer"]
    assert convs[1]["out_shape"] == [6, 12, 12]
    packed = read_safetensors(out / WEIGHTS_FILE)[convs[1]["weight"]]  # 2-bit codes, four to a byte
    assert packed.dtype == np.uint8 and packed.size == -(-int(np.prod(convs[1]["shape"])) * 2 // 8)
    assert "floor(h + 1/2)" in graph["rounding"]


def test_bad_exports_and_inputs_are_refused_with_the_reason(tmp_path):
    make, shape, kind = FAMILIES["small_cnn"]
    with pytest.raises(ValueError, match="float model: only a quantized student has an integer form"):
        export_integer(make().eval(), tmp_path / "teacher", kind, shape)
    loose = quantize_model(make().eval(), w_bits=2, u_bits=2)  # float scales
    with pytest.raises(ValueError, match="float weight scales: the student is not hardware-exact.*--scale-bits"):
        export_integer(loose, tmp_path / "loose", kind, shape)
    assert not (tmp_path / "teacher").exists() and not (tmp_path / "loose").exists()
    student, _, _ = _student("small_cnn", 2, 7, 6)
    out = export_integer(student, tmp_path / "int", kind, shape)
    model = IntegerModel.load(out)
    with pytest.raises(ValueError, match=r"x has shape \[2, 1, 10, 12\], this model takes \[N, 1, 12, 12\]"):
        model.predict(np.zeros((2, 1, 10, 12), np.float32))
    with pytest.raises(TypeError, match="x must be float32.*got int64"):
        model.predict(np.zeros((2, 1, 12, 12), np.int64))
    graph, arrays = model.graph, dict(model.arrays)
    first = graph["nodes"][0]["weight"]
    assert arrays[first].dtype == np.uint8 and arrays[first].size == np.prod(graph["nodes"][0]["shape"])  # 8 bits
    arrays[first] = arrays[first][:-1]
    with pytest.raises(ValueError, match=f"{first} holds .* not the .* bytes of .* 8-bit codes; export it again"):
        IntegerModel(graph, arrays)
    weights = (out / WEIGHTS_FILE).read_bytes()
    (out / WEIGHTS_FILE).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="does not match its graph.*damaged or replaced"):
        IntegerModel.load(out)
    with pytest.raises(ValueError, match="is damaged .* lies outside the file"):
        read_safetensors(out / WEIGHTS_FILE)
    (out / GRAPH_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no graph.json in"):
        IntegerModel.load(out)
    with pytest.raises(ValueError, match="not an mdsnn-zoo integer model"):
        IntegerModel({"format": "onnx"}, {})



def test_cli_exports_a_trained_hardware_exact_checkpoint_and_refuses_a_float_scale_student(fmnist_root, tmp_path,
                                                                                           capsys):
    from mdsnn_zoo.cli import main
    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.train import model_from_checkpoint

    run = tmp_path / "run"
    assert main(["train", "--data-root", str(fmnist_root), "--arch-kwargs", '{"width": 4, "backend": "torch"}',
                 "--w-bits", "2", "--u-bits", "2", "--scale-bits", "7", "--epochs", "1", "--batch-size", "4",
                 "--val-size", "2", "--no-progress", "--no-tensorboard", "--no-amp", "--out-dir", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "int"
    assert main(["export", str(run / "best.safetensors"), "--format", "int", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x, _ = get_dataset("fashion-mnist", "test", root=fmnist_root).batch(torch.arange(5))
    student, _ = model_from_checkpoint(run / "best.safetensors")
    with torch.no_grad():
        want = student(x).argmax(1).numpy()
    assert np.array_equal(IntegerModel.load(out).predict(x.numpy()), want)
    loose = tmp_path / "loose"
    assert main(["train", "--data-root", str(fmnist_root), "--arch-kwargs", '{"width": 4, "backend": "torch"}',
                 "--w-bits", "2", "--u-bits", "2", "--max-steps", "1", "--epochs", "1", "--batch-size", "4",
                 "--val-size", "2", "--no-progress", "--no-tensorboard", "--no-amp", "--out-dir", str(loose)]) == 0
    capsys.readouterr()
    assert main(["export", str(loose / "best.safetensors"), "--out", str(tmp_path / "nothing")]) == 2
    assert "float weight scales: the student is not hardware-exact" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("scale_bits", [0, 2, 4])
@pytest.mark.parametrize("tau,v_reset,decay,frac_bits", [(2.0, 0.0, True, 4), (2.0, None, True, 0),
                                                         (4.0, 0.0, False, 2)])
def test_runtime_follows_every_lif_variant(bits, scale_bits, tau, v_reset, decay, frac_bits, tmp_path):
    """Soft and hard resets, tau 2 and 4, with and without decay_input, bias grids 2^0..2^-4 of the step,
    steps that are not V_th / 2^(b-1) (learned, rounded to powers of two): the same spikes."""
    from test_quant import _net

    from mdsnn_zoo.models.base import SpikingNet

    body = quantize_model(_net(tau, v_reset, decay), w_bits=bits, u_bits=bits, scale_bits=scale_bits,
                          bias_frac_bits=frac_bits)
    with torch.no_grad():
        for m in body.modules():
            if isinstance(m, QuantLIFNode):
                m.delta.mul_(0.9)
    student = SpikingNet(body[:-1], body[-1:], time_steps=5).eval()
    x = torch.rand(3, 5, 2, 8, 8, generator=torch.Generator().manual_seed(bits + 10 * scale_bits)) * 3
    want, logits = _torch_spikes(student, x)
    got = IntegerModel.load(export_integer(student, tmp_path / "int", "events", (5, 2, 8, 8))).run(x.numpy())
    assert len(want) == len(got["spikes"]) == 3
    for name, s in want.items():
        assert np.array_equal(got["spikes"][name], s), name
    assert sum(int(s.sum()) for s in list(want.values())[1:]) > 0  # the integer layers do fire
    np.testing.assert_allclose(got["output"] * 2.0 ** got["output_exp"] / 5, logits.numpy(), rtol=1e-5, atol=1e-5)
