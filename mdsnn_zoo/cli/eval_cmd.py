"""``mdsnn-zoo eval NAME | CHECKPOINT``: top-1 on a data set's test split, spike rate, and for a
student the membrane MSE to its teacher."""

from __future__ import annotations

import argparse
import json


def __getattr__(name: str):
    """``load_model`` and ``data_options_for``, which live in :mod:`mdsnn_zoo.evaluation` (imported on use)."""
    if name in ("load_model", "data_options_for"):
        from mdsnn_zoo import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a zoo model name (see `mdsnn-zoo list --pretrained`) or a checkpoint "
                        "(.safetensors) written by train/distill/finetune")
    parser.add_argument("--teacher", default=None, help="zoo name or checkpoint of the float teacher: also report "
                        "the student's membrane MSE to it (default: the student's own teacher)")
    parser.add_argument("--dataset", default=None, help="default: the one the model was trained on")
    parser.add_argument("--data-root", default=None, help="default: the shipped Fashion-MNIST test split, "
                        "or $MDSNN_DATA")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="bfloat16 autocast (default off: the exact numbers)")
    parser.add_argument("--backend", default=None, help="QuantLIFNode backend (default: the best one here)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="score only the split's first N samples (a quick check; the zoo's top-1 is the whole "
                        "split's)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.errors import InvalidValueError
    from mdsnn_zoo.evaluation import data_options_for, evaluate, load_model
    from mdsnn_zoo.machine import resolve_device

    model, trained_on, options, teacher_ref = load_model(args.model)
    teacher_ref = args.teacher or teacher_ref
    teacher = load_model(teacher_ref)[0] if teacher_ref else None
    if args.backend:
        from mdsnn_zoo.backends import check
        from mdsnn_zoo.neuron import QuantLIFNode

        check(args.backend, "lif")
        for m in [*model.modules(), *(teacher.modules() if teacher is not None else [])]:
            if isinstance(m, QuantLIFNode):
                m.backend = args.backend
    device = resolve_device(args.device)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    dataset = args.dataset or trained_on
    read_as = data_options_for(trained_on, options, dataset, args.data_root)
    data = get_dataset(dataset, args.split, root=args.data_root, **read_as)
    if args.limit is not None:
        if args.limit < 1:
            raise InvalidValueError(f"--limit must be a positive number of samples, got {args.limit}")
        data = Subset(data, range(min(args.limit, len(data))))
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=False)
    with torch.inference_mode(False):
        result = evaluate(model, tqdm(loader, desc="eval", leave=False), device, args.amp, teacher)
    result = {"model": args.model, "dataset": dataset, "split": args.split, **result}
    print(f"top-1 {result['top1']:.2f}% of {result['samples']}  spike rate {result['spike_rate']:.4f}" +
          (f"  membrane MSE to teacher {result['membrane_mse']:.5f}" if "membrane_mse" in result else ""))
    if args.json:
        print(json.dumps(result))
    return 0
