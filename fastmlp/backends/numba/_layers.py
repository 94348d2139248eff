"""The arithmetic of one layer on a block of units and a range of minibatch rows (serial).

Rows are examples. A layer's input is a 2-D array ``IN`` read through a vector of row
indices ``rows`` (the gathered minibatch rows of ``X`` for the first layer, ``0..K-1`` of the
previous layer's activations otherwise); its outputs and deltas are dense ``(K, n_out)``
arrays whose row ``k`` belongs to ``rows[k]``.

The three products are written with explicit SIMD vectors (:mod:`._simd`), register-blocked
like a BLAS micro-kernel, each in the form that needs no transposed copy of ``W``:

* :func:`forward_block` -- ``a = b + W x``: dot products along the inputs, tiles of
  :data:`._compile.UNIT_BLOCK` (4) units by :data:`._compile.TILE_DEPTH` examples (4 with
  AVX-512, 2 with AVX2; 4 x 4: 16 vector accumulators sharing 8 loads), summed across lanes
  by one transposing tree (:func:`._simd.vsums`);
* :func:`weight_grad_block` -- ``Σ_k δ[k, j] x_k``: 4 units by ``TILE_DEPTH`` input vectors
  held in registers over a tile of rows, continued from the previous tile's sums, strip by
  strip of the width through all the units of a call;
* :func:`backprop_block` -- ``δ W``: 4 examples by ``TILE_DEPTH`` input vectors, over the
  units.

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

from ._compile import TILE_DEPTH, njit
from ._simd import (lanes, prefetch, prefetch_for_write, vfma, vlane, vload, vload_part, vsplat,
                    vstore, vstore_part, vstore_sums, vsums)

RELU, TANH, LOGISTIC, IDENTITY = 0, 1, 2, 3


# The products' register tiles: 4 units (rows of W) by TILE_DEPTH examples (forward) or input
# vectors (weight gradient), 4 * TILE_DEPTH vector accumulators. With AVX-512's 32 vector
# registers, 4 x 4: 8 loads per 16 FMAs, and a block of W small enough to stay in the core's
# first-level cache across the examples (4 x 784 float64 is 25 KB; the 8 x 2 tiles used
# before held 50 KB there, so float64 read W from the second level: on a Xeon (AVX-512) the
# forward product 784 -> 256 in float64 went from 38 to 53 GFLOP/s, the float32 weight
# gradient 784 -> 256 from 57 to 62 and 256 -> 128 from 62 to 73, medians of five
# interleaved runs). AVX2 has 16 registers, where 4 by 2 is the largest tile that does not
# spill (4 x 4 spilled on a Zen 3: forward 35 -> 58 GFLOP/s with 4 x 2). The tile changes
# no bit: every element gets the same sequence of operations in either
# (tests/test_numba_backend.py).


@njit
def _fma_4x4(w, va, vb, vc, vd, s):
    """One step of a 4-by-4 tile: ``s[4 r + u] += w[u] x_r`` lane-wise."""
    return (vfma(w[0], va, s[0]), vfma(w[1], va, s[1]), vfma(w[2], va, s[2]),
            vfma(w[3], va, s[3]),
            vfma(w[0], vb, s[4]), vfma(w[1], vb, s[5]), vfma(w[2], vb, s[6]),
            vfma(w[3], vb, s[7]),
            vfma(w[0], vc, s[8]), vfma(w[1], vc, s[9]), vfma(w[2], vc, s[10]),
            vfma(w[3], vc, s[11]),
            vfma(w[0], vd, s[12]), vfma(w[1], vd, s[13]), vfma(w[2], vd, s[14]),
            vfma(w[3], vd, s[15]))


@njit
def _fma_4x2(w, va, vb, s):
    """One step of a 4-by-2 tile: ``s[4 r + u] += w[u] x_r`` lane-wise."""
    return (vfma(w[0], va, s[0]), vfma(w[1], va, s[1]), vfma(w[2], va, s[2]),
            vfma(w[3], va, s[3]),
            vfma(w[0], vb, s[4]), vfma(w[1], vb, s[5]), vfma(w[2], vb, s[6]),
            vfma(w[3], vb, s[7]))


@njit(inline=True)
def _units(j, j1):
    """``j, j+1, j+2, j+3``, the last unit ``j1 - 1`` repeated past the edge of the matrix."""
    e = j1 - 1
    return j, min(j + 1, e), min(j + 2, e), min(j + 3, e)


@njit(inline=True)
def _unsigned(u):
    """Four indices as unsigned integers. numba makes every signed index it cannot prove
    non-negative wrap around from the end (a test and an add per index and use); unsigned
    ones index directly. In the weight-gradient passes, whose loop indexes ``D`` and
    ``rows`` with the row counter, that took a tenth of the time (a Xeon: 784 -> 256 at K=32,
    68 -> 74 GFLOP/s; 256 -> 128, 100 -> 115; medians of five interleaved runs)."""
    return np.uint64(u[0]), np.uint64(u[1]), np.uint64(u[2]), np.uint64(u[3])


# The forward products. Each tile of units j.. by minibatch rows k.. is written out in
# the loop body rather than in a function of its own: numba counts the references of every
# array passed to a function, inlined or not, with two atomic updates per array and call,
# and per tile that cost a tenth of a deep epoch.

@njit
def forward_block_4x4(W, b, IN, rows, k0, k1, j0, j1, OUT):
    """Pre-activations ``OUT[k, j] = b[j] + W[j] · IN[rows[k]]`` for ``k0 <= k < k1`` and
    ``j0 <= j < j1``; ``j0`` a multiple of 4.

    Tiles of 4 units by 4 examples (the last unit and row repeated at the edges, the copies
    dropped): 16 dot products along the inputs in vector accumulators, the last vector
    partial when the width is not a multiple of the lane count, then one transposing tree
    of lane sums (:func:`._simd.vsums`)."""
    d = IN.shape[1]
    n = lanes(W)
    dv = d - d % n
    c = d - dv
    z = vsplat(W.dtype.type(0))
    for j in range(j0, j1, 4):
        u = _units(j, j1)
        for k in range(k0, k1, 4):
            e = k1 - 1
            ra, rb, rc, rd = rows[k], rows[min(k + 1, e)], rows[min(k + 2, e)], rows[min(k + 3, e)]
            s = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
            for i in range(0, dv, n):
                w = (vload(W, (u[0], i)), vload(W, (u[1], i)), vload(W, (u[2], i)),
                     vload(W, (u[3], i)))
                s = _fma_4x4(w, vload(IN, (ra, i)), vload(IN, (rb, i)), vload(IN, (rc, i)),
                             vload(IN, (rd, i)), s)
            if c > 0:
                w = (vload_part(W, (u[0], dv), c), vload_part(W, (u[1], dv), c),
                     vload_part(W, (u[2], dv), c), vload_part(W, (u[3], dv), c))
                s = _fma_4x4(w, vload_part(IN, (ra, dv), c), vload_part(IN, (rb, dv), c),
                             vload_part(IN, (rc, dv), c), vload_part(IN, (rd, dv), c), s)
            t = vsums(s)
            if j + 4 <= j1 and k + 4 <= k1:
                vstore_sums(OUT, (k, j), t, 0, 4, b, j)
                vstore_sums(OUT, (k + 1, j), t, 4, 4, b, j)
                vstore_sums(OUT, (k + 2, j), t, 8, 4, b, j)
                vstore_sums(OUT, (k + 3, j), t, 12, 4, b, j)
            else:                                     # the edge, one lane at a time
                for r in range(min(4, k1 - k)):
                    for q in range(min(4, j1 - j)):
                        OUT[k + r, j + q] = b[j + q] + vlane(t[(4 * r + q) // n],
                                                             (4 * r + q) % n)


@njit
def forward_block_4x2(W, b, IN, rows, k0, k1, j0, j1, OUT):
    """:func:`forward_block_4x4` in tiles of 4 units by 2 examples (AVX2)."""
    d = IN.shape[1]
    n = lanes(W)
    dv = d - d % n
    c = d - dv
    z = vsplat(W.dtype.type(0))
    for j in range(j0, j1, 4):
        u = _units(j, j1)
        for k in range(k0, k1, 2):
            ra, rb = rows[k], rows[min(k + 1, k1 - 1)]
            s = (z, z, z, z, z, z, z, z)
            for i in range(0, dv, n):
                w = (vload(W, (u[0], i)), vload(W, (u[1], i)), vload(W, (u[2], i)),
                     vload(W, (u[3], i)))
                s = _fma_4x2(w, vload(IN, (ra, i)), vload(IN, (rb, i)), s)
            if c > 0:
                w = (vload_part(W, (u[0], dv), c), vload_part(W, (u[1], dv), c),
                     vload_part(W, (u[2], dv), c), vload_part(W, (u[3], dv), c))
                s = _fma_4x2(w, vload_part(IN, (ra, dv), c), vload_part(IN, (rb, dv), c), s)
            t = vsums(s)
            if j + 4 <= j1 and k + 2 <= k1:
                vstore_sums(OUT, (k, j), t, 0, 4, b, j)
                vstore_sums(OUT, (k + 1, j), t, 4, 4, b, j)
            else:
                for r in range(min(2, k1 - k)):
                    for q in range(min(4, j1 - j)):
                        OUT[k + r, j + q] = b[j + q] + vlane(t[(4 * r + q) // n],
                                                             (4 * r + q) % n)


#: the forward product in this CPU's tile (:data:`._compile.TILE_DEPTH` examples)
forward_block = forward_block_4x4 if TILE_DEPTH == 4 else forward_block_4x2


@njit
def grad_pass_4x4(D, IN, rows, k0, k1, j0, j1, dw, G, g0, fresh):
    """``G[g0 + j - j0, :dw] += Σ_k D[k, j] IN[rows[k], :dw]`` for ``j0 <= j < j1``, k in
    order, ``dw`` a multiple of 4 vectors: tiles of 4 units by 4 input vectors in registers
    over the rows (units past ``j1`` repeat the last one into scratch rows of ``G``).

    The width goes in strips of 4 vectors, each strip through every unit block before the
    next: the strip of the rows' inputs (8 KB for 32 rows of float32) stays in the core's
    first-level cache while all the blocks use it, where a pass per block read all the rows
    from the second level again (the same operations in another order: the same bits). One
    call for all of it: a call costs atomic reference-count updates of its arrays.
    ``fresh``: start from zero instead of ``G`` (the same bits as a zeroed ``G``, without
    writing and reading the zeros)."""
    n = lanes(G)
    z = vsplat(G.dtype.type(0))
    for i in range(0, dw, 4 * n):
        for j in range(j0, j1, 4):
            ja, jb, jc, jd = _unsigned(_units(j, j1))
            g = g0 + j - j0
            a = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
            if not fresh:
                a = (vload(G, (g, i)), vload(G, (g + 1, i)), vload(G, (g + 2, i)),
                     vload(G, (g + 3, i)),
                     vload(G, (g, i + n)), vload(G, (g + 1, i + n)), vload(G, (g + 2, i + n)),
                     vload(G, (g + 3, i + n)),
                     vload(G, (g, i + 2 * n)), vload(G, (g + 1, i + 2 * n)),
                     vload(G, (g + 2, i + 2 * n)), vload(G, (g + 3, i + 2 * n)),
                     vload(G, (g, i + 3 * n)), vload(G, (g + 1, i + 3 * n)),
                     vload(G, (g + 2, i + 3 * n)), vload(G, (g + 3, i + 3 * n)))
            for k in range(k0, k1):
                ku = np.uint64(k)
                r = rows[ku]
                c = (vsplat(D[ku, ja]), vsplat(D[ku, jb]), vsplat(D[ku, jc]), vsplat(D[ku, jd]))
                a = _fma_4x4(c, vload(IN, (r, i)), vload(IN, (r, i + n)),
                             vload(IN, (r, i + 2 * n)), vload(IN, (r, i + 3 * n)), a)
            for v in range(4):
                for q in range(4):
                    vstore(G, (g + q, i + v * n), a[4 * v + q])


@njit
def grad_pass_4x2(D, IN, rows, k0, k1, j0, j1, dw, G, g0, fresh):
    """:func:`grad_pass_4x4` by 2 input vectors (AVX2); ``dw`` a multiple of 2 vectors."""
    n = lanes(G)
    z = vsplat(G.dtype.type(0))
    for i in range(0, dw, 2 * n):
        for j in range(j0, j1, 4):
            ja, jb, jc, jd = _unsigned(_units(j, j1))
            g = g0 + j - j0
            a = (z, z, z, z, z, z, z, z)
            if not fresh:
                a = (vload(G, (g, i)), vload(G, (g + 1, i)), vload(G, (g + 2, i)),
                     vload(G, (g + 3, i)), vload(G, (g, i + n)), vload(G, (g + 1, i + n)),
                     vload(G, (g + 2, i + n)), vload(G, (g + 3, i + n)))
            for k in range(k0, k1):
                ku = np.uint64(k)
                r = rows[ku]
                c = (vsplat(D[ku, ja]), vsplat(D[ku, jb]), vsplat(D[ku, jc]), vsplat(D[ku, jd]))
                a = _fma_4x2(c, vload(IN, (r, i)), vload(IN, (r, i + n)), a)
            vstore(G, (g, i), a[0])
            vstore(G, (g + 1, i), a[1])
            vstore(G, (g + 2, i), a[2])
            vstore(G, (g + 3, i), a[3])
            vstore(G, (g, i + n), a[4])
            vstore(G, (g + 1, i + n), a[5])
            vstore(G, (g + 2, i + n), a[6])
            vstore(G, (g + 3, i + n), a[7])


_grad_pass = grad_pass_4x4 if TILE_DEPTH == 4 else grad_pass_4x2


@njit
def weight_grad_block(D, IN, rows, k0, k1, j0, j1, G, g0, fresh):
    """``G[g0 + u] += Σ_k D[k, j0 + u] IN[rows[k]]`` over ``k0 <= k < k1`` (k in order), for
    the units ``j0 <= j0 + u < j1`` (``G`` has ``j1 - j0`` rows from ``g0`` on, rounded up to
    whole blocks of :data:`._compile.UNIT_BLOCK`, 4: the rows past ``j1 - j0`` are scratch).
    ``fresh``: ``=`` instead of ``+=`` (the first range of rows of a sum).

    4 units by :data:`._compile.TILE_DEPTH` input vectors accumulate in registers over the rows,
    starting from ``G`` (loaded exactly, so a sum taken over consecutive ranges of rows has
    the bits of the sum taken at once); the width's remainder takes one unit and one vector
    at a time, the last one partial. Which units one call covers changes no bit."""
    d = IN.shape[1]
    n = lanes(G)
    z = vsplat(G.dtype.type(0))
    dw = d - d % (TILE_DEPTH * n)
    _grad_pass(D, IN, rows, k0, k1, j0, j1, dw, G, g0, fresh)
    for i in range(dw, d, n):
        c = d - i
        for u in range(j1 - j0):
            a = z if fresh else vload_part(G, (g0 + u, i), c)
            for k in range(k0, k1):
                a = vfma(vsplat(D[k, j0 + u]), vload_part(IN, (rows[k], i), c), a)
            vstore_part(G, (g0 + u, i), c, a)


@njit
def backprop_block(D_out, W, k0, k1, D_in):
    """``D_in[k] = Σ_j D_out[k, j] W[j]`` for ``k0 <= k < k1`` (the spec's ``W^lᵀ δ^l``,
    before the derivative), j in order: tiles of 4 examples by :data:`._compile.TILE_DEPTH`
    input vectors per pass over the units (4 loads of ``W`` and 4 broadcasts of ``D_out``
    per 16 multiply-adds with AVX-512), the width's remainder 4 examples by one vector, the
    last one partial; a lone example takes one-row passes with the same per-element order."""
    n_out, d = W.shape
    n = lanes(W)
    z = vsplat(W.dtype.type(0))
    dw = d - d % (TILE_DEPTH * n)
    for k in range(k0, k1, 4):
        if k + 4 <= k1:
            _backprop_pass(D_out, W, k, dw, D_in)
            for i in range(dw, d, n):
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
def backprop_pass_4x4(D_out, W, k, dw, D_in):
    """``D_in[k + r, :dw] = Σ_j D_out[k + r, j] W[j, :dw]`` for r < 4, j in order: 4 examples
    by 4 input vectors in registers, ``dw`` a multiple of 4 vectors."""
    n_out = W.shape[0]
    n = lanes(W)
    z = vsplat(W.dtype.type(0))
    for i in range(0, dw, 4 * n):
        s = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
        for j in range(n_out):
            w = (vload(W, (j, i)), vload(W, (j, i + n)), vload(W, (j, i + 2 * n)),
                 vload(W, (j, i + 3 * n)))
            s = _fma_4x4(w, vsplat(D_out[k, j]), vsplat(D_out[k + 1, j]),
                         vsplat(D_out[k + 2, j]), vsplat(D_out[k + 3, j]), s)
        for r in range(4):
            for v in range(4):
                vstore(D_in, (k + r, i + v * n), s[4 * r + v])


@njit
def backprop_pass_4x2(D_out, W, k, dw, D_in):
    """:func:`backprop_pass_4x4` by 2 input vectors (AVX2); ``dw`` a multiple of 2 vectors."""
    n_out = W.shape[0]
    n = lanes(W)
    z = vsplat(W.dtype.type(0))
    for i in range(0, dw, 2 * n):
        s = (z, z, z, z, z, z, z, z)
        for j in range(n_out):                        # s[4 v + r]: example r, vector v
            d = (vsplat(D_out[k, j]), vsplat(D_out[k + 1, j]), vsplat(D_out[k + 2, j]),
                 vsplat(D_out[k + 3, j]))
            s = _fma_4x2(d, vload(W, (j, i)), vload(W, (j, i + n)), s)
        for r in range(4):
            for v in range(2):
                vstore(D_in, (k + r, i + v * n), s[4 * v + r])


_backprop_pass = backprop_pass_4x4 if TILE_DEPTH == 4 else backprop_pass_4x2


@njit
def row_lines(X, rows):
    """How many 64-byte lines the rows ``X[rows]`` span, counted as :func:`prefetch_rows`
    counts them."""
    step = 64 // X.itemsize
    return rows.shape[0] * ((X.shape[1] + step - 1) // step)


@njit
def prefetch_rows(X, rows, first, count):
    """Start loading lines ``first .. first + count`` of the rows ``X[rows]`` into cache (the
    lines counted row after row, one hint each; see :func:`row_lines`) and return where the
    next call goes on: the next minibatch's gathered rows arrive from memory while this one
    is computed (the first pass over rows not in cache runs at two thirds of the speed).
    Taken a few lines at a time, the hints fill the time a worker would spend spinning."""
    step = 64 // X.itemsize
    per_row = (X.shape[1] + step - 1) // step
    end = min(first + count, rows.shape[0] * per_row)
    k = first // per_row
    i = (first - k * per_row) * step
    for _ in range(first, end):
        prefetch(X, (rows[k], i))
        i += step
        if i >= X.shape[1]:
            i = 0
            k += 1
    return end


@njit
def prefetch_rows_for_write(W, j0, j1):
    """Fetch the rows ``W[j0:j1]`` for writing, one hint per 64-byte line. For rows that the
    other workers read since this one last wrote them (a hidden layer's ``W`` beyond the
    first: every worker's backward pass reads all of it), issued ahead of their update so
    that the lines' transfers and invalidations overlap with the gradient's arithmetic
    instead of holding up the update's stores one line after another."""
    step = 64 // W.itemsize
    for j in range(j0, j1):
        for i in range(0, W.shape[1], step):
            prefetch_for_write(W, (j, i))


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
