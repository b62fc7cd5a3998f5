"""The command line: entry points, --version, and ``mdsnn-zoo data``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mdsnn_zoo import __version__
from mdsnn_zoo.cli import main


def test_python_dash_m_version():
    out = subprocess.run([sys.executable, "-m", "mdsnn_zoo", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"mdsnn-zoo {__version__}"


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "data" in capsys.readouterr().out


def test_data_shows_shipped_test_split(capsys, no_system_dirs):
    assert main(["data", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_key = {(r["dataset"], r["split"]): r for r in rows}
    assert by_key["fashion-mnist", "test"]["status"] == "shipped"
    assert by_key["fashion-mnist", "test"]["samples"] == 10000
    assert by_key["fashion-mnist", "train"]["status"] == "missing"
    assert by_key["cifar10", "train"]["samples"] is None


def test_data_with_root_counts_fixture(capsys, fmnist_root):
    assert main(["data", "--data-root", str(fmnist_root)]) == 0
    out = capsys.readouterr().out
    line = next(li for li in out.splitlines() if li.startswith("fashion-mnist  train"))
    assert line.split()[2:4] == ["7", "found"]
    assert "split(s) missing" in out


def test_bad_input_prints_one_line_and_exits_2(capsys, monkeypatch):
    from mdsnn_zoo.cli import data_cmd
    from mdsnn_zoo.errors import DatasetNotFoundError

    def broken(root):
        raise DatasetNotFoundError("fashion-mnist split 'train' not found: expected X in Y")

    monkeypatch.setattr(data_cmd, "survey", broken)
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert err == "mdsnn-zoo: error: fashion-mnist split 'train' not found: expected X in Y\n"
