"""The hardware cost card: SpikeSim's published model reproduced, bits and spikes priced monotonically, on
zoo networks, plain SpikingJelly networks and checkpoints of any trained architecture."""

from __future__ import annotations

import json
import math

import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from mdsnn_zoo.cli import main
from mdsnn_zoo.cost import DigitalConfig, SpikeSimConfig, estimate
from mdsnn_zoo.cost import spikesim as ss
from mdsnn_zoo.errors import InvalidTypeError, InvalidValueError
from mdsnn_zoo.models import ARCHITECTURES, SpikingNet, build_model
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import QuantConv2d, QuantLinear, quantize_model

WORD = 0.7391 * 22  # the script's µm² per buffered element


def _published(cin, cout, din, dout, T=5, k=3, xbar=64, pe_per_tile=8):
    """SpikeSim's ela_spikesim.py, its formulas written out again here, independently of the module."""
    pe = [math.ceil(a / xbar) * math.ceil(b / xbar) for a, b in zip(cin, cout, strict=True)]
    tiles = math.ceil(sum(pe) / pe_per_tile)
    pe_area = k * k * 26.2144 + xbar / 8 * (693.633 + 45.9)
    tile_area = xbar / 8 * 13411.41498 + 484.643999 + 0.7391 * 64 * 128 + pe_per_tile * pe_area + 216830 * 2
    area = (tile_area * tiles + sum(c * d * d for c, d in zip(cin, din, strict=True)) * WORD
            + sum(c * d * d for c, d in zip(cout[:5], dout[:5], strict=True)) * WORD)
    pe_energy = k * k * 1.76423 + xbar / 8 * (2.03084 + 0.094245)
    cycle_energy = (19.64 * 8 + 4.64 + 1.274 * 4.0 + xbar / 8 * pe_energy + xbar / 8 * 16 * 1.15e-6
                    + xbar / 8 * 0.2 + 397)
    energy = sum(math.ceil(b / xbar) * math.ceil(a / xbar) * d * d for a, b, d in zip(cin, cout, dout, strict=True))
    energy *= cycle_energy * T
    checkpoints = [int(0.75 * d * d * c) * T for c, d in zip(cout, dout, strict=True)]
    latency = (sum(checkpoints[:-1]) + dout[-1] ** 2 * cout[-1] * T) * 26 * (1000 / 250)
    return {"pes": sum(pe), "tiles": tiles, "area_um2": area, "energy_pj": energy, "latency_ns": latency}


def test_the_published_vgg9_figures():
    cin, cout = [3, 64, 64, 128, 128, 256, 256], [64, 64, 128, 128, 256, 256, 256]
    din, dout = [32, 32, 16, 16, 8, 8, 8], [32, 16, 16, 8, 8, 8, 4]
    layers = [ss.Layer(f"l{i}", *dims) for i, dims in enumerate(zip(cin, cout, din, dout, strict=True))]
    ours = ss.cost(layers, 5, SpikeSimConfig(), "dense")
    # what the released script prints for its default network
    assert (ours["pes"], ours["tiles"]) == (48, 6)
    assert ours["energy_pj"] == pytest.approx(15_906_934.03, abs=0.01)
    assert ours["latency_ns"] == pytest.approx(62_832_640, abs=1e-6)
    # the script counts only its first five layers' neuron memory; this model counts all seven
    assert ours["area_um2"] == pytest.approx(8_425_528.76 + WORD * (256 * 8 * 8 + 256 * 4 * 4), abs=0.01)
    assert _published(cin, cout, din, dout)["area_um2"] == pytest.approx(8_425_528.76, abs=0.01)


def _four_bit_net(time_steps=2):
    """conv 3x3 1->70 (LIF, pool), conv 70->130 (LIF), conv 130->64 (LIF, pool); 4-bit weights,
    float membranes: the network SpikeSim's script describes."""
    lif = {}
    features = nn.Sequential(
        layer.Conv2d(1, 70, 3, padding=1, bias=False), layer.BatchNorm2d(70), QuantLIFNode(**lif), layer.MaxPool2d(2),
        layer.Conv2d(70, 130, 3, padding=1, bias=False), layer.BatchNorm2d(130), QuantLIFNode(**lif),
        layer.Conv2d(130, 64, 3, padding=1, bias=False), layer.BatchNorm2d(64), QuantLIFNode(**lif),
        layer.MaxPool2d(2))
    net = SpikingNet(features, nn.Identity(), time_steps).eval()
    return quantize_model(net, 4, None, first_last_bits=4).eval()


def test_dense_four_bit_network_costs_what_spikesim_formulas_say():
    x = torch.rand(2, 3, 1, 12, 12)
    report = estimate(_four_bit_net(), x, "spikesim", "dense")
    expected = _published([1, 70, 130], [70, 130, 64], [12, 6, 6], [6, 6, 3], T=2)
    for key in ("energy_pj", "latency_ns", "area_um2"):
        assert getattr(report, key) == pytest.approx(expected[key], rel=1e-12), key
    assert report.edap == pytest.approx(expected["energy_pj"] * expected["latency_ns"] * expected["area_um2"])
    macs_per_step = 12 * 12 * 70 * 9 * 1 + 6 * 6 * 130 * 9 * 70 + 6 * 6 * 64 * 9 * 130  # before pooling
    assert report.ops == 2 * macs_per_step * 2  # two ops a MAC, T = 2
    assert report.tops_per_w == pytest.approx(report.ops / report.energy_pj)
    assert [r.crossbars for r in report.layers] == [1 * 2 * 9, 2 * 3 * 9, 3 * 1 * 9] and report.unmapped == ()


@pytest.mark.parametrize("hardware", ["spikesim", "digital"])
def test_lower_bits_and_fewer_spikes_never_cost_more(hardware):
    torch.manual_seed(0)
    teacher = build_model("vgg9", num_classes=10, in_channels=1, time_steps=2, width=0.25, input_size=16).eval()
    x = torch.rand(2, 4, 1, 16, 16)
    nets = [teacher, quantize_model(teacher, 8, 8).eval(), quantize_model(teacher, 4, 4).eval(),
            quantize_model(teacher, 2, 2).eval()]
    for activity in ("dense", "spikes"):
        reports = [estimate(n, x, hardware, activity) for n in nets]
        for wide, narrow in zip(reports, reports[1:], strict=False):
            for key in ("energy_pj", "latency_ns", "area_um2", "edap"):
                assert getattr(narrow, key) <= getattr(wide, key) * (1 + 1e-12), (activity, key)
        assert reports[0].energy_pj > reports[-1].energy_pj  # bits are not free
    for net in nets:  # measured spikes cost no more than every operation
        dense, spikes = estimate(net, x, hardware, "dense"), estimate(net, x, hardware, "spikes")
        assert spikes.energy_pj <= dense.energy_pj and spikes.area_um2 == dense.area_um2


@pytest.mark.parametrize("hardware", ["spikesim", "digital"])
def test_removing_input_spikes_never_costs_more(hardware):
    conv = nn.Sequential(layer.Conv2d(70, 20, 3, padding=1), QuantLIFNode())
    net = SpikingNet(conv, nn.Identity(), 3).eval()
    spikes = (torch.rand(3, 2, 70, 8, 8) < 0.3).float()
    fewer = spikes * (torch.rand_like(spikes) < 0.5)
    e_all = estimate(net, spikes, hardware, "spikes").energy_pj
    e_fewer = estimate(net, fewer, hardware, "spikes").energy_pj
    e_none = estimate(net, torch.zeros_like(spikes), hardware, "spikes").energy_pj
    assert e_none < e_fewer < e_all <= estimate(net, spikes, hardware, "dense").energy_pj


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_is_priced_and_nothing_is_dropped(arch):
    net = build_model(arch, num_classes=5, in_channels=2, time_steps=2, input_size=16).eval()
    x = torch.rand(2, 2, 2, 16, 16)
    sim, dig = estimate(net, x, "spikesim", "spikes"), estimate(net, x, "digital", "spikes")
    assert sim.energy_pj > 0 and sim.latency_ns > 0 and sim.area_um2 > 0 and dig.energy_pj > 0
    weighted = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len([r for r in sim.layers if r.kind in ("conv", "linear")]) == len(weighted)
    residual = "resnet" in arch
    assert any("residual addition" in u for u in sim.unmapped) == residual
    assert any(r.kind == "add" for r in dig.layers) == residual and dig.unmapped == ()


def test_bad_arguments_say_what_is_wrong():
    net = _four_bit_net()
    with pytest.raises(ValueError, match="hardware must be one of spikesim, digital"):
        estimate(net, torch.rand(2, 1, 1, 8, 8), "tpu")
    with pytest.raises(ValueError, match="activity"):
        estimate(net, torch.rand(2, 1, 1, 8, 8), activity="sparse")
    with pytest.raises(ValueError, match="time-major"):
        estimate(net, torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="DigitalConfig"):
        estimate(net, torch.rand(2, 1, 1, 8, 8), "digital", config=SpikeSimConfig())
    with pytest.raises(ValueError, match="device"):
        SpikeSimConfig(device="flash")
    assert DigitalConfig().lanes == 64


def test_cli_prints_json_totals(capsys):
    assert main(["cost", "small_cnn.fmnist_t4_w2u2_md", "--activity", "spikes", "--samples", "4", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["model"] == "small_cnn.fmnist_t4_w2u2_md" and line["hardware"] == "spikesim"
    assert line["edap"] == pytest.approx(line["energy_pj"] * line["latency_ns"] * line["area_um2"])
    assert main(["cost", "small_cnn.fmnist_t4_w2u2_md", "--hardware", "digital", "--samples", "2"]) == 0
    assert "digital, activity dense" in capsys.readouterr().out


def test_shipped_cost_cards_are_what_the_command_measures():
    from mdsnn_zoo.cost import measure
    from mdsnn_zoo.zoo.registry import get_weights, list_models

    shipped = list_models(pretrained=True)
    assert shipped and all(get_weights(n).cost is not None for n in shipped)
    name = "small_cnn.fmnist_t4_w2u2_md"
    card = get_weights(name).cost
    for hardware in ("spikesim", "digital"):
        totals = measure(name, hardware, "spikes", 256).totals()
        for key in ("energy_pj", "latency_ns", "area_um2", "edap"):
            assert card[hardware]["spikes"][key] == pytest.approx(totals[key], rel=1e-5), (hardware, key)


# -- any SpikingJelly network ---------------------------------------------------------------------------

CONV_MACS = 8 * 8 * 16 * 2 * 9  # per step and sample: 8x8 outputs x 16 channels x (2 channels x 3x3)
LINEAR_MACS = 16 * 8 * 8 * 5


def _plain(node: type = neuron.LIFNode, quantized: bool = False) -> nn.Sequential:
    """conv 3x3 2->16 (padding 1), batch norm, a neuron, flatten, linear 1024->5: no SpikingNet around it."""
    if quantized:
        return nn.Sequential(QuantConv2d(2, 16, 3, padding=1, w_bits=4), QuantLIFNode(u_bits=3), layer.Flatten(),
                             QuantLinear(1024, 5, w_bits=2))
    return nn.Sequential(layer.Conv2d(2, 16, 3, padding=1), layer.BatchNorm2d(16), node(step_mode="m"),
                         layer.Flatten(), layer.Linear(1024, 5))


@pytest.mark.parametrize("node", [neuron.LIFNode, neuron.IFNode, neuron.ParametricLIFNode])
@pytest.mark.parametrize("hardware", ["spikesim", "digital"])
def test_a_plain_sequential_is_priced_layer_by_layer(node, hardware):
    torch.manual_seed(0)
    net, x = _plain(node).eval(), 8 * torch.rand(3, 2, 2, 8, 8)  # T = 3, N = 2
    dense, spikes = estimate(net, x, hardware, "dense"), estimate(net, x, hardware, "spikes")
    weighted = [r for r in dense.layers if r.kind != "neuron"]
    assert [(r.name, r.kind) for r in weighted] == [("0", "conv"), ("4", "linear")]
    assert [r.ops for r in weighted] == [2 * CONV_MACS * 3, 2 * LINEAR_MACS * 3]  # two ops a MAC, T = 3
    assert dense.ops == 2 * (CONV_MACS + LINEAR_MACS) * 3
    assert all(r.weight_bits is None and r.membrane_bits is None for r in dense.layers)  # float
    if hardware == "spikesim":  # float weights take 32 bits = 8 cells: 16 x 8 columns -> 2 column groups
        assert [r.crossbars for r in dense.layers] == [1 * 2 * 9, 16 * 1 * 1]
    else:
        assert [r.kind for r in dense.layers] == ["conv", "neuron", "linear"]
    linear = next(r for r in spikes.layers if r.kind == "linear")
    assert 0 < linear.synaptic_ops < linear.ops / 2  # the neuron's spikes were measured
    assert 0 < spikes.energy_pj < dense.energy_pj and spikes.area_um2 == dense.area_um2


def test_quantized_layers_in_a_plain_sequential_give_their_bits():
    x = 8 * torch.rand(2, 2, 2, 8, 8)
    quantized, float_net = _plain(quantized=True).eval(), _plain().eval()
    report = estimate(quantized, x, "spikesim")
    assert [(r.weight_bits, r.membrane_bits) for r in report.layers] == [(4, 3), (2, None)]  # no neuron after fc
    assert [r.crossbars for r in report.layers] == [1 * 1 * 9, 16]  # 4 bits: one cell a weight
    assert report.energy_pj < estimate(float_net, x, "spikesim").energy_pj
    digital = estimate(quantized, x, "digital")
    assert [r.membrane_bits for r in digital.layers] == [3, 3, None]


def test_single_step_modes_training_and_state_come_back():
    net = nn.Sequential(layer.Conv2d(2, 16, 3, padding=1), layer.BatchNorm2d(16), neuron.IFNode(),
                        layer.Flatten(), layer.Linear(1024, 5)).train()  # every layer single-step
    before = [m.step_mode for m in net.modules() if hasattr(m, "step_mode")]
    assert set(before) == {"s"}
    report = estimate(net, 8 * torch.rand(2, 3, 2, 8, 8))
    assert report.ops == 2 * (CONV_MACS + LINEAR_MACS) * 2
    assert [m.step_mode for m in net.modules() if hasattr(m, "step_mode")] == before
    assert net.training and net[1].training and float(net[1].num_batches_tracked) == 0  # eval for the pass
    assert net[2].v == 0.0  # state reset after
    assert net(torch.rand(3, 2, 8, 8)).shape == (3, 5)  # still a single-step network


class _Custom(nn.Module):
    """A module of one's own: conv, a neuron, then a linear layer on [T, N, F]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.node, self.fc = layer.Conv2d(2, 16, 3, padding=1), neuron.LIFNode(), layer.Linear(1024, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, N, 2, 8, 8] -> [T, N, 5]
        return self.fc(self.node(self.conv(x)).flatten(2))


def test_a_custom_module_and_a_network_of_linear_layers():
    report = estimate(_Custom(), torch.rand(2, 3, 2, 8, 8), "digital")
    assert [(r.name, r.ops) for r in report.layers] == [("conv", 2 * CONV_MACS * 2), ("node", 0.0),
                                                        ("fc", 2 * LINEAR_MACS * 2)]
    mlp = nn.Sequential(layer.Linear(20, 10), neuron.LIFNode(), layer.Linear(10, 4))
    assert estimate(mlp, torch.rand(4, 3, 20)).ops == 2 * (20 * 10 + 10 * 4) * 4  # x: [T, N, F]


def test_a_zoo_network_costs_what_its_features_cost_as_a_plain_sequential():
    net, x = _four_bit_net(), torch.rand(2, 3, 1, 12, 12)
    for hardware in ("spikesim", "digital"):
        zoo, plain = estimate(net, x, hardware, "spikes"), estimate(net.features, x, hardware, "spikes")
        assert zoo.totals() == plain.totals()
        assert [r.name for r in zoo.layers] == ["features." + r.name for r in plain.layers]
    assert net.share_stem and {m.step_mode for m in net.modules() if hasattr(m, "step_mode")} == {"m"}


def test_what_cannot_be_priced_says_how_to_fix_it():
    with pytest.raises(InvalidValueError, match="no spiking neuron.*neuron.BaseNode"):
        estimate(nn.Sequential(layer.Conv2d(2, 4, 3), nn.ReLU()), torch.rand(2, 1, 2, 8, 8))
    with pytest.raises(InvalidValueError, match="no convolution or linear layer"):
        estimate(nn.Sequential(neuron.LIFNode()), torch.rand(2, 1, 4))
    with pytest.raises(ValueError, match=r"time-major \[T, N, C, H, W\].*to_time_major"):
        estimate(_plain(), torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"\[T, N, \.\.\.\].*unsqueeze"):
        estimate(nn.Sequential(layer.Linear(20, 4), neuron.IFNode()), torch.rand(3, 20))
    with pytest.raises(InvalidTypeError, match="torch.Tensor"):
        estimate(_plain(), [[0.0]])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        estimate(lambda x: x, torch.rand(2, 1, 4))


def test_cli_prices_a_checkpoint_of_an_architecture_outside_the_zoo(tmp_path, capsys):
    import numpy as np

    from mdsnn_zoo.cost import measure
    from mdsnn_zoo.data.idx import write_idx
    from mdsnn_zoo.train import TrainConfig, train

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 48), ("t10k", 8)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    cfg = TrainConfig(method="qat", arch="vgg9", arch_kwargs={"width": 0.125, "backend": "torch"}, time_steps=2,
                      w_bits=4, u_bits=4, dataset="fashion-mnist", data_root=str(tmp_path), max_steps=1,
                      batch_size=16, val_size=16, out_dir=str(tmp_path / "run"), progress=False,
                      tensorboard=False, amp=False)
    train(cfg, log=lambda *_: None)
    ckpt = str(tmp_path / "run" / "last.safetensors")
    capsys.readouterr()
    assert main(["cost", ckpt, "--data-root", str(tmp_path), "--samples", "4", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["model"] == ckpt and line["energy_pj"] > 0 and line["area_um2"] > 0
    report = measure(ckpt, "spikesim", "dense", 4, str(tmp_path))
    assert report.energy_pj == pytest.approx(line["energy_pj"])
    assert [r.weight_bits for r in report.layers] == [8] + [4] * 7 + [8]  # 7 conv + 2 linear, first/last 8
    assert {r.membrane_bits for r in report.layers[:-1]} == {4}
