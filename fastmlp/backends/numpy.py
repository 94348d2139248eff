"""The ``numpy`` backend: the whole minibatch at once, with matrix products.

Rows are examples, so the spec's per-example column equations become, for a minibatch
``X (K, d)``::

    H_a = X W1ᵀ + b1        H_s = relu(H_a)        O_a = H_s W2ᵀ + b2
    G_oa = (softmax(O_a) - onehot(y)) / K
    dW2 = G_oaᵀ H_s         db2 = Σ_k G_oa
    G_ha = (G_oa W2) ⊙ 1[H_a > 0]
    dW1 = G_haᵀ X           db1 = Σ_k G_ha          dX = G_ha W1

Everything stays in the parameters' dtype (no float64 temporaries in float32 models).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .base import Backend, StepStats, single_threaded_blas


def _forward(params, X):
    h_a = X @ params["W1"].T
    h_a += params["b1"]
    h_s = np.maximum(h_a, 0)
    o_a = h_s @ params["W2"].T
    o_a += params["b2"]
    return h_a, h_s, o_a


def _backward(params, X, y, h_a, h_s, o_a, wrt_input):
    """Gradients of the mean cross-entropy (no penalty) over the K rows."""
    K = X.shape[0]
    g_oa = ops.softmax(o_a, axis=1)
    g_oa[np.arange(K), y] -= 1
    g_oa *= g_oa.dtype.type(1.0 / K)
    grads = {"W2": g_oa.T @ h_s, "b2": g_oa.sum(axis=0)}
    g_ha = g_oa @ params["W2"]
    g_ha *= h_a > 0
    grads["W1"] = g_ha.T @ X
    grads["b1"] = g_ha.sum(axis=0)
    if wrt_input:
        grads["X"] = g_ha @ params["W1"]
    return grads


def _add_penalty_grads(grads, params, l1, l2):
    for i, key in enumerate(ops.WEIGHTS):
        if l1[i] or l2[i]:
            grads[key] += ops.penalty_grad(params[key], l1[i], l2[i])


class NumpyBackend(Backend):
    """Vectorized minibatch with NumPy matrix products (BLAS)."""

    name = "numpy"

    @single_threaded_blas
    def logits(self, params, X):
        return _forward(params, X)[2]

    @single_threaded_blas
    def loss_and_grads(self, params, X, y, l1=(0.0, 0.0), l2=(0.0, 0.0), wrt_input=False):
        h_a, h_s, o_a = _forward(params, X)
        J = float(ops.cross_entropy(o_a, y).mean(dtype=np.float64))
        J += sum(ops.penalty(params[k], l1[i], l2[i]) for i, k in enumerate(ops.WEIGHTS))
        grads = _backward(params, X, y, h_a, h_s, o_a, wrt_input)
        _add_penalty_grads(grads, params, l1, l2)
        return J, grads

    @single_threaded_blas
    def train_steps(self, params, X, y, order, batch_size, lr, l1=(0.0, 0.0), l2=(0.0, 0.0)):
        lr = params["W1"].dtype.type(lr)
        loss_sum, n_errors = 0.0, 0
        for step, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start:start + batch_size]
            Xb, yb = X[idx], y[idx]
            h_a, h_s, o_a = _forward(params, Xb)
            batch_loss = float(ops.cross_entropy(o_a, yb).sum(dtype=np.float64))
            if not np.isfinite(batch_loss):
                return StepStats(loss_sum, n_errors, step, step)
            loss_sum += batch_loss
            n_errors += int((o_a.argmax(axis=1) != yb).sum())
            grads = _backward(params, Xb, yb, h_a, h_s, o_a, wrt_input=False)
            _add_penalty_grads(grads, params, l1, l2)
            for key, g in grads.items():
                params[key] -= lr * g
        return StepStats(loss_sum, n_errors, ops.n_batches(len(order), batch_size))
