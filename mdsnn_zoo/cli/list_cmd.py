"""``mdsnn-zoo list [PATTERN] [--pretrained]``: the zoo's entries as a table."""

from __future__ import annotations

import argparse

from mdsnn_zoo.zoo.listing import format_size, rows

__all__ = ["add_arguments", "format_size", "rows", "run"]  # format_size, rows: from mdsnn_zoo.zoo.listing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'vgg9.*'")
    parser.add_argument("--pretrained", action="store_true", help="only entries whose weights ship")


def run(args: argparse.Namespace) -> int:
    table = rows(args.pattern, args.pretrained)
    if len(table) == 1:
        print(f"no zoo model matches {args.pattern!r}" + (" with weights" if args.pretrained else ""))
        return 1
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
