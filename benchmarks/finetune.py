"""The fine-tuning journey on data the zoo never saw, end to end, with the defaults a user gets.

    python benchmarks/finetune.py --data DIR --out runs/finetune_bench [--families small_cnn,vgg9,events,...]
        [--teacher-sweep]

Data (written once under ``--data``, the same bytes every time; scikit-learn needed, ``pip install
scikit-learn``):

- ``digits/``: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels, BSD-3; Alpaydin and Kaynak,
  UCI), an image folder: per class 60% ``train/``, 20% ``val/``, 20% ``test/`` (a fixed permutation),
  PNGs the reader upscales to the model's 28x28.
- ``digit_events/``: the same digits, upscaled to 28x28 and recorded by the saccade converter
  (:mod:`mdsnn_zoo.data.saccades`, N-MNIST's 34x34 sensor), an event folder of 40-bit ``.bin`` files.
- ``fmnist_groups/``: Fashion-MNIST regrouped into 5 coarse classes (a new head for the zoo's 10-class
  models): per class 300 ``train/`` and 150 ``val/`` images from the 5,000 that the zoo's runs held out
  of its training split (never trained on), 400 ``test/`` from its test split. Read from
  ``--fmnist-root`` or the Debian package's folder (``apt-get install dataset-fashion-mnist``).

Per family, four runs of ``mdsnn-zoo finetune`` with nothing but the data named: the float teacher,
then the W4U4 and W2U2 MD students and the W2U2 student without distillation (``--no-distill``, naive
QAT), each with the teacher the command itself fine-tunes. The table: best and last validation top-1,
epochs, minutes, test top-1 of the best checkpoint (``mdsnn-zoo eval --split test``), and the machine.
``--teacher-sweep`` adds the teacher fine-tuned with other settings (:data:`SWEEP`), to show how far
the defaults are from the best setting found.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

FAMILIES = {  # family: (the zoo names fine-tuned, the data folder)
    "small_cnn": ("small_cnn.fmnist_t4", "digits"),
    "vgg9": ("vgg9.fmnist_t4", "digits"),
    "events": ("vgg9.nfmnist_t10", "digit_events"),
    "small_cnn_groups": ("small_cnn.fmnist_t4", "fmnist_groups"),
    "vgg9_groups": ("vgg9.fmnist_t4", "fmnist_groups"),
}
GROUPS = {  # coarse class: Fashion-MNIST labels
    "tops": (0, 6), "knitwear_coats": (2, 4), "trousers_dresses": (1, 3), "footwear": (5, 7, 9), "bags": (8,)}
SWEEP = {  # other settings for the teacher: key (its run folder's suffix): (in words, the flags)
    "lr0.03": ("lr 0.03", ["--lr", "0.03"]),
    "noaug": ("no augmentation", ["--augment", "none"]),
    "noaug_lr0.05": ("no augmentation, lr 0.05", ["--augment", "none", "--lr", "0.05"]),
}
GROUP_SIZES = (("train", 300), ("val", 150), ("test", 400))  # bags: ~500 held out
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


def write_digits(folder: Path) -> None:
    """The digits as an image folder ``folder/<split>/<label>/<n>.png``."""
    from PIL import Image

    for split, samples in _digit_splits().items():
        for n, (image, label) in enumerate(samples):
            (folder / split / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / split / str(label) / f"{n:04d}.png")


def write_digit_events(folder: Path) -> None:
    """The digits as event recordings ``folder/<split>/<label>/<n>.bin`` (34x34 sensor)."""
    from PIL import Image

    from mdsnn_zoo.data.events import write_events
    from mdsnn_zoo.data.saccades import DVSParams, saccade_recordings

    params = DVSParams()
    for split_no, (split, samples) in enumerate(_digit_splits().items()):
        big = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im, _ in samples])
        keys = [(split_no, n) for n in range(len(samples))]  # seeds each recording's noise (none by default)
        recordings = saccade_recordings(big, params, keys)
        for n, ((_, label), events) in enumerate(zip(samples, recordings, strict=True)):
            (folder / split / str(label)).mkdir(parents=True, exist_ok=True)
            write_events(folder / split / str(label) / f"{n:04d}.bin", events)


def write_fmnist_groups(folder: Path, fmnist: Path) -> None:
    """Fashion-MNIST in :data:`GROUPS` as an image folder ``folder/<split>/<group>/<n>.png``:
    train and val from the zoo's held-out validation images, test from the test split."""
    from PIL import Image

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.data.batching import split_indices
    from mdsnn_zoo.train.config import TrainConfig

    _, held_out = split_indices(60000, TrainConfig.val_size)
    sources = {"train": get_dataset("fashion-mnist", "train", root=fmnist, normalize=False),
               "test": get_dataset("fashion-mnist", "test", root=fmnist, normalize=False)}
    pools = {"train": held_out.numpy(), "test": np.arange(len(sources["test"]))}
    rng = np.random.default_rng(0)
    for group, labels in GROUPS.items():
        taken = {}
        for source, pool in pools.items():
            targets = sources[source].targets.numpy()[pool]
            taken[source] = list(rng.permutation(pool[np.isin(targets, labels)]))
        for split, size in GROUP_SIZES:
            picks = [taken["test" if split == "test" else "train"].pop() for _ in range(size)]
            (folder / split / group).mkdir(parents=True, exist_ok=True)
            data = sources["test" if split == "test" else "train"].data
            for n, i in enumerate(picks):
                Image.fromarray(data[int(i), 0].numpy()).save(folder / split / group / f"{n:04d}.png")


def prepare(root: Path, name: str, write: Callable[[Path], None]) -> Path:
    """The data folder ``root/name``, written by ``write`` the first time (into a ``.partial`` folder
    renamed when complete, so that an interrupted write is started again)."""
    folder = root / name
    if not folder.is_dir():
        partial = root / f"{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        write(partial)
        partial.rename(folder)
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


def finetune_run(model: str, label: str, data: Path, dataset: str, run: Path, flags: list[str]) -> dict:
    """``mdsnn-zoo finetune model`` on ``data`` into ``run`` with ``flags`` (once: a finished run is
    read back), and its row: best and last validation top-1, epochs, minutes, test top-1."""
    args = ["finetune", model, "--dataset", dataset, "--data-root", str(data), "--out-dir", str(run), "--resume",
            "--no-progress", "--no-tensorboard", *flags]
    if not (run / "done").exists():
        start = time.perf_counter()
        _mdsnn(*args)
        (run / "done").write_text(f"{(time.perf_counter() - start) / 60:.2f}\n")  # minutes
    val = _epochs(run)
    return {"data": data.name, "model": model, "row": label, "best_val": max(val), "last_val": val[-1],
            "best_epoch": int(np.argmax(val)) + 1, "epochs": len(val),
            "minutes": float((run / "done").read_text() or "nan"), "test": _test_top1(run, data)}


def journey(base: str, data: Path, dataset: str, out: Path, extra: list[str]) -> list[dict]:
    """The four fine-tuning runs of family ``base`` on ``data``, each row's numbers. The students are
    given the teacher row's checkpoint (``--teacher``): what ``finetune STUDENT`` alone would fine-tune
    first into ``OUT/teacher``, made once for all three."""
    teacher = out / f"{base}_fp" / "best.safetensors"
    rows = []
    for variant, label in ROWS:
        flags = [*extra] if variant == "fp" else [*extra, "--teacher", str(teacher)]
        if variant == "w2u2_qat":
            flags.append("--no-distill")
        rows.append(finetune_run(f"{base}_{variant}", label, data, dataset, out / f"{base}_{variant}", flags))
    return rows


def teacher_sweep(base: str, data: Path, dataset: str, out: Path) -> list[dict]:
    """The float teacher of ``base`` fine-tuned on ``data`` with each of :data:`SWEEP` instead of the
    defaults: how far the defaults are from the best setting found."""
    return [finetune_run(f"{base}_fp", f"teacher, {name}", data, dataset, out / f"{base}_fp_{key}", flags)
            for key, (name, flags) in SWEEP.items()]


def to_markdown(rows: list[dict], machine: str) -> str:
    header = "| data | model | run | best val top-1 | last val top-1 | best epoch / epochs | minutes | test top-1 |"
    lines = [f"Machine: {machine}. Defaults of `mdsnn-zoo finetune` unless the run says otherwise.", "", header,
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | `{r['model']}` | {r['row']} | {r['best_val']:.2f} | {r['last_val']:.2f} | "
                     f"{r['best_epoch']} / {r['epochs']} | {r['minutes']:.1f} | {r['test']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="where the data sets are written (once)")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune_bench"))
    parser.add_argument("--families", default="small_cnn,vgg9,events")
    parser.add_argument("--fmnist-root", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                        help="Fashion-MNIST's IDX files (for the regrouped families)")
    parser.add_argument("--teacher-sweep", action="store_true",
                        help="also fine-tune each teacher with the other settings of SWEEP")
    parser.add_argument("--table", type=Path, default=None, help="also write the table here")
    parser.add_argument("extra", nargs="*", help="more finetune flags for every run (after --)")
    args = parser.parse_args()
    import torch

    from mdsnn_zoo.machine import describe_machine

    makers = {"digits": write_digits, "digit_events": write_digit_events,
              "fmnist_groups": lambda folder: write_fmnist_groups(folder, args.fmnist_root)}
    rows = []
    for family in args.families.split(","):
        base, folder = FAMILIES[family]
        data = prepare(args.data, folder, makers[folder])
        dataset = "eventfolder" if folder == "digit_events" else "imagefolder"
        rows += journey(base, data, dataset, args.out / family, args.extra)
        if args.teacher_sweep:
            rows += teacher_sweep(base, data, dataset, args.out / family)
    table = to_markdown(rows, describe_machine(torch.device("cpu")))
    print(table)
    if args.table:
        args.table.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
