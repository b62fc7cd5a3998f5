"""The recipes' diagnostics that recipes/RESULTS.md quotes."""

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional

from mdsnn_zoo import create_model
from mdsnn_zoo.data import get_dataset
from mdsnn_zoo.data.batching import split_indices
from mdsnn_zoo.data.idx import write_idx


def test_paired_lead_counts_disagreements_and_mcnemar_is_exact(recipe_script):
    gain = recipe_script("diagnostics/paired_gain")
    assert gain.mcnemar_p(0, 0) == 1.0 and gain.mcnemar_p(5, 5) == 1.0
    assert gain.mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024) == gain.mcnemar_p(9, 1)  # 2 P(X <= 1), X ~ B(10, 1/2)
    a = torch.tensor([True] * 90 + [False] * 10 + [True] * 2 + [False] * 98)
    b = torch.tensor([True] * 90 + [True] * 10 + [False] * 2 + [False] * 98)
    r = gain.paired_lead(a, b)
    assert (r["only_a"], r["only_b"]) == (2, 10)
    assert r["lead"] == pytest.approx(8 / 200)  # B gets 8 more of the 200 right
    assert r["low"] < r["lead"] < r["high"] and r["p"] == pytest.approx(gain.mcnemar_p(2, 10))
    assert gain.paired_lead(a, a)["lead"] == 0 and gain.paired_lead(a, a)["p"] == 1.0


def test_time_steps_scores_the_validation_images_at_each_t(recipe_script, tmp_path, monkeypatch, no_system_dirs):
    # 12 noise images; the 4 held out for validation are labelled with the teacher's own T=3 answer, the other 8
    # with a wrong one: T=3 must score 100% on exactly those 4, T=1 its agreement with T=3 there.
    steps = recipe_script("diagnostics/time_steps")
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(3).integers(0, 256, (12, 28, 28), np.uint8)
    write_idx(raw / "train-images-idx3-ubyte.gz", images)
    monkeypatch.setenv("MDSNN_DATA", str(tmp_path))

    def answers(t: int) -> torch.Tensor:
        write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(12, np.uint8))
        x = torch.stack([img for img, _ in get_dataset("fashion-mnist", "train")])
        model = create_model("small_cnn.fmnist_t4_fp", pretrained=True, time_steps=t)
        functional.reset_net(model)
        with torch.no_grad():
            return model(x).argmax(1)

    at3, at1 = answers(3), answers(1)
    _, val_idx = split_indices(12, 4)
    labels = (at3 + 1) % 10
    labels[val_idx] = at3[val_idx]
    write_idx(raw / "train-labels-idx1-ubyte.gz", labels.numpy().astype(np.uint8))
    top1 = steps.top1_per_steps("small_cnn.fmnist_t4_fp", [1, 3], val_size=4)
    assert top1 == {1: pytest.approx(100 * (at1[val_idx] == at3[val_idx]).float().mean().item()), 3: 100.0}


def test_time_steps_refuses_event_frames(recipe_script, monkeypatch):
    steps = recipe_script("diagnostics/time_steps")
    frames = [(torch.zeros(10, 2, 34, 34), 0)] * 8  # [T, C, H, W] per sample: a recording fixes its own T
    monkeypatch.setattr(steps, "load_model", lambda ref: (None, "n-fashion-mnist", {}, None))
    monkeypatch.setattr(steps, "get_dataset", lambda *a, **k: frames)
    with pytest.raises(ValueError, match="not static images"):
        steps.top1_per_steps("vgg9.nfmnist_t10_fp", [4], val_size=4)


def test_paired_gain_counts_each_image_as_the_evaluation_loop_scores_it(recipe_script, monkeypatch):
    from torch.utils.data import TensorDataset

    gain = recipe_script("diagnostics/paired_gain")
    model = create_model("small_cnn.fmnist_t4_fp", pretrained=True)
    x, y = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    monkeypatch.setattr(gain, "load_model", lambda ref: (model, "fashion-mnist", {}, None))
    monkeypatch.setattr(gain, "get_dataset", lambda *a, **k: TensorDataset(x, y))
    hits, dataset = gain.correct_per_image("small_cnn.fmnist_t4_fp")
    functional.reset_net(model)
    with torch.no_grad():
        assert dataset == "fashion-mnist" and torch.equal(hits, model(x).argmax(1) == y)
