"""The zoo: names and metadata, packed low-bit weight files (round trip, size, sha256 refusal),
loading by name, fresh heads for fine-tuning, and the shipped weights themselves."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil

import pytest
import torch
from spikingjelly.activation_based import functional

import mdsnn_zoo
from mdsnn_zoo.errors import CorruptFileError, MdsnnError
from mdsnn_zoo.quant import quantized_layers
from mdsnn_zoo.zoo import packing, registry

TINY = "small_cnn.fmnist_t4_w2u2_md"
REQUIRED = {"dataset", "time_steps", "w_bits", "u_bits", "method", "top1", "teacher", "num_params", "file_bytes",
            "sha256", "recipe", "file"}


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("delta") or name.endswith("scale"):
                p.mul_(0.5 + torch.rand(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


@pytest.fixture()
def published(tmp_path, monkeypatch):
    """A fake published entry: random weights of TINY (and its teacher) in a temporary $MDSNN_HOME."""
    monkeypatch.setenv("MDSNN_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    manifest = {}
    for name in (TINY, registry.ENTRIES[TINY].teacher):
        model = _randomise(registry.create_model(name, backend="torch"))
        path = tmp_path / "weights" / f"{name}.safetensors"
        sha = packing.save_packed(model, path)
        manifest[name] = {"file": path.name, "sha256": sha, "file_bytes": path.stat().st_size, "top1": 50.0}
    monkeypatch.setattr(registry, "_manifest", lambda: manifest)
    monkeypatch.setattr(registry, "HERE", tmp_path / "nowhere")  # nothing from the package
    return manifest


def test_names_patterns_and_metadata():
    names = mdsnn_zoo.list_models()
    assert names == sorted(names) and len(names) == len(registry.ENTRIES)
    for arch in ("vgg9", "vgg11", "vgg16", "ms_resnet18", "resnet19", "resnet20", "small_cnn"):
        assert mdsnn_zoo.list_models(f"{arch}.*"), arch
    assert set(mdsnn_zoo.list_models("*.fmnist_t4_*")) >= {"vgg9.fmnist_t4_fp", "vgg9.fmnist_t4_w2u2_md",
                                                            "vgg9.fmnist_t4_w4u4_md", "vgg9.fmnist_t4_w2u2_qat"}
    shipped = set(json.loads(registry.MANIFEST.read_text()))  # entries whose weights ship: the manifest's
    assert mdsnn_zoo.list_models(pretrained=True) == sorted(shipped) and len(shipped) >= 12
    meta = mdsnn_zoo.get_weights("resnet20.cifar10_t4_w2u2_md")
    assert REQUIRED <= meta.keys()
    assert (meta["dataset"], meta["time_steps"], meta["w_bits"], meta["u_bits"], meta["method"]) == \
        ("cifar10", 4, 2, 2, "md")
    assert meta["teacher"] == "resnet20.cifar10_t4_fp" and meta["recipe"].startswith("mdsnn-zoo distill")
    if not meta["pretrained"]:
        assert meta["top1"] is None and meta["file"] is None
    assert meta["num_params"] == sum(p.numel() for p in mdsnn_zoo.create_model(meta["name"]).parameters())
    # a student is built with the bias grid its weights were trained with (the first ones: the membrane grid)
    assert meta["bias_frac_bits"] == 4 and mdsnn_zoo.get_weights("vgg9.fmnist_t4_fp")["bias_frac_bits"] is None
    manifest = json.loads(registry.MANIFEST.read_text())
    for name, record in manifest.items():
        if not name.endswith("_fp"):
            assert record["bias_frac_bits"] in (0, 4) and mdsnn_zoo.get_weights(name)["bias_frac_bits"] == \
                record["bias_frac_bits"], name


@pytest.mark.parametrize("recorded", [0, 4, None])
def test_students_are_built_with_the_bias_grid_of_their_weights(monkeypatch, recorded):
    name = "resnet20.cifar10_t4_w2u2_md"
    record = {} if recorded is None else {name: {"file": "x.safetensors", "bias_frac_bits": recorded}}
    monkeypatch.setattr(registry, "_manifest", lambda: record)
    model = registry.build_entry_model(registry.get_entry(name))
    want = 4 if recorded is None else recorded  # no weights yet: the current default
    assert {m.bias_frac_bits for m in model.modules() if getattr(m, "grid_node", None) is not None} == {want}
    assert mdsnn_zoo.get_weights(name)["bias_frac_bits"] == want


def test_unknown_names_and_missing_weights_say_what_to_do():
    with pytest.raises(MdsnnError, match="closest: vgg9.fmnist_t4_w2u2_md"):
        mdsnn_zoo.create_model("vgg9.fmnist_t4_w2u2_mdd")
    with pytest.raises(MdsnnError, match="no pretrained weights ship for vgg16.tinyimagenet_t4_fp.*mdsnn-zoo train"):
        mdsnn_zoo.create_model("vgg16.tinyimagenet_t4_fp", pretrained=True)
    with pytest.raises(MdsnnError, match="num_classes must be a positive int"):
        mdsnn_zoo.create_model(TINY, num_classes=0)


@pytest.mark.parametrize("bits", range(2, 9))
def test_pack_codes_round_trip(bits):
    u = torch.randint(0, 2**bits, (3, 7, 5, 3))  # an odd count: the last byte is partly used
    packed = packing.pack_codes(u, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-u.numel() * bits // 8)
    assert torch.equal(packing.unpack_codes(packed, bits, u.numel()).view(u.shape), u)


@pytest.mark.parametrize("w_bits,u_bits", [(2, 2), (4, 4), (3, 5)])
def test_student_round_trip_is_exact_and_small(tmp_path, w_bits, u_bits):
    from mdsnn_zoo.models import build_model
    from mdsnn_zoo.quant import quantize_model

    fp = build_model("small_cnn", num_classes=10, in_channels=1, backend="torch")
    student = _randomise(quantize_model(fp, w_bits, u_bits, first_last_bits=None)).eval()
    sha = packing.save_packed(student, tmp_path / "s.safetensors")
    assert sha == hashlib.sha256((tmp_path / "s.safetensors").read_bytes()).hexdigest()
    fresh = quantize_model(build_model("small_cnn", num_classes=10, in_channels=1, backend="torch"), w_bits, u_bits,
                           first_last_bits=None).eval()
    packing.load_packed(fresh, tmp_path / "s.safetensors", sha)
    for (name, a), (_, b) in zip(quantized_layers(student), quantized_layers(fresh), strict=True):
        assert torch.equal(a.weight_quant.codes(a.weight), b.weight_quant.codes(b.weight)), name
        assert torch.equal(a.quantized_weight(), b.quantized_weight()), name
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(student(x), fresh(x))
    tensors, _ = packing.read_packed(tmp_path / "s.safetensors", sha)
    for name, layer in quantized_layers(student):
        assert tensors[f"{name}.weight.codes"].numel() * 8 == pytest.approx(layer.weight.numel() * w_bits, abs=8)
        assert tensors[f"{name}.weight.codes"].numel() <= layer.weight.numel() * 4 * w_bits / 32 + 1  # b/32 of fp32


def test_a_tampered_file_is_refused_and_nothing_loads(tmp_path):
    model = _randomise(registry.create_model(TINY, backend="torch"))
    sha = packing.save_packed(model, tmp_path / "w.safetensors")
    data = bytearray((tmp_path / "w.safetensors").read_bytes())
    data[-3] ^= 0x40
    (tmp_path / "w.safetensors").write_bytes(bytes(data))
    target = registry.create_model(TINY, backend="torch")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CorruptFileError, match="sha256 .* does not match"):
        packing.load_packed(target, tmp_path / "w.safetensors", sha)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CorruptFileError, match="not a readable mdsnn-zoo weight file"):
        packing.load_packed(target, tmp_path / "junk.safetensors", None)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_pretrained_by_name_path_and_fresh_head(published, tmp_path):
    model = mdsnn_zoo.create_model(TINY, pretrained=True, backend="torch")
    assert not model.training and mdsnn_zoo.get_weights(TINY)["file"].startswith(str(tmp_path))
    same = mdsnn_zoo.create_model(TINY, pretrained=str(tmp_path / "weights" / f"{TINY}.safetensors"), backend="torch")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), same(x))
    functional.reset_net(model)
    # a file that is not the entry's: refused by its sha256
    other = tmp_path / "other.safetensors"
    packing.save_packed(_randomise(registry.create_model(TINY, backend="torch"), seed=9), other)
    with pytest.raises(CorruptFileError, match="sha256"):
        mdsnn_zoo.create_model(TINY, pretrained=str(other))
    # a new head: everything else is the pretrained model's
    five = mdsnn_zoo.create_model(TINY, pretrained=True, num_classes=5, backend="torch")
    assert five.head[-1].out_features == 5 and hasattr(five.head[-1], "weight_quant")
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(v, five.state_dict()[k]) for k, v in body.items())


def test_offline_missing_file_is_a_clear_error(published, tmp_path):
    (tmp_path / "weights" / f"{TINY}.safetensors").unlink()
    with pytest.raises(MdsnnError, match="missing from the package"):
        mdsnn_zoo.create_model(TINY, pretrained=True)
    published[TINY]["url"] = "http://127.0.0.1:9/none.safetensors"  # nothing listens there
    with pytest.raises(MdsnnError, match="could not download .* offline, put the file"):
        mdsnn_zoo.create_model(TINY, pretrained=True)


def test_cli_list_info(capsys):
    from mdsnn_zoo.cli import main

    assert main(["list", "vgg9.fmnist*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["name", "data", "T", "bits", "method", "top-1"]
    assert any(line.startswith("vgg9.fmnist_t4_w2u2_md ") and "W2U2" in line for line in out)
    assert main(["info", "vgg9.fmnist_t4_w2u2_qat"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["method"] == "qat" and meta["teacher"] == "vgg9.fmnist_t4_fp"
    assert main(["info", "vgg9.nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_shipped_weights_load_and_match_their_sha256():
    shipped = mdsnn_zoo.list_models(pretrained=True)
    if not shipped:
        pytest.skip("no weights ship yet")
    for name in shipped:  # what the metadata claims, recomputed from the shipped files
        meta = mdsnn_zoo.get_weights(name)
        assert meta.file is not None, f"{name}: its weights file is not in the package"
        data = open(meta.file, "rb").read()
        assert hashlib.sha256(data).hexdigest() == meta.sha256 and len(data) == meta.file_bytes, name
        assert 0 <= meta.top1 <= 100 and meta.pretrained
        model = mdsnn_zoo.create_model(name, pretrained=True, backend="torch")
        assert sum(p.numel() for p in model.parameters()) == meta.num_params, name
    meta = mdsnn_zoo.get_weights(shipped[0])
    assert meta["top1"] == meta.top1 and set(meta.keys()) == set(meta.as_dict()) and meta.get("nope") is None
    with pytest.raises(KeyError, match="zoo metadata has no field 'nope'"):
        meta["nope"]
    with pytest.raises(AttributeError):
        meta.top1 = 0.0  # frozen


@pytest.fixture()
def fmnist_root(tmp_path):
    """200 Fashion-MNIST-format images (train and test) whose label is drawn in the image."""
    import numpy as np

    from mdsnn_zoo.data.idx import write_idx

    root = tmp_path / "fmnist"
    root.mkdir()
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 200).astype(np.uint8)
    images = rng.integers(0, 60, (200, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, 2 * y:2 * y + 6, 4:24] = 255
    for split in ("train", "t10k"):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def test_cli_eval_and_finetune_by_name(published, fmnist_root, tmp_path, capsys):
    from mdsnn_zoo import checkpoint as ckpt
    from mdsnn_zoo.cli import main

    assert main(["eval", TINY, "--data-root", str(fmnist_root), "--backend", "torch", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples"] == 200 and 0 <= result["top1"] <= 100 and result["membrane_mse"] > 0
    assert main(["eval", TINY, "--backend", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert main(["eval", TINY, "--data-root", str(fmnist_root), "--backend", "torch", "--limit", "37", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "% of 37 " in printed and json.loads(printed.strip().splitlines()[-1])["samples"] == 37
    assert main(["eval", TINY, "--limit", "0"]) == 2 and "--limit must be a positive" in capsys.readouterr().err

    out = tmp_path / "ft"
    args = ["finetune", TINY, "--data-root", str(fmnist_root), "--max-steps", "3", "--val-size", "40",
            "--batch-size", "32", "--out-dir", str(out), "--no-progress", "--no-tensorboard", "--no-amp",
            "--arch-kwargs", '{"backend": "torch"}']
    assert main(args) == 0
    _, header = ckpt.read_checkpoint(out / "last.safetensors")
    cfg = header["info"]["config"]
    assert (cfg["method"], cfg["zoo_model"], cfg["w_bits"], cfg["u_bits"]) == ("md", TINY, 2, 2)
    rows = (out / "log.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[rows[0].split(",").index("mem")]) > 0  # distilled from the zoo teacher
    capsys.readouterr()
    assert main(["eval", str(out / "last.safetensors"), "--data-root", str(fmnist_root), "--backend", "torch",
                 "--json"]) == 0
    assert "membrane_mse" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_reproduces_the_published_top1_of_a_shipped_student():
    """What `mdsnn-zoo eval NAME` prints is the entry's top1 (to 0.1), on the shipped test split."""
    from torch.utils.data import DataLoader

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.train import evaluate

    students = [n for n in mdsnn_zoo.list_models("*.fmnist_*", pretrained=True) if "_w2u2_md" in n]
    if not students:
        pytest.skip("no Fashion-MNIST student ships yet")
    name = min(students, key=lambda n: mdsnn_zoo.get_weights(n)["num_params"])
    model = mdsnn_zoo.create_model(name, pretrained=True)
    loader = DataLoader(get_dataset("fashion-mnist", "test"), batch_size=256)
    with torch.inference_mode(False):
        top1 = evaluate(model, loader, torch.device("cpu"))["top1"]
    assert abs(top1 - mdsnn_zoo.get_weights(name)["top1"]) <= 0.1, name


def test_every_recipe_is_a_valid_command():
    import shlex

    from mdsnn_zoo.cli import build_parser

    def parse(recipe: str, name: str, commands: tuple[str, ...]) -> argparse.Namespace:
        for command in recipe.split(" && "):  # "A && B": what it needs first (a teacher's ReLU twin), then itself
            argv = shlex.split(command)
            assert argv[0] == "mdsnn-zoo", name
            args = build_parser(argv[1]).parse_args(argv[1:])
            assert args.command in commands, name
        return args

    manifest = json.loads(registry.MANIFEST.read_text())
    for name in mdsnn_zoo.list_models():
        meta = mdsnn_zoo.get_weights(name)
        start = meta.fine_tuned_from
        args = parse(meta["recipe"], name, ("train", "distill", "finetune") if start else ("train", "distill"))
        if start:  # a fine-tune of the entry as it shipped before: the start is that entry, rebuilt by its recipe
            assert (args.command, args.name, args.scale_bits) == ("finetune", name, meta.scale_bits), name
            assert len(start["sha256"]) == 64, name
            args = parse(start["recipe"], name, ("train", "distill"))
        if meta["pretrained"] and meta["method"] != "fp":  # rerun today, the recipe trains the same student
            record = manifest[name]
            assert (args.w_bits, args.u_bits, args.bias_frac_bits, args.learn_edge_scales) == \
                (meta["w_bits"], meta["u_bits"], meta["bias_frac_bits"], record.get("learn_edge_scales", False)), name


def test_readme_and_docs_tables_are_generated_from_the_metadata(recipe_script):
    """The zoo table (README), the gain table (docs/training.md) and the cost table (docs/hardware_cost.md)."""
    zoo_table = recipe_script("zoo_table")
    texts = {path.name: path.read_text() for path in zoo_table.FILES}
    for name, text in texts.items():
        assert zoo_table.render(text) == text, f"{name}'s tables are stale: run python recipes/zoo_table.py"
    for begin, end, _ in zoo_table.TABLES:  # each table is somewhere
        assert any(begin in text and end in text for text in texts.values()), begin
    for name in mdsnn_zoo.list_models(pretrained=True):
        assert f"`{name}`" in texts["README.md"]


def test_a_rerun_with_another_seed_is_recorded_beside_the_shipped_entry(tmp_path, monkeypatch, capsys, recipe_script):
    """export_zoo.py --repeat scores a seed-1 rerun as `mdsnn-zoo eval` does and records it in the shipped
    entry's repeats (no weights shipped); the gain table (docs/training.md) then shows both seeds and their mean."""
    import numpy as np

    from mdsnn_zoo.cli import main
    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.data.idx import write_idx
    from mdsnn_zoo.train import TrainConfig, finetune_config, train

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 48), ("t10k", 40)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(registry.MANIFEST.read_text())
    monkeypatch.setattr(registry, "MANIFEST", manifest)
    registry._manifest.cache_clear()
    export, zoo_table = recipe_script("export_zoo"), recipe_script("zoo_table")
    monkeypatch.setattr(export, "get_dataset", lambda name, split, **o: get_dataset(name, split, root=tmp_path, **o))
    base = TrainConfig(dataset="fashion-mnist", data_root=str(tmp_path), max_steps=1, batch_size=16, val_size=16,
                       progress=False, tensorboard=False, amp=False, seed=1, arch_kwargs={"backend": "torch"})
    try:
        for variant in ("w2u2_qat", "w2u2_md"):
            name, out = f"small_cnn.fmnist_t4_{variant}", tmp_path / variant
            train(finetune_config(TrainConfig(**{**base.__dict__, "out_dir": str(out)}), name, distill=False),
                  log=lambda *_: None)
            export.record_repeat(registry.get_entry(name), str(out / "last.safetensors"), f"recipe of {variant} s1")
        record = json.loads(manifest.read_text())["small_cnn.fmnist_t4_w2u2_qat"]["repeats"]["1"]
        assert record["sha256"] == hashlib.sha256((tmp_path / "w2u2_qat" / "last.safetensors").read_bytes()).hexdigest()
        capsys.readouterr()
        assert main(["eval", str(tmp_path / "w2u2_qat" / "last.safetensors"), "--data-root", str(tmp_path),
                     "--backend", "torch", "--json"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["top1"] == pytest.approx(record["top1"])

        registry._manifest.cache_clear()
        qat, md = (registry.get_weights(f"small_cnn.fmnist_t4_{v}") for v in ("w2u2_qat", "w2u2_md"))
        assert qat.repeats["1"]["recipe"] == "recipe of w2u2_qat s1" and qat.file.endswith("w2u2_qat.safetensors")
        gains = [md.top1 - qat.top1, md.repeats["1"]["top1"] - qat.repeats["1"]["top1"]]
        row = next(r for r in zoo_table.gain_table().splitlines() if "`small_cnn.fmnist_t4`" in r)
        assert f"| 0, 1 | {qat.top1:.2f}, {qat.repeats['1']['top1']:.2f} |" in row
        teacher = registry.get_weights("small_cnn.fmnist_t4_fp").top1
        qat_loss = teacher - (qat.top1 + qat.repeats["1"]["top1"]) / 2
        share = f"{100 * sum(gains) / 2 / qat_loss:.0f}% of {qat_loss:.2f}" if qat_loss > 0 else "- (QAT loses nothing)"
        assert row.startswith(f"| `small_cnn.fmnist_t4` | {teacher:.2f} | 0, 1 |")
        assert f"| {sum(gains) / 2:+.2f} (mean; {gains[0]:+.2f}, {gains[1]:+.2f}) | {share} |" in row

        train(finetune_config(TrainConfig(**{**base.__dict__, "seed": 0, "out_dir": str(tmp_path / "s0")}),
                              "small_cnn.fmnist_t4_w2u2_qat", distill=False), log=lambda *_: None)
        with pytest.raises(SystemExit, match="seed 0, the shipped entry's"):
            export.record_repeat(registry.get_entry("small_cnn.fmnist_t4_w2u2_qat"),
                                 str(tmp_path / "s0" / "last.safetensors"), "seed 0")
    finally:
        registry._manifest.cache_clear()


@pytest.mark.parametrize("name,x_shape,classes", [
    ("resnet20.cifar100_t4_w2u2_md", (1, 3, 32, 32), 100),
    ("ms_resnet18.cifar10_t4_fp", (1, 3, 32, 32), 10),
    ("vgg16.tinyimagenet_t4_w4u4_md", (1, 3, 64, 64), 200),
    ("vgg11.ncaltech101_t10_fp", (1, 10, 2, 48, 48), 101),  # event frames [N, T, C, H, W]
])
def test_entries_without_weights_build_for_their_data(name, x_shape, classes):
    model = mdsnn_zoo.create_model(name, backend="torch").eval()
    assert model.time_steps == mdsnn_zoo.get_weights(name)["time_steps"]
    with torch.no_grad():
        assert model(torch.rand(x_shape)).shape == (1, classes)


def test_finetune_a_zoo_student_on_an_image_folder_and_score_it(published, image_folder, tmp_path, capsys):
    """One command fine-tunes a zoo student on a folder of one's own images (fresh 3-class head, inputs
    made 1x28x28 like the zoo model's, checkpoints chosen on the folder's val split): its family's float
    model first, on the same data, as its teacher and start; another command scores it."""
    from mdsnn_zoo import checkpoint as ckpt
    from mdsnn_zoo.cli import main

    common = ["--dataset", "imagefolder", "--data-root", str(image_folder), "--max-steps", "3", "--batch-size",
              "8", "--no-progress", "--no-tensorboard", "--no-amp", "--arch-kwargs", '{"backend": "torch"}']
    teacher = registry.ENTRIES[TINY].teacher
    # MD needs a teacher that saw this data (the zoo teacher did not): the command fine-tunes it first
    one = tmp_path / "one"
    assert main(["finetune", TINY, *common, "--out-dir", str(one)]) == 0
    said = capsys.readouterr().out
    assert f"fine-tuning its teacher ({teacher}) first, into {one / 'teacher'}" in said
    assert f"fine-tuning the student, into {one}" in said
    made = ckpt.load_checkpoint(one / "best.safetensors", tensors=False).config
    assert (made.method, made.w_bits, made.teacher) == ("md", 2, str(one / "teacher" / "best.safetensors"))
    assert ckpt.load_checkpoint(one / "teacher" / "best.safetensors", tensors=False).config.w_bits is None
    assert main(["finetune", teacher, *common, "--out-dir", str(tmp_path / "teacher")]) == 0
    assert "validation: the 'val' split (9 samples)" in capsys.readouterr().out
    t_cfg = ckpt.read_checkpoint(tmp_path / "teacher" / "best.safetensors")[1]["info"]["config"]
    opts = t_cfg["data_options"]
    assert (t_cfg["method"], opts["channels"], opts["size"]) == ("finetune", 1, [28, 28])
    assert (t_cfg["augment"], t_cfg["ema_decay"], t_cfg["lr"]) == ("crop", 0.99, 0.01)  # finetune's defaults
    assert len(opts["mean"]) == 1  # the folder's own statistics, kept with the run
    student = tmp_path / "student"
    assert main(["finetune", TINY, *common, "--teacher", str(tmp_path / "teacher" / "best.safetensors"),
                 "--out-dir", str(student)]) == 0
    rows = (student / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    # distilled: membranes (the student starts as the teacher quantized, so its soft labels are close at first)
    assert float(rows[-1].split(",")[header.index("mem")]) > 0 and float(rows[-1].split(",")[header.index("kd")]) >= 0
    cfg = ckpt.read_checkpoint(student / "best.safetensors")[1]["info"]["config"]
    assert (cfg["method"], cfg["w_bits"], cfg["dataset"]) == ("md", 2, "imagefolder")
    capsys.readouterr()
    assert main(["eval", str(student / "best.safetensors"), "--dataset", "imagefolder", "--data-root",
                 str(image_folder), "--split", "val", "--backend", "torch", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples"] == 9 and 0 <= result["top1"] <= 100 and result["membrane_mse"] > 0
    assert main(["finetune", TINY, *common, "--no-distill", "--out-dir", str(tmp_path / "ce")]) == 0


def test_finetune_the_event_family_on_an_event_folder_and_score_it(event_folder, tmp_path, capsys):
    """The shipped event teacher and its W2U2 student, fine-tuned on a folder of one's own recordings
    (a 24x40 sensor scaled to the model's 34x34 frames, 10 frames each, a fresh 3-class head), then scored."""
    from mdsnn_zoo import checkpoint as ckpt
    from mdsnn_zoo.cli import main

    root = str(event_folder.root)
    common = ["--dataset", "eventfolder", "--data-root", root, "--max-steps", "2", "--batch-size", "6",
              "--time-steps", "10", "--no-progress", "--no-tensorboard", "--no-amp", "--arch-kwargs",
              '{"backend": "torch"}']
    assert main(["finetune", "vgg9.nfmnist_t10_fp", *common, "--out-dir", str(tmp_path / "teacher")]) == 0
    assert "validation: the 'val' split (6 samples)" in capsys.readouterr().out
    cfg = ckpt.read_checkpoint(tmp_path / "teacher" / "best.safetensors")[1]["info"]["config"]
    assert cfg["data_options"] == {"time_steps": 10, "binning": "count", "frame_size": [34, 34],
                                   "sensor_size": [24, 40]}
    student = tmp_path / "student"
    assert main(["finetune", "vgg9.nfmnist_t10_w2u2_md", *common, "--teacher",
                 str(tmp_path / "teacher" / "best.safetensors"), "--out-dir", str(student)]) == 0
    rows = (student / "log.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[rows[0].split(",").index("mem")]) > 0
    capsys.readouterr()
    assert main(["eval", str(student / "best.safetensors"), "--data-root", root, "--split", "val",
                 "--backend", "torch", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dataset"] == "eventfolder" and result["samples"] == 6 and result["membrane_mse"] > 0


def test_finetune_on_dataset_objects_from_python(published, tmp_path):
    """A notebook's own Dataset objects: the same fine-tuning as the command line, in two calls."""
    from torch.utils.data import Dataset

    from mdsnn_zoo.train import model_from_checkpoint

    class Shapes(Dataset):  # 3 classes, [1, 28, 28] images whose bright band encodes the label
        classes = ["bar", "box", "dot"]

        def __init__(self, n: int, seed: int) -> None:
            gen = torch.Generator().manual_seed(seed)
            self.targets = torch.randint(0, 3, (n,), generator=gen)
            self.x = torch.rand(n, 1, 28, 28, generator=gen) * 0.2
            for i, y in enumerate(self.targets.tolist()):
                self.x[i, :, 9 * y:9 * y + 9] += 1.0

        def __len__(self) -> int:
            return len(self.targets)

        def __getitem__(self, i: int):
            return self.x[i], int(self.targets[i])

    train_set, val_set = Shapes(24, 0), Shapes(6, 1)
    common = dict(max_steps=2, batch_size=8, progress=False, tensorboard=False, amp=False, workers=0,
                  arch_kwargs={"backend": "torch"}, log=lambda *_: None)
    teacher = registry.ENTRIES[TINY].teacher
    said: list[str] = []
    one = mdsnn_zoo.finetune(TINY, train_set, val_set, out_dir=str(tmp_path / "one"), **{**common, "log": said.append})
    assert one["out_dir"] == str(tmp_path / "one") and (tmp_path / "one" / "teacher" / "best.safetensors").exists()
    assert any(line.startswith(f"fine-tuning its teacher ({teacher}) first") for line in said)
    t = mdsnn_zoo.finetune(teacher, train_set, val_set, out_dir=str(tmp_path / "teacher"), **common)
    s = mdsnn_zoo.finetune(TINY, train_set, val_set, teacher=str(tmp_path / "teacher" / "best.safetensors"),
                           out_dir=str(tmp_path / "student"), **common)
    assert t["step"] == s["step"] == 2 and s["out_dir"] == str(tmp_path / "student")
    student, cfg = model_from_checkpoint(tmp_path / "student" / "best.safetensors")
    assert (cfg.method, cfg.dataset, cfg.w_bits) == ("md", "custom", 2)
    assert student.head[-1].out_features == 3  # a fresh head for the three classes


def test_event_entries_read_their_data_at_their_own_time_steps():
    from mdsnn_zoo.zoo.registry import get_entry

    event = get_entry("vgg9.nfmnist_t10_w2u2_md")
    assert event.dataset == "n-fashion-mnist" and event.data_options == {"time_steps": 10}
    assert "--time-steps 10" in event.recipe and "--dataset n-fashion-mnist" in event.recipe
    assert get_entry("vgg9.fmnist_t4_fp").data_options == {}


def test_finetune_refuses_a_teacher_of_another_network_and_writes_nothing(published, image_folder, tmp_path, capsys):
    """MD matches membranes layer by layer: a float teacher of another architecture or input size is
    refused before the student's run folder is made; so is a folder whose val split has a class that
    train lacks, before the teacher's."""
    from mdsnn_zoo.cli import main

    quick = ["--dataset", "imagefolder", "--data-root", str(image_folder), "--max-steps", "1", "--batch-size", "8",
             "--no-progress", "--no-tensorboard", "--no-amp"]
    other = tmp_path / "vgg"
    assert main(["train", "--arch", "vgg9", "--arch-kwargs", '{"width": 0.125, "backend": "torch"}', "--epochs", "1",
                 "--data-options", '{"channels": 1, "size": [28, 28]}', *quick, "--out-dir", str(other)]) == 0
    capsys.readouterr()
    student = tmp_path / "student"
    assert main(["finetune", TINY, *quick, "--arch-kwargs", '{"backend": "torch"}', "--teacher",
                 str(other / "best.safetensors"), "--out-dir", str(student)]) == 2
    err = capsys.readouterr().err
    assert "is vgg9" in err and "the student is small_cnn" in err and "the teacher must be the student's network" in err
    assert not student.exists()
    # the student's own network, but reading the images at another size than the student is told to
    small = tmp_path / "small"
    assert main(["train", "--arch", "small_cnn", "--arch-kwargs", '{"backend": "torch"}', "--epochs", "1",
                 "--data-options", '{"channels": 1, "size": [16, 16]}', *quick, "--out-dir", str(small)]) == 0
    capsys.readouterr()
    assert main(["finetune", TINY, *quick, "--arch-kwargs", '{"backend": "torch"}', "--teacher",
                 str(small / "best.safetensors"), "--data-options", '{"channels": 1, "size": [28, 28]}',
                 "--out-dir", str(student)]) == 2
    err = capsys.readouterr().err
    assert "read its data as [1, 16, 16], the student reads [1, 28, 28]" in err and "--data-options" in err
    assert not student.exists()
    # a val class that train lacks stops the one-command flow before its teacher is written
    owls = shutil.copytree(image_folder, tmp_path / "owls")  # a folder this process has not read yet
    (owls / "val" / "z-owl").mkdir()
    (owls / "val" / "z-owl" / "0.png").write_bytes((owls / "val" / "a-cat" / "0.png").read_bytes())
    assert main(["finetune", TINY, *quick, "--data-root", str(owls), "--arch-kwargs", '{"backend": "torch"}',
                 "--out-dir", str(student)]) == 2
    assert "z-owl is a class the train split does not have" in capsys.readouterr().err
    assert not student.exists()


def test_a_hardware_exact_entry_builds_exact_says_so_and_exports_by_name(published, tmp_path, capsys):
    """An entry whose manifest records ``scale_bits`` is built on that grid, its metadata says
    ``integer_exact``, and ``mdsnn-zoo export NAME`` writes what the NumPy runtime runs as PyTorch does."""
    import numpy as np

    from mdsnn_zoo.cli import main
    from mdsnn_zoo.neuron import QuantLIFNode
    from mdsnn_zoo.quant import quantized_layers
    from mdsnn_zoo.runtime import IntegerModel

    assert not mdsnn_zoo.get_weights(TINY).integer_exact
    assert main(["export", TINY, "--out", str(tmp_path / "loose")]) == 2
    assert "not hardware-exact" in capsys.readouterr().err
    published[TINY]["scale_bits"] = 7
    meta = mdsnn_zoo.get_weights(TINY)
    assert meta.integer_exact and meta.scale_bits == 7 and not mdsnn_zoo.get_weights(meta.teacher).integer_exact
    model = mdsnn_zoo.create_model(TINY, pretrained=True, backend="torch").eval()
    assert {layer.weight_quant.scale_bits for _, layer in quantized_layers(model)} == {7}
    assert all(n.pot_delta for n in model.modules() if isinstance(n, QuantLIFNode))
    assert main(["export", TINY, "--format", "int", "--out", str(tmp_path / "int")]) == 0
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        want = model(x).argmax(1).numpy()
    assert np.array_equal(IntegerModel.load(tmp_path / "int").predict(x.numpy()), want)


def test_finetune_with_scale_bits_trains_the_zoo_student_on_that_grid(published):
    """``finetune NAME --scale-bits 7`` trains the shipped student on the exact grid (not off it, to be
    rounded at export): every weight scale and membrane step is on it, and its forward is that of the same
    weights quantized onto the grid from the start; an exact entry's fine-tune stays on its grid."""
    from spikingjelly.activation_based import functional

    from mdsnn_zoo.neuron import QuantLIFNode
    from mdsnn_zoo.quant import quantized_layers
    from mdsnn_zoo.train.build import build_student_and_teacher
    from mdsnn_zoo.train.config import TrainConfig
    from mdsnn_zoo.train.finetuning import finetune_config

    cfg = finetune_config(TrainConfig(scale_bits=7, arch_kwargs={"backend": "torch"}), TINY)
    student, teacher = build_student_and_teacher(cfg)
    assert cfg.scale_bits == 7 and teacher is not None
    assert {layer.weight_quant.scale_bits for _, layer in quantized_layers(student)} == {7}
    assert all(n.pot_delta for n in student.modules() if isinstance(n, QuantLIFNode))
    built = registry.build_entry_model(registry.get_entry(TINY), scale_bits=7, backend="torch")
    built.load_state_dict(student.state_dict())
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        got, want = student.eval()(x), built.eval()(x)
    functional.reset_net(student), functional.reset_net(built)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    loose = mdsnn_zoo.create_model(TINY, pretrained=True, backend="torch")
    with torch.no_grad():
        assert not torch.equal(loose(x), got)  # the grid changed the network: it is not a no-op here
    assert finetune_config(TrainConfig(), TINY).scale_bits is None
    published[TINY]["scale_bits"] = 7
    assert finetune_config(TrainConfig(), TINY).scale_bits == 7
    assert finetune_config(TrainConfig(scale_bits=3), TINY).scale_bits == 3


def test_an_entry_fine_tuned_over_keeps_the_one_it_replaced(recipe_script):
    """export_zoo.py: a fine-tune of the shipped entry keeps that entry's result and repeats as
    ``fine_tuned_from``; the same weights exported again keep what they had; other weights keep nothing."""
    export_zoo = recipe_script("export_zoo")
    shipped = {"sha256": "a" * 64, "top1": 93.13, "val_top1": 93.82, "recipe": "mdsnn-zoo distill ...",
               "repeats": {"1": {"top1": 93.19}}, "cost": {}, "file": "x.safetensors"}
    kept = export_zoo.replaced_record(shipped, "b" * 64, fine_tuned=True)
    assert kept == {k: shipped[k] for k in ("sha256", "top1", "val_top1", "recipe", "repeats")}
    again = {"sha256": "b" * 64, "top1": 93.05, "fine_tuned_from": kept}
    assert export_zoo.replaced_record(again, "b" * 64, fine_tuned=True) == kept
    assert export_zoo.replaced_record(shipped, "b" * 64, fine_tuned=False) is None
    assert export_zoo.replaced_record(None, "b" * 64, fine_tuned=True) is None
