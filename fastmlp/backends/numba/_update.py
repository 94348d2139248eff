"""The optimizers' updates, restated for the kernels: rows ``j0..j1`` of one parameter matrix.

The same rules as :meth:`fastmlp.optim.Optimizer.step` (the tests pin one to the other),
applied to a block of rows by the thread that owns them, with the elastic-net terms added to
the mean-loss gradient on the way (``l1 = l2x2 = 0`` for biases)::

    g  = G[j] + l1 sign(P[j]) + 2 l2 P[j]
    sgd       P -= lr g
    momentum  S1 = mu S1 + g;  P -= lr S1
    nesterov  S1 = mu S1 + g;  P -= lr (g + mu S1)
    adam      S1 = beta1 S1 + (1 - beta1) g;  S2 = beta2 S2 + (1 - beta2) g²
              P -= step_size S1 / (sqrt(S2) (1 / bc2_sqrt) + eps)

Momentum buffers and moments below the dtype's smallest normal number are stored as zero
(:func:`_flush`, as :func:`fastmlp.optim.flush_subnormals`): one compare and select per value,
against a hundred-cycle assist for every operation on a subnormal.

``h`` holds the rule's scalars in the model's dtype: ``[lr, mu, beta1, 1 - beta1, beta2,
1 - beta2, eps, tiny]`` (``tiny``: the dtype's smallest normal number); ``step_size = lr /
(1 - beta1^t)`` and ``bc2_sqrt = sqrt(1 - beta2^t)``
come per step (computed by the wrapper as PyTorch does); dividing by ``bc2_sqrt`` is taken
as a product by its reciprocal (one rounding away from PyTorch's quotient; a vector division
costs as much as a dozen products, and Adam's steps had two per parameter). The rule is
branched on once per call, outside the loops.
"""

from __future__ import annotations

import math

from ._compile import njit

SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3


@njit
def _sign(w, zero, one):
    """np.sign for a finite float: -1, 0 or 1 in w's dtype."""
    if w > zero:
        return one
    if w < zero:
        return -one
    return zero


@njit(inline=True)
def _flush(x, tiny, zero):
    """``x``, or zero when it is subnormal (NaN stays NaN)."""
    return zero if abs(x) < tiny else x


# One parameter's step under each rule, from its mean-loss gradient ``g`` (the penalties are
# added here): the one definition that the loops over rows and over a rank-one row share.

@njit(inline=True)
def _sgd_step(w, g, l1, l2x2, lr, zero, one):
    """SGD: the new value of ``w``."""
    return w - lr * (g + (l1 * _sign(w, zero, one) + l2x2 * w))


@njit(inline=True)
def _momentum_step(w, g, b, l1, l2x2, lr, mu, tiny, nesterov, zero, one):
    """Momentum (Nesterov's when ``nesterov``): ``(new buffer, new w)`` from the buffer ``b``."""
    gi = g + (l1 * _sign(w, zero, one) + l2x2 * w)
    b = _flush(mu * b + gi, tiny, zero)
    return b, (w - lr * (gi + mu * b) if nesterov else w - lr * b)


@njit(inline=True)
def _adam_step(w, g, m, v, l1, l2x2, beta1, c1, beta2, c2, eps, tiny, step_size, inv_bc2,
               zero, one):
    """Adam: ``(new first moment, new second moment, new w)`` from the moments ``m``, ``v``
    (``inv_bc2``: the reciprocal of ``bc2_sqrt``, a product here rather than a division)."""
    gi = g + (l1 * _sign(w, zero, one) + l2x2 * w)
    m = _flush(beta1 * m + c1 * gi, tiny, zero)
    v = _flush(beta2 * v + c2 * (gi * gi), tiny, zero)
    return m, v, w - step_size * (m / (math.sqrt(v) * inv_bc2 + eps))


# Each rule's loop over rows is a function of its own, which :func:`update_rows` (inlined
# into its caller) chooses. A function that holds every rule's loop and branches on the rule
# at run time takes the reference counts of all its managed arrays (atomic updates, on a
# cache line that every worker's core touches) on every call; one loop's function takes
# none. The minibatch epochs went 1 % faster (one process, alternating with the old code and
# an identical twin: 0.988 against 0.998 on (784, 256, 128, 10), 0.995 against 1.002 on the
# seed's network), measured before the workers took their arrays unmanaged
# (:func:`._simd.unmanaged`), which leaves no reference counts to take. Batch size 1, which
# updates one row per call, goes further: see :func:`._train._rows_then_dots`.

@njit
def _sgd_rows(P, G, j0, j1, g0, l1, l2x2, lr):
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    for j in range(j0, j1):
        for i in range(P.shape[1]):
            P[j, i] = _sgd_step(P[j, i], G[j - g0, i], l1, l2x2, lr, zero, one)


@njit
def _momentum_rows(P, G, S1, j0, j1, g0, l1, l2x2, lr, mu, tiny, nesterov):
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    for j in range(j0, j1):
        for i in range(P.shape[1]):
            S1[j, i], P[j, i] = _momentum_step(P[j, i], G[j - g0, i], S1[j, i], l1, l2x2, lr,
                                               mu, tiny, nesterov, zero, one)


@njit
def _adam_rows(P, G, S1, S2, j0, j1, g0, l1, l2x2, h, step_size, bc2_sqrt):
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    beta1, c1, beta2, c2, eps, tiny = h[2], h[3], h[4], h[5], h[6], h[7]
    inv_bc2 = one / bc2_sqrt
    for j in range(j0, j1):
        for i in range(P.shape[1]):
            S1[j, i], S2[j, i], P[j, i] = _adam_step(P[j, i], G[j - g0, i], S1[j, i], S2[j, i],
                                                     l1, l2x2, beta1, c1, beta2, c2, eps, tiny,
                                                     step_size, inv_bc2, zero, one)


@njit(inline=True)
def update_rows(P, G, S1, S2, j0, j1, g0, l1, l2x2, opt, h, step_size, bc2_sqrt):
    """One step of rule ``opt`` for rows ``j0 <= j < j1`` of ``P`` (2-D) from the gradient rows
    ``G[j - g0]`` (penalties added here); ``S1``/``S2`` are the rule's state, shaped like ``P``
    (ignored by the rules that keep none). Elements are indexed in place, never through row
    views: a view costs two atomic reference-count updates, and this runs for every row of
    every step."""
    if opt == SGD:
        _sgd_rows(P, G, j0, j1, g0, l1, l2x2, h[0])
    elif opt == MOMENTUM or opt == NESTEROV:
        _momentum_rows(P, G, S1, j0, j1, g0, l1, l2x2, h[0], h[1], h[7], opt == NESTEROV)
    else:
        _adam_rows(P, G, S1, S2, j0, j1, g0, l1, l2x2, h, step_size, bc2_sqrt)


@njit(inline=True)
def update_layer_rows(W, GW, S1W, S2W, B, GB, S1B, S2B, j0, j1, l1, l2x2, opt, h, step_size,
                      bc2_sqrt):
    """Rows ``j0 <= j < j1`` of a layer's weights ``W`` and biases ``B`` (an ``(n, 1)`` view),
    from their gradient rows ``GW[j - j0]`` and ``GB[j - j0]``; biases take no penalty."""
    zero = W.dtype.type(0)
    update_rows(W, GW, S1W, S2W, j0, j1, j0, l1, l2x2, opt, h, step_size, bc2_sqrt)
    update_rows(B, GB, S1B, S2B, j0, j1, j0, zero, zero, opt, h, step_size, bc2_sqrt)


@njit(inline=True)
def update_rank_one_row(P, S1, S2, j, c, x, l1, l2x2, opt, h, step_size, bc2_sqrt):
    """Batch size 1: the step of rule ``opt`` for row ``j`` of ``P`` with the rank-one
    gradient ``c x`` (plus penalties), without materializing it (indexed in place, as
    :func:`update_rows`)."""
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    lr = h[0]
    if opt == SGD:
        for i in range(P.shape[1]):
            P[j, i] = _sgd_step(P[j, i], c * x[i], l1, l2x2, lr, zero, one)
    elif opt == MOMENTUM or opt == NESTEROV:
        mu, tiny = h[1], h[7]
        nesterov = opt == NESTEROV
        for i in range(P.shape[1]):
            S1[j, i], P[j, i] = _momentum_step(P[j, i], c * x[i], S1[j, i], l1, l2x2, lr, mu,
                                               tiny, nesterov, zero, one)
    else:
        beta1, c1, beta2, c2, eps, tiny = h[2], h[3], h[4], h[5], h[6], h[7]
        inv_bc2 = one / bc2_sqrt
        for i in range(P.shape[1]):
            S1[j, i], S2[j, i], P[j, i] = _adam_step(P[j, i], c * x[i], S1[j, i], S2[j, i], l1,
                                                     l2x2, beta1, c1, beta2, c2, eps, tiny,
                                                     step_size, inv_bc2, zero, one)
