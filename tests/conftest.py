"""Shared test settings: tolerances named once, small models and data made here."""

import numpy as np
import pytest

import fastmlp
from fastmlp import timing

#: relative error allowed between two computations of the same quantity
RTOL_F64 = 1e-10
RTOL_F32 = 1e-4
RTOL = {"float64": RTOL_F64, "float32": RTOL_F32}


def rel_err(a, b):
    """max |a - b| / max(|a|, |b|, tiny): a relative error that tolerates zeros."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-30)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def make_data(n, d, m, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, m, size=n)
    return X, y


def fashion_available():
    return fastmlp.datasets.fashion_mnist_dir() is not None


needs_fashion = pytest.mark.skipif(
    not fashion_available(),
    reason="Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` "
           "or set FASHION_MNIST_DIR",
)


@pytest.fixture(autouse=True)
def _no_rest_between_timed_rounds(monkeypatch):
    """Timed rounds rest first so that other libraries' threads go idle (speed belongs to
    the benchmarks); tests check what is timed, not how fast, so they do not wait."""
    monkeypatch.setattr(timing, "SETTLE_SECONDS", 0.0)


@pytest.fixture(params=fastmlp.BACKENDS)
def backend(request):
    return request.param
