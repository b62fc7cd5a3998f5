"""Write the README's zoo table from the zoo's metadata (never typed by hand).

    python recipes/zoo_table.py          # rewrite the table between the markers in README.md
    python recipes/zoo_table.py --check  # exit 1 if README.md's table is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdsnn_zoo.cli.list_cmd import format_size
from mdsnn_zoo.zoo.registry import get_weights, list_models

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- zoo-table:begin -->", "<!-- zoo-table:end -->"


def table() -> str:
    lines = ["| model | data | T | bits | method | top-1 % (test) | membrane MSE to teacher | params | file |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in list_models(pretrained=True):
        m = get_weights(name)
        bits = "fp32" if m["method"] == "fp" else f"W{m['w_bits']}U{m['u_bits']}"
        mse = f"{m['membrane_mse']:.3f}" if m.get("membrane_mse") is not None else "-"
        lines.append(f"| `{name}` | {m['dataset']} | {m['time_steps']} | {bits} | {m['method']} | "
                     f"{m['top1']:.2f} | {mse} | {m['num_params'] / 1e6:.2f} M | {format_size(m['file_bytes'])} |")
    return "\n".join(lines)


def render(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{README} lacks the markers {BEGIN} and {END}")
    new = render(text)
    if args.check:
        if new != text:
            print("README.md's zoo table is out of date: run python recipes/zoo_table.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
