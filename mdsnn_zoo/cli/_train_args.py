"""Arguments shared by ``train``, ``distill`` and ``finetune``: one flag per TrainConfig field."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from mdsnn_zoo.train import TrainConfig

_SKIP = {"method", "arch_kwargs", "zoo_model", "data_options"}


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


_PARSERS = {int: (int, "N"), float: (float, "X"), int | None: (_parse_optional_int, "N"),
            float | None: (_parse_optional_float, "X")}  # a field's type hint -> (argparse type, metavar)


def add_config_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        hint, text = hints[f.name], f.metadata.get("help")
        common = {"default": default, "help": text if default is None else f"{text} (default: {default})"}
        if hint in (bool, bool | None):  # bool | None: unset lets the run decide (--amp: the hardware)
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        else:
            parse, metavar = _PARSERS.get(hint, (str, f.name.upper()))
            parser.add_argument(flag, type=parse, metavar=metavar, **common)
    parser.add_argument("--arch-kwargs", type=json.loads, default={}, metavar="JSON",
                        help='extra architecture arguments, e.g. \'{"width": 48}\'')
    parser.add_argument("--data-options", type=json.loads, default={}, metavar="JSON",
                        help='data set options, e.g. for imagefolder \'{"channels": 1, "size": 28}\' (default: '
                        "the shape of the model the run starts from)")


def config_from_args(args: argparse.Namespace, method: str) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in _SKIP}
    return TrainConfig(method=method, arch_kwargs=args.arch_kwargs, data_options=args.data_options, **values)


def run_training(cfg: TrainConfig) -> int:
    from mdsnn_zoo.bench.common import tune_cpu_allocator
    from mdsnn_zoo.train import train

    if cfg.device in ("auto", "cpu"):
        tune_cpu_allocator()
    result = train(cfg)
    print(json.dumps(result))
    return 0
