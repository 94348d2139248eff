"""Small helpers shared by every backend and by the trainer, defined once.

The numba backend re-states some of these inside its kernels (it cannot call Python),
and the tests pin those kernels to these definitions.
"""

from __future__ import annotations

import numpy as np

#: Names of the weight matrices (penalized) and biases (not penalized), in layer order.
WEIGHTS = ("W1", "W2")
BIASES = ("b1", "b2")
PARAM_KEYS = ("W1", "b1", "W2", "b2")


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


def learning_rate(lr, epoch, epochs):
    """The seed's schedule: ``lr / (1 + 4 e / E)`` at epoch ``e`` (counted from 0) of ``E``."""
    return lr / (1.0 + 4.0 * epoch / epochs)


def epoch_order(n, seed, epoch):
    """The shuffled order of ``n`` training examples in epoch ``epoch``, seeded by ``(seed, epoch)``."""
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n).astype(np.int64)


def n_batches(n, batch_size):
    """Number of minibatches of ``batch_size`` in ``n`` examples, the last smaller one kept."""
    return -(-n // batch_size)
