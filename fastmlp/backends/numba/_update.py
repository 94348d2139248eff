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

``h`` holds the rule's scalars in the model's dtype: ``[lr, mu, beta1, 1 - beta1, beta2,
1 - beta2, eps]``; ``step_size = lr / (1 - beta1^t)`` and ``bc2_sqrt = sqrt(1 - beta2^t)``
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


@njit
def update_rows(P, G, S1, S2, j0, j1, l1, l2x2, opt, h, step_size, bc2_sqrt):
    """One step of rule ``opt`` for rows ``j0 <= j < j1`` of ``P`` (2-D) from the gradient rows
    ``G[j]`` (penalties added here); ``S1``/``S2`` are the rule's state, shaped like ``P``
    (ignored by the rules that keep none)."""
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    lr = h[0]
    n = P.shape[1]
    if opt == SGD:
        for j in range(j0, j1):
            p, g = P[j], G[j]
            for i in range(n):
                w = p[i]
                p[i] = w - lr * (g[i] + (l1 * _sign(w, zero, one) + l2x2 * w))
    elif opt == MOMENTUM or opt == NESTEROV:
        mu = h[1]
        nesterov = opt == NESTEROV
        for j in range(j0, j1):
            p, g, s = P[j], G[j], S1[j]
            for i in range(n):
                w = p[i]
                gi = g[i] + (l1 * _sign(w, zero, one) + l2x2 * w)
                b = mu * s[i] + gi
                s[i] = b
                p[i] = w - lr * (gi + mu * b) if nesterov else w - lr * b
    else:
        beta1, c1, beta2, c2, eps = h[2], h[3], h[4], h[5], h[6]
        inv_bc2 = one / bc2_sqrt                      # a product in the loop, not a division
        for j in range(j0, j1):
            p, g, m, v = P[j], G[j], S1[j], S2[j]
            for i in range(n):
                w = p[i]
                gi = g[i] + (l1 * _sign(w, zero, one) + l2x2 * w)
                mi = beta1 * m[i] + c1 * gi
                vi = beta2 * v[i] + c2 * (gi * gi)
                m[i] = mi
                v[i] = vi
                p[i] = w - step_size * (mi / (math.sqrt(vi) * inv_bc2 + eps))


@njit(inline=True)
def update_layer_rows(W, GW, S1W, S2W, B, GB, S1B, S2B, j0, j1, l1, l2x2, opt, h, step_size,
                      bc2_sqrt):
    """Rows ``j0 <= j < j1`` of a layer's weights ``W`` and biases ``B`` (an ``(n, 1)`` view),
    from their gradient rows ``GW[j - j0]`` and ``GB[j - j0]``; biases take no penalty.
    One call of :func:`update_rows` serves both (one copy of its loops in the caller)."""
    zero = W.dtype.type(0)
    for part in range(2):
        if part == 0:
            P, G, S1, S2, a, c = W[j0:j1], GW, S1W[j0:j1], S2W[j0:j1], l1, l2x2
        else:
            P, G, S1, S2, a, c = B[j0:j1], GB, S1B[j0:j1], S2B[j0:j1], zero, zero
        update_rows(P, G, S1, S2, 0, j1 - j0, a, c, opt, h, step_size, bc2_sqrt)


@njit
def update_rank_one_row(P, S1, S2, j, c, x, l1, l2x2, opt, h, step_size, bc2_sqrt):
    """Batch size 1: the step of rule ``opt`` for row ``j`` of ``P`` with the rank-one
    gradient ``c x`` (plus penalties), without materializing it."""
    zero = P.dtype.type(0)
    one = P.dtype.type(1)
    lr = h[0]
    p = P[j]
    if opt == SGD:
        for i in range(p.shape[0]):
            w = p[i]
            p[i] = w - lr * (c * x[i] + (l1 * _sign(w, zero, one) + l2x2 * w))
    elif opt == MOMENTUM or opt == NESTEROV:
        mu = h[1]
        nesterov = opt == NESTEROV
        sb = S1[j]
        for i in range(p.shape[0]):
            w = p[i]
            gi = c * x[i] + (l1 * _sign(w, zero, one) + l2x2 * w)
            b = mu * sb[i] + gi
            sb[i] = b
            p[i] = w - lr * (gi + mu * b) if nesterov else w - lr * b
    else:
        beta1, c1, beta2, c2, eps = h[2], h[3], h[4], h[5], h[6]
        inv_bc2 = one / bc2_sqrt
        m, v = S1[j], S2[j]
        for i in range(p.shape[0]):
            w = p[i]
            gi = c * x[i] + (l1 * _sign(w, zero, one) + l2x2 * w)
            mi = beta1 * m[i] + c1 * gi
            vi = beta2 * v[i] + c2 * (gi * gi)
            m[i] = mi
            v[i] = vi
            p[i] = w - step_size * (mi / (math.sqrt(vi) * inv_bc2 + eps))
