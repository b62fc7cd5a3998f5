"""Hardware-exact students out of PyTorch: does the NumPy runtime predict what the PyTorch student
predicts on the whole test split, how fast is each, and how large is the exported file?

    python benchmarks/integer_runtime.py NAME [NAME ...] [--images N] [--convert] [--table FILE]

For each zoo student NAME: export it (``mdsnn-zoo export NAME --format int``), run the PyTorch student
(float32 fake-quant in eval mode, as ``mdsnn-zoo eval`` runs it, on all CPU threads) and
``mdsnn_zoo.runtime.IntegerModel`` on the first N test images (all by default) in batches of 250,
and print: images agreeing, top-1 of each, images/s of each, the exported bytes against the float
teacher's weight file. ``--convert`` first puts a student that is not hardware-exact on the exact grid
(weight scales to 8-bit multipliers and shifts, membrane steps to powers of two) without training:
those rows say so, and measure a converted model, not the entry. ``--table FILE`` also writes the table,
with the rows it held of other students whose weights have not changed since, so the zoo's table can be
built a few students at a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def measure(name: str, images: int | None, convert: bool, load: str, batch: int = 250) -> dict:
    """One row: agreement, top-1 and images/s of the student and the runtime, and file sizes."""
    from spikingjelly.activation_based import functional

    import mdsnn_zoo
    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.export import export_integer
    from mdsnn_zoo.quant import set_scale_bits
    from mdsnn_zoo.runtime import GRAPH_FILE, WEIGHTS_FILE, IntegerModel

    meta = mdsnn_zoo.get_weights(name)
    model = mdsnn_zoo.create_model(name, pretrained=True).eval()
    if convert:
        set_scale_bits(model, 7)
    data = get_dataset(meta["dataset"], "test", **(meta.get("data_options") or {}))
    n = min(images or len(data), len(data))
    x, y = data.batch(torch.arange(n))
    kind = "events" if x.ndim == 5 else "static"
    with tempfile.TemporaryDirectory() as tmp:
        out = export_integer(model, tmp, kind, tuple(x.shape[1:]), source=name)
        exported = (out / WEIGHTS_FILE).stat().st_size + (out / GRAPH_FILE).stat().st_size
        runtime = IntegerModel.load(out)
        start = time.perf_counter()
        got = np.concatenate([runtime.predict(x[i:i + batch].numpy()) for i in range(0, n, batch)])
        runtime_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        want = []
        for i in range(0, n, batch):
            functional.reset_net(model)
            want.append(model(x[i:i + batch]).argmax(1).numpy())
    torch_s = time.perf_counter() - start
    want = np.concatenate(want)
    teacher = mdsnn_zoo.get_weights(meta["teacher"])
    labels = y.numpy()
    return {"name": name, "sha256": meta["sha256"], "date": datetime.date.today().isoformat(), "load": load,
            "threads": torch.get_num_threads(),
            "converted": convert, "images": n,
            "agree": int((got == want).sum()),
            "torch_top1": 100 * float((want == labels).mean()), "runtime_top1": 100 * float((got == labels).mean()),
            "torch_ips": n / torch_s, "runtime_ips": n / runtime_s, "exported_bytes": exported,
            "teacher_bytes": teacher["file_bytes"]}


def to_markdown(rows: list[dict], machine: str) -> str:
    lines = ["<!-- python benchmarks/integer_runtime.py NAME ... --table THIS_FILE; each row's date: the .json "
             "beside it -->", "",
             f"Machine: {machine} (this run's threads; each row's PyTorch threads are in the table), NumPy as it "
             "comes.", "",
             "| model | test images | runtime = PyTorch | top-1 PyTorch / runtime | images/s PyTorch / runtime "
             "| exported bytes / float teacher's | PyTorch threads | also running |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"`{r['name']}`" + (" (converted, untrained)" if r["converted"] else "")
        lines.append(f"| {name} | {r['images']:,} | {r['agree']:,} | {r['torch_top1']:.2f} / {r['runtime_top1']:.2f} "
                     f"| {r['torch_ips']:.0f} / {r['runtime_ips']:.0f} | {r['exported_bytes']:,} / "
                     f"{r['teacher_bytes']:,} ({r['exported_bytes'] / r['teacher_bytes']:.2f}) | {r['threads']} "
                     f"| {r['load']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo students")
    parser.add_argument("--images", type=int, default=None, help="the first N test images (default: all)")
    parser.add_argument("--convert", action="store_true", help="put a student that is not hardware-exact on the "
                        "exact grid first, without training")
    parser.add_argument("--load", default="nothing else", help="what else ran on the machine meanwhile (kept "
                        "with the rows: images/s are comparable only between rows measured alone)")
    parser.add_argument("--table", type=Path, default=None, help="also write the table here, keeping the rows it "
                        "holds of other students as they ship today (kept in TABLE.json)")
    args = parser.parse_args()
    from mdsnn_zoo.machine import describe_machine

    rows = [measure(name, args.images, args.convert, args.load) for name in args.names]
    print(to_markdown(rows, describe_machine(torch.device("cpu"))))
    if args.table:
        kept = [r for r in earlier_rows(args.table) if r["name"] not in args.names]
        every = sorted(kept + rows, key=lambda r: r["name"])
        args.table.write_text(to_markdown(every, describe_machine(torch.device("cpu"))))
        args.table.with_suffix(".json").write_text(json.dumps(every, indent=1) + "\n")
    return 0 if all(r["agree"] == r["images"] for r in rows) else 1


def earlier_rows(table: Path) -> list[dict]:
    """The rows a table (its ``.json`` beside it) holds of the entries as they ship today: a row of weights
    since replaced is dropped."""
    import mdsnn_zoo

    path = table.with_suffix(".json")
    rows = json.loads(path.read_text()) if path.exists() else []
    return [r for r in rows if r.get("sha256") == mdsnn_zoo.get_weights(r["name"])["sha256"]]


if __name__ == "__main__":
    sys.exit(main())
