"""Running a kernel's workers on threads: the calling thread and a persistent pool.

The parallel kernels are serial ``nogil`` functions run by ``n_workers`` threads at once;
the workers share their work through atomic counters (:mod:`._simd`) and never rely on
one another being scheduled: a worker that starts late finds every item claimed and
returns. So the calling thread, which runs worker 0, could do everything alone; the pool's
threads only make it faster. Why threads and not ``prange``: a ``parallel=True`` function
costs about 4 seconds of compilation per parallel region (numba's parfor lowering, then LLVM
optimizing the region's callees once more in every module that links them), and each
region launch costs microseconds; here a call starts its workers once and compiles nothing
but the kernel itself. The thread count follows numba's (``NUMBA_NUM_THREADS``,
``numba.set_num_threads``), and no threading layer is involved, so the omp layer's
fork-unsafety and workqueue's refusal of concurrent calls do not apply: two Python threads
may train at once, and a forked child gets a fresh pool.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_pool = None
_pool_size = 0
_lock = threading.Lock()


def _reset_after_fork():
    """A forked child has none of the parent's pool threads: start a new pool when needed."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _submit(kernel, n_workers, args, futures):
    """Submit workers ``1 .. n_workers - 1`` to the pool, grown to at least ``n_workers - 1``
    threads first (never shrunk), appending their futures to ``futures`` one by one (so
    that whatever interrupts this leaves every started worker in the caller's list). Under
    the lock: growing shuts the old pool down, and a pool that another caller just shut down
    would refuse work submitted to it."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n_workers - 1:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=n_workers - 1,
                                       thread_name_prefix="fastmlp-numba")
            _pool_size = n_workers - 1
            if old is not None:
                old.shutdown(wait=False)        # its queued work still runs
        for w in range(1, n_workers):
            futures.append(_pool.submit(kernel, w, *args))


def worker_count():
    """How many workers a call runs: numba's thread count for the calling thread."""
    return max(1, numba.get_num_threads())


def run(kernel, n_workers, *args):
    """``kernel(w, *args)`` for ``w = 0 .. n_workers - 1``, worker 0 on this thread; returns
    -- or raises -- only when every worker it started has returned. A started worker writes
    the model's buffers until it is done (alone, if this thread stops), so a Ctrl-C or a
    stop signal raised anywhere here, even between starting the workers and running worker
    0, first waits for them: the caller then restores or saves buffers that no thread is
    still writing. Signals are held while the workers start and while they finish."""
    from ..._signals import interrupts_held

    futures = []
    try:
        if n_workers > 1:
            with interrupts_held():
                _submit(kernel, n_workers, args, futures)
        kernel(0, *args)
    finally:
        with interrupts_held():
            for future in futures:
                future.result()


__all__ = ["run", "worker_count"]
