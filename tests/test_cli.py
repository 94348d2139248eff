"""The command line, run as a user would: through the console script's main()."""

import json
import os
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
    for option in ("--data", "--hidden", "--activation", "--init", "--backend", "--epochs",
                   "--batch-size", "--lr", "--optimizer", "--momentum", "--beta1", "--beta2",
                   "--eps", "--schedule", "--early-stopping", "--patience", "--tol",
                   "--monitor", "--l1", "--l2", "--dtype", "--seed", "--out", "--overwrite"):
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
    assert "l1 lists 3 value(s) but the network has 2 weight matrices" in capsys.readouterr().err
    assert main(["train", "--data", "circles", "--hidden", "4", "4", "--activation", "relu",
                 "tanh", "relu"]) == 2
    assert "lists 3 activation(s) but the network has 2 hidden layer(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "circles", "--optimizer", "lbfgs"])
    assert "invalid choice: 'lbfgs'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gradcheck", "--eps", "-1e-6"])
    assert "--eps: must be a finite number > 0, got '-1e-6'" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "fastmlp", "info"], capture_output=True,
                         text=True, check=True).stdout
    info = json.loads(out)
    assert info["backends"] == list(fastmlp.BACKENDS)


def test_train_a_deep_network_with_adam_and_early_stopping(tmp_path, capsys):
    out = tmp_path / "deep"
    # overlapping rings: no epoch classifies everything, so the epochs' errors differ
    X, y = fastmlp.datasets.circles(n=400, noise=0.3, seed=1)
    points = tmp_path / "points.txt"
    np.savetxt(points, np.column_stack([X, y]), fmt="%.6f %.6f %d")
    status = main(["train", "--data", str(points), "--hidden", "16", "8", "--activation", "tanh",
                   "relu", "--init", "glorot", "--optimizer", "adam", "--lr", "0.01",
                   "--schedule", "cosine", "--early-stopping", "--patience", "3", "--epochs",
                   "40", "--l2", "1e-4", "0", "1e-4", "--no-progress", "--out", str(out)])
    assert status == 0
    model = fastmlp.MLP.load(out / "model.npz")
    assert model.layers == (2, 16, 8, 2) and model.activations == ("tanh", "relu")
    assert model.init == "glorot" and model.l2 == (1e-4, 0.0, 1e-4)
    history = json.loads((out / "history.json").read_text())
    assert history["settings"]["optimizer"] == {"name": "adam", "beta1": 0.9, "beta2": 0.999,
                                                "eps": 1e-8}
    assert history["settings"]["schedule"] == {"name": "cosine"}
    n = len(history["columns"]["epoch"])
    assert history["stopped_early"] and n == history["best_epoch"] + 1 + 3
    printed = capsys.readouterr().out
    assert "best epoch" in printed
    # the summary gives the metrics of the weights written: the best epoch's, not the last's
    best = history["best_epoch"]
    assert (f"after {n} epochs, the model of epoch {best + 1}: " in printed)
    summary = next(line for line in printed.splitlines() if line.startswith("after "))
    train_error = history["columns"]["train_error"]
    assert f"{train_error[best]:.2f}" != f"{train_error[-1]:.2f}"
    assert f"train error {train_error[best]:.2f}%" in summary


def test_train_softmax_regression(tmp_path):
    assert main(["train", "--data", "circles", "--hidden", "--epochs", "2", "--no-progress",
                 "--out", str(tmp_path / "lin")]) == 0
    assert fastmlp.MLP.load(tmp_path / "lin" / "model.npz").layers == (2, 2)


def test_gradcheck_a_deep_tanh_network(capsys):
    assert main(["gradcheck", "--hidden", "8", "6", "--activation", "tanh"]) == 0
    out = capsys.readouterr().out
    assert "layers=(2, 8, 6, 2), activation='tanh'" in out
    for key in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert f"\n{key} " in out
    assert out.rstrip().endswith("all checks passed")
    # wide steps on many rows: some ReLU pre-activations lie within eps of their kink
    assert main(["gradcheck", "--hidden", "5", "4", "--batch-size", "200", "--eps", "1e-2",
                 "--rtol", "1e-2"]) in (0, 1)
    out = capsys.readouterr().out
    assert "within eps of their kink" in out and "layer 1: " in out


def test_reproduce_checks_its_folder_before_any_experiment(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("in the way")
    assert main(["reproduce", "--out", str(blocked), "--quick", "--no-progress"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if os.access(readonly, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable anyway")
        assert main(["reproduce", "--out", str(readonly), "--quick", "--no-progress"]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        readonly.chmod(0o700)
