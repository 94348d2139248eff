"""A hyper-parameter search timed three ways: serially, on 2 Dask worker processes, on joblib's
loky backend with 2 processes.

    python benchmarks/sweep_speed.py [--train-size 20000] [--epochs 15] [--workers 2]

The search is scikit-learn's ``GridSearchCV`` over ``fastmlp.MLPClassifier``, the grid of
``fastmlp sweep``'s example: 12 candidates (hidden 64, 128 or 256-128; relu or tanh; lr
0.05 or 0.1) x 3 folds = 36 fits of a few seconds each (K=32, float32) on the first
``--train-size`` examples of Fashion-MNIST's train split (random pixels of that shape when
it is not installed), ``refit=False``:

* serial: ``n_jobs=1`` in this process, each fit on all the cores (numba's threads, the
  default ``n_threads=None``);
* serial-1t: the same with ``n_threads=1``, one core in all: the reference of the
  ``1 / workers`` limit;
* dask: joblib's dask backend on ``fastmlp.sweep.local_cluster(--workers)``, worker
  processes of one thread whose fits run their share of the cores (one numba thread each
  with one worker per core);
* loky: joblib's default backend, ``n_jobs=--workers`` (joblib sets each worker's
  ``NUMBA_NUM_THREADS`` to ``cores // n_jobs``).

Before timing, the numba cache is warmed here and every worker has imported fastmlp and
scikit-learn and loaded the kernels (one tiny fit), so no mode pays a compilation or a
start-up inside its time (the cluster's start-up is printed apart). All three must give the same scores. Prints the wall
times, their ratios to the serial one and the load average: compare ratios from one quiet
run (load below 1.5), never absolute times across machines.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

GRID = {"hidden": [(64,), (128,), (256, 128)], "activation": ["relu", "tanh"],
        "lr": [0.05, 0.1]}
CV = 3


def data(n):
    import fastmlp

    if fastmlp.datasets.fashion_mnist_dir() is not None:
        X, y = fastmlp.datasets.split(*fastmlp.datasets.fashion_mnist(), seed=0).train
        source = "Fashion-MNIST"
    else:
        rng = np.random.default_rng(0)
        X, y = rng.random((49_000, 784), np.float32), rng.integers(0, 10, 49_000)
        source = "random pixels (Fashion-MNIST is not installed)"
    return np.ascontiguousarray(X[:n], np.float32), y[:n], source


def search(epochs, n_threads=None):
    from sklearn.model_selection import GridSearchCV

    import fastmlp

    return GridSearchCV(fastmlp.MLPClassifier(epochs=epochs, batch_size=32, n_threads=n_threads),
                        GRID, cv=CV, refit=False)


def _ready(_):
    """In a worker: import what a fit needs (scikit-learn's search included) and load the
    kernels from the warm cache, through one tiny fit; returns the worker's pid."""
    import sklearn.model_selection  # noqa: F401  (what the search's tasks unpickle)

    import fastmlp

    X, y = fastmlp.datasets.circles(n=64)
    fastmlp.MLPClassifier(epochs=1).fit(X, y).score(X, y)
    time.sleep(0.5)                  # long enough that every worker takes one of these
    return os.getpid()


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import joblib
    from sklearn.model_selection import ParameterGrid

    from fastmlp import sweep
    from fastmlp.backends import numba as backend

    X, y, source = data(args.train_size)
    n_fits = len(ParameterGrid(GRID)) * CV
    print(f"{n_fits // CV} candidates x {CV} folds = {n_fits} fits, {args.epochs} epochs each, "
          f"on {len(y)} examples of {source}; {sweep.cores()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"numba cache warmed in {backend.warmup('float32', 'training'):.1f} s")
    times, results = {}, {}

    times["serial"], results["serial"] = timed(lambda: search(args.epochs).fit(X, y))
    times["serial-1t"], results["serial-1t"] = timed(lambda: search(args.epochs, 1).fit(X, y))

    t0 = time.perf_counter()
    with sweep.local_cluster(args.workers) as client:
        ready = client.gather([client.submit(_ready, i, pure=False)
                               for i in range(4 * args.workers)])
        print(f"dask: {args.workers} workers started and ready in "
              f"{time.perf_counter() - t0:.1f} s ({len(set(ready))} processes answered)")
        with joblib.parallel_config(backend="dask", client=client):
            times["dask"], results["dask"] = timed(lambda: search(args.epochs).fit(X, y))

    with joblib.parallel_config(backend="loky", n_jobs=args.workers):
        ready = joblib.Parallel()(joblib.delayed(_ready)(i) for i in range(4 * args.workers))
        print(f"loky: {len(set(ready))} worker processes ready")
        times["loky"], results["loky"] = timed(lambda: search(args.epochs).fit(X, y))

    scores = {name: r.cv_results_["mean_test_score"].tolist() for name, r in results.items()}
    same = all(s == scores["serial"] for s in scores.values())
    fit = {name: float(np.mean(results[name].cv_results_["mean_fit_time"]))
           for name in ("serial", "serial-1t")}
    print(f"mean fit {fit['serial']:.2f} s on all the cores, {fit['serial-1t']:.2f} s on one; "
          f"same scores in every mode: {'yes' if same else 'NO'}")
    for name, seconds in times.items():
        print(f"{name:>9}: {seconds:7.1f} s   {seconds / times['serial']:.2f} x serial   "
              f"{seconds / times['serial-1t']:.2f} x serial-1t")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
