"""``fastmlp sweep`` and :mod:`fastmlp.sweep` without Dask (``--workers 0``), run as a user
would: the ranked table, results.csv, the figure, the refusals. On a cluster: test_dask.py."""

import csv

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

pytest.importorskip("sklearn", reason="the sweep is scikit-learn's GridSearchCV")

from sklearn.exceptions import FitFailedWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastmlp import sweep  # noqa: E402

#: a small sweep: 2 widths x 2 learning rates, 3 folds, on the train split of circles
ARGS = ["sweep", "--data", "circles", "--hidden", "4", "8 8", "--lr", "0.1", "0.5",
        "--epochs", "3", "--batch-size", "16", "--no-progress"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_help_reads_well(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sweep", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "dask worker tcp://" in out and "--workers 0" in out
    for option in ("--data", "--train-size", "--hidden", "--activation", "--lr", "--l2",
                   "--batch-size", "--optimizer", "--epochs", "--cv", "--workers",
                   "--scheduler", "--timeout", "--out", "--overwrite", "--no-progress"):
        assert option in out, option
    assert "(default: None)" not in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "sweep" in capsys.readouterr().out


def test_a_sweep_in_this_process_ranks_the_candidates_of_gridsearchcv(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(ARGS + ["--workers", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "4 candidates x 3 folds = 12 fits on 770 examples of circles, in this process" \
        in printed.err
    rows = read_csv(out / "results.csv")
    assert [row["rank"] for row in rows] == sorted((row["rank"] for row in rows), key=int)
    assert {(row["hidden"], row["lr"]) for row in rows} == {
        ("4", "0.1"), ("4", "0.5"), ("8 8", "0.1"), ("8 8", "0.5")}
    assert set(rows[0]) >= {"mean_accuracy", "std_accuracy", "fold0_accuracy",
                            "fold2_accuracy", "mean_fit_seconds", "activation", "optimizer"}
    # the same search made with scikit-learn directly: the same scores
    X, y = fastmlp.cli._arguments.load_data("circles", 0).train
    grid = {"hidden": [(4,), (8, 8)], "lr": [0.1, 0.5]}
    direct = GridSearchCV(fastmlp.MLPClassifier(epochs=3, batch_size=16), grid, cv=3).fit(X, y)
    for row in rows:
        hidden = tuple(int(w) for w in row["hidden"].split())
        i = direct.cv_results_["params"].index({"hidden": hidden, "lr": float(row["lr"])})
        assert float(row["mean_accuracy"]) == direct.cv_results_["mean_test_score"][i]
        assert int(row["rank"]) == direct.cv_results_["rank_test_score"][i]
    # the table (best first, the parameters that vary) and the best's train command
    table = printed.out.splitlines()
    assert table[0].split() == ["rank", "accuracy", "±", "std", "hidden", "lr", "fit", "s"]
    assert table[1].split()[1] == f"{float(rows[0]['mean_accuracy']):.4f}"
    best = f"--hidden {rows[0]['hidden']}" + (f" --lr {rows[0]['lr']}"
                                              if rows[0]["lr"] != "0.1" else "")
    assert f"fastmlp train --data circles --epochs 3 {best} --batch-size 16" in printed.out
    png = (out / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_sweep_refuses_to_replace_results_unless_told(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ARGS + ["--hidden", "4", "--lr", "0.5", "--workers", "0", "--out", str(out)]
    assert main(args) == 0
    before = (out / "results.csv").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a sweep (results.csv, scores.png)" in capsys.readouterr().err
    assert (out / "results.csv").read_bytes() == before
    assert main(args + ["--overwrite"]) == 0


def test_bad_values_give_a_message_naming_the_option(tmp_path, capsys):
    out = ["--out", str(tmp_path / "never")]
    for args, message in (
            (["--hidden", "256 x"], "--hidden: must be the widths of one network's hidden"),
            (["--cv", "1"], "--cv: must be an integer >= 2, got 1"),
            (["--workers", "-1"], "--workers: must be an integer >= 0, got -1"),
            (["--workers", "2", "--scheduler", "tcp://h:1"], "not allowed with argument"),
            (["--activation", "swish"], "invalid choice: 'swish'")):
        with pytest.raises(SystemExit) as info:
            main(ARGS + args + out)
        assert info.value.code == 2
        assert message in capsys.readouterr().err, args
    assert main(ARGS + ["--train-size", "5000", "--workers", "0"] + out) == 2
    assert "--train-size 5000 is more than the 770 examples" in capsys.readouterr().err
    assert main(ARGS + ["--scheduler", "no-port"] + out) == 2
    assert "--scheduler: address 'no-port' is not a Dask scheduler's address" \
        in capsys.readouterr().err
    assert not (tmp_path / "never" / "results.csv").exists()


def test_a_candidate_the_estimator_refuses_stops_the_sweep_before_any_fit():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        sweep.check_grid({"hidden": [(4,)], "batch_size": [16, 0]})
    with pytest.raises(ValueError, match="'width' is not a parameter of MLPClassifier"):
        sweep.check_grid({"width": [4]})
    with pytest.raises(TypeError, match=r"grid\['lr'\] must be a non-empty list"):
        sweep.check_grid({"lr": []})


def test_the_progress_bar_counts_every_fit_and_candidate(monkeypatch):
    ticks = []
    tick = sweep._Progress.tick
    monkeypatch.setattr(sweep._Progress, "tick", lambda self, key: (ticks.append(key),
                                                                     tick(self, key)))
    X, y = fastmlp.datasets.circles(n=120, seed=1)
    result = sweep.search(X, y, {"hidden": [(4,), (6,)], "activation": ["relu", "tanh"]},
                          base={"epochs": 2}, cv=3, progress=True)
    assert len(ticks) == 12 and len(set(ticks)) == 4
    assert all(ticks.count(key) == 3 for key in ticks)
    assert len(result.rows) == 4 and result.varied() == ("hidden", "activation")


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_a_fit_that_diverges_scores_nan_and_ranks_last():
    X, y = fastmlp.datasets.circles(n=120, seed=1)
    X = X * 1e4                                     # lr 1e3 on these: the loss overflows
    with pytest.warns(FitFailedWarning, match="training diverged"):
        result = sweep.search(X, y, {"lr": [0.01, 1e3]}, base={"epochs": 3}, cv=2,
                              progress=False)
    assert result.rows[-1]["params"] == {"lr": 1e3}
    assert np.isnan(result.rows[-1]["mean_accuracy"])
    assert "failed" in result.table().splitlines()[-1]


def test_workers_that_cannot_import_fastmlp_are_a_clear_error():
    class Client:                                  # what a cluster without fastmlp answers
        def scheduler_info(self):
            return {"workers": {"tcp://w:1": {}}}

        def submit(self, *args, **kwargs):
            return None

        def gather(self, futures):
            raise ModuleNotFoundError("No module named 'fastmlp'")

    with pytest.raises(sweep.ClusterError, match="the Dask workers cannot run fastmlp .*No "
                                                 "module named 'fastmlp'.*install it"):
        sweep.prepare(Client())
