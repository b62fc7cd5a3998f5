"""``mdsnn-zoo data``: which data sets are found, where, with how many samples per split."""

from __future__ import annotations

import argparse
import json

from mdsnn_zoo.data import count_samples, dataset_splits, list_datasets, locate
from mdsnn_zoo.errors import DatasetNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", metavar="DIR", default=None,
                        help="look only in DIR (default: $MDSNN_DATA, system folders, shipped files)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per split")


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


def run(args: argparse.Namespace) -> int:
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
