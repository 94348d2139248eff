"""scikit-learn's searches over fastmlp's estimator on a real Dask cluster of worker processes.

joblib's dask backend runs the (candidate, fold) fits in the workers; the scores must be
exactly those of the same search run in this process (``n_jobs=1``), with no worker dying.
Each task runs its kernels on its share of the cores (one thread; two per task where the
worker's ``NUMBA_NUM_THREADS`` allows it). The workers load the kernels from the numba cache
that this process warms first (they share its disk), so no worker pays a compilation.
"""

import logging
import os
import sys

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="the cluster tests need dask.distributed: pip install 'fastmlp[dask]' "
                          "(make test installs it)")
pytest.importorskip("sklearn", reason="the searches are scikit-learn's")
numba = pytest.importorskip("numba", reason="the thread shares are the numba backend's")

import cloudpickle  # noqa: E402  (a dependency of distributed)
import joblib  # noqa: E402
from scipy.stats import loguniform  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp  # noqa: E402

#: the grid of the searches: depth and width, activation, learning rate (8 candidates)
GRID = {"hidden": [(8,), (8, 8)], "activation": ["relu", "tanh"], "lr": [0.1, 0.5]}
CV = 3
#: what a search's ``cv_results_`` must reproduce exactly
SCORES = ["params", "mean_test_score", "std_test_score", "rank_test_score"] + [
    f"split{i}_test_score" for i in range(CV)]


def estimator():
    return fastmlp.MLPClassifier(batch_size=16, epochs=5, backend="numba")


def data():
    return fastmlp.datasets.circles(n=240, noise=0.15, seed=0)


@pytest.fixture(scope="module", autouse=True)
def warm_cache():
    """Kernels in the on-disk cache before any worker starts, and the functions of this
    module shipped to the workers by value (they cannot import it)."""
    from fastmlp.backends import numba as backend

    backend.warmup("float32", "training")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _cluster(**kwargs):
    """A LocalCluster of worker processes and its client; this process's environment is
    restored afterwards (the nanny sets OMP_NUM_THREADS etc. in the process that starts it)."""
    environ = dict(os.environ)
    cluster = distributed.LocalCluster(processes=True, dashboard_address=None,
                                       scheduler_kwargs={"dashboard_address": ":0"},
                                       silence_logs=logging.ERROR, **kwargs)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes: a task's share is one numba thread."""
    yield from _cluster(n_workers=2, threads_per_worker=1)


@pytest.fixture(scope="module")
def two_threads_client():
    """One worker process running two tasks at once, each on two numba threads (its
    NUMBA_NUM_THREADS, 4, divided among its 2 threads): the kernels of two tasks share the
    backend's worker pool at the same moment."""
    yield from _cluster(n_workers=1, threads_per_worker=2, env={"NUMBA_NUM_THREADS": "4"})


def workers(client):
    return sorted(client.scheduler_info()["workers"])


def on_the_cluster(client, search, X, y):
    """Fit ``search`` through joblib's dask backend; check that every worker took part and
    that none died (a dead worker comes back under another address)."""
    before = workers(client)
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask", client=client):
            search.fit(X, y)
    assert workers(client) == before
    assert {task["worker"] for task in stream.data} == set(before)
    return search


def assert_same_scores(got, expected):
    for key in SCORES:
        a, b = got.cv_results_[key], expected.cv_results_[key]
        assert list(a) == list(b), key


def test_a_grid_search_on_the_cluster_gives_the_serial_scores(client):
    X, y = data()
    serial = GridSearchCV(estimator(), GRID, cv=CV, n_jobs=1).fit(X, y)
    dask = on_the_cluster(client, GridSearchCV(estimator(), GRID, cv=CV), X, y)
    assert_same_scores(dask, serial)
    assert len(serial.cv_results_["params"]) == 8
    assert dask.best_params_ == serial.best_params_
    assert (dask.best_estimator_.model_.theta.tobytes()
            == serial.best_estimator_.model_.theta.tobytes())


def test_a_randomized_search_on_the_cluster_gives_the_serial_scores(client):
    X, y = data()
    space = {"hidden": [(4,), (8,), (16, 8)], "activation": ["relu", "tanh", "logistic"],
             "lr": loguniform(0.05, 0.5)}

    def search():
        return RandomizedSearchCV(estimator(), space, n_iter=6, cv=CV, random_state=0,
                                  refit=False)

    serial = search().set_params(n_jobs=1).fit(X, y)
    assert_same_scores(on_the_cluster(client, search(), X, y), serial)


def test_a_pipeline_search_on_the_cluster_gives_the_serial_scores(client):
    X, y = data()
    X = X * np.array([100.0, 0.01]) + 5.0            # scales for the scaler to undo
    grid = {f"mlpclassifier__{name}": values for name, values in GRID.items()}

    def search():
        return GridSearchCV(make_pipeline(StandardScaler(), estimator()), grid, cv=CV,
                            refit=False)

    serial = search().set_params(n_jobs=1).fit(X, y)
    assert_same_scores(on_the_cluster(client, search(), X, y), serial)


def _a_fit_in_a_task():
    """Fit in a task: ``(share, the worker counts the kernels ran with, numba's maximum)``."""
    from fastmlp.backends.numba import _workers

    seen, count = [], _workers.worker_count

    def recording():
        seen.append(count())
        return seen[-1]

    X, y = data()
    _workers.worker_count = recording
    try:
        estimator().fit(X, y).predict(X)
    finally:
        _workers.worker_count = count
    return fastmlp.threads.share(), sorted(set(seen)), numba.config.NUMBA_NUM_THREADS


def test_a_task_of_a_single_threaded_worker_runs_one_numba_thread(client):
    for address in workers(client):
        share, seen, max_threads = client.submit(_a_fit_in_a_task, workers=[address],
                                                 pure=False).result()
        assert (share, seen) == (1, [1])
        # without the share, each task would run numba's maximum: all the cores, as here
        assert max_threads == numba.config.NUMBA_NUM_THREADS


def test_two_threads_per_worker_give_the_serial_scores(two_threads_client):
    (address,) = workers(two_threads_client)
    share, seen, max_threads = two_threads_client.submit(_a_fit_in_a_task, pure=False).result()
    assert (share, seen, max_threads) == (2, [2], 4)
    X, y = data()
    serial = GridSearchCV(estimator(), GRID, cv=CV, n_jobs=1, refit=False).fit(X, y)
    search = GridSearchCV(estimator(), GRID, cv=CV, refit=False)
    assert_same_scores(on_the_cluster(two_threads_client, search, X, y), serial)


# -- fastmlp sweep on a cluster ----------------------------------------------------------------

SWEEP = ["sweep", "--data", "circles", "--hidden", "4", "8 8", "--lr", "0.1", "0.5",
         "--epochs", "3", "--batch-size", "16", "--no-progress"]


def scores(path):
    """results.csv without the fit times."""
    import csv

    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "mean_fit_seconds"}
                for row in csv.DictReader(f)]


def test_the_sweep_on_the_cluster_gives_the_serial_rows_and_ticks_its_bar(client, monkeypatch):
    from fastmlp import sweep

    ticks = []
    tick = sweep._Progress.tick
    monkeypatch.setattr(sweep._Progress, "tick", lambda self, key: (ticks.append(key),
                                                                     tick(self, key)))
    X, y = data()
    serial = sweep.search(X, y, GRID, base={"epochs": 5, "batch_size": 16}, progress=False)
    ticks.clear()
    dask = sweep.search(X, y, GRID, base={"epochs": 5, "batch_size": 16}, client=client,
                        progress=True)
    strip = [{k: v for k, v in row.items() if k != "fit_seconds"} for row in serial.rows]
    assert strip == [{k: v for k, v in row.items() if k != "fit_seconds"} for row in dask.rows]
    # the workers' events: one per fit; the last ones may still be on their way at the end
    assert len(ticks) <= 24 and len(ticks) >= 12 and len(set(ticks)) >= 4


def test_the_sweep_command_on_a_scheduler_and_on_two_local_workers(client, tmp_path, capsys):
    from fastmlp import sweep
    from fastmlp.cli import main

    assert main(SWEEP + ["--workers", "0", "--out", str(tmp_path / "serial")]) == 0
    address = client.scheduler_info()["address"]
    assert main(SWEEP + ["--scheduler", address, "--out", str(tmp_path / "remote")]) == 0
    assert f"on the Dask cluster at {address} (2 workers); numba threads per fit: 1" \
        in capsys.readouterr().err
    assert main(SWEEP + ["--workers", "2", "--out", str(tmp_path / "local")]) == 0
    assert "on a local Dask cluster of 2 worker processes; numba threads per fit: " \
        f"{max(1, sweep.cores() // 2)}" in capsys.readouterr().err
    expected = scores(tmp_path / "serial" / "results.csv")
    assert len(expected) == 4
    assert scores(tmp_path / "remote" / "results.csv") == expected
    assert scores(tmp_path / "local" / "results.csv") == expected


def test_an_unreachable_scheduler_or_one_without_workers_is_a_clear_error(tmp_path, capsys):
    from fastmlp.cli import main

    out = ["--out", str(tmp_path / "never")]
    assert main(SWEEP + ["--scheduler", "tcp://127.0.0.1:1", "--timeout", "1"] + out) == 1
    err = capsys.readouterr().err
    assert "fastmlp: error: cannot reach a Dask scheduler at 'tcp://127.0.0.1:1' within 1 s" \
        in err and "dask scheduler" in err and "Traceback" not in err
    with distributed.LocalCluster(n_workers=0, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": ":0"},
                                  silence_logs=logging.ERROR) as empty:
        assert main(SWEEP + ["--scheduler", empty.scheduler_address, "--timeout", "1"]
                    + out) == 1
    assert "has no worker (waited 1 s): start some with `dask worker" in capsys.readouterr().err
    assert not (tmp_path / "never" / "results.csv").exists()
