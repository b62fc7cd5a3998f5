"""The hardware cost card: SpikeSim's published model reproduced, bits and spikes priced monotonically."""

from __future__ import annotations

import json
import math

import pytest
import torch
from spikingjelly.activation_based import layer
from torch import nn

from mdsnn_zoo.cli import main
from mdsnn_zoo.cost import DigitalConfig, SpikeSimConfig, estimate
from mdsnn_zoo.cost import spikesim as ss
from mdsnn_zoo.models import ARCHITECTURES, SpikingNet, build_model
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import quantize_model

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
    from mdsnn_zoo.cli.cost_cmd import measure
    from mdsnn_zoo.zoo.registry import get_weights, list_models

    shipped = list_models(pretrained=True)
    assert shipped and all(get_weights(n).cost is not None for n in shipped)
    name = "small_cnn.fmnist_t4_w2u2_md"
    card = get_weights(name).cost
    for hardware in ("spikesim", "digital"):
        totals = measure(name, hardware, "spikes", 256).totals()
        for key in ("energy_pj", "latency_ns", "area_um2", "edap"):
            assert card[hardware]["spikes"][key] == pytest.approx(totals[key], rel=1e-5), (hardware, key)
