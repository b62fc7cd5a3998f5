"""Publish a trained run as a zoo entry: pack its weights into ``mdsnn_zoo/zoo/weights/NAME.safetensors``
and record in ``mdsnn_zoo/zoo/manifest.json`` what ``mdsnn-zoo eval NAME`` measures on the test split.

    python recipes/export_zoo.py NAME runs/NAME/best.safetensors --recipe "the exact training command"
    python recipes/export_zoo.py NAME... --cost-only      # recompute shipped entries' cost cards
    python recipes/export_zoo.py NAME runs/NAME_s1/best.safetensors --recipe "..." --repeat
        # a rerun of a shipped entry's recipe with another seed: its test top-1 is recorded in the
        # entry's ``repeats`` (the spread of the result), its weights are not shipped

Export a teacher before its students (a student's membrane MSE is measured against the zoo teacher).
Each entry's cost card is what ``mdsnn-zoo cost NAME --hardware H --activity A --samples 256`` prints,
for both hardware models and both activities.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mdsnn_zoo import checkpoint as ckpt
from mdsnn_zoo.data import get_dataset
from mdsnn_zoo.evaluation import evaluate
from mdsnn_zoo.zoo import registry
from mdsnn_zoo.zoo.packing import save_packed


def check_fits(entry: registry.ZooEntry, cfg) -> None:
    """The run must be the entry's architecture, data, T and bits (the neurons' backend may differ: it
    computes the same network)."""
    kwargs = {k: v for k, v in cfg.arch_kwargs.items() if k != "backend"}
    want = dict(arch=entry.arch, arch_kwargs=entry.arch_kwargs, dataset=entry.dataset, time_steps=entry.time_steps,
                w_bits=entry.w_bits, u_bits=entry.u_bits)
    have = dict(arch=cfg.arch, arch_kwargs=kwargs, dataset=cfg.dataset, time_steps=cfg.time_steps,
                w_bits=cfg.w_bits, u_bits=cfg.u_bits)
    diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
    if diff:
        sys.exit(f"the run does not fit {entry.name}: (run, entry) = {diff}")


CARD_SAMPLES = 256
CARD_KEYS = ("energy_pj", "latency_ns", "area_um2", "edap", "tops_per_w", "tops_per_mm2")


def cost_card(name: str) -> dict:
    """hardware -> activity -> the totals of ``mdsnn-zoo cost NAME`` on the first 256 test samples."""
    from mdsnn_zoo.cost import measure

    card: dict = {}
    for hardware in ("spikesim", "digital"):
        for activity in ("dense", "spikes"):
            totals = measure(name, hardware, activity, CARD_SAMPLES).totals()
            card.setdefault(hardware, {})[activity] = {k: float(f"{totals[k]:.6g}") for k in CARD_KEYS}
    return card


def write_cards(names: list[str]) -> None:
    manifest = json.loads(registry.MANIFEST.read_text())
    for name in names:
        manifest[name]["cost"] = cost_card(name)
        registry.MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(json.dumps({"name": name, "cost": manifest[name]["cost"]}))


def score_on_test(model: torch.nn.Module, entry: registry.ZooEntry, teacher: torch.nn.Module | None = None) -> dict:
    """What ``mdsnn-zoo eval`` prints for ``model`` on the entry's test split."""
    loader = DataLoader(get_dataset(entry.dataset, "test", **entry.data_options), batch_size=256, shuffle=False)
    with torch.inference_mode(False):
        result = evaluate(model, loader, torch.device("cpu"), False, teacher)
    return {k: round(v, 6) for k, v in result.items() if k != "samples"}


FINE_TUNED_FROM_KEYS = ("sha256", "top1", "val_top1", "recipe", "repeats")


def replaced_record(previous: dict | None, sha256: str, fine_tuned: bool) -> dict | None:
    """What an entry keeps of the record it replaces: a fine-tune of the shipped entry keeps that entry's
    result (``fine_tuned_from``: its sha256, top1, val_top1, recipe and repeats, the seeds its recipe ran);
    the same weights exported again keep what they had; anything else keeps nothing."""
    if not previous:
        return None
    if previous.get("sha256") == sha256:
        return previous.get("fine_tuned_from")
    if fine_tuned:
        return {k: previous[k] for k in FINE_TUNED_FROM_KEYS if k in previous}
    return None


def record_repeat(entry: registry.ZooEntry, checkpoint: str, recipe: str) -> None:
    """Score the checkpoint of a rerun with another seed and record it in the shipped entry's ``repeats``."""
    from mdsnn_zoo.train.build import model_from_checkpoint

    manifest = json.loads(registry.MANIFEST.read_text())
    if entry.name not in manifest:
        sys.exit(f"{entry.name} is not shipped: export it (without --repeat) before recording its repeats")
    run = ckpt.load_checkpoint(checkpoint, tensors=False)
    info, cfg = run.info, run.config
    check_fits(entry, cfg)
    if cfg.seed == 0:
        sys.exit(f"{checkpoint} was trained with seed 0, the shipped entry's: a repeat has another --seed")
    model, _ = model_from_checkpoint(checkpoint)
    record = {"top1": score_on_test(model, entry)["top1"], "val_top1": info.get("best_val_top1"), "recipe": recipe,
              "sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()}
    manifest[entry.name].setdefault("repeats", {})[str(cfg.seed)] = record
    registry.MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"name": entry.name, "seed": cfg.seed, **record}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="+", metavar="NAME CHECKPOINT | NAME...",
                        help="the entry and its run's checkpoint; with --cost-only, shipped entries")
    parser.add_argument("--recipe", help="the exact command(s) that trained the run")
    parser.add_argument("--cost-only", action="store_true", help="only recompute the entries' cost cards")
    parser.add_argument("--repeat", action="store_true",
                        help="the run is the entry's recipe with another seed: record its test top-1, ship nothing")
    args = parser.parse_args()
    if args.cost_only:
        write_cards(args.what)
        return
    if len(args.what) != 2 or not args.recipe:
        parser.error("an export takes NAME CHECKPOINT --recipe CMD")
    args.name, args.checkpoint = args.what
    entry = registry.get_entry(args.name)
    if args.repeat:
        record_repeat(entry, args.checkpoint, args.recipe)
        return
    run = ckpt.load_checkpoint(args.checkpoint)
    info, cfg = run.info, run.config
    check_fits(entry, cfg)

    model = registry.build_entry_model(entry, bias_frac_bits=cfg.bias_frac_bits, scale_bits=cfg.scale_bits)
    model.load_state_dict(run.model_state)
    out = registry.HERE / "weights" / f"{entry.name}.safetensors"
    out.parent.mkdir(exist_ok=True)
    sha = save_packed(model, out, {"name": entry.name, "step": info.get("step")})
    manifest = json.loads(registry.MANIFEST.read_text()) if registry.MANIFEST.exists() else {}
    before = replaced_record(manifest.get(entry.name), sha, cfg.zoo_model == entry.name)
    manifest[entry.name] = {"file": out.name, "sha256": sha, "file_bytes": out.stat().st_size,
                            "num_params": sum(p.numel() for p in model.parameters()),
                            "val_top1": info.get("best_val_top1"), "recipe": args.recipe,
                            "trained_on": "; ".join(filter(None, (info.get("machine"), info.get("precision"))))
                            or "CPU (2 threads), bfloat16 autocast",  # what runs before these were recorded used
                            "date": datetime.date.today().isoformat()}
    if cfg.w_bits is not None:
        manifest[entry.name]["bias_frac_bits"] = cfg.bias_frac_bits
        manifest[entry.name]["learn_edge_scales"] = cfg.learn_edge_scales
        if cfg.scale_bits is not None:  # hardware-exact: the entry is built on the same grid
            manifest[entry.name]["scale_bits"] = cfg.scale_bits
    if before:
        manifest[entry.name]["fine_tuned_from"] = before
    registry.MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    registry._manifest.cache_clear()

    # what `mdsnn-zoo eval NAME` prints: the packed file, loaded the way users load it
    model = registry.create_model(entry.name, pretrained=True)
    teacher = registry.create_model(entry.teacher, pretrained=True) if entry.teacher else None
    manifest[entry.name].update(score_on_test(model, entry, teacher))
    manifest[entry.name]["cost"] = cost_card(entry.name)
    registry.MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"name": entry.name, **manifest[entry.name]}))


if __name__ == "__main__":
    main()
