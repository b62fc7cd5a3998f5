"""The backend table: one place says which kernels exist, where they run, and what 'auto' picks."""

from __future__ import annotations

import pytest

from mdsnn_zoo import backends
from mdsnn_zoo.neuron import QuantLIFNode


def test_auto_picks_the_first_backend_that_runs_for_the_kind_and_device():
    assert backends.resolve("auto", "lif", "cpu") == ("inductor" if backends.available("inductor") else "torch")
    assert backends.resolve("auto", "mse", "cpu") == "torch"
    assert QuantLIFNode.available_backends() == backends.available_backends("lif")
    assert "inductor" not in backends.available_backends("mse")  # it has no membrane-MSE kernel
    assert backends.module("torch", "mse").__name__ == "mdsnn_zoo.kernels.mse_reference"


def test_availability_is_probed_once(monkeypatch):
    calls = []
    monkeypatch.setitem(backends.BACKENDS, "probe", backends.Backend({"lif": "x", "mse": None}, ("cpu",),
                                                                     lambda: calls.append(1) or True, ""))
    backends.available.cache_clear()
    assert backends.available("probe") and backends.available("probe") and calls == [1]
    backends.available.cache_clear()


def test_bad_names_and_devices_say_what_works(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'nope': choose 'auto' or one of torch, inductor"):
        backends.check("nope")
    with pytest.raises(ValueError, match="unknown membrane_mse backend 'inductor'"):
        backends.check("inductor", "mse")
    if not backends.available("cupy"):
        with pytest.raises(ValueError, match="backend 'cupy' is not available here .install mdsnn-zoo.cuda."):
            QuantLIFNode(backend="cupy")
    monkeypatch.setattr(backends, "available", lambda name: True)
    with pytest.raises(ValueError, match="backend 'cupy' needs CUDA tensors"):
        backends.resolve("cupy", "lif", "cpu")
