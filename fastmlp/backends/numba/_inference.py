"""Kernels that read the parameters only: logits, and the gradient of one minibatch.

``logits_worker``: the rows in fixed chunks of :data:`ROW_CHUNK`, one work item each, claimed
by the workers of :mod:`._workers` (evaluation computes the loss from the logits, as the
other backends do).
``loss_and_grads`` (serial: gradient checks and tests call it on small minibatches) takes the
training step's arithmetic apart: the forward pass layer by layer, the output layer and
every delta in the head's row chunks, then each hidden layer's weight gradient, the
penalties, and dJ/dX when asked.
"""

from __future__ import annotations

import numpy as np

from ... import _aligned
from ._compile import HEAD_CHUNK, ROW_CHUNK, UNIT_BLOCK, njit
from ._layers import activate, backprop_block, bias_grad, forward_block, weight_grad_block
from ._network import (ceil_block, forward_rows, head_chunk, matrix, running_offsets,
                       sum_chunks, weight)
from ._simd import atomic_add


@njit
def logits_worker(w, theta, offs, layers, acts, X, rows, out, A, B, sync):
    """Worker ``w`` of a logits call: claims chunks of :data:`ROW_CHUNK` rows of X from the
    counter ``sync[0]`` and writes their logits into ``out``; ``A[w]``/``B[w]`` are its
    scratch (two chunks of the widest hidden layer), ``rows`` is ``0 .. n - 1``."""
    n = X.shape[0]
    n_chunks = (n + ROW_CHUNK - 1) // ROW_CHUNK
    c = atomic_add(sync, 0, 1)
    while c < n_chunks:
        start = c * ROW_CHUNK
        stop = min(start + ROW_CHUNK, n)
        forward_rows(theta, offs, layers, acts, X, rows[start:stop], rows[:stop - start], A[w],
                     B[w], out[start:stop])
        c = atomic_add(sync, 0, 1)


def logits_buffers(layers, n, n_workers, dtype):
    """``(rows, out, A, B, sync)`` for :func:`logits_worker` on ``n`` rows."""
    width = max(layers[1:-1], default=1)
    scratch = (n_workers, min(n, ROW_CHUNK) * width)
    return (np.arange(n), np.empty((n, layers[-1]), dtype), _aligned.empty(scratch, dtype),
            _aligned.empty(scratch, dtype), np.zeros(1, np.int64))


@njit
def _add_penalty(G, W, l1, l2x2):
    """``G += l1 sign(W) + 2 l2 W`` (``l2x2`` is ``2 l2``)."""
    zero = W.dtype.type(0)
    one = W.dtype.type(1)
    for j in range(W.shape[0]):
        for i in range(W.shape[1]):
            w = W[j, i]
            s = one if w > zero else (-one if w < zero else zero)
            G[j, i] += l1 * s + l2x2 * w


@njit
def loss_and_grads(theta, offs, layers, acts, l1, l2x2, X, y, wrt_input):
    """Cross-entropy sum over the rows of X, the gradient of J (flat, penalties included) and
    dJ/dX (empty unless ``wrt_input``)."""
    K = X.shape[0]
    L = layers.shape[0] - 1
    dt = theta.dtype
    m = layers[L]
    rows = np.arange(K)
    hoff = running_offsets(layers, K, 1, L - 1)
    doff = running_offsets(layers, K, 1, L)
    H = np.empty(max(hoff[L], 1), dt)
    D = np.empty(doff[L + 1], dt)
    grad = np.empty_like(theta)
    for l in range(1, L):                              # the forward pass
        n_out = layers[l]
        IN = X if l == 1 else matrix(H, hoff[l - 1], K, layers[l - 1])
        OUT = matrix(H, hoff[l], K, n_out)
        b = theta[offs[l - 1, 1]:offs[l - 1, 1] + n_out]
        forward_block(weight(theta, offs, layers, l), b, IN, rows, np.int64(0), K, np.int64(0),
                      n_out, OUT)
        activate(OUT, np.int64(0), K, np.int64(0), n_out, acts[l - 1])
    n_last = layers[L - 1]
    n_chunks = (K + HEAD_CHUNK - 1) // HEAD_CHUNK
    O = np.empty((K, m), dt)
    dW_part = np.empty((n_chunks, ceil_block(m), n_last), dt)
    db_part = np.empty((n_chunks, m), dt)
    loss_p = np.empty(n_chunks)
    err_p = np.empty(n_chunks, np.int64)
    inv_K = dt.type(1.0 / K)
    for c in range(n_chunks):                          # output layer and every delta
        loss_p[c], err_p[c] = head_chunk(c, theta, offs, layers, acts, y, rows, X, H, hoff, D,
                                         doff, K, K, inv_K, O, dW_part[c], db_part[c], rows)
    dWL = matrix(grad, offs[L - 1, 0], m, n_last)
    dbL = matrix(grad, offs[L - 1, 1], m, 1)
    loss_sum, _ = sum_chunks(n_chunks, loss_p, err_p, dW_part, db_part, dWL, dbL)
    _add_penalty(dWL, weight(theta, offs, layers, L), l1[L - 1], l2x2[L - 1])
    for l in range(1, L):                              # hidden layers' weight gradients
        n_out = layers[l]
        n_in = layers[l - 1]
        IN = X if l == 1 else matrix(H, hoff[l - 1], K, n_in)
        Dl = matrix(D, doff[l], K, n_out)
        GW = np.empty((ceil_block(n_out), n_in), dt)
        for j0 in range(0, n_out, UNIT_BLOCK):
            weight_grad_block(Dl, IN, rows, np.int64(0), K, j0, min(j0 + UNIT_BLOCK, n_out),
                              GW, j0, True)
        dW = matrix(grad, offs[l - 1, 0], n_out, n_in)
        dW[:, :] = GW[:n_out]
        _add_penalty(dW, weight(theta, offs, layers, l), l1[l - 1], l2x2[l - 1])
        bias_grad(Dl, np.int64(0), K, np.int64(0), n_out, matrix(grad, offs[l - 1, 1], n_out, 1))
    dX = np.empty((K if wrt_input else 0, X.shape[1]), dt)
    if wrt_input:
        backprop_block(matrix(D, doff[1], K, layers[1]), weight(theta, offs, layers, 1),
                       np.int64(0), K, dX)
    return loss_sum, grad, dX
