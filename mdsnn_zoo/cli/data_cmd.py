"""``mdsnn-zoo data``: which data sets are found, where, with how many samples per split;
``mdsnn-zoo data make n-fashion-mnist``: make the event data set from Fashion-MNIST."""

from __future__ import annotations

import argparse
import json

from mdsnn_zoo.data import count_samples, dataset_splits, list_datasets, locate
from mdsnn_zoo.errors import DatasetNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", metavar="DIR", default=None,
                        help="look only in DIR (default: $MDSNN_DATA, system folders, shipped files)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per split")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    make = sub.add_parser("make", help="make an event data set from its still images (n-fashion-mnist)",
                          description="Record Fashion-MNIST through the saccade DVS converter into "
                          "N-MNIST's file layout (resumable), then print the recordings' statistics.")
    make.add_argument("name", choices=["n-fashion-mnist"], help="the data set to make")
    make.add_argument("--split", choices=["train", "test", "all"], default="all")
    make.add_argument("--out", metavar="DIR", default=None,
                      help="output folder (default: $MDSNN_DATA/n-fashion-mnist, else "
                      "$MDSNN_HOME/data/n-fashion-mnist, where get_dataset looks)")
    make.add_argument("--source-root", metavar="DIR", default=None,
                      help="where Fashion-MNIST is (default: the usual search)")
    make.add_argument("--noise", choices=["clean", "noisy"], default="clean",
                      help="sensor noise preset (noisy: leak and shot noise, v2e's noisy preset)")
    make.add_argument("--seed", type=int, default=0, help="seeds the sensor and each sample's noise")
    make.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images of each split")
    make.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="statistics as JSON lines")
    make.add_argument("--workers", type=int, default=1, metavar="N",
                      help="processes recording at once (default 1; the files are the same for any N)")
    make.add_argument("--no-progress", dest="progress", action="store_false")


def survey(root: str | None) -> list[dict]:
    """One row per (data set, split): status ``shipped``, ``found`` or ``missing``."""
    rows = []
    for name in list_datasets():
        for split in dataset_splits(name):
            row = {"dataset": name, "split": split, "samples": None, "status": "missing",
                   "location": None}
            try:
                loc = locate(name, split, root)
                row.update(samples=count_samples(name, split, root),
                           status="shipped" if loc.shipped else "found", location=str(loc.folder))
            except DatasetNotFoundError:
                pass
            rows.append(row)
    return rows


def make(args: argparse.Namespace) -> int:
    from mdsnn_zoo.data.nmnist import make_n_fashion_mnist, statistics
    from mdsnn_zoo.data.saccades import DVSParams

    splits = ("train", "test") if args.split == "all" else (args.split,)
    out = make_n_fashion_mnist(args.out, splits, DVSParams(noise=args.noise, seed=args.seed), args.source_root,
                               limit=args.limit, progress=args.progress, workers=args.workers)
    print(f"{args.name} in {out}")
    for split in splits:
        stats = statistics(out, split)
        if args.json:
            print(json.dumps(stats))
        else:
            print(f"{split}: {stats['samples']} recordings, {stats['events_mean']:.0f} ± {stats['events_std']:.0f} "
                  f"events (min {stats['events_min']}, max {stats['events_max']}), "
                  f"{100 * stats['on_fraction']:.1f}% ON, {stats['duration_ms']:.1f} ms")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "make":
        return make(args)
    rows = survey(args.data_root)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = ("dataset", "split", "samples", "status", "location")
    table = [header] + [(r["dataset"], r["split"], "-" if r["samples"] is None else str(r["samples"]),
                         r["status"], r["location"] or "-") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    missing = sum(r["status"] == "missing" for r in rows)
    if missing:
        print(f"\n{missing} split(s) missing: put their files under --data-root DIR or $MDSNN_DATA "
              "(see README, 'Data sets'); nothing is downloaded.")
    return 0
