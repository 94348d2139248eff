"""The numba threads of one call: ``MLPClassifier(n_threads=...)`` and :mod:`fastmlp.threads`.

Per call and per calling thread, restored afterwards; ``None`` is the caller's share (one
thread per task in a Dask worker, faked here; a real cluster is in test_dask.py); the bits
never depend on it; several threads may fit at once.
"""

import threading
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastmlp
from fastmlp.threads import check_n_threads

from conftest import make_data

numba = pytest.importorskip("numba", reason="n_threads sets the numba backend's threads")
pytest.importorskip("sklearn", reason="the estimator needs scikit-learn")

from fastmlp.backends.numba import _workers  # noqa: E402
from fastmlp.threads import numba_threads, share  # noqa: E402

MAX_THREADS = numba.config.NUMBA_NUM_THREADS
needs_two_threads = pytest.mark.skipif(MAX_THREADS < 2, reason="numba runs a single thread here "
                                       "(NUMBA_NUM_THREADS=1 or one core)")


def deep(**kwargs):
    """A network whose layers and minibatches split into several work items."""
    return fastmlp.MLPClassifier(**{"hidden": (37, 23), "activation": ("tanh", "relu"),
                                    "batch_size": 37, "epochs": 3, "optimizer": "adam",
                                    "lr": 0.01, "backend": "numba", **kwargs})


def data(seed=0):
    return make_data(300, 21, 5, seed=seed, dtype=np.float32)


@pytest.fixture
def workers_seen(monkeypatch):
    """The worker counts the numba backend's kernels were started with."""
    seen = []
    count = _workers.worker_count

    def recording():
        seen.append(count())
        return seen[-1]

    monkeypatch.setattr(_workers, "worker_count", recording)
    return seen


@pytest.fixture
def in_a_dask_task(monkeypatch):
    """Make this thread look like a task of a Dask worker with ``nthreads`` threads."""
    def enter(nthreads, numba_num_threads=None):
        worker = types.SimpleNamespace(state=types.SimpleNamespace(nthreads=nthreads))
        monkeypatch.setitem(__import__("sys").modules, "distributed",
                            types.SimpleNamespace(get_worker=lambda: worker))
        if numba_num_threads is None:
            monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("NUMBA_NUM_THREADS", str(numba_num_threads))
            monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", numba_num_threads)
    return enter


# -- the argument ------------------------------------------------------------------------------

def test_n_threads_is_none_or_a_positive_int():
    assert check_n_threads(None) is None
    assert check_n_threads(1) == 1 and check_n_threads(np.int64(3)) == 3
    for bad in (0, -2):
        with pytest.raises(ValueError, match=r"n_threads must be at least 1, or None .*got"):
            check_n_threads(bad)
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError, match="n_threads must be a positive int or None"):
            check_n_threads(bad)


def test_the_estimator_refuses_a_bad_n_threads_in_fit_and_predict():
    X, y = data()
    with pytest.raises(ValueError, match="n_threads must be at least 1"):
        deep(n_threads=0).fit(X, y)
    clf = deep(epochs=1).fit(X, y)
    clf.set_params(n_threads="all")
    with pytest.raises(TypeError, match="n_threads must be a positive int or None"):
        clf.predict(X)
    assert fastmlp.MLPClassifier().get_params()["n_threads"] is None


# -- the share --------------------------------------------------------------------------------

def test_outside_dask_the_share_is_the_calling_threads_numba_count():
    assert share() == numba.get_num_threads()
    seen = []

    def in_a_thread():
        numba.set_num_threads(1)
        seen.append(share())

    t = threading.Thread(target=in_a_thread)
    t.start()
    t.join()
    assert seen == [1]


def test_in_a_dask_task_the_share_is_one_thread_per_worker_thread(in_a_dask_task):
    for nthreads in (1, 2, 5):
        in_a_dask_task(nthreads)
        assert share() == 1


@pytest.mark.parametrize("nthreads, numba_num_threads, expected",
                         [(1, 8, 8), (2, 8, 4), (3, 8, 2), (16, 8, 1)])
def test_in_a_dask_task_the_workers_numba_num_threads_is_divided_among_its_threads(
        in_a_dask_task, nthreads, numba_num_threads, expected):
    in_a_dask_task(nthreads, numba_num_threads)
    assert share() == expected


def test_dask_imported_but_no_task_running_is_not_a_dask_task(monkeypatch):
    def no_worker():
        raise ValueError("No worker found")

    monkeypatch.setitem(__import__("sys").modules, "distributed",
                        types.SimpleNamespace(get_worker=no_worker))
    assert share() == numba.get_num_threads()


# -- set per call, for the calling thread ------------------------------------------------------

def test_numba_threads_sets_the_count_for_the_block_and_restores_it():
    before = numba.get_num_threads()
    with numba_threads(1) as count:
        assert count == 1 == numba.get_num_threads()
    assert numba.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with numba_threads(1):
            raise RuntimeError("in the block")
    assert numba.get_num_threads() == before
    with numba_threads(10 * MAX_THREADS) as count:        # more than numba has: its maximum
        assert count == MAX_THREADS == numba.get_num_threads()


@needs_two_threads
def test_numba_threads_leaves_other_threads_alone():
    inside, outside = threading.Event(), []

    def other():
        inside.wait()
        outside.append(numba.get_num_threads())

    t = threading.Thread(target=other)
    t.start()
    with numba_threads(1):
        inside.set()
        t.join()
    assert outside == [MAX_THREADS]


@needs_two_threads
def test_fit_and_predict_run_the_kernels_on_n_threads_workers(workers_seen):
    X, y = data()
    before = numba.get_num_threads()
    for n_threads in (1, 2):
        workers_seen.clear()
        clf = deep(n_threads=n_threads).fit(X, y)
        clf.predict(X)
        assert workers_seen and set(workers_seen) == {n_threads}
        assert numba.get_num_threads() == before


def test_fit_in_a_dask_task_runs_one_worker(workers_seen, in_a_dask_task):
    in_a_dask_task(2)
    X, y = data()
    deep().fit(X, y).predict(X)
    assert workers_seen and set(workers_seen) == {1}


def test_the_other_backends_leave_numba_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(numba, "set_num_threads", lambda n: calls.append(n))
    X, y = data()
    deep(backend="numpy", n_threads=1, epochs=1).fit(X, y).predict(X)
    assert calls == []


# -- results do not depend on it ---------------------------------------------------------------

@needs_two_threads
def test_the_bits_do_not_depend_on_n_threads():
    X, y = data()
    one, two = deep(n_threads=1).fit(X, y), deep(n_threads=2).fit(X, y)
    assert one.model_.theta.tobytes() == two.model_.theta.tobytes()
    assert one.loss_curve_ == two.loss_curve_
    assert one.predict_proba(X).tobytes() == two.set_params(n_threads=1).predict_proba(X).tobytes()


@pytest.mark.parametrize("n_threads", [None, 2])
def test_two_threads_fitting_at_once_give_the_serial_results(n_threads):
    """Estimators fitted by two threads of one process at the same time (each running its
    kernels on n_threads workers, sharing the backend's worker pool) end with the bits of the
    same fits made one after another."""
    problems = [(seed, data(seed)) for seed in range(4)]

    def fit(problem):
        seed, (X, y) = problem
        clf = deep(n_threads=n_threads, random_state=seed, epochs=20).fit(X, y)
        return clf.model_.theta.tobytes(), clf.predict_proba(X).tobytes()

    serial = [fit(p) for p in problems]
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(fit, problems)) == serial


_EVERY_LAYER = """\
import multiprocessing, sys
from concurrent.futures import ThreadPoolExecutor
import numba
sys.path.insert(0, {tests!r})
from test_threads import data, deep

try:
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)      # launches the layer
except ValueError as exc:                                      # not installed here
    print("unavailable", exc)
    raise SystemExit(0)


def fit(seed):
    X, y = data(seed)
    clf = deep(n_threads=2, random_state=seed, epochs=10).fit(X, y)
    return clf.model_.theta.tobytes() + clf.predict_proba(X).tobytes()


serial = [fit(seed) for seed in range(4)]
with ThreadPoolExecutor(max_workers=2) as pool:
    assert list(pool.map(fit, range(4))) == serial, "threads"
with multiprocessing.get_context("fork").Pool(2) as children:
    assert children.map_async(fit, range(4)).get(timeout=300) == serial, "forked children"
print("layer", numba.threading_layer())
"""


@needs_two_threads
@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
def test_every_threading_layer_numba_may_pick_lets_threads_and_forked_children_fit(layer):
    """numba's layers are launched (set_num_threads does it) but never run the kernels:
    workqueue's abort on concurrent calls and OpenMP's failure after fork do not apply. Two
    threads fitting at once on 2 workers each, then forked children after the parent
    trained, give the serial bits whatever NUMBA_THREADING_LAYER says."""
    import os
    import subprocess
    import sys

    script = _EVERY_LAYER.format(tests=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, NUMBA_THREADING_LAYER=layer), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    if out.stdout.startswith("unavailable"):
        pytest.skip(f"numba's {layer} threading layer is not installed here")
    assert out.stdout.split() == ["layer", layer]


def test_an_interrupt_as_the_workers_start_returns_only_when_they_have(monkeypatch):
    """A stop signal landing right after the pool's workers started (before this thread runs
    worker 0) must not leave them writing the model while the trainer restores or saves it:
    run() raises only once every started worker has returned."""
    started, finished = [], []
    submit = _workers._submit

    def submit_then_interrupt(kernel, n_workers, args, futures):
        submit(kernel, n_workers, args, futures)
        started.extend(futures)
        raise KeyboardInterrupt

    def kernel(w, delay):
        threading.Event().wait(delay)
        finished.append(w)

    monkeypatch.setattr(_workers, "_submit", submit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _workers.run(kernel, 3, 0.3)
    assert len(started) == 2 and sorted(finished) == [1, 2]
    assert all(future.done() for future in started)
