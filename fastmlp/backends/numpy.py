"""The ``numpy`` backend: the whole minibatch at once, with matrix products.

Rows are examples, so the spec's per-example column equations become, for a minibatch
``X (K, d)`` and ``H^0 = X``::

    A^l = H^{l-1} W^lᵀ + b^l,   H^l = f_l(A^l)   (l = 1..L-1),   O_a = H^{L-1} W^Lᵀ + b^L
    Δ^L = (softmax(O_a) - onehot(y)) / K
    dW^l = Δ^lᵀ H^{l-1},   db^l = Σ_k Δ^l,   Δ^{l-1} = (Δ^l W^l) ⊙ f'_{l-1}(H^{l-1})
    dX = Δ^1 W^1

Everything stays in the model's dtype (no float64 temporaries in float32 models).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..activations import ACTIVATIONS
from .base import Backend, StepStats, single_threaded_blas


def _forward(model, X):
    """``([H^0, ..., H^{L-1}], O_a)`` for the rows of X."""
    weights = model.weights()
    hs = [X]
    for (W, b), name in zip(weights[:-1], model.activations):
        a = hs[-1] @ W.T
        a += b
        hs.append(ACTIVATIONS[name].function(a))
    W, b = weights[-1]
    o_a = hs[-1] @ W.T
    o_a += b
    return hs, o_a


def _backward(model, hs, o_a, y, wrt_input):
    """Gradient (flat) of the mean cross-entropy over the K rows, no penalty; and dJ/dX."""
    weights = model.weights()
    L = len(weights)
    K = o_a.shape[0]
    delta = ops.softmax(o_a, axis=1)
    delta[np.arange(K), y] -= 1
    delta *= delta.dtype.type(1.0 / K)
    grad = np.empty_like(model.theta)
    grads = model.layout.pairs(grad)
    dX = None
    for l in range(L, 0, -1):
        W, _ = weights[l - 1]
        dW, db = grads[l - 1]
        np.matmul(delta.T, hs[l - 1], out=dW)
        db[...] = delta.sum(axis=0)
        if l > 1:
            delta = delta @ W
            delta *= ACTIVATIONS[model.activations[l - 2]].derivative(hs[l - 1])
        elif wrt_input:
            dX = delta @ W
    return grad, grads, dX


class NumpyBackend(Backend):
    """Vectorized minibatch with NumPy matrix products (BLAS)."""

    name = "numpy"

    @single_threaded_blas
    def logits(self, model, X):
        return _forward(model, X)[1]

    @single_threaded_blas
    def loss_and_grads(self, model, X, y, wrt_input=False):
        hs, o_a = _forward(model, X)
        J = float(ops.cross_entropy(o_a, y).mean(dtype=np.float64)) + ops.total_penalty(model)
        grad, grads, dX = _backward(model, hs, o_a, y, wrt_input)
        ops.add_penalty_grads(grads, model)
        return J, grad, dX

    @single_threaded_blas
    def train_steps(self, model, X, y, order, batch_size, lr, state):
        loss_sum, n_errors = 0.0, 0
        for step, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start:start + batch_size]
            Xb, yb = X[idx], y[idx]
            hs, o_a = _forward(model, Xb)
            batch_loss = float(ops.cross_entropy(o_a, yb).sum(dtype=np.float64))
            if not np.isfinite(batch_loss):
                return StepStats(loss_sum, n_errors, step, step)
            loss_sum += batch_loss
            n_errors += int((o_a.argmax(axis=1) != yb).sum())
            grad, grads, _ = _backward(model, hs, o_a, yb, wrt_input=False)
            ops.add_penalty_grads(grads, model)
            state.optimizer.step(model.theta, grad, state, lr)
        return StepStats(loss_sum, n_errors, ops.n_batches(len(order), batch_size))
