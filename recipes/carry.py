"""Carry the long runs from one session's machine to the next through the repository.

A session's machine is laid anew, run store included, so a run folder survives only as files that
land. ``save`` copies what each unfinished run needs to resume (its logs and config, its last
checkpoint with optimizer state, the weights of its best; not TensorBoard) from the run store into
``recipes/carry/RUN/``, and deletes the carried copy of a run that has finished: every clone of the
repository pays for what is committed, and a finished run lives on as its exported zoo entries and
their recipes (``save`` warns of a finished run with nothing exported). ``restore`` copies a carried
run back where the store has none or one at an earlier step. ``recipes/long_runs.sh`` restores
before it trains; a session saves and commits before it stops.

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

from mdsnn_zoo.checkpoint import atomic_writer, load_checkpoint, save_without_optimizer

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / "recipes" / "carry"
FILES = ("config.json", "epochs.csv", "log.csv", "exported")


def store() -> Path:
    """The run store: ``$MDSNN_RUNS`` (default ``~/.cache/mdsnn_zoo/runs``), what ``runs/`` links to."""
    return Path(os.environ.get("MDSNN_RUNS", Path.home() / ".cache" / "mdsnn_zoo" / "runs"))


def _info(run: Path) -> dict:
    path = run / "last.safetensors"
    return load_checkpoint(path, tensors=False).info if path.exists() else {}


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
    with open(src, "rb") as f, atomic_writer(dst) as out:
        shutil.copyfileobj(f, out)


def copy_run(src: Path, dst: Path, slim: bool = False) -> None:
    """Copy a run's resume files from ``src`` to ``dst``, each written beside and renamed; ``slim``
    drops the optimizer state from the best checkpoint (the last one keeps it, to resume)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("best.safetensors", "last.safetensors"):
        if not (src / name).exists():
            continue
        if slim and name == "best.safetensors":
            save_without_optimizer(src / name, dst / name)
        else:
            _copy_file(src / name, dst / name)
    for name in FILES:
        if (src / name).exists():
            _copy_file(src / name, dst / name)
    if export_marker(src) == "best":  # the copy's best is the published one: say so by its own sha256
        (dst / "exported").write_text(_sha256(dst / "best.safetensors") + "\n")


def _runs(root: Path) -> list[Path]:
    """The run folders under ``root`` (any depth: ``int/NAME`` too), as paths relative to it."""
    return sorted(p.parent.relative_to(root) for p in root.glob("**/last.safetensors"))


def save(names: list[str]) -> None:
    for name in [Path(n) for n in names] or _runs(store()):
        run = store() / name
        if step_of(run) < 0:
            sys.exit(f"carry: {run} has no last.safetensors; name a run folder of {store()}")
        if finished(run):
            _forget(run, name)
            continue
        if up_to_date(run, CARRY / name):
            continue
        copy_run(run, CARRY / name, slim=True)
        print(f"carried {name} at step {step_of(run)}")


def _forget(run: Path, name: Path) -> None:
    """A finished run is not carried: its carried copy (if any) is deleted."""
    if (CARRY / name).is_dir():
        shutil.rmtree(CARRY / name)
        print(f"dropped {name}: finished")
    if not export_marker(run):
        print(f"carry: {name} is finished and nothing records its export: publish it with "
              "recipes/export_zoo.py before this machine goes, or only its recipe will remain", file=sys.stderr)


def restore() -> None:
    for name in _runs(CARRY):
        carried, target = CARRY / name, store() / name
        if step_of(target) < step_of(carried):
            copy_run(carried, target)
            print(f"restored {name} at step {step_of(carried)}")


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
    from mdsnn_zoo.train.data import resolve_data_options
    from mdsnn_zoo.train.flags import config_from_command
    from mdsnn_zoo.zoo.registry import create_model, get_weights

    for name in names:
        meta = get_weights(name)
        if meta.w_bits is not None or not meta.pretrained:
            sys.exit(f"carry: {name} is not a shipped float entry; from-zoo rebuilds teachers only")
        cfg = config_from_command(shlex.split(meta.recipe.split(" && ")[-1]))  # the teacher's own, after its twin's
        cfg = dataclasses.replace(cfg, data_options=resolve_data_options(cfg))
        best = store() / Path(cfg.out_dir).name / "best.safetensors"
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
