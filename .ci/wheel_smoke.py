"""CI's check of the installed wheel, run from outside the checkout: every subcommand's ``--help``, then
what a new user runs first (list, info, cost, and eval of a shipped student on part of the test split)."""

from __future__ import annotations

import argparse
import subprocess
import sys
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
