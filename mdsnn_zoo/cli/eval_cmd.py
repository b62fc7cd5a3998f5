"""``mdsnn-zoo eval NAME | CHECKPOINT``: top-1 on a data set's test split, spike rate, and for a
student the membrane MSE to its teacher."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")


def load_model(ref: str):
    """(model, dataset, data options, its teacher's reference or None) for a zoo name or a checkpoint
    path; the data options read its data set as it was trained (an image folder's shape and statistics)."""
    from mdsnn_zoo.train import model_from_checkpoint
    from mdsnn_zoo.zoo.registry import create_model, get_entry

    if ref.endswith(".safetensors") or Path(ref).exists():
        model, cfg = model_from_checkpoint(ref)
        return model, cfg.dataset, cfg.data_options, cfg.teacher if cfg.method == "md" else None
    e = get_entry(ref)  # an unknown name raises, listing the closest ones
    return create_model(ref, pretrained=True), e.dataset, e.data_options, e.teacher


def data_options_for(model_dataset: str, model_options: dict, dataset: str, root: str | None = None) -> dict:
    """Options to read ``dataset`` (found in ``root``) for a model trained on ``model_dataset``: its own
    options on its own data; on other event data its number of frames, and for a folder of your own
    images or recordings the model's input shape (and binning)."""
    from mdsnn_zoo.data import complete_options, dataset_info, dataset_kind, shape_from_files

    if dataset == model_dataset:
        return dict(model_options)
    options = {}
    if dataset_kind(dataset) == "events":  # an event folder takes the binning too
        carried = ("time_steps", "binning") if shape_from_files(dataset) else ("time_steps",)
        options = {k: model_options[k] for k in carried if k in model_options}
    if not shape_from_files(dataset):
        return options
    shape = dataset_info(model_dataset, **model_options).input_shape
    return complete_options(dataset, root, shape, **options)


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.train import _device, evaluate

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
    device = _device(args.device)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    dataset = args.dataset or trained_on
    read_as = data_options_for(trained_on, options, dataset, args.data_root)
    data = get_dataset(dataset, args.split, root=args.data_root, **read_as)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=False)
    with torch.inference_mode(False):
        result = evaluate(model, tqdm(loader, desc="eval", leave=False), device, args.amp, teacher)
    result = {"model": args.model, "dataset": dataset, "split": args.split, **result}
    print(f"top-1 {result['top1']:.2f}%  spike rate {result['spike_rate']:.4f}" +
          (f"  membrane MSE to teacher {result['membrane_mse']:.5f}" if "membrane_mse" in result else ""))
    if args.json:
        print(json.dumps(result))
    return 0
