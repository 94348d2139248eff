"""`fastmlp reproduce --quick`: the seed's experiments as files, run as a user would."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import reproduce as rp
from fastmlp.cli import main
from conftest import needs_fashion

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BOUNDARY_FILES = ("boundaries-hidden.png", "boundaries-epochs.png", "boundaries-weight-decay.png")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``fastmlp reproduce --quick`` into a fresh folder, shared by the tests below."""
    out = tmp_path_factory.mktemp("reproduce-quick")
    status = main(["reproduce", "--quick", "--no-progress", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    return out, status, results


def _no_fashion_mnist(monkeypatch, tmp_path):
    """Make fastmlp look for Fashion-MNIST only where it is not."""
    monkeypatch.delenv(fastmlp.datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(fastmlp.datasets, "SYSTEM_DIR", str(tmp_path / "no-such-folder"))


def _assert_valid_png(path):
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path.name
    assert len(data) < 400_000, f"{path.name} is {len(data)} bytes"
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600, (path.name, image.shape)
    assert image[..., :3].std() > 0.05, f"{path.name} looks blank"


def _finite_numbers(obj, where="results"):
    """Every float in a JSON tree, with its path; asserts none is NaN or infinite."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _finite_numbers(value, f"{where}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _finite_numbers(value, f"{where}[{i}]")
    elif isinstance(obj, float):
        assert math.isfinite(obj), where


@pytest.mark.slow
def test_quick_run_succeeds_with_every_file(quick_run):
    out, status, results = quick_run
    assert results["failed"] == {}, results["failed"]
    assert status == 0
    expected = ["gradcheck.txt", *BOUNDARY_FILES, "speed.png", "results.json"]
    if fastmlp.datasets.fashion_mnist_dir() is not None:
        expected.append("learning-curves.png")
    for name in expected:
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_gradcheck_text_names_every_parameter(quick_run):
    out, _, results = quick_run
    text = (out / "gradcheck.txt").read_text()
    for name in ("W1", "b1", "W2", "b2"):
        assert name in text, name
    assert results["experiments"]["gradcheck"]["file"] == "gradcheck.txt"


@pytest.mark.slow
def test_boundary_figures_and_their_numbers(quick_run):
    out, _, results = quick_run
    for name in BOUNDARY_FILES:
        _assert_valid_png(out / name)
    exp = results["experiments"]["boundaries"]
    assert exp["data"]["split"] == [770, 165, 165]
    for stem, (varied, values, _) in rp.BOUNDARY_GRIDS.items():
        grid = exp["grids"][stem]
        assert grid["file"] == f"boundaries-{stem}.png" and grid["varied"] == varied
        assert [panel[varied] for panel in grid["panels"]] == list(values)
        for panel in grid["panels"]:
            for key, base in rp.CIRCLES_BASE.items():
                if key != varied:
                    assert panel[key] == base, (stem, key)
            for key in ("train_error", "valid_error", "test_error"):
                assert 0.0 <= panel[key] <= 100.0
    # the large network after 30 epochs is a good classifier on this data
    assert exp["grids"]["hidden"]["panels"][0]["test_error"] < 10.0


@pytest.mark.slow
def test_boundary_numbers_are_those_of_the_retrained_model(quick_run):
    """Reproducible: the same seed retrains the same model, to the same test error."""
    _, _, results = quick_run
    panel = results["experiments"]["boundaries"]["grids"]["hidden"]["panels"][2]
    seed = results["seed"]
    X, y = fastmlp.datasets.circles(n=rp.CIRCLES_POINTS, noise=rp.CIRCLES_NOISE, seed=seed)
    split = fastmlp.datasets.split(X, y, seed=seed)
    lam = panel["lam"]
    model = fastmlp.MLP((2, panel["hidden"], 2), l1=(lam, lam), l2=(lam, lam), seed=seed)
    history = fastmlp.train(model, split, backend=results["backend"], epochs=panel["epochs"],
                            batch_size=panel["batch_size"], lr=panel["lr"], seed=seed,
                            progress=False)
    assert history.last["test_error"] == panel["test_error"]


@pytest.mark.slow
def test_speed_covers_every_backend(quick_run):
    out, _, results = quick_run
    _assert_valid_png(out / "speed.png")
    speed = results["experiments"]["speed"]
    assert set(speed["backends"]) == set(fastmlp.BACKENDS)
    for name, t in speed["backends"].items():
        assert t["seconds_per_epoch"] > 0 and math.isfinite(t["seconds_per_epoch"])
        assert len(t["measured_seconds"]) == t["rounds"] >= 1
        # quick mode times subsets: the extrapolation is declared
        assert t["extrapolated"] == (t["examples_timed"] < rp.EPOCH_EXAMPLES)
        assert t["seconds_per_epoch"] == pytest.approx(
            min(t["measured_seconds"]) * rp.EPOCH_EXAMPLES / t["examples_timed"])
    assert speed["seed_published_seconds"]["loop"] == 147.7
    assert speed["seed_published_seconds"]["matrix"] == 13.0
    assert speed["settings"]["batch_size"] == 20 and speed["settings"]["lam"] == 1e-3


@pytest.mark.slow
def test_results_json_records_settings_seeds_and_machine(quick_run):
    _, _, results = quick_run
    _finite_numbers(results)
    assert results["quick"] is True and results["seed"] == 0
    assert results["backend"] == fastmlp.fastest_backend()
    assert results["fastmlp"] == fastmlp.__version__
    machine = results["machine"]
    for key in ("cpu", "logical_cores", "python", "numpy", "fastmlp", "backends"):
        assert machine[key], key
    assert machine["numpy"] == np.__version__
    assert results["wall_seconds"] > 0


@needs_fashion
@pytest.mark.slow
def test_learning_curves_on_a_subset(quick_run):
    out, _, results = quick_run
    _assert_valid_png(out / "learning-curves.png")
    curves = results["experiments"]["learning-curves"]
    assert curves["data"]["examples_used"] == rp.QUICK.curve_examples
    assert curves["settings"]["layers"] == [784, 64, 10]
    assert curves["settings"]["batch_size"] == 32 and curves["settings"]["lr"] == 0.1
    columns = curves["history"]["columns"]
    assert len(columns["test_error"]) == rp.QUICK.curve_epochs
    for key in ("train_eval_error", "valid_error", "test_error", "train_eval_loss",
                "valid_loss", "test_loss"):
        assert all(math.isfinite(x) for x in columns[key]), key
    assert curves["final"]["test_accuracy"] == pytest.approx(100 - columns["test_error"][-1])
    assert curves["final"]["test_accuracy"] > 70.0  # even 3 short epochs learn something


def test_without_fashion_mnist_the_rest_runs_and_says_how_to_get_it(monkeypatch, tmp_path,
                                                                    capsys):
    _no_fashion_mnist(monkeypatch, tmp_path)
    out = tmp_path / "out"
    status = main(["reproduce", "--quick", "--no-progress", "--only", "learning-curves",
                   "speed", "--out", str(out)])
    assert status == 0
    err = capsys.readouterr().err
    assert "skipped learning-curves" in err and "dataset-fashion-mnist" in err
    results = json.loads((out / "results.json").read_text())
    assert "dataset-fashion-mnist" in results["skipped"]["learning-curves"]
    assert not (out / "learning-curves.png").exists()
    # the timing workload needs only the shape of the data: it runs, and says so
    assert "random" in results["experiments"]["speed"]["data"]["name"]
    _assert_valid_png(out / "speed.png")


def test_one_failing_experiment_keeps_the_others(monkeypatch, tmp_path, capsys):
    import fastmlp.datasets

    _no_fashion_mnist(monkeypatch, tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("figure code broke")

    # broken before any training, so that the test stays quick
    monkeypatch.setattr(fastmlp.datasets, "circles", broken)
    out = tmp_path / "out"
    status = main(["reproduce", "--quick", "--no-progress", "--only", "boundaries",
                   "learning-curves", "--out", str(out)])
    assert status == 1
    assert "FAILED boundaries: RuntimeError: figure code broke" in capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert "boundaries" in results["failed"] and "learning-curves" in results["skipped"]


def test_bad_arguments_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="only"):
        rp.reproduce(tmp_path, only=["boundaries", "nope"], progress=False)
    with pytest.raises(ValueError, match="only"):
        rp.reproduce(tmp_path, only="speed", progress=False)
    with pytest.raises(ValueError, match="backend"):
        rp.reproduce(tmp_path, backend="fortran", progress=False)
    with pytest.raises(ValueError, match="seed"):
        rp.reproduce(tmp_path, seed=-1, progress=False)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="out="):
        rp.reproduce(tmp_path / "a-file", progress=False)
    with pytest.raises(SystemExit):
        main(["reproduce", "--quick"])  # --out is required
    assert "--out" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = capsys.readouterr().out
    for option in ("--out", "--quick", "--backend", "--only", "--seed", "--data-dir",
                   "--no-progress"):
        assert option in out, option


def test_the_command_line_stays_cheap_to_start():
    code = ("import sys, fastmlp.cli, fastmlp.reproduce; fastmlp.cli.build_parser(); "
            "print(sorted(m for m in ('matplotlib', 'numba', 'sklearn', 'torch', 'tqdm') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
