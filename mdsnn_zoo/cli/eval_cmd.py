"""``mdsnn-zoo eval CHECKPOINT``: top-1 on a data set's test split, spike rate, and for a student the
membrane MSE to its teacher."""

from __future__ import annotations

import argparse
import json

HELP = "evaluate a trained network on the test split (top-1, spike rate, membrane MSE to the teacher)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a checkpoint (.safetensors) written by train/distill/finetune")
    parser.add_argument("--teacher", default=None, help="checkpoint of the float teacher: also report the "
                        "student's membrane MSE to it (default: the teacher the student was distilled from)")
    parser.add_argument("--dataset", default=None, help="default: the one the model was trained on")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="bfloat16 autocast (default off: the exact numbers)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from mdsnn_zoo.data import get_dataset
    from mdsnn_zoo.train import _device, evaluate, model_from_checkpoint

    model, cfg = model_from_checkpoint(args.model)
    teacher_path = args.teacher or (cfg.teacher if cfg.method == "md" else None)
    teacher = model_from_checkpoint(teacher_path)[0] if teacher_path else None
    device = _device(args.device)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    data = get_dataset(args.dataset or cfg.dataset, args.split, root=args.data_root)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=False)
    with torch.inference_mode(False):
        result = evaluate(model, tqdm(loader, desc="eval", leave=False), device, args.amp, teacher)
    result = {"model": args.model, "dataset": args.dataset or cfg.dataset, "split": args.split, **result}
    print(f"top-1 {result['top1']:.2f}%  spike rate {result['spike_rate']:.4f}" +
          (f"  membrane MSE to teacher {result['membrane_mse']:.5f}" if "membrane_mse" in result else ""))
    if args.json:
        print(json.dumps(result))
    return 0
