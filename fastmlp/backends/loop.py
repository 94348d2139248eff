"""The ``loop`` backend: one example at a time, the spec's equations line by line.

This is the readable reference that the fast backends are pinned to. Each example's
vectors are 1-D NumPy arrays; the forward pass is done once per example and its cached
activations feed a single backward pass, which runs the spec's recurrence from the output
layer down, whatever the depth::

    h^0 = x;   a^l = W^l h^{l-1} + b^l;   h^l = f_l(a^l)   (l = 1..L-1);   o_a = a^L
    δ^L = softmax(o_a) - onehot(y)
    dL/dW^l = δ^l (h^{l-1})ᵀ,   dL/db^l = δ^l,   δ^{l-1} = (W^lᵀ δ^l) ⊙ f'_{l-1}(h^{l-1})
    dL/dx = W^1ᵀ δ^1

Per-example gradients are summed over the minibatch, divided by K, and the penalty terms
are added once; the optimizer (:mod:`fastmlp.optim`) then takes the step.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..activations import ACTIVATIONS
from .base import Backend, StepStats, single_threaded_blas


def forward_one(model, x):
    """Forward pass of one example ``x (d,)``: ``([h^0, ..., h^{L-1}], o_a)``."""
    weights = model.weights()
    hs = [x]                                           # h^0 = x
    for (W, b), name in zip(weights[:-1], model.activations):
        a = W @ hs[-1] + b                             # a^l = W^l h^{l-1} + b^l
        hs.append(ACTIVATIONS[name].function(a))       # h^l = f_l(a^l)
    W, b = weights[-1]
    return hs, W @ hs[-1] + b                          # o_a = W^L h^{L-1} + b^L


def loss_one(o_a, y):
    """``L = -o_a[y] + logsumexp(o_a)``."""
    return ops.logsumexp(o_a) - o_a[y]


def backward_one(model, hs, o_a, y, wrt_input):
    """Gradients of the one-example loss: ``([(dL/dW^l, dL/db^l) for l = 1..L], dL/dx or None)``."""
    weights = model.weights()
    L = len(weights)
    delta = ops.softmax(o_a)                           # δ^L = o_s - onehot(y)
    delta[y] -= 1
    grads = [None] * L
    dx = None
    for l in range(L, 0, -1):
        W, _ = weights[l - 1]
        grads[l - 1] = (np.outer(delta, hs[l - 1]), delta)    # δ^l (h^{l-1})ᵀ, δ^l
        if l > 1:
            derivative = ACTIVATIONS[model.activations[l - 2]].derivative
            delta = (W.T @ delta) * derivative(hs[l - 1])      # δ^{l-1}
        elif wrt_input:
            dx = W.T @ delta                                   # dL/dx = W^1ᵀ δ^1
    return grads, dx


def _minibatch(model, X, y, wrt_input):
    """Loss sum, error count, the objective's gradient (flat) and dJ/dX over the rows of X."""
    K = X.shape[0]
    grad = np.zeros_like(model.theta)
    total = model.layout.pairs(grad)
    dX = np.zeros_like(X) if wrt_input else None
    loss_sum, n_errors = 0.0, 0
    for k in range(K):
        hs, o_a = forward_one(model, X[k])
        loss_sum += float(loss_one(o_a, y[k]))
        n_errors += int(np.argmax(o_a) != y[k])
        grads, dx = backward_one(model, hs, o_a, y[k], wrt_input)
        for (dW, db), (gW, gb) in zip(total, grads):
            dW += gW
            db += gb
        if wrt_input:
            dX[k] = dx
    inv_K = model.dtype.type(1.0 / K)
    grad *= inv_K                                      # the mean over the minibatch
    if wrt_input:
        dX *= inv_K
    ops.add_penalty_grads(total, model)                # + l1 sign(W) + 2 l2 W, once
    return loss_sum, n_errors, grad, dX


class LoopBackend(Backend):
    """One example at a time, in Python: the reference implementation."""

    name = "loop"

    @single_threaded_blas
    def logits(self, model, X):
        return np.stack([forward_one(model, x)[1] for x in X])

    @single_threaded_blas
    def loss_and_grads(self, model, X, y, wrt_input=False):
        loss_sum, _, grad, dX = _minibatch(model, X, y, wrt_input)
        return loss_sum / X.shape[0] + ops.total_penalty(model), grad, dX

    @single_threaded_blas
    def train_steps(self, model, X, y, order, batch_size, lr, state):
        total_loss, total_errors = 0.0, 0
        starts = range(0, len(order), batch_size)
        for step, start in enumerate(starts):
            idx = order[start:start + batch_size]
            loss_sum, n_errors, grad, _ = _minibatch(model, X[idx], y[idx], False)
            if not np.isfinite(loss_sum):
                return StepStats(total_loss, total_errors, step, step)
            total_loss += loss_sum
            total_errors += n_errors
            state.optimizer.step(model.theta, grad, state, lr)
        return StepStats(total_loss, total_errors, len(starts))
