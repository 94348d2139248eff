"""The gradients of one minibatch, and prediction over 10,000 examples, per backend."""

import pytest

import fastmlp
from fastmlp import bench


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", fastmlp.BACKENDS)
def test_gradients(benchmark, time_case, load, backend, dtype):
    benchmark.group = f"gradients of one minibatch, K=32, {dtype}"
    work = bench.Workload(load(dtype))
    time_case(bench.backend_gradients(backend, work), rounds=20)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", fastmlp.BACKENDS)
def test_predict(benchmark, time_case, load, backend, dtype):
    benchmark.group = f"predict_proba over 10,000 examples, {dtype}"
    work = bench.Workload(load(dtype))
    time_case(bench.backend_predict(backend, work, n=10_000), rounds=5)
