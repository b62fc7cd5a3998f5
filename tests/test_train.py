"""The trainer: a run resumed from a checkpoint equals one that never stopped; checkpoints are atomic
and verified; MD distillation runs; two processes train together through torchrun (gloo)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.data.batching import augment_batch
from mdsnn_zoo.data.idx import write_idx
from mdsnn_zoo.errors import CorruptFileError, MdsnnError
from mdsnn_zoo.train import TrainConfig, config_from_dict, train

TINY = {"width": 4, "backend": "torch"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A 400-image Fashion-MNIST-format training split whose label is drawn in the image."""
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400).astype(np.uint8)
    images = rng.integers(0, 60, (400, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, 2 * y:2 * y + 6, 4:24] = 255  # a bar whose height encodes the class
    write_idx(root / "train-images-idx3-ubyte.gz", images)
    write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    return root


def _cfg(root: Path, out: Path, **kw) -> TrainConfig:
    base = dict(dataset="fashion-mnist", data_root=str(root), arch_kwargs=TINY, epochs=2, batch_size=32,
                val_size=80, lr=0.05, out_dir=str(out), progress=False, tensorboard=False, amp=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = ckpt.read_checkpoint(path)
    return ckpt.model_state(tensors)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_equals_an_uninterrupted_run(data_root, tmp_path, ema_decay):
    full = train(_cfg(data_root, tmp_path / "full", ema_decay=ema_decay), log=lambda *_: None)
    assert full["step"] == 2 * (320 // 32)
    train(_cfg(data_root, tmp_path / "cut", max_steps=7, checkpoint_every=7, ema_decay=ema_decay), log=lambda *_: None)
    assert ckpt.read_checkpoint(tmp_path / "cut" / "last.safetensors")[1]["info"]["step"] == 7
    resumed = train(_cfg(data_root, tmp_path / "cut", resume=True, ema_decay=ema_decay), log=lambda *_: None)
    assert resumed == full
    for name in ("last", "best"):  # with a weight average, best holds it: resumed with the run
        a, b = _weights(tmp_path / "full" / f"{name}.safetensors"), _weights(tmp_path / "cut" / f"{name}.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert (tmp_path / "full" / "log.csv").read_text().count("\n") == full["step"] + 1


def test_the_weight_average_is_validated_and_saved_as_best(data_root, tmp_path):
    """--ema-decay: after each step every float tensor of the average moves toward the model's by
    1 - min(decay, (1 + step) / (10 + step)); best.safetensors holds the average, last the model
    (and the average, to resume)."""
    from mdsnn_zoo.train.step import update_average

    model, average = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(4.0)
    model.num_batches_tracked.fill_(5)
    update_average(average, model, decay=0.9, step=1)  # d = min(0.9, 2 / 11)
    assert torch.allclose(average.weight, torch.full((3,), 1 + (2 - 1) * 9 / 11))
    assert torch.allclose(average.running_mean, torch.full((3,), 4 * 9 / 11))
    assert average.num_batches_tracked.item() == 5
    update_average(average, model, decay=0.5, step=100)  # d = 0.5
    assert torch.allclose(average.running_mean, torch.full((3,), 4 * 9 / 11 + (4 - 4 * 9 / 11) / 2))

    out = tmp_path / "avg"
    result = train(_cfg(data_root, out, epochs=1, ema_decay=0.8), log=lambda *_: None)
    tensors, header = ckpt.read_checkpoint(out / "last.safetensors")
    best, live = _weights(out / "best.safetensors"), ckpt.model_state(tensors)
    averaged = {k[len("extra.average."):]: v for k, v in tensors.items() if k.startswith("extra.average.")}
    assert averaged.keys() == live.keys() == best.keys()
    assert any(not torch.equal(averaged[k], live[k]) for k in live)  # the average lags the model
    assert all(torch.equal(averaged[k], best[k]) for k in best)  # one epoch: the best is its end
    assert header["info"]["best_val_top1"] == result["best_val_top1"]
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        train(_cfg(data_root, tmp_path / "bad", ema_decay=1.0), log=lambda *_: None)


def test_validate_start_lets_the_start_itself_be_best(data_root, tmp_path):
    """--validate-start validates the network before the first step (a row at step 0): a run that does
    not improve on its start (lr 0 here) keeps the start as best.safetensors; without it the first
    validation is at the end of the first epoch."""
    start = train(_cfg(data_root, tmp_path / "start", epochs=1), log=lambda *_: None)
    init = str(tmp_path / "start" / "best.safetensors")
    kept = train(_cfg(data_root, tmp_path / "kept", epochs=1, init=init, lr=0.0, validate_start=True),
                 log=lambda *_: None)
    rows = (tmp_path / "kept" / "epochs.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [0, 320 // 32]
    assert kept["best_val_top1"] == start["best_val_top1"]  # the same network, validated twice
    assert ckpt.read_checkpoint(tmp_path / "kept" / "best.safetensors")[1]["info"]["step"] == 0
    a, b = _weights(tmp_path / "start" / "best.safetensors"), _weights(tmp_path / "kept" / "best.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    train(_cfg(data_root, tmp_path / "plain", epochs=1, init=init, lr=0.0), log=lambda *_: None)
    rows = (tmp_path / "plain" / "epochs.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [320 // 32]


def test_the_step_log_is_on_disk_at_each_checkpoint(data_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    rows_at_save = {}
    save = ckpt.save_checkpoint

    def counting_save(path, *args, step, **kw):  # what a run killed right after this checkpoint keeps
        rows_at_save[step] = (out / "log.csv").read_text().count("\n") - 1
        save(path, *args, step=step, **kw)

    monkeypatch.setattr(ckpt, "save_checkpoint", counting_save)
    train(_cfg(data_root, out, epochs=1, checkpoint_every=3), log=lambda *_: None)
    assert {s: rows_at_save[s] for s in (3, 6, 9)} == {3: 3, 6: 6, 9: 9}


def test_runs_carried_to_a_fresh_store_resume_as_if_never_moved(data_root, tmp_path, monkeypatch, recipe_script):
    """An unfinished run (in a folder of the store's folders, as recipes/integer_zoo.sh keeps them) is
    carried and restored to the same place; a finished one is dropped."""
    carry = recipe_script("carry")
    monkeypatch.setattr(carry, "CARRY", tmp_path / "carry")
    quiet = {"log": lambda *_: None}
    full = train(_cfg(data_root, tmp_path / "full"), **quiet)
    old, new = tmp_path / "old_machine", tmp_path / "new_machine"
    train(_cfg(data_root, old / "int" / "cut", max_steps=7, checkpoint_every=7), **quiet)
    train(_cfg(data_root, old / "done"), **quiet)
    monkeypatch.setenv("MDSNN_RUNS", str(old))
    (tmp_path / "carry" / "done").mkdir(parents=True)  # carried by an earlier session, before it finished
    carry.save([])
    assert not carry.finished(old / "int" / "cut") and carry.finished(old / "done")
    assert sorted(p.name for p in (tmp_path / "carry").iterdir()) == ["int"]  # a finished run is never carried
    carried = {p.name: p.stat().st_size for p in (tmp_path / "carry" / "int" / "cut").iterdir()}
    # the unfinished run keeps its optimizer state to resume; its best checkpoint carries weights only
    assert carried["last.safetensors"] > 1.5 * carried["best.safetensors"]
    assert carry.up_to_date(old / "int" / "cut", tmp_path / "carry" / "int" / "cut")
    monkeypatch.setenv("MDSNN_RUNS", str(new))
    carry.restore()
    assert carry.step_of(new / "int" / "cut") == 7
    resumed = train(_cfg(data_root, new / "int" / "cut", resume=True), **quiet)
    assert resumed["step"] == full["step"]
    a, b = _weights(tmp_path / "full" / "last.safetensors"), _weights(new / "int" / "cut" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (new / "done").exists()
    assert carry.step_of(tmp_path / "nowhere") == -1


def test_a_shipped_teacher_rebuilt_from_the_zoo_teaches_as_the_entry_does(tmp_path, monkeypatch, recipe_script):
    from mdsnn_zoo import create_model
    from mdsnn_zoo.train import model_from_checkpoint

    carry = recipe_script("carry")
    monkeypatch.setenv("MDSNN_RUNS", str(tmp_path))
    carry.from_zoo(["small_cnn.fmnist_t4_fp"])
    best = tmp_path / "small_cnn.fmnist_t4_fp" / "best.safetensors"  # the --out-dir of the entry's recipe
    rebuilt, cfg = model_from_checkpoint(best)
    assert (cfg.method, cfg.dataset, cfg.time_steps, cfg.epochs) == ("fp", "fashion-mnist", 4, 40)
    x = torch.rand(4, 3, 1, 28, 28)
    shipped = create_model("small_cnn.fmnist_t4_fp", pretrained=True).eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), shipped(x))
    stamp = best.stat().st_mtime_ns
    carry.from_zoo(["small_cnn.fmnist_t4_fp"])  # an existing run is never overwritten
    assert best.stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="not a shipped float entry"):
        carry.from_zoo(["small_cnn.fmnist_t4_w2u2_md"])


def test_checkpoint_write_is_atomic_and_corruption_is_refused(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "last.safetensors"
    ckpt.save_checkpoint(path, model, step=1)
    before = path.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, model, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]  # no temporary left
    assert ckpt.read_checkpoint(path)[1]["info"]["step"] == 1
    path.write_bytes(before[: len(before) // 2])
    with pytest.raises(CorruptFileError, match="not a readable mdsnn-zoo checkpoint"):
        ckpt.read_checkpoint(path)


def test_one_reader_gives_the_header_alone_or_with_the_tensors_and_the_typed_config(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "c.safetensors"
    ckpt.save_checkpoint(path, model, config=dataclasses.asdict(TrainConfig(w_bits=2)), step=5)
    head, full = ckpt.load_checkpoint(path, tensors=False), ckpt.load_checkpoint(path)
    assert head.tensors == {} and head.info == full.info and head.info["step"] == 5
    assert head.config == full.config == TrainConfig(w_bits=2)
    assert torch.equal(full.model_state["weight"], model.weight)
    ckpt.save_checkpoint(path, model)
    assert ckpt.load_checkpoint(path, tensors=False).config is None
    path.write_bytes(path.read_bytes()[:-4])  # the header intact, the weights cut short
    with pytest.raises(CorruptFileError, match="not a readable mdsnn-zoo checkpoint"):
        ckpt.load_checkpoint(path, tensors=False)


def test_a_streamed_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "frames.npy"
    ckpt.atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError), ckpt.atomic_writer(path) as f:
        f.write(b"partial")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual permissions, not a temporary's 0600


def test_step_metrics_leave_the_device_at_the_log_interval_only(tmp_path, monkeypatch):
    from mdsnn_zoo.train.runlog import RunLog

    log = RunLog(tmp_path, TrainConfig(log_every=4, progress=False, tensorboard=False))
    fetched = []
    stack = torch.stack
    monkeypatch.setattr(torch, "stack", lambda ts: fetched.append(len(ts)) or stack(ts))  # one fetch: one stack
    for step in range(1, 7):
        parts = {"ce": torch.tensor(step / 10), "kd": torch.tensor(0.5)}
        log.step(step, 0, torch.tensor(float(step)), parts, torch.tensor(0.25), 0.1, 32)
        assert len(log.pending) == step % 4
    assert fetched == [4 * 4]  # steps 1-4 (loss, accuracy, ce, kd), fetched together at step 4
    log.flush()  # a checkpoint: the rest now
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert fetched == [16, 8] and len(rows) == 7 and rows[6].split(",")[:7] == ["6", "0", "6.00000", "0.60000",
                                                                                 "0.50000", "0.00000", "25.00"]
    log.close()


def test_configs_saved_before_bias_frac_bits_meant_biases_on_the_membrane_grid_and_learned_scales():
    assert TrainConfig().bias_frac_bits == 4
    assert config_from_dict({"method": "md", "w_bits": 2, "u_bits": 2}).bias_frac_bits == 0
    assert config_from_dict({"method": "md"}).learn_edge_scales and not TrainConfig().learn_edge_scales
    assert config_from_dict(dataclasses.asdict(TrainConfig(bias_frac_bits=3))).bias_frac_bits == 3


def test_augmentation_is_seeded_and_keeps_shapes():
    x = torch.randn(16, 1, 28, 28)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_qat_md_eval_and_plot_from_a_teacher(data_root, tmp_path, capsys):
    train(_cfg(data_root, tmp_path / "fp", epochs=1), log=lambda *_: None)
    teacher = tmp_path / "fp" / "best.safetensors"
    qat = train(_cfg(data_root, tmp_path / "qat", method="qat", init=str(teacher), w_bits=2, u_bits=2,
                     max_steps=4), log=lambda *_: None)
    md = train(_cfg(data_root, tmp_path / "md", method="md", teacher=str(teacher), w_bits=2, u_bits=2,
                    max_steps=4, learn_step=False), log=lambda *_: None)
    assert qat["step"] == md["step"] == 4
    rows = (tmp_path / "md" / "log.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("mem")]) > 0 and float(last[header.index("kd")]) >= 0
    student = _weights(tmp_path / "md" / "last.safetensors")
    assert any(k.endswith("weight_quant.scale") for k in student) and any(k.endswith("delta") for k in student)
    # learn_step=False keeps every membrane step at its initial V_th / 2^(b-1); QAT's moved
    qat_w = _weights(tmp_path / "qat" / "last.safetensors")
    assert all(v.item() == 0.5 for k, v in student.items() if k.endswith("delta"))
    assert any(v.item() != 0.5 for k, v in qat_w.items() if k.endswith("delta"))
    # the 8-bit first and last layers keep their initial weight scales (both students start from the same
    # teacher); the 2-bit layers' scales are trained
    scales = [k for k in student if k.endswith("weight_quant.scale")]
    edge = [k for k in scales if k.startswith(("features.0.", "head."))]  # small_cnn's first and last layers
    inner = [k for k in scales if k not in edge]
    assert len(edge) == 2 and all(torch.equal(student[k], qat_w[k]) for k in edge)
    assert inner and any(not torch.equal(student[k], qat_w[k]) for k in inner)
    # the student's biases are quantized as it was trained (a refined grid), after a reload too; resuming
    # it as another network is refused
    from mdsnn_zoo.train import model_from_checkpoint

    reloaded, cfg = model_from_checkpoint(tmp_path / "md" / "last.safetensors")
    assert cfg.bias_frac_bits == 4
    assert {m.bias_frac_bits for m in reloaded.modules() if getattr(m, "grid_node", None) is not None} == {4}
    with pytest.raises(MdsnnError, match="bias_frac_bits=4, this run asks for 0: pass --bias-frac-bits 4"):
        train(_cfg(data_root, tmp_path / "md", method="md", teacher=str(teacher), w_bits=2, u_bits=2,
                   max_steps=8, learn_step=False, bias_frac_bits=0, resume=True), log=lambda *_: None)

    # eval: the student's top-1 on a split and its membrane MSE to the teacher it was distilled from
    from mdsnn_zoo.cli import main

    md_ckpt = str(tmp_path / "md" / "last.safetensors")
    assert main(["eval", md_ckpt, "--data-root", str(data_root), "--split", "train", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= result["top1"] <= 100 and result["samples"] == 400 and result["membrane_mse"] > 0
    # plot membranes: teacher, QAT and MD student on the same images, one PNG
    png = tmp_path / "membranes.png"
    assert main(["plot", "membranes", "--teacher", str(teacher), "--qat", str(tmp_path / "qat" / "last.safetensors"),
                 "--md", md_ckpt, "--dataset", "fashion-mnist", "--samples", "8", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_two_processes_with_torchrun(data_root, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "mdsnn_zoo", "train", "--data-root", str(data_root), "--arch-kwargs", '{"width": 4, "backend": "torch"}',
           "--epochs", "1", "--batch-size", "16", "--val-size", "80", "--out-dir", str(out), "--no-progress",
           "--no-tensorboard", "--no-amp", "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    info = ckpt.read_checkpoint(out / "last.safetensors")[1]["info"]
    assert info["step"] == 320 // 2 // 16  # each process took half of every epoch
    assert '"step": 10' in run.stdout


_RIGGED_RANK = """
import json, os, sys
import mdsnn_zoo.train.loop as loop
from mdsnn_zoo.train import TrainConfig, train

rank, real, calls = int(os.environ["RANK"]), loop.tally, []

def rigged(model, batches, device, amp=False, teacher=None, hits=None):
    # this rank's own top-1 at each validation: rank 0's rises (50%, 60%), rank 1's falls (50%, 20%), so a rank
    # deciding "best" on its own would write best.safetensors at epoch 2 where the other would not
    counts = real(model, batches, device, amp, teacher, hits)
    counts[0] = round([[0.5, 0.6], [0.5, 0.2]][rank][len(calls)] * counts[1].item())
    calls.append(counts[1].item())
    return counts

loop.tally = rigged
result = train(TrainConfig(**json.loads(sys.argv[1])), log=lambda *_: None)
print(json.dumps({**result, "validated": calls}))
"""


def test_ranks_whose_own_validations_disagree_still_decide_best_together(data_root, tmp_path):
    """Two gloo processes, each validating its half of the held-out images with a rigged result (one rank's
    top-1 rises, the other's falls): the best checkpoint is chosen once, from the counts summed over the
    ranks (50% then (24 + 8) / 80 = 40%: epoch 1 stays best), the same on both ranks, and the run ends."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cfg = dict(dataset="fashion-mnist", data_root=str(data_root), arch_kwargs=TINY, epochs=2, batch_size=16,
               val_size=80, out_dir=str(out), progress=False, tensorboard=False, amp=False, device="cpu", threads=1)
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}
        procs.append(subprocess.Popen([sys.executable, "-c", _RIGGED_RANK, json.dumps(cfg)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()  # a hang (ranks waiting in different collectives) fails here instead of stalling the suite
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    assert [r["validated"] for r in results] == [[40, 40], [40, 40]]  # each rank its half, at each epoch's end
    assert results[0] == {**results[1], "validated": [40, 40]}
    assert (results[0]["step"], results[0]["best_val_top1"]) == (20, 50.0)
    best = ckpt.read_checkpoint(out / "best.safetensors")[1]["info"]
    last = ckpt.read_checkpoint(out / "last.safetensors")[1]["info"]
    assert (best["step"], best["val_top1"]) == (10, 50.0) and (last["step"], last["val_top1"]) == (20, 40.0)
    assert [r.split(",")[1] for r in (out / "epochs.csv").read_text().splitlines()[1:]] == ["50.000", "40.000"]
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["best.safetensors", "last.safetensors"]


def test_grad_clip_bounds_the_update(data_root, tmp_path):
    start = tmp_path / "fp"
    train(_cfg(data_root, start, max_steps=1), log=lambda *_: None)
    moved = {}
    for clip in (None, 1e-3):
        out = tmp_path / f"clip_{clip}"
        train(_cfg(data_root, out, method="qat", init=str(start / "last.safetensors"), max_steps=1, weight_decay=0.0,
                   warmup_epochs=0, lr=0.05, grad_clip=clip), log=lambda *_: None)
        a, b = _weights(start / "last.safetensors"), _weights(out / "last.safetensors")
        params = [k for k in a if a[k].is_floating_point() and "running_" not in k]  # BN statistics move anyway
        moved[clip] = sum(float((b[k] - a[k]).float().pow(2).sum()) for k in params)
    # a first Nesterov step (momentum 0.9) moves the weights by 1.9 lr |g|: at most 1.9 lr clip with clipping
    assert moved[1e-3] ** 0.5 <= 1.9 * 0.05 * 1e-3 * 1.01
    assert moved[None] ** 0.5 > 10 * 1.9 * 0.05 * 1e-3


def test_surrogate_shift_reaches_the_student_and_changes_its_update(data_root, tmp_path):
    start = tmp_path / "fp"
    train(_cfg(data_root, start, max_steps=1), log=lambda *_: None)
    after = {}
    for shift in (None, 0.5):
        out = tmp_path / f"shift_{shift}"
        cfg = _cfg(data_root, out, method="qat", init=str(start / "last.safetensors"), w_bits=4, u_bits=4,
                   max_steps=1, warmup_epochs=0, surrogate_shift=shift)
        train(cfg, log=lambda *_: None)
        after[shift] = _weights(out / "last.safetensors")
        saved = json.loads((out / "config.json").read_text())
        assert saved["surrogate_shift"] == shift
    # same start, same batch, same forward: only the surrogate's argument differs, so the update does
    assert any(not torch.equal(after[None][k], after[0.5][k]) for k in after[None])
    with pytest.raises(MdsnnError, match="surrogate_shift must be a finite number"):
        train(_cfg(data_root, tmp_path / "nan", method="qat", init=str(start / "last.safetensors"), w_bits=4,
                   u_bits=4, max_steps=1, surrogate_shift=float("nan")), log=lambda *_: None)


@pytest.mark.parametrize("native", [False, True])
def test_autocast_defaults_to_what_the_hardware_runs_natively(data_root, tmp_path, monkeypatch, native):
    from mdsnn_zoo import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    assert precision.resolve_amp(None, cpu)[0] is native
    assert precision.resolve_amp(True, cpu)[0] is True and precision.resolve_amp(False, cpu)[0] is False
    lines = []
    train(_cfg(data_root, tmp_path / "run", amp=None, max_steps=2), log=lines.append)
    chosen = [line for line in lines if line.startswith("precision:")]
    assert len(chosen) == 1 and ("bfloat16" if native else "float32") in chosen[0]
    info = ckpt.read_checkpoint(tmp_path / "run" / "last.safetensors")[1]["info"]
    assert info["config"]["amp"] is native and info["precision"] == chosen[0].removeprefix("precision: ")
    assert "threads" in info["machine"]


def test_amp_flag_is_unset_unless_given():
    import argparse

    from mdsnn_zoo.cli._train_args import add_config_arguments

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, {})
    assert parser.parse_args([]).amp is None
    assert parser.parse_args(["--amp"]).amp is True and parser.parse_args(["--no-amp"]).amp is False


@pytest.mark.parametrize("val_amp", [None, False, True])
def test_validation_runs_in_the_arithmetic_asked_for(data_root, tmp_path, monkeypatch, val_amp):
    import mdsnn_zoo.train.loop as trainer

    seen = []

    def recording(model, batches, device, amp=False, teacher=None, hits=None):
        seen.append(amp)
        return real(model, batches, device, amp, teacher, hits)

    real = trainer.tally  # the validation's evaluation loop
    monkeypatch.setattr(trainer, "tally", recording)
    lines = []
    train(_cfg(data_root, tmp_path / "run", amp=True, val_amp=val_amp, epochs=1), log=lines.append)
    expected = True if val_amp is None else val_amp  # unset: as training runs
    assert seen == [expected]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["val_amp"] is expected
    assert any(line == "validation: float32" for line in lines) is (expected is False)
    # resumed under the other arithmetic, the run says that its best so far was measured differently
    lines.clear()
    train(_cfg(data_root, tmp_path / "run", amp=True, val_amp=not expected, epochs=2, resume=True),
          log=lines.append)
    assert seen[1:] == [not expected]
    assert sum("best validation so far" in line for line in lines) == 1


def test_validation_curves_of_runs(data_root, tmp_path):
    from mdsnn_zoo.cli import main
    from mdsnn_zoo.plot import validation_curve

    train(_cfg(data_root, tmp_path / "fp", epochs=2), log=lambda *_: None)
    epochs, top1 = validation_curve(tmp_path / "fp")
    logged = [float(r.split(",")[1]) for r in (tmp_path / "fp" / "epochs.csv").read_text().splitlines()[1:]]
    assert epochs == [1.0, 2.0] and top1 == logged
    png = tmp_path / "curves.png"
    assert main(["plot", "curves", str(tmp_path / "fp"), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "empty").mkdir()
    with pytest.raises(MdsnnError, match="not a readable training run folder"):
        validation_curve(tmp_path / "empty")


def test_curve_labels_tell_twin_teacher_and_students_apart(tmp_path):
    import json

    from mdsnn_zoo.plot import _run_label

    base = {"arch": "vgg9", "arch_kwargs": {"width": 0.5}, "time_steps": 4, "activation": "lif", "teacher": None,
            "w_bits": None, "u_bits": None, "seed": 0}
    runs = {"twin": {"method": "fp", "activation": "relu", "time_steps": 1},
            "kd": {"method": "fp", "teacher": "twin/best.safetensors"},
            "md": {"method": "md", "w_bits": 2, "u_bits": 2, "teacher": "kd/best.safetensors", "seed": 1}}
    labels = {}
    for name, cfg in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({**base, **cfg}))
        labels[name] = _run_label(tmp_path / name)
    assert labels == {"twin": ("vgg9 width 0.5", "fp relu twin, T=1"), "kd": ("vgg9 width 0.5", "fp, soft labels"),
                      "md": ("vgg9 width 0.5", "W2U2 md (seed 1)")}


def test_a_relu_twin_starts_the_spiking_network(data_root, tmp_path):
    """--activation relu trains the clipped-ReLU network of the same shape (one time step); its checkpoint
    initialises the SNN, which starts from exactly those weights."""
    from mdsnn_zoo.models import ClippedReLU
    from mdsnn_zoo.neuron import QuantLIFNode
    from mdsnn_zoo.train import model_from_checkpoint

    train(_cfg(data_root, tmp_path / "ann", activation="relu", time_steps=1, epochs=1), log=lambda *_: None)
    ann, cfg = model_from_checkpoint(tmp_path / "ann" / "best.safetensors")
    kinds = {type(m) for m in ann.modules()}
    assert ClippedReLU in kinds and QuantLIFNode not in kinds and cfg.time_steps == 1
    snn = train(_cfg(data_root, tmp_path / "snn", init=str(tmp_path / "ann" / "best.safetensors"), max_steps=1,
                     lr=0.0, weight_decay=0.0, momentum=0.0), log=lambda *_: None)
    assert snn["step"] == 1
    start, after = _weights(tmp_path / "ann" / "best.safetensors"), _weights(tmp_path / "snn" / "last.safetensors")
    params = [k for k in start if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert params and all(torch.equal(start[k], after[k]) for k in params)  # lr 0: the SNN holds the ANN's weights
    with pytest.raises(MdsnnError, match="activation 'relu' trains a float ReLU twin"):
        train(_cfg(data_root, tmp_path / "bad", activation="relu", w_bits=2, u_bits=2, method="qat"),
              log=lambda *_: None)
    with pytest.raises(MdsnnError, match="activation must be one of lif, relu"):
        train(_cfg(data_root, tmp_path / "bad2", activation="tanh"), log=lambda *_: None)


def test_a_float_snn_learns_from_its_relu_twins_logits(data_root, tmp_path):
    """fp with --teacher: the SNN's loss gains KD to the frozen twin's logits and no membrane term; with
    kd_weight 0 the run is exactly the run without a teacher, so the teacher enters through KD alone."""
    import csv

    train(_cfg(data_root, tmp_path / "ann", activation="relu", time_steps=1, epochs=1), log=lambda *_: None)
    twin = str(tmp_path / "ann" / "best.safetensors")
    twin_before = _weights(tmp_path / "ann" / "best.safetensors")
    after = {}
    for name, kw in {"alone": {}, "kd0": {"teacher": twin, "kd_weight": 0.0}, "kd": {"teacher": twin}}.items():
        train(_cfg(data_root, tmp_path / name, init=twin, max_steps=2, warmup_epochs=0, **kw), log=lambda *_: None)
        after[name] = _weights(tmp_path / name / "last.safetensors")
        rows = list(csv.DictReader(open(tmp_path / name / "log.csv")))
        assert all(float(r["mem"]) == 0.0 for r in rows)
        assert all(float(r["kd"]) > 0.0 for r in rows) == (name == "kd")
    assert all(torch.equal(after["alone"][k], after["kd0"][k]) for k in after["alone"])
    assert any(not torch.equal(after["alone"][k], after["kd"][k]) for k in after["alone"])
    assert all(torch.equal(twin_before[k], v) for k, v in _weights(tmp_path / "ann" / "best.safetensors").items())
    with pytest.raises(MdsnnError, match="takes no --teacher"):
        train(_cfg(data_root, tmp_path / "qat", method="qat", init=twin, teacher=twin, w_bits=2, u_bits=2),
              log=lambda *_: None)
    train(_cfg(data_root, tmp_path / "w4", method="qat", init=twin, w_bits=4, u_bits=4, max_steps=1),
          log=lambda *_: None)
    with pytest.raises(MdsnnError, match="is a 4-bit model of fashion-mnist; a float run distills"):
        train(_cfg(data_root, tmp_path / "bad", teacher=str(tmp_path / "w4" / "last.safetensors")),
              log=lambda *_: None)


def test_file_backed_data_batches_as_in_memory_data_does(data_root):
    """The DataLoader path (any map-style data set) gives the in-memory fast path's batches, bit for bit,
    in the same order, started part-way the same way."""
    from torch.utils.data import Dataset

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.data.batching import Batches

    fast = get_dataset("fashion-mnist", "train", root=data_root)

    class Plain(Dataset):  # the same samples, one __getitem__ at a time
        def __len__(self):
            return len(fast)

        def __getitem__(self, i):
            return fast[i]

    idx = torch.arange(0, 400, 3)
    for shuffle in (True, False):
        a = list(Batches(fast, idx, 16, shuffle, seed=4).epoch(2, start_step=1))
        b = list(Batches(Plain(), idx, 16, shuffle, seed=4, workers=1).epoch(2, start_step=1))
        assert len(a) == len(b) > 0
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and yb.dtype == torch.int64


def test_training_on_event_recordings_resumes_exactly(ncaltech_root, tmp_path):
    """N-Caltech101 recordings (decoded from .bin files by DataLoader workers) train, binned into the
    run's time steps and augmented frame by frame; a resumed run ends with the uninterrupted one's weights."""
    def cfg(out, **kw):
        return TrainConfig(dataset="n-caltech101", data_root=str(ncaltech_root), arch="small_cnn",
                           arch_kwargs={"width": 4, "backend": "torch"}, time_steps=2, epochs=2, batch_size=4,
                           val_size=3, out_dir=str(out), progress=False, tensorboard=False, amp=False, seed=1,
                           workers=1, **kw)

    full = train(cfg(tmp_path / "full"), log=lambda *_: None)
    assert full["step"] == 2 * (10 // 4)
    info = ckpt.read_checkpoint(tmp_path / "full" / "last.safetensors")[1]["info"]
    assert info["config"]["data_options"] == {"time_steps": 2}
    train(cfg(tmp_path / "cut", max_steps=3, checkpoint_every=3), log=lambda *_: None)
    train(cfg(tmp_path / "cut", resume=True), log=lambda *_: None)
    a, b = _weights(tmp_path / "full" / "last.safetensors"), _weights(tmp_path / "cut" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mem_layers_choose_the_distilled_layers_and_are_checked(data_root, tmp_path):
    start = tmp_path / "fp"
    train(_cfg(data_root, start, max_steps=1), log=lambda *_: None)
    teacher = str(start / "last.safetensors")
    mem = {}
    for layers in (None, "features.5"):
        out = tmp_path / f"md_{layers}"
        train(_cfg(data_root, out, method="md", teacher=teacher, w_bits=2, u_bits=2, max_steps=1, mem_layers=layers),
              log=lambda *_: None)
        rows = (out / "log.csv").read_text().splitlines()
        mem[layers] = float(rows[-1].split(",")[rows[0].split(",").index("mem")])
        assert json.loads((out / "config.json").read_text())["mem_layers"] == layers
    assert mem[None] > 0 and mem["features.5"] > 0 and mem[None] != mem["features.5"]
    with pytest.raises(KeyError, match="'features.3' is not a LIF layer of small_cnn; its LIF layers are "
                                       "features.2,features.5,features.9,features.12"):
        train(_cfg(data_root, tmp_path / "bad", method="md", teacher=teacher, w_bits=2, u_bits=2, max_steps=1,
                   mem_layers="features.2,features.3"), log=lambda *_: None)
    with pytest.raises(ValueError, match="only distillation has"):
        train(_cfg(data_root, tmp_path / "bad", method="qat", init=teacher, w_bits=2, u_bits=2, max_steps=1,
                   mem_layers="features.2"), log=lambda *_: None)
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_spike_forcing_falls_to_zero_halfway_and_only_distillation_takes_it(data_root, tmp_path, monkeypatch):
    import mdsnn_zoo.train.step as trainer  # where train_step forces the spikes

    start = tmp_path / "fp"
    train(_cfg(data_root, start, epochs=1), log=lambda *_: None)  # an epoch: enough that its layers fire
    teacher = str(start / "last.safetensors")
    rates = []

    class Counting(trainer.SpikeForcing):
        def __init__(self, student, membranes, rate):
            rates.append(rate)
            super().__init__(student, membranes, rate)

    monkeypatch.setattr(trainer, "SpikeForcing", Counting)
    md = dict(method="md", teacher=teacher, w_bits=2, u_bits=2)
    out = tmp_path / "forced"
    train(_cfg(data_root, out, spike_forcing=0.8, **md), log=lambda *_: None)  # 2 epochs of 10 steps
    assert rates == pytest.approx([0.8 * (1 - s / 10) for s in range(10)])  # step 10 and later: none forced
    assert json.loads((out / "config.json").read_text())["spike_forcing"] == 0.8
    first_loss = {}
    for share in (0.0, 1.0):
        run = tmp_path / f"first_{share}"
        train(_cfg(data_root, run, spike_forcing=share, max_steps=1, **md), log=lambda *_: None)
        rows = (run / "log.csv").read_text().splitlines()
        first_loss[share] = float(rows[1].split(",")[rows[0].split(",").index("loss")])
    assert first_loss[0.0] != first_loss[1.0]  # the forced student computes other logits
    with pytest.raises(ValueError, match="only distillation has"):
        train(_cfg(data_root, tmp_path / "bad", method="qat", init=teacher, w_bits=2, u_bits=2, spike_forcing=0.5),
              log=lambda *_: None)
    with pytest.raises(ValueError, match=r"in \[0, 1\]; got 1.5"):
        train(_cfg(data_root, tmp_path / "bad", spike_forcing=1.5, **md), log=lambda *_: None)
    assert not (tmp_path / "bad").exists()


def test_a_run_from_a_checkpoint_whose_image_folder_is_gone(image_folder, tmp_path):
    """--init from a run on a folder that has since moved: its shape is unknown, so the options given (or
    the new folder's own shape) decide, and the run goes on."""
    import shutil

    from mdsnn_zoo.train import resolve_data_options

    common = dict(dataset="imagefolder", arch_kwargs=TINY, epochs=1, max_steps=1, batch_size=8, progress=False,
                  tensorboard=False, amp=False)
    moved = tmp_path / "moved"
    shutil.copytree(image_folder, moved)
    with pytest.raises(ValueError, match="square inputs, and imagefolder reads as 12x10"):
        train(TrainConfig(data_root=str(moved), data_options={"channels": 1, "size": [12, 10]},
                          out_dir=str(tmp_path / "first"), **common), log=lambda *_: None)
    train(TrainConfig(data_root=str(moved), data_options={"channels": 1, "size": [12, 12]},
                      out_dir=str(tmp_path / "first"), **common), log=lambda *_: None)
    start = str(tmp_path / "first" / "best.safetensors")
    kept = TrainConfig(data_root=str(image_folder), init=start, out_dir=str(tmp_path / "second"), **common)
    assert resolve_data_options(kept)["size"] == [12, 12]  # the start's shape, read from its folder
    shutil.rmtree(moved)
    given = dataclasses.replace(kept, data_options={"channels": 1, "size": [12, 12]})
    assert train(given, log=lambda *_: None)["step"] == 1


def test_a_batch_sized_by_the_data_gives_an_epoch_at_least_32_steps():
    from mdsnn_zoo.train.data import batch_size_for

    assert batch_size_for(1078) == 32 and batch_size_for(55000) == 128 and batch_size_for(100) == 16
    assert batch_size_for(4096) == 128 and batch_size_for(4095) == 64 and batch_size_for(8192, world=2) == 128
    for n in (600, 1078, 2500, 4000):
        assert n // batch_size_for(n) >= 32
    from mdsnn_zoo.train.data import epochs_for

    assert epochs_for(33) == 20 and epochs_for(430) == 10 and epochs_for(64) == 10 and epochs_for(0) == 640


def test_configs_saved_with_augment_on_or_off_read_as_policies():
    assert config_from_dict({"augment": True}).augment == "crop,flip,erase"
    assert config_from_dict({"augment": False}).augment == "none"
    assert config_from_dict({"augment": "crop"}).augment == "crop"
