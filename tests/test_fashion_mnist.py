"""On the real Fashion-MNIST, when it is installed (skipped with the reason otherwise)."""

import numpy as np

import fastmlp
from conftest import needs_fashion


@needs_fashion
def test_real_files_shape_and_range():
    X, y = fastmlp.datasets.fashion_mnist()
    assert X.shape == (70000, 784) and X.dtype == np.float32
    assert y.shape == (70000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.array_equal(np.bincount(y), np.full(10, 7000))


@needs_fashion
def test_one_epoch_learns():
    X, y = fastmlp.datasets.fashion_mnist()
    split = fastmlp.datasets.split(X, y, seed=0)
    model = fastmlp.MLP((784, 64, 10), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4))
    h = fastmlp.train(model, split, backend="numpy", epochs=1, batch_size=32, lr=0.1,
                      progress=False)
    assert h["test_error"][-1] < 20.0  # a plain run gets about 14% after one epoch
