"""CI's check of the installed wheel, run from outside the checkout: every subcommand's ``--help``, then
what a new user runs first (list, info, cost, and eval of a shipped student on part of the test split),
and a hardware-exact student fine-tuned on a small image folder, exported and run by the NumPy runtime
with torch unimportable."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mdsnn_zoo
from mdsnn_zoo.cli import SUBCOMMANDS, build_parser

STUDENT = "small_cnn.fmnist_t4_w2u2_md"


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every subcommand path of ``parser``, e.g. ``("bench", "lif")``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))


def run(*args: str) -> None:
    print("$ mdsnn-zoo", *args, flush=True)
    subprocess.run(["mdsnn-zoo", *args], check=True)


def main() -> int:
    here = Path(mdsnn_zoo.__file__).resolve()
    if "site-packages" not in here.parts:
        sys.exit(f"mdsnn_zoo is imported from {here}, not from an installed wheel")
    # a subcommand's own subcommands (bench lif, plot curves...) exist once its module is loaded
    paths = sorted({p for name in SUBCOMMANDS for p in commands(build_parser(name)) if p[0] == name})
    for path in [(), *paths]:
        subprocess.run(["mdsnn-zoo", *path, "--help"], check=True, stdout=subprocess.DEVNULL)
    print(f"--help of {len(paths) + 1} commands: ok")
    run("list", "--pretrained")
    run("info", STUDENT)
    run("cost", STUDENT)
    run("eval", STUDENT, "--limit", "512")
    with tempfile.TemporaryDirectory() as tmp:
        integer_model(Path(tmp))
    return 0


def integer_model(tmp: Path) -> None:
    """A float teacher's export is refused; finetune --scale-bits 7 on a tiny image folder, export --format int,
    predict without torch."""
    import numpy as np
    import torch
    from PIL import Image

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.train import model_from_checkpoint

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        for label in ("a", "b"):
            (tmp / "data" / split / label).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60 if label == "a" else 200, (20, 20), np.uint8)
                Image.fromarray(pixels).save(tmp / "data" / split / label / f"{i}.png")
    teacher = STUDENT.replace("_w2u2_md", "_fp")
    refused = subprocess.run(["mdsnn-zoo", "export", teacher, "--out", str(tmp / "no")], capture_output=True, text=True)
    assert refused.returncode == 2 and "only a quantized student has an integer form" in refused.stderr, refused.stderr
    run("finetune", STUDENT, "--scale-bits", "7", "--dataset", "imagefolder", "--data-root", str(tmp / "data"),
        "--max-steps", "2", "--batch-size", "4", "--no-progress", "--no-tensorboard", "--out-dir", str(tmp / "run"))
    run("export", str(tmp / "run" / "best.safetensors"), "--format", "int", "--out", str(tmp / "int"))
    student, cfg = model_from_checkpoint(tmp / "run" / "best.safetensors")
    x, _ = get_dataset("imagefolder", "val", root=tmp / "data", **cfg.data_options).batch(torch.arange(8))
    np.save(tmp / "x.npy", x.numpy())
    with torch.no_grad():
        want = student(x).argmax(1).tolist()
    code = ("import sys; sys.modules['torch'] = None\nimport numpy as np\nfrom mdsnn_zoo.runtime import IntegerModel\n"
            f"print(IntegerModel.load({str(tmp / 'int')!r}).predict(np.load({str(tmp / 'x.npy')!r})).tolist())")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert got == str(want), (got, want)
    print(f"integer model: the NumPy runtime (no torch) predicts as the student does on {len(want)} images: ok")


if __name__ == "__main__":
    sys.exit(main())
