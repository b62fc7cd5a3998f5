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
    from mdsnn_zoo.cli import SUBCOMMANDS

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for name, help_line in SUBCOMMANDS.items():
        assert f"{name} {' '.join(help_line.split())[:40]}" in out, name


@pytest.mark.parametrize("command", ["train", "distill", "finetune"])
def test_every_training_flag_says_what_it_does_and_its_default(command):
    """Every flag has help; each TrainConfig flag shows its default (the subcommand's own, e.g. distill's lr)."""
    import dataclasses

    from mdsnn_zoo.cli import build_parser
    from mdsnn_zoo.cli._train_args import _SKIP
    from mdsnn_zoo.train import TrainConfig

    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.choices and command in a.choices).choices[command]
    flags = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    config_fields = {f.name for f in dataclasses.fields(TrainConfig)} - _SKIP  # _SKIP: set otherwise, or JSON
    assert config_fields <= {a.dest for a in flags} and len(config_fields) > 35
    for action in flags:
        assert action.help, f"--{action.dest} has no help"
        if action.default is not None and action.dest in config_fields:
            assert f"(default: {action.default})" in action.help, action.dest
    lr = next(a for a in flags if a.dest == "lr")
    assert lr.help.endswith(f"(default: {lr.default})") and lr.default == (0.1 if command == "train" else
                                                                            0.02 if command == "distill" else 0.01)


def test_import_and_version_load_no_torch():
    """``import mdsnn_zoo`` and ``mdsnn-zoo --version`` import neither torch nor a subcommand."""
    code = ("import sys, mdsnn_zoo; from mdsnn_zoo.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.endswith('_cmd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines() == [f"mdsnn-zoo {__version__}", "[]"]


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
    line = next(li for li in out.splitlines() if li.split()[:2] == ["fashion-mnist", "train"])
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
