"""One training epoch per backend, (784, 64, 10), minibatches of 1, 20, 32 and 256, both dtypes.

Cases too slow for a whole epoch in seconds (every K for ``loop``, K=1 for ``numpy``) run
the first examples of the epoch's shuffled order and are scaled to the epoch: their names
end in ``extrapolated-from-N``. Also the seed's own measurement (loop vs matrix).
"""

import pytest
from conftest import case_id

import fastmlp
from fastmlp import bench, timing

BATCH_SIZES = (1, 20, 32, 256)
DTYPES = ("float32", "float64")


def _cases():
    for K in BATCH_SIZES:
        for dtype in DTYPES:
            for name in fastmlp.BACKENDS:
                yield pytest.param(name, K, dtype, id=case_id(name, K, f"{name}-K{K}-{dtype}"))


@pytest.mark.parametrize("backend, batch_size, dtype", list(_cases()))
def test_epoch(benchmark, time_case, workload, backend, batch_size, dtype):
    benchmark.group = f"epoch: 49,000 examples, K={batch_size}, {dtype}"
    work = workload(dtype, batch_size=batch_size)
    time_case(timing.backend_epoch(backend, work), rounds=3, work=work)


@pytest.mark.parametrize("backend", [pytest.param(name, id=case_id(name, 20, name))
                                     for name in fastmlp.BACKENDS])
def test_seed_loop_vs_matrix(benchmark, time_case, workload, backend):
    """The seed's experiment 4: one epoch, K=20, lambda=0.001, float64 (the seed used NumPy's
    default); it measured 147.7 s (loop) and 13.0 s (matrix) on other hardware."""
    seed = bench.SEED_EXPERIMENT
    benchmark.group = "seed experiment 4: loop vs matrix, one epoch, K=20, lambda=0.001, float64"
    work = workload("float64", batch_size=seed["batch_size"], l1=seed["penalty"],
                    l2=seed["penalty"])
    time_case(timing.backend_epoch(backend, work), rounds=3, work=work,
              seed_loop_seconds=seed["loop_seconds"], seed_matrix_seconds=seed["matrix_seconds"],
              seed_speedup=seed["loop_seconds"] / seed["matrix_seconds"])
