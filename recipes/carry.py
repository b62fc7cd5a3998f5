"""Carry the long runs from one session's machine to the next through the repository.

A session's machine is laid anew, run store included, so a run folder survives only as files that
land. ``save`` copies what each run needs to resume (its logs and config; the last checkpoint with
optimizer state while the run is unfinished; weights only for its best checkpoint and for a finished
run's last; not TensorBoard) from the run store into ``recipes/carry/RUN/``; ``restore`` copies a
carried run back where the store has none or one at an earlier step. ``recipes/long_runs.sh``
restores before it trains; a session saves and commits before it stops.

    python recipes/carry.py save [RUN ...]      # default: every run folder with a last.safetensors
    python recipes/carry.py restore
    python recipes/carry.py drop RUN ...        # once a run's entries are exported and nothing needs it
    python recipes/carry.py from-zoo NAME ...   # a shipped float entry's run, rebuilt to teach a repeat
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shlex
import shutil
import sys
from pathlib import Path

from mdsnn_zoo.checkpoint import read_checkpoint, save_without_optimizer

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / "recipes" / "carry"
FILES = ("config.json", "epochs.csv", "log.csv", "exported")


def store() -> Path:
    """The run store: ``$MDSNN_RUNS`` (default ``~/.cache/mdsnn_zoo/runs``), what ``runs/`` links to."""
    return Path(os.environ.get("MDSNN_RUNS", Path.home() / ".cache" / "mdsnn_zoo" / "runs"))


def _info(run: Path) -> dict:
    path = run / "last.safetensors"
    return read_checkpoint(path)[1].get("info", {}) if path.exists() else {}


def step_of(run: Path) -> int:
    """The training step recorded in ``run/last.safetensors`` (-1 if there is none)."""
    return int(_info(run).get("step", -1))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def export_marker(run: Path) -> str:
    """The run's export marker (``recipes/fmnist_zoo.sh`` writes the sha256 of the best checkpoint it
    published), or "best" where it names the run's own best checkpoint: a carried copy holds that
    checkpoint without its optimizer state, so under another sha256."""
    marker = (run / "exported").read_text().strip() if (run / "exported").exists() else ""
    return "best" if marker and marker == _sha256(run / "best.safetensors") else marker


def up_to_date(run: Path, copy: Path) -> bool:
    """Whether ``copy`` holds ``run`` as it is: the same step, and the same export marker (written when
    the run's best checkpoint is published, which may come after its last step)."""
    return step_of(copy) == step_of(run) and export_marker(copy) == export_marker(run)


def finished(run: Path) -> bool:
    """Whether the run's last checkpoint is at the end of its learning-rate schedule (a run stopped
    early by ``--max-steps`` is not: it may be resumed further)."""
    info = _info(run)
    return info.get("epoch", 0) >= info.get("config", {}).get("epochs", float("inf")) - 1e-9


def _copy_file(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def copy_run(src: Path, dst: Path, slim: bool = False) -> None:
    """Copy a run's resume files from ``src`` to ``dst``, each written beside and renamed; ``slim``
    drops the optimizer state from the best checkpoint, and from the last one of a finished run."""
    dst.mkdir(parents=True, exist_ok=True)
    done = slim and finished(src)
    for name in ("best.safetensors", "last.safetensors"):
        if not (src / name).exists():
            continue
        if slim and (name == "best.safetensors" or done):
            save_without_optimizer(src / name, dst / name)
        else:
            _copy_file(src / name, dst / name)
    for name in FILES:
        if (src / name).exists():
            _copy_file(src / name, dst / name)
    if export_marker(src) == "best":  # the copy's best is the published one: say so by its own sha256
        (dst / "exported").write_text(_sha256(dst / "best.safetensors") + "\n")


def save(names: list[str]) -> None:
    runs = [store() / n for n in names] if names else sorted(p.parent for p in store().glob("*/last.safetensors"))
    for run in runs:
        if step_of(run) < 0:
            sys.exit(f"carry: {run} has no last.safetensors; name a run folder of {store()}")
        if up_to_date(run, CARRY / run.name):
            continue
        copy_run(run, CARRY / run.name, slim=True)
        print(f"carried {run.name} at step {step_of(run)}")


def restore() -> None:
    for carried in sorted(p.parent for p in CARRY.glob("*/last.safetensors")):
        target = store() / carried.name
        if step_of(target) < step_of(carried):
            copy_run(carried, target)
            print(f"restored {carried.name} at step {step_of(carried)}")


def drop(names: list[str]) -> None:
    for name in names:
        if not (CARRY / name).is_dir():
            sys.exit(f"carry: no carried run {name!r} in {CARRY}")
        shutil.rmtree(CARRY / name)
        print(f"dropped {name} from {CARRY}")


def from_zoo(names: list[str]) -> None:
    """Rebuild the run folder of each shipped float entry (a teacher) whose run is no longer carried:
    ``best.safetensors`` with the entry's weights (a float entry ships them as trained, float32) and the
    config its recipe's last command gives, so that students of another seed (``SEED=1
    recipes/fmnist_zoo.sh``) start from the very teacher the shipped students had."""
    from mdsnn_zoo.checkpoint import save_checkpoint
    from mdsnn_zoo.cli import build_parser
    from mdsnn_zoo.cli._train_args import config_from_args
    from mdsnn_zoo.train import resolve_data_options
    from mdsnn_zoo.zoo.registry import create_model, get_weights

    for name in names:
        meta = get_weights(name)
        if meta.w_bits is not None or not meta.pretrained:
            sys.exit(f"carry: {name} is not a shipped float entry; from-zoo rebuilds teachers only")
        argv = shlex.split(meta.recipe.split(" && ")[-1])[1:]  # the teacher's own command, after its twin's
        args = build_parser("train").parse_args(argv)
        cfg = config_from_args(args, "fp")
        cfg = dataclasses.replace(cfg, data_options=resolve_data_options(cfg))
        best = store() / Path(args.out_dir).name / "best.safetensors"
        if best.exists():
            print(f"{best} exists; left as it is")
            continue
        best.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(best, create_model(name, pretrained=True), config=dataclasses.asdict(cfg),
                        best_val_top1=meta.val_top1, from_zoo=name, sha256=meta.sha256)
        print(f"rebuilt {best} from the zoo entry {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("save", "restore", "drop", "from-zoo"))
    parser.add_argument("runs", nargs="*", help="run folder names (save: default all; drop: required), or "
                        "zoo names (from-zoo)")
    args = parser.parse_args()
    if args.action == "save":
        save(args.runs)
    elif args.action == "restore":
        restore()
    elif args.action == "drop":
        drop(args.runs)
    else:
        from_zoo(args.runs)


if __name__ == "__main__":
    main()
