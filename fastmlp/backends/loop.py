"""The ``loop`` backend: one example at a time, the spec's equations line by line.

This is the readable reference that the fast backends are pinned to. Each example's
vectors are 1-D NumPy arrays; the forward pass is done once per example and its cached
activations feed a single backward pass. Per-example gradients are summed over the
minibatch, divided by K, and the penalty terms are added once.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .base import Backend, StepStats, single_threaded_blas


def forward_one(params, x):
    """Forward pass of one example ``x (d,)``: returns ``h_a, h_s, o_a``."""
    h_a = params["W1"] @ x + params["b1"]          # h_a = W1 x + b1
    h_s = np.maximum(h_a, 0)                       # h_s = relu(h_a)
    o_a = params["W2"] @ h_s + params["b2"]        # o_a = W2 h_s + b2
    return h_a, h_s, o_a


def loss_one(o_a, y):
    """``L = -o_a[y] + logsumexp(o_a)``."""
    return ops.logsumexp(o_a) - o_a[y]


def backward_one(params, x, y, h_a, h_s, o_a, wrt_input):
    """Gradients of the one-example loss L with respect to every parameter (and x)."""
    g_oa = ops.softmax(o_a)                        # dL/do_a = o_s - onehot(y)
    g_oa[y] -= 1
    grads = {
        "W2": np.outer(g_oa, h_s),                 # dL/dW2 = dL/do_a h_sᵀ
        "b2": g_oa,                                # dL/db2 = dL/do_a
    }
    g_hs = params["W2"].T @ g_oa                   # dL/dh_s = W2ᵀ dL/do_a
    g_ha = g_hs * (h_a > 0)                        # dL/dh_a = dL/dh_s ⊙ 1[h_a > 0]
    grads["W1"] = np.outer(g_ha, x)                # dL/dW1 = dL/dh_a xᵀ
    grads["b1"] = g_ha                             # dL/db1 = dL/dh_a
    if wrt_input:
        grads["x"] = params["W1"].T @ g_ha         # dL/dx = W1ᵀ dL/dh_a
    return grads


def _minibatch(params, X, y, l1, l2, wrt_input):
    """Loss sum, error count and the objective's gradients over the rows of X."""
    K = X.shape[0]
    grads = {key: np.zeros_like(params[key]) for key in ops.PARAM_KEYS}
    if wrt_input:
        grads["X"] = np.zeros_like(X)
    loss_sum, n_errors = 0.0, 0
    for k in range(K):
        h_a, h_s, o_a = forward_one(params, X[k])
        loss_sum += float(loss_one(o_a, y[k]))
        n_errors += int(np.argmax(o_a) != y[k])
        g = backward_one(params, X[k], y[k], h_a, h_s, o_a, wrt_input)
        for key in ops.PARAM_KEYS:
            grads[key] += g[key]
        if wrt_input:
            grads["X"][k] = g["x"]
    inv_K = params["W1"].dtype.type(1.0 / K)
    for g in grads.values():
        g *= inv_K                                 # the mean over the minibatch
    for i, key in enumerate(ops.WEIGHTS):          # + l1 sign(W) + 2 l2 W, once
        if l1[i] or l2[i]:
            grads[key] += ops.penalty_grad(params[key], l1[i], l2[i])
    return loss_sum, n_errors, grads


class LoopBackend(Backend):
    """One example at a time, in Python: the reference implementation."""

    name = "loop"

    @single_threaded_blas
    def logits(self, params, X):
        return np.stack([forward_one(params, x)[2] for x in X])

    @single_threaded_blas
    def loss_and_grads(self, params, X, y, l1=(0.0, 0.0), l2=(0.0, 0.0), wrt_input=False):
        loss_sum, _, grads = _minibatch(params, X, y, l1, l2, wrt_input)
        J = loss_sum / X.shape[0]
        J += sum(ops.penalty(params[k], l1[i], l2[i]) for i, k in enumerate(ops.WEIGHTS))
        return J, grads

    @single_threaded_blas
    def train_steps(self, params, X, y, order, batch_size, lr, l1=(0.0, 0.0), l2=(0.0, 0.0)):
        lr = params["W1"].dtype.type(lr)
        total_loss, total_errors = 0.0, 0
        starts = range(0, len(order), batch_size)
        for step, start in enumerate(starts):
            idx = order[start:start + batch_size]
            loss_sum, n_errors, grads = _minibatch(params, X[idx], y[idx], l1, l2, False)
            if not np.isfinite(loss_sum):
                return StepStats(total_loss, total_errors, step, step)
            total_loss += loss_sum
            total_errors += n_errors
            for key in ops.PARAM_KEYS:
                params[key] -= lr * grads[key]
        return StepStats(total_loss, total_errors, len(starts))
