"""Hyper-parameter searches: scikit-learn's ``GridSearchCV`` over ``MLPClassifier``, on Dask.

    >>> from fastmlp import sweep
    >>> with sweep.local_cluster() as client:          # or sweep.connect("tcp://host:8786")
    ...     result = sweep.search(X, y, {"hidden": [(64,), (256, 128)], "lr": [0.05, 0.1]},
    ...                           base={"epochs": 10}, cv=3, client=client)
    >>> print(result.table())                          # best first; result.rows as dicts
    >>> result.write_csv("results.csv")

A thin layer over the two libraries: ``GridSearchCV`` makes the fits (every candidate on
every fold), scores and ranks them; joblib's dask backend runs them as tasks on the cluster's
workers (``client=None``: one after another in this process). This module adds what a
command needs around them: the workers checked and their kernels loaded before the search
(:func:`prepare`), a progress bar over candidates, the results as rows, a table and a CSV
file; ``fastmlp.plots.sweep_scores`` draws them. The progress bar is fed by the search's
scorer, the estimator's accuracy: after each fit it ticks here, or from a worker as a Dask
event (``log_event``) that the client subscribes to.

Each fit in a worker runs its numba kernels on its share of the cores (one thread per task,
see :mod:`fastmlp.threads`); :func:`local_cluster` sets each worker's ``NUMBA_NUM_THREADS``
to its share of the machine, so fewer workers than cores still use every core.

Needs scikit-learn and, for a cluster, ``dask.distributed`` (``pip install 'fastmlp[dask]'``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from . import _validation as v

#: the progress bars' listeners in this process: topic -> callable(candidate key)
_LISTENERS = {}


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the search: unreachable, no worker, no fastmlp there."""


def format_value(value):
    """A parameter's value as results.csv and the table write it: widths as "256 128"."""
    if isinstance(value, tuple):
        return " ".join(str(w) for w in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _candidate(params, names):
    """What identifies a candidate among the fits' parameters (the grid's names)."""
    return repr(tuple(params[name] for name in names))


class ProgressScorer:
    """The search's scoring: the estimator's accuracy (``estimator.score``), and after each
    fit a tick, with the candidate's identity, to the progress bar listening on ``topic``:
    directly in this process, else as an event of the Dask worker running the fit."""

    def __init__(self, topic, names):
        self.topic = topic
        self.names = tuple(names)

    def __call__(self, estimator, X, y):
        score = estimator.score(X, y)
        key = _candidate(estimator.get_params(), self.names)
        listener = _LISTENERS.get(self.topic)
        if listener is not None:
            listener(key)
        else:
            from .threads import _dask_worker

            worker = _dask_worker()
            if worker is not None:
                worker.log_event(self.topic, key)
        return score


class _Progress:
    """A tqdm bar over candidates: one is done when its ``folds`` fits are."""

    def __init__(self, n_candidates, folds, enabled):
        from tqdm.auto import tqdm

        self.folds, self.fits, self.done = folds, {}, 0
        self.total_fits = n_candidates * folds
        self.bar = tqdm(total=n_candidates, unit="candidate", disable=not enabled,
                        desc="sweep", dynamic_ncols=True)
        self.bar.set_postfix_str(f"fits 0/{self.total_fits}")

    def tick(self, key):
        self.fits[key] = self.fits.get(key, 0) + 1
        self.done += 1
        if self.fits[key] == self.folds:
            self.bar.update(1)
        self.bar.set_postfix_str(f"fits {self.done}/{self.total_fits}")

    def close(self, finished):
        if finished:        # ticks still in flight from the workers, or fits that failed
            self.bar.n = self.bar.total
            self.bar.set_postfix_str(f"fits {self.total_fits}/{self.total_fits}")
            self.bar.refresh()
        self.bar.close()


# -- clusters ---------------------------------------------------------------------------------

def cores():
    """The cores this process may use (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):      # not Linux
        return os.cpu_count() or 1


@contextmanager
def local_cluster(workers=None):
    """A ``distributed.LocalCluster`` of ``workers`` worker processes (None: one per core),
    one thread each, and its client; yields the client, closes both after.

    Each worker's ``NUMBA_NUM_THREADS`` is its share of the cores (``cores // workers``, at
    least 1): one numba thread per fit with one worker per core, two with 2 workers on 4
    cores. No dashboard. This process's environment is left as it was (the nanny sets
    OpenMP's and BLAS's thread limits in the process that starts workers)."""
    import distributed

    n_cores = cores()
    workers = n_cores if workers is None else v.check_int(workers, "workers", minimum=1)
    environ = dict(os.environ)
    try:
        with distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                silence_logs=logging.ERROR,
                env={"NUMBA_NUM_THREADS": str(max(1, n_cores // workers))}) as cluster:
            with distributed.Client(cluster, set_as_default=False) as client:
                yield client
    finally:
        os.environ.clear()
        os.environ.update(environ)


def connect(address, timeout=10.0):
    """A client of the Dask scheduler at ``address`` (``"tcp://host:8786"``), which has at
    least one worker. :class:`ClusterError` saying what to start when the scheduler cannot
    be reached, or has no worker, within ``timeout`` seconds."""
    import distributed

    from distributed.comm.addressing import get_address_host_port, parse_address

    timeout = v.check_nonneg_real(timeout, "timeout", allow_zero=False)
    if not isinstance(address, str):
        raise TypeError(f"address must be a string such as 'tcp://host:8786', got {address!r}")
    try:
        if parse_address(address)[0] in ("tcp", "tls"):
            get_address_host_port(address)
    except ValueError as exc:
        raise ValueError(f"address {address!r} is not a Dask scheduler's address ({exc}); "
                         "give tcp://host:port, e.g. tcp://head-node:8786") from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach a Dask scheduler at {address!r} within {timeout:g} s ({exc}). "
            f"Start one there with `dask scheduler`, and workers with `dask worker "
            f"{address}`") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {address!r} has no worker (waited {timeout:g} s): start "
            f"some with `dask worker {address}` on the machines that should compute") from None
    return client


def _prepare(backend, dtype, batch_sizes):
    """Where the fits will run: ``(fastmlp's version, seconds spent loading or compiling the
    kernels, the numba threads of one fit here or None)``."""
    from . import __version__
    from .backends import get_backend

    be = get_backend(backend)
    seconds = sum(be.prepare(dtype, K) for K in sorted(set(batch_sizes)))
    share = None
    if be.name == "numba":
        from .threads import share as numba_share

        share = numba_share()
    return __version__, seconds, share


def prepare(client, backend="auto", dtype="float32", batch_sizes=(32,)):
    """Check that every worker of ``client`` (None: this process) imports fastmlp, and make
    it load (or compile, the first time) the kernels of these batch sizes, before the search:
    otherwise each worker's first fits would. Returns one ``(version, seconds, threads per
    fit)`` per worker."""
    if client is None:
        return [_prepare(backend, dtype, batch_sizes)]
    addresses = list(client.scheduler_info()["workers"])
    futures = [client.submit(_prepare, backend, dtype, tuple(batch_sizes), workers=[a],
                             allow_other_workers=False, pure=False) for a in addresses]
    try:
        return client.gather(futures)
    except ImportError as exc:
        raise ClusterError(f"the Dask workers cannot run fastmlp ({exc}): install it, with "
                           "the same version, where the workers run") from None


# -- the search -------------------------------------------------------------------------------

@dataclass
class SweepResult:
    """What :func:`search` found: ``rows``, one dict per candidate, best first (``rank``,
    ``mean_accuracy``, ``std_accuracy``, ``folds`` (the accuracy of each), ``fit_seconds``
    (mean), ``params``); ``grid``, the values of each parameter; ``search``, the fitted
    ``GridSearchCV`` (``cv_results_``); ``seconds`` of wall time."""

    rows: list
    grid: dict
    cv: int
    search: object
    seconds: float

    @property
    def names(self):
        """The grid's parameters."""
        return tuple(self.grid)

    def varied(self):
        """The parameters that take more than one value."""
        return tuple(n for n, values in self.grid.items() if len(values) > 1)

    def table(self):
        """The candidates, best first, as a text table of the parameters that vary."""
        names = self.varied() or self.names
        head = ["rank", "accuracy", "± std"] + list(names) + ["fit s"]
        cells = [[str(row["rank"]),
                  "failed" if math.isnan(row["mean_accuracy"]) else f"{row['mean_accuracy']:.4f}",
                  "" if math.isnan(row["std_accuracy"]) else f"{row['std_accuracy']:.4f}"]
                 + [format_value(row["params"][n]) for n in names]
                 + [f"{row['fit_seconds']:.2f}"] for row in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        numbers = {0, 1, 2, len(head) - 1}          # right-aligned; the parameters left

        def line(texts):
            return "  ".join(t.rjust(w) if i in numbers else t.ljust(w)
                             for i, (t, w) in enumerate(zip(texts, widths))).rstrip()

        return "\n".join([line(head)] + [line(c) for c in cells])

    def csv_text(self):
        """results.csv: one line per candidate, best first; every grid parameter."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["rank", "mean_accuracy", "std_accuracy"]
                        + [f"fold{k}_accuracy" for k in range(self.cv)]
                        + ["mean_fit_seconds"] + list(self.names))
        for row in self.rows:
            writer.writerow([row["rank"], repr(row["mean_accuracy"]), repr(row["std_accuracy"])]
                            + [repr(s) for s in row["folds"]] + [repr(row["fit_seconds"])]
                            + [format_value(row["params"][n]) for n in self.names])
        return out.getvalue()

    def write_csv(self, path):
        """Write :meth:`csv_text` to ``path``, atomically."""
        from .io import write_text_atomic

        write_text_atomic(path, self.csv_text())


def check_grid(grid, base=None):
    """``grid`` (parameter name -> non-empty list of values) checked: every candidate, with
    ``base``'s fixed parameters, must be a valid ``MLPClassifier`` (the estimator's own
    errors, naming the parameter). Returns ``(grid as a dict of lists, n_candidates)``."""
    from sklearn.model_selection import ParameterGrid

    from .estimator import MLPClassifier

    if not isinstance(grid, dict) or not grid:
        raise TypeError(f"grid must be a non-empty dict of parameter name -> list of values, "
                        f"got {grid!r:.80}")
    known = MLPClassifier().get_params()
    out = {}
    for name, values in grid.items():
        if name not in known:
            raise ValueError(f"grid: {name!r} is not a parameter of MLPClassifier; use one "
                             f"of {', '.join(known)}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not values:
            raise TypeError(f"grid[{name!r}] must be a non-empty list of values, "
                            f"got {values!r:.80}")
        out[name] = list(values)
    base = dict(base or {})
    for params in ParameterGrid(out):
        MLPClassifier(**{**base, **params})._checked_params()
    return out, len(ParameterGrid(out))


def search(X, y, grid, *, base=None, cv=3, client=None, progress=True):
    """Cross-validate every candidate of ``grid`` with scikit-learn's ``GridSearchCV``.

    Parameters
    ----------
    X : array (n, d), y : array (n,)
    grid : dict
        ``MLPClassifier`` parameter -> list of values; the candidates are their product.
    base : dict, optional
        the fixed ``MLPClassifier`` parameters (epochs, batch_size, ...).
    cv : int, default 3
        folds (stratified, in the data's order).
    client : distributed.Client or None
        run the fits on this client's cluster through joblib's dask backend; None: in this
        process, one after another.
    progress : bool
        a progress bar over candidates.

    Returns a :class:`SweepResult`. A fit that fails (a divergence) scores NaN, ranked
    last, with scikit-learn's warning.
    """
    import numpy as np
    from sklearn.model_selection import GridSearchCV

    from .estimator import MLPClassifier

    grid, n_candidates = check_grid(grid, base)
    cv = v.check_int(cv, "cv", minimum=2)
    estimator = MLPClassifier(**dict(base or {}))
    names = tuple(grid)
    topic = f"fastmlp-sweep-{uuid.uuid4().hex}"
    bar = _Progress(n_candidates, cv, progress)
    gs = GridSearchCV(estimator, grid, cv=cv, scoring=ProgressScorer(topic, names),
                      refit=False, n_jobs=1 if client is None else None, error_score=np.nan)
    if client is None:
        _LISTENERS[topic] = bar.tick
        context = nullcontext()
    else:
        import joblib

        client.subscribe_topic(topic, lambda event: bar.tick(event[1]))
        context = joblib.parallel_config(backend="dask", client=client)
    finished = False
    try:
        t0 = time.perf_counter()
        with context:
            gs.fit(X, y)
        seconds = time.perf_counter() - t0
        finished = True
    finally:
        _LISTENERS.pop(topic, None)
        if client is not None:
            client.unsubscribe_topic(topic)
        bar.close(finished)
    return SweepResult(_rows(gs.cv_results_, names, cv), grid, cv, gs, seconds)


def _rows(results, names, cv):
    rows = []
    for i, params in enumerate(results["params"]):
        rows.append({
            "rank": int(results["rank_test_score"][i]),
            "mean_accuracy": float(results["mean_test_score"][i]),
            "std_accuracy": float(results["std_test_score"][i]),
            "folds": [float(results[f"split{k}_test_score"][i]) for k in range(cv)],
            "fit_seconds": float(results["mean_fit_time"][i]),
            "params": {name: params[name] for name in names},
        })
    rows.sort(key=lambda row: row["rank"])          # stable: ties keep the grid's order
    return rows


__all__ = ["search", "check_grid", "prepare", "local_cluster", "connect", "cores",
           "SweepResult", "ClusterError", "ProgressScorer", "format_value"]
