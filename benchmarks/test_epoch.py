"""One training epoch per backend, (784, 64, 10), minibatches of 1, 20, 32 and 256, both dtypes.

Cases too slow for a whole epoch in seconds (every K for ``loop``, K=1 for ``numpy``) run
the first examples of the epoch's shuffled order and are scaled to the epoch: their names
end in ``extrapolated-from-N``. Also the seed's own measurement (loop vs matrix).
"""

import pytest

import fastmlp
from fastmlp import bench

BATCH_SIZES = (1, 20, 32, 256)
DTYPES = ("float32", "float64")


def _cases():
    for K in BATCH_SIZES:
        for dtype in DTYPES:
            for name in fastmlp.BACKENDS:
                n = bench.measured_examples(name, K, bench.EXAMPLES)
                label = f"{name}-K{K}-{dtype}"
                if n < bench.EXAMPLES:
                    label += f"-extrapolated-from-{n}"
                yield pytest.param(name, K, dtype, id=label)


@pytest.mark.parametrize("backend, batch_size, dtype", list(_cases()))
def test_epoch(benchmark, time_case, load, backend, batch_size, dtype):
    benchmark.group = f"epoch: 49,000 examples, K={batch_size}, {dtype}"
    work = bench.Workload(load(dtype), batch_size=batch_size)
    case = bench.backend_epoch(backend, work)
    time_case(case, rounds=3, flops=bench.epoch_flops(work.n_examples, batch_size),
              data=work.data.source)


@pytest.mark.parametrize("backend", [pytest.param(name, id=f"{name}" + (
    f"-extrapolated-from-{bench.measured_examples(name, 20, bench.EXAMPLES)}"
    if bench.measured_examples(name, 20, bench.EXAMPLES) < bench.EXAMPLES else ""))
    for name in fastmlp.BACKENDS])
def test_seed_loop_vs_matrix(benchmark, time_case, load, backend):
    """The seed's experiment 4: one epoch, K=20, lambda=0.001, float64 (the seed used NumPy's
    default); it measured 147.7 s (loop) and 13.0 s (matrix) on other hardware."""
    seed = bench.SEED_EXPERIMENT
    benchmark.group = "seed experiment 4: loop vs matrix, one epoch, K=20, lambda=0.001, float64"
    lam = (seed["penalty"], seed["penalty"])
    work = bench.Workload(load("float64"), batch_size=seed["batch_size"], l1=lam, l2=lam)
    time_case(bench.backend_epoch(backend, work), rounds=3,
              flops=bench.epoch_flops(work.n_examples, work.batch_size),
              data=work.data.source, seed_loop_seconds=seed["loop_seconds"],
              seed_matrix_seconds=seed["matrix_seconds"],
              seed_speedup=seed["loop_seconds"] / seed["matrix_seconds"])
