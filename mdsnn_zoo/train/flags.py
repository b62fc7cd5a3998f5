"""The command-line flags of a :class:`~mdsnn_zoo.train.TrainConfig` (one per field, ``w_bits`` ->
``--w-bits``, with its help and default), the defaults each training command gives them, and the
config a command line asks for (:func:`config_from_command`: what a zoo entry's recipe trains)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Sequence

from mdsnn_zoo.errors import InvalidValueError
from mdsnn_zoo.train.config import TrainConfig

SKIP = {"method", "arch_kwargs", "zoo_model", "data_options"}  # set by the command, or given as JSON
COMMAND_DEFAULTS: dict[str, dict] = {  # the flags' defaults where a command's differ from TrainConfig's
    "train": {},
    "distill": {"w_bits": 2, "u_bits": 2, "lr": 0.02, "warmup_epochs": 0.0, "learn_step": False},
    # on data the zoo never saw: no flips or erasing unless asked (digits and letters have a handedness), a
    # batch sized by the data so that a few thousand images get enough steps, and a weight average that
    # steadies a 2-bit student's last epochs (benchmarks/finetune.py)
    "finetune": {"lr": 0.01, "warmup_epochs": 0.0, "learn_step": False, "augment": "crop", "batch_size": None,
                 "epochs": None, "ema_decay": 0.99},
}


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


_PARSERS = {int: (int, "N"), float: (float, "X"), int | None: (_parse_optional_int, "N"),
            float | None: (_parse_optional_float, "X")}  # a field's type hint -> (argparse type, metavar)


def add_config_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """A flag on ``parser`` for each TrainConfig field (but :data:`SKIP`), its default from
    ``defaults`` else the field's; ``--arch-kwargs`` and ``--data-options`` take JSON."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        hint, text = hints[f.name], f.metadata.get("help")
        common = {"default": default, "help": text if default is None else f"{text} (default: {default})"}
        if hint in (bool, bool | None):  # bool | None: unset lets the run decide (--amp: the hardware)
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif f.name == "augment":  # a policy; --no-augment turns it off
            parser.add_argument(flag, metavar="POLICY", **common)
            parser.add_argument("--no-augment", dest="augment", action="store_const", const="none",
                                help="no augmentation (the same as --augment none)")
        else:
            parse, metavar = _PARSERS.get(hint, (str, f.name.upper()))
            parser.add_argument(flag, type=parse, metavar=metavar, **common)
    parser.add_argument("--arch-kwargs", type=json.loads, default={}, metavar="JSON",
                        help='extra architecture arguments, e.g. \'{"width": 48}\'')
    parser.add_argument("--data-options", type=json.loads, default={}, metavar="JSON",
                        help='data set options, e.g. for imagefolder \'{"channels": 1, "size": 28}\' (default: '
                        "the shape of the model the run starts from)")


def config_from_args(args: argparse.Namespace, method: str) -> TrainConfig:
    """The config of parsed flags, trained by ``method``."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in SKIP}
    return TrainConfig(method=method, arch_kwargs=args.arch_kwargs, data_options=args.data_options, **values)


def train_method(args: argparse.Namespace) -> str:
    """What ``mdsnn-zoo train`` runs: naive QAT when given bits, else a float network."""
    return "qat" if args.w_bits is not None or args.u_bits is not None else "fp"


def config_from_command(argv: Sequence[str]) -> TrainConfig:
    """The config that ``mdsnn-zoo train ...`` or ``mdsnn-zoo distill ...`` would run, from its words
    (``argv``, with or without the leading ``mdsnn-zoo``), without running it."""
    argv = list(argv[1:] if argv and argv[0] == "mdsnn-zoo" else argv)
    if not argv or argv[0] not in ("train", "distill"):
        raise InvalidValueError(f"not a training command (mdsnn-zoo train | distill ...): {' '.join(argv)!r}")
    parser = argparse.ArgumentParser(prog=f"mdsnn-zoo {argv[0]}")
    add_config_arguments(parser, COMMAND_DEFAULTS[argv[0]])
    args = parser.parse_args(argv[1:])
    return config_from_args(args, train_method(args) if argv[0] == "train" else "md")
