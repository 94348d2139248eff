"""Views into the flat buffers, and the pieces of a step that run over whole networks.

The kernels receive the parameters as one flat buffer ``theta`` with ``offs[l - 1] = (offset
of W_l, offset of b_l)`` (:meth:`fastmlp.layout.Layout.offsets`), ``layers`` and the hidden
activations' codes as int64 arrays: one signature for every depth. Their workspaces are flat
too, cut into per-layer ``(K, width)`` views by running offsets.
"""

from __future__ import annotations

import numpy as np

from ._compile import HEAD_CHUNK, UNIT_BLOCK, njit
from ._layers import (activate, backprop_block, forward_block, softmax_delta,
                      times_derivative, weight_grad_block)


@njit
def ceil_block(n):
    """``n`` rounded up to whole unit blocks."""
    return (n + UNIT_BLOCK - 1) // UNIT_BLOCK * UNIT_BLOCK


@njit
def matrix(flat, offset, n_rows, n_cols):
    """The ``(n_rows, n_cols)`` row-major view of ``flat[offset:]``."""
    return flat[offset:offset + n_rows * n_cols].reshape((n_rows, n_cols))


@njit
def state_matrix(flat, offset, n_rows, n_cols):
    """As :func:`matrix` for an optimizer's state buffer, which is empty for rules without
    state (the view is then empty and never read)."""
    if flat.shape[0] == 0:
        return flat[:0].reshape((0, n_cols))
    return flat[offset:offset + n_rows * n_cols].reshape((n_rows, n_cols))


@njit
def weight(theta, offs, layers, l):
    """``W_l`` (``layers[l]`` by ``layers[l - 1]``), a view of ``theta``."""
    return matrix(theta, offs[l - 1, 0], layers[l], layers[l - 1])


@njit
def bias(theta, offs, layers, l):
    """``b_l`` as a ``(layers[l], 1)`` view, so that the row updates serve it too."""
    return matrix(theta, offs[l - 1, 1], layers[l], 1)


@njit
def layer_state(s1, s2, offs, layers, l):
    """Layer l's views of an optimizer's two state buffers, shaped as its weights and as its
    biases (:func:`bias`): ``(S1W, S2W, S1B, S2B)``, empty for rules without state."""
    n_out = layers[l]
    n_in = layers[l - 1]
    return (state_matrix(s1, offs[l - 1, 0], n_out, n_in),
            state_matrix(s2, offs[l - 1, 0], n_out, n_in),
            state_matrix(s1, offs[l - 1, 1], n_out, 1), state_matrix(s2, offs[l - 1, 1], n_out, 1))


@njit
def running_offsets(layers, rows, first, last):
    """``off[l]`` = start of layer l's ``(rows, layers[l])`` block for ``first <= l <= last``
    in a buffer holding them one after the other; ``off[last + 1]`` is the total size."""
    off = np.zeros(layers.shape[0] + 1, np.int64)
    for l in range(first, last + 1):
        off[l + 1] = off[l] + rows * layers[l]
    return off


@njit(inline=True)
def head_chunk(c, theta, offs, layers, acts, y, rows, X, H, hoff, D, doff, K, kb, inv_K,
               O, dW_part, db_part, ident):
    """Output layer, loss and backward pass of rows ``c*HEAD_CHUNK ..`` of a minibatch of
    ``kb`` rows (serial; one work item of a training step's head phase).

    From the last hidden activations in ``H`` (or the gathered inputs when there is no hidden
    layer), computes the logits into ``O``, the output delta ``δ^L`` and, row by row of the
    chunk, every hidden delta ``δ^{l-1} = (δ^l W^l) ⊙ f'(H^{l-1})`` into ``D``; the output
    layer's weight and bias gradients of these rows go to ``dW_part``/``db_part`` (the
    chunk's own buffers). Returns ``(loss_sum, n_errors)``.
    """
    k0 = c * HEAD_CHUNK
    k1 = min(k0 + HEAD_CHUNK, kb)
    L = layers.shape[0] - 1
    m = layers[L]
    n_in = layers[L - 1]
    WL = weight(theta, offs, layers, L)
    bL = theta[offs[L - 1, 1]:offs[L - 1, 1] + m]
    if L == 1:
        IN = X
        rin = rows
    else:
        IN = matrix(H, hoff[L - 1], K, n_in)
        rin = ident
    forward_block(WL, bL, IN, rin, k0, k1, np.int64(0), m, O)
    DL = matrix(D, doff[L], K, m)
    loss, errors = softmax_delta(O, DL, y, rows, k0, k1, inv_K)
    weight_grad_block(DL, IN, rin, k0, k1, np.int64(0), m, dW_part, np.int64(0), True)
    zero = O.dtype.type(0)
    for cc in range(m):
        s = zero
        for k in range(k0, k1):
            s += DL[k, cc]
        db_part[cc] = s
    for l in range(L, 1, -1):
        W = weight(theta, offs, layers, l)
        D_in = matrix(D, doff[l - 1], K, layers[l - 1])
        backprop_block(matrix(D, doff[l], K, layers[l]), W, k0, k1, D_in)
        times_derivative(D_in, matrix(H, hoff[l - 1], K, layers[l - 1]), k0, k1, acts[l - 2])
    return loss, errors


@njit
def sum_chunks(n, loss_p, err_p, dW_part, db_part, dW, db):
    """Add the first ``n`` head chunks' partial sums in chunk order into ``dW`` and ``db``
    (``(m, 1)``); returns the loss sum and error count."""
    m, n_in = dW.shape
    loss = loss_p[0]
    errors = err_p[0]
    for c in range(m):
        db[c, 0] = db_part[0, c]
        for i in range(n_in):
            dW[c, i] = dW_part[0, c, i]
    for p in range(1, n):
        loss += loss_p[p]
        errors += err_p[p]
        for c in range(m):
            db[c, 0] += db_part[p, c]
            for i in range(n_in):
                dW[c, i] += dW_part[p, c, i]
    return loss, errors


#: rows per pass over a layer's weights in :func:`forward_rows`: their inputs stay in the
#: core's cache while all the units are computed
_ROWS_PER_PASS = 32


@njit(inline=True)
def forward_rows(theta, offs, layers, acts, X, rows, ident, A, B, O):
    """Logits of ``X[rows]`` into ``O`` through every layer (serial); ``ident`` is
    ``0 .. len(rows) - 1``, ``A`` and ``B`` are flat scratch buffers of at least
    ``len(rows)`` times the widest hidden layer."""
    L = layers.shape[0] - 1
    nr = rows.shape[0]
    IN = X
    rin = rows
    for l in range(1, L + 1):
        OUT = O if l == L else matrix(A if l % 2 == 1 else B, 0, nr, layers[l])
        W = weight(theta, offs, layers, l)
        b = theta[offs[l - 1, 1]:offs[l - 1, 1] + layers[l]]
        for k0 in range(0, nr, _ROWS_PER_PASS):
            forward_block(W, b, IN, rin, k0, min(k0 + _ROWS_PER_PASS, nr), np.int64(0),
                          layers[l], OUT)
        if l < L:
            activate(OUT, np.int64(0), nr, np.int64(0), layers[l], acts[l - 1])
        IN = OUT
        rin = ident
