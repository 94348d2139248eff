"""How many threads one ``fit``, ``partial_fit`` or ``predict`` of the numba backend runs.

The numba kernels run on as many worker threads as ``numba.get_num_threads()`` gives the
calling thread (numba keeps that count per thread; it starts at ``NUMBA_NUM_THREADS``, all
the cores unless that variable is set). A process that runs several fits at once -- a Dask
worker with several threads -- or one of several processes on a machine -- Dask workers,
joblib's loky workers -- would then run more threads than there are cores: Dask's nanny
limits OpenMP and BLAS in its workers, not numba. :func:`numba_threads` sets the count for
the calling thread only, for one call, and puts the previous count back; with
``n_threads=None`` the count is :func:`share`:

* in a task of a Dask worker (``distributed.get_worker()`` answers), ``max(1, C // T)``:
  ``T`` is the worker's thread count (the tasks it runs at once) and ``C`` the cores the
  worker process may use, its ``NUMBA_NUM_THREADS`` when that is set in its environment,
  else ``T``. Dask sizes workers so that the threads of a host's workers add up to its cores
  (``LocalCluster``, ``dask worker``): one core per thread, as its nanny's one-thread limit
  for OpenMP and BLAS assumes. So a task gets one thread, unless the worker was started
  with ``NUMBA_NUM_THREADS`` set: ``NUMBA_NUM_THREADS=8 dask worker ADDRESS --nthreads 2``
  gives each of its two tasks 4 threads.
* anywhere else, the calling thread's numba count: all the cores, ``NUMBA_NUM_THREADS``
  when it is set (joblib's loky workers set it to ``cpu_count() // n_jobs``, or to
  ``parallel_config(inner_max_num_threads=...)``), or what the thread gave
  ``numba.set_num_threads``.

A count above ``NUMBA_NUM_THREADS`` (numba's maximum for the process) runs that maximum.
The count never changes results: the kernels split their work into fixed items, whatever
the number of threads that take them. Threads of one process may call the kernels at once
(they share fastmlp's worker pool, :mod:`fastmlp.backends.numba._workers`), but nothing
here divides the cores among them: give each an ``n_threads`` whose sum fits the machine
(joblib's threading backend, a ``ThreadPoolExecutor`` of your own).

Importing this module imports neither numba nor dask.
"""

from __future__ import annotations

import numbers
import os
import sys
from contextlib import contextmanager

import numpy as np


def check_n_threads(n_threads, name="n_threads"):
    """``n_threads`` checked: None or an int >= 1."""
    if n_threads is None:
        return None
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"{name} must be a positive int or None (this caller's share of the "
                        f"cores), got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"{name} must be at least 1, or None (this caller's share of the "
                         f"cores), got {n_threads}")
    return int(n_threads)


def _dask_worker():
    """The Dask worker running the current task, or None (also when dask is not imported:
    a Dask worker process has imported it)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.get_worker()
    except ValueError:                  # "No worker found": not in a task
        return None


def share():
    """The threads a call of the numba backend made here may use when ``n_threads`` is None
    (the rule is in the module's docstring)."""
    import numba

    worker = _dask_worker()
    if worker is None:
        return numba.get_num_threads()
    tasks = max(1, int(worker.state.nthreads))
    cores = numba.config.NUMBA_NUM_THREADS if "NUMBA_NUM_THREADS" in os.environ else tasks
    return max(1, cores // tasks)


@contextmanager
def numba_threads(n_threads=None):
    """Run the block with numba's thread count for the calling thread set to ``n_threads``
    (None: :func:`share`), at most ``NUMBA_NUM_THREADS``; the previous count is restored
    after. Yields the count set."""
    import numba

    n_threads = check_n_threads(n_threads)
    count = min(share() if n_threads is None else n_threads, numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield count
    finally:
        numba.set_num_threads(before)


__all__ = ["check_n_threads", "share", "numba_threads"]
