"""``mdsnn-zoo list [PATTERN] [--pretrained]``: the zoo's entries as a table."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'vgg9.*'")
    parser.add_argument("--pretrained", action="store_true", help="only entries whose weights ship")


def format_size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def rows(pattern: str = "*", pretrained: bool = False) -> list[list[str]]:
    """Header and one row per entry: the table ``list`` prints and the README shows."""
    from mdsnn_zoo.zoo.registry import ENTRIES, _manifest, list_models

    manifest = _manifest()
    out = [["name", "data", "T", "bits", "method", "top-1 %", "file"]]
    for name in list_models(pattern, pretrained):
        e, rec = ENTRIES[name], manifest.get(name, {})
        bits = "fp32" if e.method == "fp" else f"W{e.w_bits}U{e.u_bits}"
        top1 = f"{rec['top1']:.2f}" if "top1" in rec else "-"
        out.append([name, e.dataset, str(e.time_steps), bits, e.method, top1, format_size(rec.get("file_bytes"))])
    return out


def run(args: argparse.Namespace) -> int:
    table = rows(args.pattern, args.pretrained)
    if len(table) == 1:
        print(f"no zoo model matches {args.pattern!r}" + (" with weights" if args.pretrained else ""))
        return 1
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
