"""The wheel a user installs holds every module and data file of the source tree (a hand-kept package
list once dropped ``mdsnn_zoo.cost`` from it), with ``kernels/`` as ``mdsnn_zoo.kernels``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _source_files() -> set[str]:
    """What the wheel must hold: every file under mdsnn_zoo/ and kernels/ that git tracks or would track (not
    ignored), as installed."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "mdsnn_zoo", "kernels"],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout.strip():
        files = [Path(line) for line in listed.stdout.splitlines() if (ROOT / line).is_file()]
    else:  # not a git checkout (an unpacked sdist): every file but caches
        files = [p.relative_to(ROOT) for top in ("mdsnn_zoo", "kernels") for p in (ROOT / top).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts]
    return {("mdsnn_zoo/" + str(p)) if p.parts[0] == "kernels" else str(p) for p in files}


def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    src = tmp_path / "src"  # a copy: a build in the checkout would reuse its build/ (and modules deleted since)
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "NOTICE"):
        shutil.copy2(ROOT / name, src / name)
    for top in ("mdsnn_zoo", "kernels"):
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("mdsnn_zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    want = _source_files()
    assert "mdsnn_zoo/cost/__init__.py" in want and "mdsnn_zoo/kernels/lif.cu" in want
    assert not want - names, f"missing from the wheel: {sorted(want - names)}"
    stray = {n for n in names if not n.startswith(("mdsnn_zoo/", "mdsnn_zoo-"))}
    assert not stray, f"outside the package: {sorted(stray)}"  # no top-level kernels/ or tests/
