"""``fastmlp train --checkpoint-every N`` and ``--resume``, and Ctrl-C, with real processes:
a killed run resumes to the same weights as an uninterrupted one, bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

# preexec_fn makes subprocess fork (then exec at once): JAX, when a test file imported it,
# warns of forking a multithreaded process; nothing runs between the fork and the exec
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

#: epochs per backend: long enough that a run is still going when the test stops it
#: right after its first checkpoint, short enough to keep the suite fast
EPOCHS = {"loop": 30}
DEFAULT_EPOCHS = 100


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    """A small two-circles text file (168 training rows): fast even for the loop backend."""
    X, y = fastmlp.datasets.circles(n=240, seed=0)
    path = tmp_path_factory.mktemp("data") / "points.txt"
    np.savetxt(path, np.column_stack([X, y]), fmt="%.17g %.17g %d")
    return path


def command(backend, out, data, *extra):
    epochs = EPOCHS.get(backend, DEFAULT_EPOCHS)
    return ["train", "--data", str(data), "--hidden", "12", "8", "--activation", "relu", "tanh",
            "--batch-size", "16", "--optimizer", "adam", "--lr", "0.01", "--l2", "1e-4",
            "--epochs", str(epochs), "--seed", "3", "--backend", backend,
            "--no-progress", "--checkpoint-every", "5", "--out", str(out), *extra]


_reference = {}


@pytest.fixture(autouse=True)
def no_figure(monkeypatch):
    """Runs in this process skip the learning-curves figure (tested in test_cli.py): it
    would take most of this file's time. The runs in subprocesses do draw it."""
    monkeypatch.setattr("fastmlp.plots.learning_curves", lambda *args, **kwargs: None)


def reference(backend, data, tmp_path_factory):
    """The uninterrupted run (in this process: it is the same code path as the script)."""
    if backend not in _reference:
        out = tmp_path_factory.mktemp(f"reference-{backend}")
        assert main(command(backend, out, data)) == 0
        _reference[backend] = (fastmlp.MLP.load(out / "model.npz"),
                               json.loads((out / "history.json").read_text()))
    return _reference[backend]


def _as_from_a_terminal():
    """The child's stop signals at their defaults, as a command typed at a prompt has them
    (a test run started in the background, with `&`, passes SIGINT on ignored)."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def start(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "fastmlp", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_as_from_a_terminal)


def wait_for(path, proc, timeout=120):
    """Wait until ``path`` exists (the first checkpoint), failing if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before a checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.002)


def checkpoint_epoch(path):
    return fastmlp.MLP.load(path, return_extra=True)[1]["epoch"]


def stopped_run(backend, out, data, signum):
    """Start a run, stop it with ``signum`` after its first checkpoint: ``(proc, stderr)``."""
    proc = start(command(backend, out, data))
    wait_for(out / "checkpoint.npz", proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc, err


def assert_same_run(out, backend, data, tmp_path_factory):
    ref_model, ref_history = reference(backend, data, tmp_path_factory)
    model = fastmlp.MLP.load(out / "model.npz")
    for k in model.params:
        assert model.params[k].tobytes() == ref_model.params[k].tobytes(), k
    history = json.loads((out / "history.json").read_text())
    assert not history["interrupted"]
    for column in ("epoch", "lr", "train_loss", "train_error", "valid_loss", "test_error"):
        assert history["columns"][column] == ref_history["columns"][column], column


def resume(backend, out, data, capsys):
    """Resume in this process: the process that was stopped is the one that must be real."""
    capsys.readouterr()
    assert main(command(backend, out, data, "--resume")) == 0
    assert "fastmlp: resuming" in capsys.readouterr().err


def test_killed_run_resumes_to_the_same_weights(backend, points, tmp_path, tmp_path_factory,
                                                capsys):
    out = tmp_path / "run"
    proc = start(command(backend, out, points))
    wait_for(out / "checkpoint.npz", proc)
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.npz").exists()  # it really was stopped mid-run
    epoch = checkpoint_epoch(out / "checkpoint.npz")
    assert 0 < epoch < EPOCHS.get(backend, DEFAULT_EPOCHS) and epoch % 5 == 0
    resume(backend, out, points, capsys)
    assert_same_run(out, backend, points, tmp_path_factory)


@pytest.mark.parametrize("signum, status, name", [
    (signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_a_stop_signal_writes_the_completed_epochs_then_resumes(backend, points, tmp_path,
                                                                tmp_path_factory, capsys,
                                                                signum, status, name):
    if backend == "loop" and signum != signal.SIGINT:
        pytest.skip("the signals share one code path; the loop backend is slow")
    out = tmp_path / "run"
    proc, err = stopped_run(backend, out, points, signum)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert f"fastmlp: interrupted ({name}); keeping the" in err and "--resume" in err
    history = json.loads((out / "history.json").read_text())
    done = len(history["columns"]["epoch"])
    assert history["interrupted"] and 5 <= done < EPOCHS.get(backend, DEFAULT_EPOCHS)
    assert history["columns"]["epoch"] == list(range(done))
    assert (out / "learning-curves.png").read_bytes()[:4] == b"\x89PNG"
    # the model written is that of the last completed epoch, the one the checkpoint holds
    written = fastmlp.MLP.load(out / "model.npz")
    checkpoint, extra, _ = fastmlp.MLP.load(out / "checkpoint.npz", return_extra=True)
    assert extra["epoch"] == done
    assert written.theta.tobytes() == checkpoint.theta.tobytes()
    resume(backend, out, points, capsys)
    assert_same_run(out, backend, points, tmp_path_factory)


def _as_under_nohup():
    _as_from_a_terminal()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_an_ignored_sighup_stays_ignored(points, tmp_path, tmp_path_factory):
    """`nohup fastmlp train ... &` survives its terminal closing: the run completes."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "fastmlp", *command("numpy", out, points)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_under_nohup)
    wait_for(out / "checkpoint.npz", proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted" not in err
    assert_same_run(out, "numpy", points, tmp_path_factory)


def quick(out, *extra):
    """Arguments of a short run with checkpoints."""
    return ["train", "--data", "circles", "--hidden", "4", "--epochs", "4", "--lr", "0.5",
            "--backend", "numpy", "--no-progress", "--checkpoint-every", "2",
            "--out", str(out), *extra]


def test_resume_refuses_other_data_or_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick(out)) == 0
    capsys.readouterr()
    for change, expected in [
        (["--lr", "0.3"], "lr: checkpoint 0.5, now 0.3"),
        (["--hidden", "5"], "hidden: checkpoint [4], now [5]"),
        (["--activation", "tanh"], "activation: checkpoint ['relu'], now ['tanh']"),
        (["--optimizer", "adam"], "optimizer: checkpoint {'name': 'sgd'}, now {'name': 'adam'"),
        (["--schedule", "cosine"], "schedule: checkpoint 'seed', now 'cosine'"),
        (["--epochs", "6"], "epochs: checkpoint 4, now 6"),
        (["--l1", "1e-3"], "l1: checkpoint [0.0, 0.0], now [0.001, 0.001]"),
        (["--seed", "1"], "data_sha256: checkpoint"),  # the split is seeded too
    ]:
        flag, value = change
        args = quick(out, "--resume")
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "was made with other data or hyper-parameters" in err and expected in err, err


def test_resume_refuses_a_missing_or_foreign_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick(out, "--resume")) == 2
    assert "there is no checkpoint" in capsys.readouterr().err
    assert main(quick(out)) == 0
    os.replace(out / "model.npz", out / "checkpoint.npz")  # a model, not a checkpoint
    assert main(quick(out, "--resume")) == 2
    assert "not a valid fastmlp checkpoint: it is a model file" in capsys.readouterr().err
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(quick(out, "--resume")) == 2
    assert "fastmlp: error:" in capsys.readouterr().err


def test_resume_of_a_finished_run_trains_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick(out)) == 0
    before = fastmlp.MLP.load(out / "model.npz")
    assert main(quick(out, "--resume")) == 0
    assert "after epoch 4 of 4" in capsys.readouterr().err
    after = fastmlp.MLP.load(out / "model.npz")
    assert before.theta.tobytes() == after.theta.tobytes()


@pytest.mark.skipif(len(fastmlp.BACKENDS) < 2, reason="needs two backends")
def test_resume_on_another_backend_warns(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick(out)) == 0
    args = quick(out, "--resume")
    args[args.index("--backend") + 1] = next(b for b in fastmlp.BACKENDS if b != "numpy")
    assert main(args) == 0
    assert "will not be bit-identical" in capsys.readouterr().err


def test_a_failed_write_is_reported_plainly(tmp_path, capsys, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fastmlp.io.write_text_atomic", disk_full)
    out = tmp_path / "run"
    assert main(quick(out)) == 1
    err = capsys.readouterr().err
    assert f"could not write the results to {out}: [Errno 28] No space left" in err
    assert fastmlp.MLP.load(out / "model.npz")  # what was written before is whole


def test_a_folder_holding_a_run_is_not_overwritten_by_accident(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick(out)) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(quick(out)) == 2
    err = capsys.readouterr().err
    assert "already holds a run (checkpoint.npz, model.npz, history.json" in err
    assert "--resume" in err and "--overwrite" in err
    assert (out / "checkpoint.npz").read_bytes() == before
    assert main(quick(out, "--overwrite", "--seed", "1")) == 0
    assert (out / "checkpoint.npz").read_bytes() != before
    assert main(quick(out, "--overwrite", "--resume")) == 2
    assert "give one of them" in capsys.readouterr().err


def test_a_checkpoint_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    (out / "checkpoint.npz").mkdir(parents=True)           # a folder in the way: refused first
    assert main(quick(out)) == 2
    assert "checkpoint.npz exists and is not a regular file" in capsys.readouterr().err
    (out / "checkpoint.npz").rmdir()
    import fastmlp.checkpoint as cp

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cp, "save_checkpoint", disk_full)  # full disk in the middle
    assert main(quick(out)) == 0
    err = capsys.readouterr().err
    assert "could not write the checkpoint" in err and "training goes on" in err
    assert "2 checkpoint write(s) failed" in err
    history = json.loads((out / "history.json").read_text())
    assert len(history["columns"]["epoch"]) == 4                      # the run went on
    assert fastmlp.MLP.load(out / "model.npz")


def test_a_hand_edited_checkpoint_is_refused_with_the_reason(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(quick(out)) == 0
    model, extra, arrays = fastmlp.MLP.load(out / "checkpoint.npz", return_extra=True)
    for edit, expected in [
        (lambda e: e["history"]["columns"]["train_loss"].pop(), "does not hold 4 values"),
        (lambda e: e["history"]["columns"]["epoch"].__setitem__(0, "zero"), "not a finite number"),
        (lambda e: e.__setitem__("epoch", 3), "disagrees with its history of 4"),
        (lambda e: e.__setitem__("optimizer_step", -1), "step count -1"),
        (lambda e: e["settings"].pop("lr"), "settings are missing or incomplete"),
    ]:
        changed = json.loads(json.dumps(extra))
        edit(changed)
        model.save(out / "checkpoint.npz", extra=changed, extra_arrays=arrays)
        capsys.readouterr()
        assert main(quick(out, "--resume")) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and expected in err, (expected, err)


@pytest.mark.skipif("numba" not in fastmlp.BACKENDS, reason="numba is not installed")
def test_ctrl_c_during_the_first_compilation_ends_as_any_ctrl_c(tmp_path):
    """SIGINT a few seconds into a cold compile: numba's compiler must not see it (it can
    swallow it and break), the run stops once compiled, exit 130, what exists written."""
    out = tmp_path / "run"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cold-cache"))
    proc = start(["train", "--data", "circles", "--hidden", "5", "--backend", "numba",
                  "--epochs", "3", "--no-progress", "--out", str(out)], env=env)
    line = proc.stderr.readline()               # printed just before training (and compiling)
    assert line.startswith("fastmlp: MLP("), line
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "no compiled object" not in err
    assert "fastmlp: interrupted (Ctrl-C); keeping the 0 completed epoch(s)" in err
    assert json.loads((out / "history.json").read_text())["interrupted"]
    assert fastmlp.MLP.load(out / "model.npz").layers == (2, 5, 2)
