"""The arithmetic of one layer on a block of units and a range of minibatch rows (serial).

Rows are examples. A layer's input is a 2-D array ``IN`` read through a vector of row
indices ``rows`` (the gathered minibatch rows of ``X`` for the first layer, ``0..K-1`` of the
previous layer's activations otherwise); its outputs and deltas are dense ``(K, n_out)``
arrays whose row ``k`` belongs to ``rows[k]``.

The three products are written with explicit SIMD vectors (:mod:`._simd`), register-blocked
like a BLAS micro-kernel, each in the form that needs no transposed copy of ``W``:

* :func:`forward_block` -- ``a = b + W x``: dot products along the inputs, 4 units by
  :data:`TILE` examples (4 x 4: 16 vector accumulators sharing 8 loads), summed across
  lanes by one transposing tree (:func:`._simd.vsums`);
* :func:`weight_grad_block` -- ``Σ_k δ[k, j] x_k``: 4 units by :data:`TILE` input vectors
  held in registers over a tile of rows, continued from the previous tile's sums;
* :func:`backprop_block` -- ``δ W``: 4 examples by 4 input vectors, over the units.

Every element is computed by the same sequence of operations whatever tile it falls in (a
tile at the edge repeats a valid unit or row and drops the copy; a lone example takes a
one-row pass with the same per-element order), so no result depends on how rows or units
are grouped into work items: that is what makes the kernels' bits independent of the thread
count. Only the lane count (:data:`._simd.VECTOR_BYTES`) shapes the rounding.

The activations are integer codes (:data:`fastmlp.activations.CODES`): relu 0, tanh 1,
logistic 2, identity 3, with the same stable forms as :mod:`fastmlp.activations`.
"""

from __future__ import annotations

import math

import numpy as np

from ._compile import njit
from ._simd import (VECTOR_BYTES, lanes, prefetch, vfma, vlane, vload, vload_part, vsplat,
                    vstore, vstore_part, vstore_sums, vsums)

RELU, TANH, LOGISTIC, IDENTITY = 0, 1, 2, 3


#: examples per forward tile and input vectors per weight-gradient pass: with 4 units, 16
#: accumulators fit AVX-512's 32 vector registers; AVX2 has 16, where 4 x 4 spills to the
#: stack (measured on a Zen 3 core, one thread, float32 784 -> 256, K=32: forward 35 -> 58
#: GFLOP/s and weight gradient 17 -> 26 with 4 x 2). The shape does not change any bit:
#: every element gets the same sequence of operations in either (tests/test_numba_backend.py).
TILE = 4 if VECTOR_BYTES == 64 else 2


@njit
def _fma_4x4(u0, u1, u2, u3, va, vb, vc, vd, s):
    """One step of a 4-units-by-4-examples tile: ``s[4 r + u] += W_u x_r`` lane-wise."""
    return (vfma(u0, va, s[0]), vfma(u1, va, s[1]), vfma(u2, va, s[2]), vfma(u3, va, s[3]),
            vfma(u0, vb, s[4]), vfma(u1, vb, s[5]), vfma(u2, vb, s[6]), vfma(u3, vb, s[7]),
            vfma(u0, vc, s[8]), vfma(u1, vc, s[9]), vfma(u2, vc, s[10]), vfma(u3, vc, s[11]),
            vfma(u0, vd, s[12]), vfma(u1, vd, s[13]), vfma(u2, vd, s[14]), vfma(u3, vd, s[15]))


@njit
def _fma_4x2(u0, u1, u2, u3, va, vb, s):
    """One step of a 4-units-by-2-examples tile: ``s[4 r + u] += W_u x_r`` lane-wise."""
    return (vfma(u0, va, s[0]), vfma(u1, va, s[1]), vfma(u2, va, s[2]), vfma(u3, va, s[3]),
            vfma(u0, vb, s[4]), vfma(u1, vb, s[5]), vfma(u2, vb, s[6]), vfma(u3, vb, s[7]))


@njit
def _store_tile(OUT, b, t, k, k1, j, j1, n_rows):
    """``OUT[k + r, j + u] = b[j + u] + t[4 r + u]`` for the tile's rows and units that exist
    (one lane at a time: the edge of the matrix)."""
    n = lanes(b)
    for r in range(min(n_rows, k1 - k)):
        for u in range(min(4, j1 - j)):
            q = 4 * r + u
            OUT[k + r, j + u] = b[j + u] + vlane(t[q // n], q % n)


@njit
def forward_tile_4x4(W, b, IN, rows, ja, jb, jc, jd, j, j1, k, k1, OUT):
    """Pre-activations of units ``j .. j+3`` (``ja .. jd``: their rows, repeated at the edge)
    for minibatch rows ``k .. k+3`` (repeated at the edge, the copies dropped)."""
    d = IN.shape[1]
    n = lanes(W)
    dv = d - d % n
    z = vsplat(W.dtype.type(0))
    ra, rb = rows[k], rows[min(k + 1, k1 - 1)]
    rc, rd = rows[min(k + 2, k1 - 1)], rows[min(k + 3, k1 - 1)]
    s = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
    for i in range(0, dv, n):
        s = _fma_4x4(vload(W, (ja, i)), vload(W, (jb, i)), vload(W, (jc, i)),
                     vload(W, (jd, i)), vload(IN, (ra, i)), vload(IN, (rb, i)),
                     vload(IN, (rc, i)), vload(IN, (rd, i)), s)
    if dv < d:
        c = d - dv
        s = _fma_4x4(vload_part(W, (ja, dv), c), vload_part(W, (jb, dv), c),
                     vload_part(W, (jc, dv), c), vload_part(W, (jd, dv), c),
                     vload_part(IN, (ra, dv), c), vload_part(IN, (rb, dv), c),
                     vload_part(IN, (rc, dv), c), vload_part(IN, (rd, dv), c), s)
    t = vsums(s)
    if j + 4 <= j1 and k + 4 <= k1:
        vstore_sums(OUT, (k, j), t, 0, 4, b, j)
        vstore_sums(OUT, (k + 1, j), t, 4, 4, b, j)
        vstore_sums(OUT, (k + 2, j), t, 8, 4, b, j)
        vstore_sums(OUT, (k + 3, j), t, 12, 4, b, j)
    else:
        _store_tile(OUT, b, t, k, k1, j, j1, 4)


@njit
def forward_tile_4x2(W, b, IN, rows, ja, jb, jc, jd, j, j1, k, k1, OUT):
    """:func:`forward_tile_4x4` for minibatch rows ``k, k+1``."""
    d = IN.shape[1]
    n = lanes(W)
    dv = d - d % n
    z = vsplat(W.dtype.type(0))
    ra, rb = rows[k], rows[min(k + 1, k1 - 1)]
    s = (z, z, z, z, z, z, z, z)
    for i in range(0, dv, n):
        s = _fma_4x2(vload(W, (ja, i)), vload(W, (jb, i)), vload(W, (jc, i)),
                     vload(W, (jd, i)), vload(IN, (ra, i)), vload(IN, (rb, i)), s)
    if dv < d:
        c = d - dv
        s = _fma_4x2(vload_part(W, (ja, dv), c), vload_part(W, (jb, dv), c),
                     vload_part(W, (jc, dv), c), vload_part(W, (jd, dv), c),
                     vload_part(IN, (ra, dv), c), vload_part(IN, (rb, dv), c), s)
    t = vsums(s)
    if j + 4 <= j1 and k + 2 <= k1:
        vstore_sums(OUT, (k, j), t, 0, 4, b, j)
        vstore_sums(OUT, (k + 1, j), t, 4, 4, b, j)
    else:
        _store_tile(OUT, b, t, k, k1, j, j1, 2)


_forward_tile = forward_tile_4x4 if TILE == 4 else forward_tile_4x2


@njit
def forward_block(W, b, IN, rows, k0, k1, j0, j1, OUT):
    """Pre-activations ``OUT[k, j] = b[j] + W[j] · IN[rows[k]]`` for ``k0 <= k < k1`` and
    ``j0 <= j < j1``; ``j0`` a multiple of 4.

    Tiles of 4 units by :data:`TILE` examples; the dot products run along whole vectors of
    inputs (the last one partial when the width is not a multiple of the lane count)."""
    for j in range(j0, j1, 4):
        ja, jb, jc, jd = j, min(j + 1, j1 - 1), min(j + 2, j1 - 1), min(j + 3, j1 - 1)
        for k in range(k0, k1, TILE):
            _forward_tile(W, b, IN, rows, ja, jb, jc, jd, j, j1, k, k1, OUT)


@njit
def grad_pass_4x4(D, IN, rows, k0, k1, ja, jb, jc, jd, i, G):
    """``G[u, i : i + 4 n] += Σ_k D[k, j_u] IN[rows[k], i : i + 4 n]``, k in order: 4 units by
    4 input vectors in registers over the rows."""
    n = lanes(G)
    a00, a01 = vload(G, (0, i)), vload(G, (0, i + n))
    a02, a03 = vload(G, (0, i + 2 * n)), vload(G, (0, i + 3 * n))
    a10, a11 = vload(G, (1, i)), vload(G, (1, i + n))
    a12, a13 = vload(G, (1, i + 2 * n)), vload(G, (1, i + 3 * n))
    a20, a21 = vload(G, (2, i)), vload(G, (2, i + n))
    a22, a23 = vload(G, (2, i + 2 * n)), vload(G, (2, i + 3 * n))
    a30, a31 = vload(G, (3, i)), vload(G, (3, i + n))
    a32, a33 = vload(G, (3, i + 2 * n)), vload(G, (3, i + 3 * n))
    for k in range(k0, k1):
        r = rows[k]
        x0, x1 = vload(IN, (r, i)), vload(IN, (r, i + n))
        x2, x3 = vload(IN, (r, i + 2 * n)), vload(IN, (r, i + 3 * n))
        c = vsplat(D[k, ja])
        a00, a01 = vfma(c, x0, a00), vfma(c, x1, a01)
        a02, a03 = vfma(c, x2, a02), vfma(c, x3, a03)
        c = vsplat(D[k, jb])
        a10, a11 = vfma(c, x0, a10), vfma(c, x1, a11)
        a12, a13 = vfma(c, x2, a12), vfma(c, x3, a13)
        c = vsplat(D[k, jc])
        a20, a21 = vfma(c, x0, a20), vfma(c, x1, a21)
        a22, a23 = vfma(c, x2, a22), vfma(c, x3, a23)
        c = vsplat(D[k, jd])
        a30, a31 = vfma(c, x0, a30), vfma(c, x1, a31)
        a32, a33 = vfma(c, x2, a32), vfma(c, x3, a33)
    vstore(G, (0, i), a00)
    vstore(G, (0, i + n), a01)
    vstore(G, (0, i + 2 * n), a02)
    vstore(G, (0, i + 3 * n), a03)
    vstore(G, (1, i), a10)
    vstore(G, (1, i + n), a11)
    vstore(G, (1, i + 2 * n), a12)
    vstore(G, (1, i + 3 * n), a13)
    vstore(G, (2, i), a20)
    vstore(G, (2, i + n), a21)
    vstore(G, (2, i + 2 * n), a22)
    vstore(G, (2, i + 3 * n), a23)
    vstore(G, (3, i), a30)
    vstore(G, (3, i + n), a31)
    vstore(G, (3, i + 2 * n), a32)
    vstore(G, (3, i + 3 * n), a33)


@njit
def grad_pass_4x2(D, IN, rows, k0, k1, ja, jb, jc, jd, i, G):
    """:func:`grad_pass_4x4` over 2 input vectors, ``G[u, i : i + 2 n]``."""
    n = lanes(G)
    a00, a01 = vload(G, (0, i)), vload(G, (0, i + n))
    a10, a11 = vload(G, (1, i)), vload(G, (1, i + n))
    a20, a21 = vload(G, (2, i)), vload(G, (2, i + n))
    a30, a31 = vload(G, (3, i)), vload(G, (3, i + n))
    for k in range(k0, k1):
        r = rows[k]
        x0, x1 = vload(IN, (r, i)), vload(IN, (r, i + n))
        c = vsplat(D[k, ja])
        a00, a01 = vfma(c, x0, a00), vfma(c, x1, a01)
        c = vsplat(D[k, jb])
        a10, a11 = vfma(c, x0, a10), vfma(c, x1, a11)
        c = vsplat(D[k, jc])
        a20, a21 = vfma(c, x0, a20), vfma(c, x1, a21)
        c = vsplat(D[k, jd])
        a30, a31 = vfma(c, x0, a30), vfma(c, x1, a31)
    vstore(G, (0, i), a00)
    vstore(G, (0, i + n), a01)
    vstore(G, (1, i), a10)
    vstore(G, (1, i + n), a11)
    vstore(G, (2, i), a20)
    vstore(G, (2, i + n), a21)
    vstore(G, (3, i), a30)
    vstore(G, (3, i + n), a31)


_grad_pass = grad_pass_4x4 if TILE == 4 else grad_pass_4x2


@njit
def weight_grad_block(D, IN, rows, k0, k1, j0, j1, G):
    """``G[u] += Σ_k D[k, j0 + u] IN[rows[k]]`` over ``k0 <= k < k1`` (k in order), for
    the units ``j0 <= j0 + u < j1`` (at most 4; ``G`` has 4 rows, those past ``j1 - j0`` are
    scratch). The caller zeroes ``G`` before the first range of rows.

    Four units by :data:`TILE` input vectors accumulate in registers over the rows,
    starting from ``G`` (loaded exactly, so a sum taken over consecutive ranges of rows has
    the bits of the sum taken at once); the width's remainder takes one vector at a time,
    the last one partial."""
    d = IN.shape[1]
    n = lanes(G)
    ja, jb, jc, jd = j0, min(j0 + 1, j1 - 1), min(j0 + 2, j1 - 1), min(j0 + 3, j1 - 1)
    w = TILE * n
    dw = d - d % w
    for i in range(0, dw, w):
        _grad_pass(D, IN, rows, k0, k1, ja, jb, jc, jd, i, G)
    for i in range(dw, d, n):
        a0, a1 = vload_part(G, (0, i), d - i), vload_part(G, (1, i), d - i)
        a2, a3 = vload_part(G, (2, i), d - i), vload_part(G, (3, i), d - i)
        for k in range(k0, k1):
            x0 = vload_part(IN, (rows[k], i), d - i)
            a0, a1 = vfma(vsplat(D[k, ja]), x0, a0), vfma(vsplat(D[k, jb]), x0, a1)
            a2, a3 = vfma(vsplat(D[k, jc]), x0, a2), vfma(vsplat(D[k, jd]), x0, a3)
        vstore_part(G, (0, i), d - i, a0)
        vstore_part(G, (1, i), d - i, a1)
        vstore_part(G, (2, i), d - i, a2)
        vstore_part(G, (3, i), d - i, a3)


@njit
def backprop_block(D_out, W, k0, k1, D_in):
    """``D_in[k] = Σ_j D_out[k, j] W[j]`` for ``k0 <= k < k1`` (the spec's ``W^lᵀ δ^l``,
    before the derivative), j in order: 4 examples by 4 input vectors per pass over the
    units (a lone example takes a one-row pass with the same order)."""
    n_out, d = W.shape
    n = lanes(W)
    z = vsplat(W.dtype.type(0))
    for k in range(k0, k1, 4):
        if k + 4 <= k1:
            for i in range(0, d, n):
                a = b = c = e = z
                for j in range(n_out):
                    wv = vload_part(W, (j, i), d - i)
                    a = vfma(vsplat(D_out[k, j]), wv, a)
                    b = vfma(vsplat(D_out[k + 1, j]), wv, b)
                    c = vfma(vsplat(D_out[k + 2, j]), wv, c)
                    e = vfma(vsplat(D_out[k + 3, j]), wv, e)
                vstore_part(D_in, (k, i), d - i, a)
                vstore_part(D_in, (k + 1, i), d - i, b)
                vstore_part(D_in, (k + 2, i), d - i, c)
                vstore_part(D_in, (k + 3, i), d - i, e)
        else:
            for r in range(k, k1):
                for i in range(0, d, n):
                    a = z
                    for j in range(n_out):
                        a = vfma(vsplat(D_out[r, j]), vload_part(W, (j, i), d - i), a)
                    vstore_part(D_in, (r, i), d - i, a)


@njit
def prefetch_rows(X, rows):
    """Start loading the rows ``X[rows]`` into cache, one hint per 64-byte line: the next
    minibatch's gathered rows arrive from memory while this one is computed (the first pass
    over rows not in cache runs at two thirds of the speed)."""
    step = 64 // X.itemsize
    for k in range(rows.shape[0]):
        r = rows[k]
        for i in range(0, X.shape[1], step):
            prefetch(X, (r, i))


#: Eigen's and XLA's float32 tanh: p(x)/q(x) on [-_TANH_CLAMP, _TANH_CLAMP], p odd of degree
#: 13, q even of degree 6 (relative error below 4e-7 against the float64 tanh)
_TANH_CLAMP = np.float32(7.90531110763549805)
_TANH_P = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
           np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08),
           np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13),
           np.float32(-2.76076847742355e-16))
_TANH_Q = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
           np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))
_TANH_TINY = np.float32(0.0004)


@njit
def _tanh_f32(a):
    """tanh of a float32 by the rational approximation above, in operations LLVM vectorizes
    (libm's tanhf, one call per element, took 19 ns each: a third of a tanh network's
    epoch). Below 4e-4 in magnitude, and for NaN, the input itself."""
    if not abs(a) >= _TANH_TINY:
        return a
    x = min(max(a, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = x2 * _TANH_P[6] + _TANH_P[5]
    p = x2 * p + _TANH_P[4]
    p = x2 * p + _TANH_P[3]
    p = x2 * p + _TANH_P[2]
    p = x2 * p + _TANH_P[1]
    p = x2 * p + _TANH_P[0]
    q = x2 * _TANH_Q[3] + _TANH_Q[2]
    q = x2 * q + _TANH_Q[1]
    q = x2 * q + _TANH_Q[0]
    return x * p / q


@njit
def activate(H, k0, k1, j0, j1, code):
    """Apply activation ``code`` in place to ``H[k0:k1, j0:j1]`` (pre-activations in,
    activations out). ReLU keeps NaN (a NaN weight must not vanish into a zero)."""
    zero = H.dtype.type(0)
    one = H.dtype.type(1)
    if code == RELU:                                  # a select, not a branch: signs are random
        for k in range(k0, k1):
            for j in range(j0, j1):
                a = H[k, j]
                H[k, j] = zero if a < zero else a
    elif code == TANH:
        if H.itemsize == 4:
            for k in range(k0, k1):
                for j in range(j0, j1):
                    H[k, j] = _tanh_f32(H[k, j])
        else:
            for k in range(k0, k1):
                for j in range(j0, j1):
                    H[k, j] = math.tanh(H[k, j])
    elif code == LOGISTIC:
        for k in range(k0, k1):
            for j in range(j0, j1):
                a = H[k, j]
                e = math.exp(-abs(a))                 # e^-|a| <= 1: never overflows
                H[k, j] = (one if a >= zero else e) / (one + e)


@njit
def times_derivative(D, H, k0, k1, code):
    """``D[k] *= f'(H[k])`` for ``k0 <= k < k1``, the derivative written from the output H."""
    one = H.dtype.type(1)
    zero = H.dtype.type(0)
    n = D.shape[1]
    if code == RELU:
        for k in range(k0, k1):
            for i in range(n):
                D[k, i] = D[k, i] if H[k, i] > zero else zero
    elif code == TANH:
        for k in range(k0, k1):
            for i in range(n):
                h = H[k, i]
                D[k, i] *= one - h * h
    elif code == LOGISTIC:
        for k in range(k0, k1):
            for i in range(n):
                h = H[k, i]
                D[k, i] *= h * (one - h)


@njit
def bias_grad(D, k0, k1, j0, j1, db):
    """``db[j - j0, 0] = Σ_{k0 <= k < k1} D[k, j]`` for ``j0 <= j < j1`` (k in order)."""
    zero = D.dtype.type(0)
    for j in range(j0, j1):
        s = zero
        for k in range(k0, k1):
            s += D[k, j]
        db[j - j0, 0] = s


@njit
def softmax_delta(O, D, y, rows, k0, k1, inv_K):
    """The output layer's loss and delta for rows ``k0 <= k < k1``: from the logits ``O[k]``,
    ``D[k] = (softmax(O[k]) - onehot(y[rows[k]])) / K``. Returns ``(loss_sum, n_errors)``;
    the loss sum is accumulated in float64 from per-example losses in the model's dtype,
    ``logsumexp(o) - o[y]`` with the max subtracted; the first maximum wins, as np.argmax."""
    m = O.shape[1]
    one = O.dtype.type(1)
    zero = O.dtype.type(0)
    loss_sum = 0.0
    n_errors = 0
    for k in range(k0, k1):
        o = O[k]
        dk = D[k]
        best = 0
        omax = o[0]
        for c in range(1, m):
            if o[c] > omax:
                omax = o[c]
                best = c
        total = zero
        for c in range(m):
            e = math.exp(o[c] - omax)
            dk[c] = e
            total += e
        yk = y[rows[k]]
        loss_sum += np.float64((math.log(total) + omax) - o[yk])
        if best != yk:
            n_errors += 1
        for c in range(m):
            p = dk[c] / total
            if c == yk:
                p = p - one
            dk[c] = p * inv_K
    return loss_sum, n_errors
