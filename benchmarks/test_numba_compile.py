"""The numba backend's first call in a fresh process: compile time, with and without the
on-disk cache (``NUMBA_CACHE_DIR``).

Each round starts a new interpreter; the benchmark's time is that process's wall time
(interpreter start and imports included). ``import-only`` is the baseline to subtract: it
imports fastmlp and the numba backend and stops. The first ``fastmlp.train`` call (one
epoch of 64 examples) as timed inside the child is in ``extra_info``, and so is what
``fastmlp.backends.numba.warmup(dtype)`` reports.
"""

import tempfile

import pytest

import fastmlp
from fastmlp import bench

MODES = ("import-only", "no-cache", "with-cache")


@pytest.fixture(scope="module")
def numba_backend():
    if "numba" not in fastmlp.BACKENDS:
        pytest.skip("the numba backend is not available here (not merged yet, or numba missing)")
    from fastmlp.backends import numba as module

    if not callable(getattr(module, "warmup", None)):
        pytest.skip("fastmlp.backends.numba has no warmup(dtype) function")
    return module


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_numba_first_call(benchmark, numba_backend, tmp_path_factory, mode, dtype):
    benchmark.group = f"numba first call in a fresh process, {dtype}"
    what = "import" if mode == "import-only" else "train"
    child = {}

    def setup():
        cache = tmp_path_factory.mktemp("numba-cache")
        if mode == "with-cache":
            bench.first_call("numba", dtype, "train", cache)     # fills the cache, untimed
        return (cache,), {}

    def run(cache):
        child.update(bench.first_call("numba", dtype, what, cache))

    benchmark.pedantic(run, setup=setup, rounds=2 if mode == "no-cache" else 3, iterations=1)
    benchmark.extra_info.update(child)
    if mode != "import-only":
        with tempfile.TemporaryDirectory() as cache:
            warm = bench.first_call("numba", dtype, "warmup",
                                    cache if mode == "no-cache" else None)
        benchmark.extra_info["warmup_seconds"] = warm.get("warmup_seconds")
