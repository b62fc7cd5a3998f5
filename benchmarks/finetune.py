"""The fine-tuning journey on data the zoo never saw, end to end, with the defaults a user gets.

    python benchmarks/finetune.py --data DIR --out runs/finetune_bench [--families small_cnn,vgg9,events]

Data (written once under ``--data``, the same bytes every time; scikit-learn needed, ``pip install
scikit-learn``):

- ``digits/``: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels, BSD-3; Alpaydin and Kaynak,
  UCI), an image folder: per class 60% ``train/``, 20% ``val/``, 20% ``test/`` (a fixed permutation),
  PNGs the reader upscales to the model's 28x28.
- ``digit_events/``: the same digits, upscaled to 28x28 and recorded by the saccade converter
  (:mod:`mdsnn_zoo.data.saccades`, N-MNIST's 34x34 sensor), an event folder of 40-bit ``.bin`` files.

Per family, four runs of ``mdsnn-zoo finetune`` with nothing but the data named: the float teacher,
then the W4U4 and W2U2 MD students and the W2U2 student without distillation (``--no-distill``, naive
QAT), each with the teacher the command itself fine-tunes. The table: best and last validation top-1,
epochs, minutes, test top-1 of the best checkpoint (``mdsnn-zoo eval --split test``), and the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FAMILIES = {  # family: (the zoo names fine-tuned, the data folder)
    "small_cnn": ("small_cnn.fmnist_t4", "digits"),
    "vgg9": ("vgg9.fmnist_t4", "digits"),
    "events": ("vgg9.nfmnist_t10", "digit_events"),
}
ROWS = (("fp", "teacher"), ("w4u4_md", "W4U4 MD"), ("w2u2_md", "W2U2 MD"), ("w2u2_qat", "W2U2 naive QAT"))
SPLITS = (("train", 0.6), ("val", 0.2), ("test", 0.2))


def _digit_splits(seed: int = 0) -> dict[str, list[tuple[np.ndarray, int]]]:
    """scikit-learn's digits as ``uint8 [8, 8]`` images (0-16 scaled to 0-255) with labels, split per class."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {name: [] for name, _ in SPLITS}
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == label))
        cut = np.cumsum([round(share * len(idx)) for _, share in SPLITS])[:-1]
        for (name, _), part in zip(SPLITS, np.split(idx, cut), strict=True):
            out[name] += [(images[i], label) for i in part]
    return out


def write_digits(root: Path) -> Path:
    """The digits as an image folder ``root/digits/<split>/<label>/<n>.png``."""
    from PIL import Image

    folder = root / "digits"
    if (folder / "test").is_dir():
        return folder
    for split, samples in _digit_splits().items():
        for n, (image, label) in enumerate(samples):
            (folder / split / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / split / str(label) / f"{n:04d}.png")
    return folder


def write_digit_events(root: Path) -> Path:
    """The digits as event recordings ``root/digit_events/<split>/<label>/<n>.bin`` (34x34 sensor)."""
    from PIL import Image

    from mdsnn_zoo.data.events import write_events
    from mdsnn_zoo.data.saccades import DVSParams, saccade_recordings

    folder = root / "digit_events"
    if (folder / "test").is_dir():
        return folder
    params = DVSParams()
    for split_no, (split, samples) in enumerate(_digit_splits().items()):
        big = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im, _ in samples])
        keys = [(split_no, n) for n in range(len(samples))]  # seeds each recording's noise (none by default)
        recordings = saccade_recordings(big, params, keys)
        for n, ((_, label), events) in enumerate(zip(samples, recordings, strict=True)):
            (folder / split / str(label)).mkdir(parents=True, exist_ok=True)
            write_events(folder / split / str(label) / f"{n:04d}.bin", events)
    return folder


def _mdsnn(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mdsnn_zoo", *args], check=True)


def _epochs(run: Path) -> list[float]:
    with open(run / "epochs.csv") as f:
        return [float(r["val_top1"]) for r in csv.DictReader(f)]


def _test_top1(run: Path, data: Path) -> float:
    done = subprocess.run([sys.executable, "-m", "mdsnn_zoo", "eval", str(run / "best.safetensors"), "--data-root",
                           str(data), "--split", "test", "--json"], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["top1"]


def journey(base: str, data: Path, dataset: str, out: Path, extra: list[str]) -> list[dict]:
    """The four fine-tuning runs of family ``base`` on ``data``, each row's numbers. The students are
    given the teacher row's checkpoint (``--teacher``): what ``finetune STUDENT`` alone would fine-tune
    first into ``OUT/teacher``, made once for all three."""
    rows = []
    teacher = out / f"{base}_fp" / "best.safetensors"
    for variant, label in ROWS:
        run = out / f"{base}_{variant}"
        args = ["finetune", f"{base}_{variant}", "--dataset", dataset, "--data-root", str(data),
                "--out-dir", str(run), "--resume", "--no-progress", "--no-tensorboard", *extra]
        if variant != "fp":
            args += ["--teacher", str(teacher)]
        if variant == "w2u2_qat":
            args.append("--no-distill")
        start = time.perf_counter()
        if not (run / "best.safetensors").exists() or not (run / "done").exists():
            _mdsnn(*args)
            (run / "done").write_text("")
        minutes = (time.perf_counter() - start) / 60
        val = _epochs(run)
        rows.append({"model": f"{base}_{variant}", "row": label, "best_val": max(val), "last_val": val[-1],
                     "best_epoch": int(np.argmax(val)) + 1, "epochs": len(val), "minutes": minutes,
                     "test": _test_top1(run, data)})
    return rows


def to_markdown(rows: list[dict], machine: str) -> str:
    header = "| model | run | best val top-1 | last val top-1 | best epoch / epochs | minutes | test top-1 |"
    lines = [f"Machine: {machine}. Defaults of `mdsnn-zoo finetune` throughout.", "", header,
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['model']}` | {r['row']} | {r['best_val']:.2f} | {r['last_val']:.2f} | "
                     f"{r['best_epoch']} / {r['epochs']} | {r['minutes']:.1f} | {r['test']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="where the data sets are written (once)")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune_bench"))
    parser.add_argument("--families", default="small_cnn,vgg9,events")
    parser.add_argument("--table", type=Path, default=None, help="also write the table here")
    parser.add_argument("extra", nargs="*", help="more finetune flags for every run (after --)")
    args = parser.parse_args()
    import torch

    from mdsnn_zoo.machine import describe_machine

    makers = {"digits": write_digits, "digit_events": write_digit_events}
    rows = []
    for family in args.families.split(","):
        base, folder = FAMILIES[family]
        data = makers[folder](args.data)
        dataset = "eventfolder" if folder == "digit_events" else "imagefolder"
        rows += journey(base, data, dataset, args.out / family, args.extra)
    table = to_markdown(rows, describe_machine(torch.device("cpu")))
    print(table)
    if args.table:
        args.table.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
