"""Small helpers shared by every backend and by the trainer, defined once.

The numba backend re-states some of these inside its kernels (it cannot call Python),
and the tests pin those kernels to these definitions. Activations are in
:mod:`fastmlp.activations`, optimizers in :mod:`fastmlp.optim`, learning-rate schedules in
:mod:`fastmlp.schedules`.
"""

from __future__ import annotations

import numpy as np


def logsumexp(z, axis=-1):
    """Stable ``log(sum(exp(z)))`` along ``axis``, in ``z``'s dtype (the max is subtracted)."""
    zmax = z.max(axis=axis, keepdims=True)
    out = np.log(np.exp(z - zmax).sum(axis=axis, keepdims=True)) + zmax
    return np.squeeze(out, axis=axis)


def softmax(z, axis=-1):
    """Stable softmax along ``axis``, in ``z``'s dtype."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cross_entropy(logits, y):
    """Per-example loss ``-o_a[y] + logsumexp(o_a)``; logits ``(n, m)``, y ``(n,)`` -> ``(n,)``."""
    return logsumexp(logits, axis=1) - logits[np.arange(len(y)), y]


def penalty(W, l1, l2):
    """Elastic-net penalty of one weight matrix: ``l1*|W|_1 + l2*||W||^2`` (a Python float)."""
    value = 0.0
    if l1:
        value += l1 * float(np.abs(W).sum(dtype=np.float64))
    if l2:
        value += l2 * float(np.square(W, dtype=np.float64).sum())
    return value


def penalty_grad(W, l1, l2):
    """(Sub)gradient of :func:`penalty`: ``l1*sign(W) + 2*l2*W``, in W's dtype (sign(0) = 0)."""
    t = W.dtype.type
    return t(l1) * np.sign(W) + t(2.0 * l2) * W


def total_penalty(model):
    """The objective's penalty term, ``Σ_l l1_l |W_l|_1 + l2_l ||W_l||^2`` (a Python float)."""
    return sum(penalty(W, l1, l2)
               for (W, _), l1, l2 in zip(model.weights(), model.l1, model.l2))


def add_penalty_grads(grads, model):
    """Add each weight matrix's penalty (sub)gradient to ``grads`` (``[(dW, db), ...]`` in
    layer order, written in place); biases are not penalized."""
    for (dW, _), (W, _), l1, l2 in zip(grads, model.weights(), model.l1, model.l2):
        if l1 or l2:
            dW += penalty_grad(W, l1, l2)


def epoch_order(n, seed, epoch):
    """The shuffled order of ``n`` training examples in epoch ``epoch``, seeded by ``(seed, epoch)``."""
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n).astype(np.int64)


def n_batches(n, batch_size):
    """Number of minibatches of ``batch_size`` in ``n`` examples, the last smaller one kept."""
    return -(-n // batch_size)
