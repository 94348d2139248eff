"""The gradients of one minibatch, and prediction over 10,000 examples, per backend."""

import pytest

import fastmlp
from fastmlp import timing


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", fastmlp.BACKENDS)
def test_gradients(benchmark, time_case, workload, backend, dtype):
    benchmark.group = f"gradients of one minibatch, K=32, {dtype}"
    time_case(timing.backend_gradients(backend, workload(dtype)), rounds=20)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", fastmlp.BACKENDS)
def test_predict(benchmark, time_case, workload, backend, dtype):
    benchmark.group = f"predict_proba over 10,000 examples, {dtype}"
    time_case(timing.backend_predict(backend, workload(dtype), n=10_000), rounds=5)
