"""``mdsnn-zoo info NAME``: a zoo entry's metadata as JSON."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a zoo model, e.g. small_cnn.fmnist_t4_w2u2_md (see `mdsnn-zoo list`)")


def run(args: argparse.Namespace) -> int:
    from mdsnn_zoo.zoo.registry import get_weights

    print(json.dumps(get_weights(args.name).as_dict(), indent=2))
    return 0
