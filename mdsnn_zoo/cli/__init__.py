"""The ``mdsnn-zoo`` command line: one small module per subcommand.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) ->
int``; it only parses and prints, the work is done by the library. Errors of bad input
(:class:`mdsnn_zoo.MdsnnError`) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mdsnn_zoo import __version__
from mdsnn_zoo.errors import MdsnnError

SUBCOMMANDS = ("list", "info", "eval", "finetune", "train", "distill", "plot", "bench", "data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdsnn-zoo",
        description="Quantized spiking neural networks with membrane potential-aware distillation.",
    )
    parser.add_argument("--version", action="version", version=f"mdsnn-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"mdsnn_zoo.cli.{name}_cmd")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except MdsnnError as exc:
        print(f"mdsnn-zoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdsnn-zoo: interrupted", file=sys.stderr)
        return 130
