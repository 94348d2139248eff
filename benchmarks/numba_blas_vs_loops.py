"""Measure, don't guess: the two large products of an epoch, BLAS (np.dot inside @njit, through
SciPy) against the numba backend's hand-written, register-blocked loops.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/numba_blas_vs_loops.py [float32|float64]

Single thread, CPU seconds per epoch (49,000 examples, layers (784, 64, ...)) of the forward
product ``X_b W1ᵀ`` and the weight gradient ``G_haᵀ X_b``, at K = 1, 32, 256; the BLAS version
gathers the minibatch into a contiguous buffer first, the loops index the rows in place.
Uses the backend's private block functions, so it follows them.
"""
import sys
import time

import numpy as np
from numba import njit

from fastmlp.backends import numba as nb


@njit(cache=False, error_model="numpy")
def blas_epoch(W1, b1, X, order, K):
    d = X.shape[1]; h = W1.shape[0]
    Xb = np.empty((K, d), X.dtype)
    s = 0.0
    for start in range(0, order.shape[0] - K + 1, K):
        for k in range(K):
            Xb[k] = X[order[start + k]]
        Ha = np.dot(Xb, W1.T)           # forward (K, h)
        G = Ha * X.dtype.type(1e-3)
        dW1 = np.dot(G.T, Xb)           # (h, d)
        s += dW1[0, 0]
    return s


@njit(cache=False, **nb._JIT)
def loops_epoch(W1, b1, X, order, K):
    d = X.shape[1]; h = W1.shape[0]
    Ha = np.empty((K, h), X.dtype)
    acc = np.empty((4, d), X.dtype)
    s = 0.0
    for start in range(0, order.shape[0] - K + 1, K):
        rows = order[start:start + K]
        for j0 in range(0, h, 4):
            nb._hidden_block(W1, b1, X, rows, 0, K, j0, j0 + 4, Ha)
        G = Ha * X.dtype.type(1e-3)
        for j0 in range(0, h, 4):
            nb._w1_block_grad(G, X, rows, 0, K, j0, j0 + 4, acc, True)
            s += acc[0, 0]
    return s


def main():
    dt = sys.argv[1] if len(sys.argv) > 1 else "float32"
    n, d, h = 49000, 784, 64
    rng = np.random.default_rng(0)
    X = rng.random((n, d)).astype(dt)
    W1 = (rng.random((h, d)).astype(dt) - 0.5) * 0.05
    b1 = np.zeros(h, dt)
    order = rng.permutation(n)
    for K in (1, 32, 256):
        for f in (blas_epoch, loops_epoch):
            f(W1, b1, X, order[:2 * K], K)
            best = 1e9
            for _ in range(2):
                t0 = time.process_time()
                f(W1, b1, X, order, K)
                best = min(best, time.process_time() - t0)
            print(f"{dt} K={K:<4d} {f.__name__:12s} {best:.3f} s CPU", flush=True)


if __name__ == "__main__":
    main()
