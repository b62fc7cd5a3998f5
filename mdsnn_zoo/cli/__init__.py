"""The ``mdsnn-zoo`` command line: one small module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` (its help line is
in ``SUBCOMMANDS``); it only parses and prints, the work is done by the library. Errors of bad input
(:class:`mdsnn_zoo.MdsnnError`) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mdsnn_zoo import __version__
from mdsnn_zoo.errors import MdsnnError

SUBCOMMANDS = {  # name: one line of help; a subcommand's module is imported only when it runs
    "list": "list zoo models (name, data, T, bits, method, top-1, file size)",
    "info": "show a zoo model's metadata (data, T, bits, method, top-1, teacher, sha256, recipe, file)",
    "eval": "evaluate a zoo model or a checkpoint on the test split (top-1, spike rate, membrane MSE to the teacher)",
    "finetune": "fine-tune a zoo model or a checkpoint (--init), with membrane distillation when it has a teacher",
    "train": "train a float SNN (--teacher: also on a float net's soft labels), or naive QAT (cross-entropy only)",
    "distill": "train a low-bit student with membrane-aware distillation from a float teacher (--teacher)",
    "plot": "draw figures (membranes: teacher vs naive-QAT vs MD; curves: validation top-1; events: recordings)",
    "export": "write a hardware-exact student as an integer model (--format int) that NumPy alone runs "
              "(mdsnn_zoo.runtime)",
    "cost": "what a model costs on hardware (SpikeSim or digital): energy, latency, area, EDAP, TOPS/W",
    "bench": "measure throughput and print a markdown table (bench lif | mse | train), or compile the GPU kernels "
             "ahead of time (bench aot)",
    "data": "show which data sets are found and where (data make n-fashion-mnist: make the event data set)",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (for its arguments), so ``--version``,
    ``--help`` and each subcommand load no more than they use."""
    parser = argparse.ArgumentParser(
        prog="mdsnn-zoo",
        description="Quantized spiking neural networks with membrane potential-aware distillation.",
    )
    parser.add_argument("--version", action="version", version=f"mdsnn-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_line in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if name == command:
            module = importlib.import_module(f"mdsnn_zoo.cli.{name}_cmd")
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
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
