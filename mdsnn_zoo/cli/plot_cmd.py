"""``mdsnn-zoo plot membranes | curves | events``: one layer's membrane traces and histograms, teacher
vs students; validation top-1 per epoch of training runs; a few event recordings per saccade."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    p = sub.add_parser("membranes", help="membrane traces and histograms of one layer",
                       description="Teacher, naive QAT student and MD student on the same test images: "
                       "the membrane mismatch that MD removes.")
    p.add_argument("--teacher", required=True, help="checkpoint of the float teacher")
    p.add_argument("--qat", help="checkpoint of the naive QAT student")
    p.add_argument("--md", help="checkpoint of the MD student")
    p.add_argument("--layer", default=None, help="LIF module name (default: the second LIF layer)")
    p.add_argument("--dataset", default=None, help="default: the teacher's data set")
    p.add_argument("--data-root", default=None)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--out", default="membranes.png")
    c = sub.add_parser("curves", help="validation top-1 per epoch of training runs",
                       description="One panel per architecture family, one line per run folder.")
    c.add_argument("runs", nargs="+", help="run folders (with log.csv, epochs.csv, config.json)")
    c.add_argument("--title", default=None)
    c.add_argument("--out", default="curves.png")
    e = sub.add_parser("events", help="a few recordings of an event data set, ON and OFF per saccade",
                       description="One recording per class (the first of each) of an N-MNIST-layout data "
                       "set, its events split into three equal-duration phases.")
    e.add_argument("dataset", choices=["n-fashion-mnist", "n-mnist"])
    e.add_argument("--split", default="test")
    e.add_argument("--data-root", default=None)
    e.add_argument("--samples", type=int, default=4)
    e.add_argument("--out", default="events.png")


def events(args: argparse.Namespace) -> int:
    from mdsnn_zoo.data import dataset_info, locate, nmnist
    from mdsnn_zoo.data.events import read_events
    from mdsnn_zoo.plot import plot_events

    info = dataset_info(args.dataset)
    paths, labels = nmnist.recordings(args.split, locate(args.dataset, args.split, args.data_root).folder)
    first = {}
    for path, label in zip(paths, labels, strict=True):
        first.setdefault(label, path)
    chosen = sorted(first.items())[: args.samples]
    samples = [(read_events(path), f"{info.classes[label]} ({path.name})") for label, path in chosen]
    print(plot_events(samples, args.out, nmnist.SENSOR_SIZE))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.figure == "events":
        return events(args)
    if args.figure == "curves":
        from mdsnn_zoo.plot import plot_curves

        print(plot_curves(args.runs, args.out, args.title))
        return 0
    import torch
    from torch.utils.data import DataLoader

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.distill import lif_layers
    from mdsnn_zoo.plot import plot_membranes, record_layer
    from mdsnn_zoo.train import model_from_checkpoint

    models, cfg = {}, None
    for name in ("teacher", "qat", "md"):
        path = getattr(args, name)
        if path:
            models[name], c = model_from_checkpoint(path)
            cfg = cfg or c
    layer = args.layer or lif_layers(models["teacher"])[min(1, len(lif_layers(models["teacher"])) - 1)]
    data = get_dataset(args.dataset or cfg.dataset, "test", root=args.data_root)
    x, _ = next(iter(DataLoader(data, batch_size=args.samples, shuffle=False)))
    torch.manual_seed(0)
    path = plot_membranes(record_layer(models, layer, x), layer, args.out)
    print(path)
    return 0
