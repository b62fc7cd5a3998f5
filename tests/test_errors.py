"""Every bad-input error is an MdsnnError and also the builtin exception a Python user catches for it;
the command line prints it as one line."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import surrogate

import mdsnn_zoo
from mdsnn_zoo.distill import MembraneTargets, membrane_mse
from mdsnn_zoo.errors import MdsnnError
from mdsnn_zoo.models import build_model
from mdsnn_zoo.neuron import QuantLIFNode
from mdsnn_zoo.quant import quantize_model

TINY = dict(num_classes=3, in_channels=1, input_size=8, time_steps=2, width=4, backend="torch")


def _raises(builtin: type[BaseException], match: str, fn, *args, **kwargs) -> BaseException:
    with pytest.raises(builtin, match=match) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, MdsnnError), type(info.value).__mro__
    return info.value


def test_unknown_names_are_key_errors_without_quotes():
    err = _raises(KeyError, "unknown model 'nope.fmnist'", mdsnn_zoo.create_model, "nope.fmnist")
    assert isinstance(err, LookupError) and str(err).startswith("unknown model")  # no KeyError quotes
    _raises(KeyError, "unknown data set 'nope'", mdsnn_zoo.get_dataset, "nope", "train")
    _raises(KeyError, "unknown architecture 'nope'", build_model, "nope")


def test_bad_values_are_value_errors():
    _raises(ValueError, "u_bits must be an int from 2 to 8", QuantLIFNode, u_bits=9)
    _raises(ValueError, "tau must be a number > 1", QuantLIFNode, tau=0.5)
    _raises(ValueError, "w_bits must be an int from 2 to 8", quantize_model, build_model("small_cnn", **TINY), 1, 2)
    node = QuantLIFNode(step_mode="m")
    _raises(ValueError, "takes x_seq: \\[T, N, \\*\\]", node, torch.zeros(3))
    _raises(ValueError, "num_classes must be a positive int", mdsnn_zoo.create_model, "small_cnn.fmnist_t4_fp",
            num_classes=0)


def test_wrong_types_are_type_errors():
    _raises(TypeError, "surrogate_function must be a SpikingJelly surrogate", QuantLIFNode, surrogate_function=3)
    assert QuantLIFNode(surrogate_function=surrogate.ATan()).tau == 2.0


def test_missing_weights_are_file_not_found_errors(tmp_path):
    _raises(FileNotFoundError, "no pretrained weights ship for vgg16.tinyimagenet_t4_fp", mdsnn_zoo.create_model,
            "vgg16.tinyimagenet_t4_fp", pretrained=True)
    _raises(FileNotFoundError, "no such file", mdsnn_zoo.create_model, "small_cnn.fmnist_t4_fp",
            pretrained=str(tmp_path / "missing.safetensors"))


def test_out_of_order_calls_are_runtime_errors_and_key_mismatches_name_both_sides():
    student = build_model("small_cnn", **TINY)
    names = [n for n, m in student.named_modules() if isinstance(m, QuantLIFNode)]
    targets = MembraneTargets(student, {names[0]: torch.zeros(2, 1, 4, 8, 8)})
    _raises(RuntimeError, "did not run with its target", targets.loss)
    _raises(KeyError, "no recorded teacher membrane; the teacher recorded: b, c", membrane_mse,
            {"a": torch.zeros(2)}, {"b": torch.zeros(2), "c": torch.zeros(2)}, layers=["a"])


def test_the_command_line_prints_one_line(capsys):
    from mdsnn_zoo.cli import main

    assert main(["eval", "nope.fmnist_t4_fp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mdsnn-zoo: error: unknown model 'nope.fmnist_t4_fp'")
