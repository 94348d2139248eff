"""The command line, run as a user would: through the console script's main()."""

import json
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "examples:" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--data", "--hidden", "--backend", "--epochs", "--batch-size", "--lr",
                   "--l1", "--l2", "--dtype", "--seed", "--out"):
        assert option in out, option


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_train_circles_writes_model_history_and_figure(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--data", "circles", "--hidden", "16", "--epochs", "4",
                   "--batch-size", "16", "--lr", "0.5", "--l1", "1e-4", "--l2", "1e-4", "2e-4",
                   "--backend", "numpy", "--no-progress", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "test err%" in printed and "after 4 epochs" in printed
    model = fastmlp.MLP.load(out / "model.npz")
    assert model.layers == (2, 16, 2) and model.l2 == (1e-4, 2e-4)
    history = json.loads((out / "history.json").read_text())
    assert len(history["columns"]["test_error"]) == 4
    assert history["settings"]["batch_size"] == 16
    png = (out / "learning-curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_train_text_file(tmp_path, capsys):
    X, y = fastmlp.datasets.circles(n=200, seed=3)
    path = tmp_path / "points.txt"
    np.savetxt(path, np.column_stack([X, y]), fmt="%.6f %.6f %d")
    assert main(["train", "--data", str(path), "--epochs", "2", "--no-progress",
                 "--backend", "numpy"]) == 0
    assert "after 2 epochs" in capsys.readouterr().out


def test_bad_arguments_give_a_message_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # refused by the argument parser, with its usage
        main(["train", "--data", "circles", "--batch-size", "0", "--no-progress"])
    assert info.value.code == 2
    assert "--batch-size: must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing.txt")]) == 2
    assert "neither" in capsys.readouterr().err
    assert main(["train", "--data", "circles", "--l1", "1", "2", "3"]) == 2
    assert "--l1 takes one value" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "fastmlp", "info"], capture_output=True,
                         text=True, check=True).stdout
    info = json.loads(out)
    assert info["backends"] == list(fastmlp.BACKENDS)
