"""The ``numba`` backend: fused, compiled kernels; a whole epoch per call.

Rows are examples, as in the ``numpy`` backend; the same equations, written as loops::

    H_a[k] = W1 X[k] + b1        H_s = relu(H_a)        O_a[k] = W2 H_s[k] + b2
    G_oa[k] = (softmax(O_a[k]) - onehot(y_k)) / K
    dW2 = Σ_k G_oa[k] H_s[k]ᵀ    db2 = Σ_k G_oa[k]
    G_ha[k] = (W2ᵀ G_oa[k]) ⊙ 1[H_a[k] > 0]
    dW1 = Σ_k G_ha[k] X[k]ᵀ      db1 = Σ_k G_ha[k]          dX[k] = W1ᵀ G_ha[k]

then ``p -= lr * (dp + l1 sign(p) + 2 l2 p)`` (penalties on W1, W2 only).

How the work is split (and why the result is bit-for-bit the same for any thread count):

* The hidden layer is cut into fixed blocks of :data:`UNIT_BLOCK` units. In training, one
  parallel region per minibatch gives each thread an even share of the blocks; the thread
  first applies the previous minibatch's update to *its own* rows of ``W1`` (and ``b1``) --
  the gradient of one row of W1 is a sum over the minibatch in a fixed order, so no
  reduction crosses threads -- and then computes its units' pre-activations for the current
  minibatch, walking the minibatch in tiles of :data:`ROW_TILE` rows that stay in that
  core's cache while it prefetches the next tile's rows (the rows are gathered from all of
  X, so without this they arrive from main memory one miss at a time). Which thread owns a
  block changes no arithmetic: each block's sums are computed the same way. The small
  output layer, the loss and the backward pass down to ``G_ha`` run serially between
  regions, or, for minibatches over :data:`HEAD_CHUNK` rows, in fixed row chunks (a second
  region) whose partial sums are added in chunk order.
* Evaluation (``logits``, ``evaluate``, ``predict_proba``) splits the rows into fixed chunks
  of :data:`ROW_CHUNK`; each chunk reduces into its own slot, and slots are added in order.
* Which path runs (serial loop or ``prange``) depends on the batch size and on whether more
  than one thread is available; both call the same block functions and give the same bits
  (a test pins this), so the choice changes the speed only. Pure SGD (batch size 1) has its
  own serial kernel that streams W1 once per step (update fused with the next forward).

Dtype discipline: every literal is made with ``W1.dtype.type(...)`` and scalars arrive typed
from the wrapper, so float32 models compute in float32 throughout. Only the *reported*
loss sum is accumulated in float64, as in the other backends.

Compilation: nothing is compiled at import; kernels compile on first use for each dtype and
are cached on disk (``cache=True``). Set ``NUMBA_CACHE_DIR`` to a writable folder when the
package directory is read-only (numba then falls back to it; without one it recompiles in
every process). :func:`warmup` compiles or loads every kernel for a dtype and returns the
seconds it took; :meth:`NumbaBackend.info` reports the numba version and threading layer.
"""

from __future__ import annotations

import math
import time
import warnings

import numba
import numpy as np
from llvmlite import ir
from numba import njit as _numba_njit
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import ops
from .base import Backend, StepStats

#: "contract" lets LLVM fuse a*b+c into one FMA; "reassoc" lets it vectorize the dot
#: products inside one work item. Both are fixed at compile time and applied to loops whose
#: length depends on the data only, so the results stay deterministic and thread-count
#: independent on a given machine (another vector width, e.g. AVX-512, may round differently,
#: as BLAS would). No "nnan"/"ninf": the NaN/inf checks of divergence detection must keep working.
FASTMATH = frozenset({"contract", "reassoc"})
_JIT = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)


def njit(*args, **options):
    """``numba.njit`` with ``cache=True``, tolerating installs where no cache folder is
    writable (numba raises at decoration time then): the kernel is compiled in each process
    instead, with a warning naming ``NUMBA_CACHE_DIR``."""
    def decorate(func):
        try:
            return _numba_njit(cache=True, **options)(func)
        except RuntimeError as exc:                 # "cannot cache function ...: no locator"
            warnings.warn(f"fastmlp's numba kernels cannot be cached ({exc}); they will be "
                          "compiled in every process. Set NUMBA_CACHE_DIR to a writable "
                          "folder to cache them.", RuntimeWarning, stacklevel=2)
            return _numba_njit(**options)(func)
    return decorate(args[0]) if args else decorate

#: hidden units per block: the unit of work of every kernel (in training a thread owns whole
#: blocks, i.e. whole rows of W1, so no sum crosses threads)
UNIT_BLOCK = 4
#: minibatch rows per tile (a multiple of 4 and of 2, so that the blocking of every row, and
#: hence every bit of the result, is the same as without tiles)
ROW_TILE = 32
#: minibatch rows per work item of the output layer and backward pass (larger minibatches
#: are split into chunks of this size, summed in chunk order)
HEAD_CHUNK = 16
#: rows per parallel work item in logits/evaluate
ROW_CHUNK = 256
#: minibatches smaller than this run the serial path: a parallel region costs more than it saves
PARALLEL_MIN_BATCH = 8


# --------------------------------------------------------------------------------------
# Block functions (serial arithmetic, called from the parallel kernels)
# --------------------------------------------------------------------------------------

@intrinsic
def _prefetch(typingctx, vec, i):
    """Ask the CPU to start loading the cache line of ``vec[i]`` (LLVM's ``llvm.prefetch``:
    read, keep in all cache levels). A hint only: it changes no value, only when the line
    arrives."""
    if not (isinstance(vec, types.Array) and vec.ndim == 1 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        vec_type = signature.args[0]
        array = context.make_array(vec_type)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, vec_type, array, [args[1]],
                                       wraparound=False)
        i32 = ir.IntType(32)
        byte_ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        fn_type = ir.FunctionType(ir.VoidType(), [byte_ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fn_type, "llvm.prefetch.p0")
        builder.call(fn, [byte_ptr, i32(0), i32(3), i32(1)])   # read, high locality, data
        return context.get_dummy_value()

    return types.void(vec, i), codegen


@njit(**_JIT)
def _prefetch_rows(X, rows, k0, k1):
    """Start loading rows ``rows[k0:k1]`` of X (clipped to ``rows``) into cache, one hint per
    64-byte line: the gathered rows of the next tile arrive while this one is computed."""
    step = 64 // X.itemsize
    for k in range(k0, min(k1, rows.shape[0])):
        x = X[rows[k]]
        for i in range(0, x.shape[0], step):
            _prefetch(x, i)


@njit(**_JIT)
def _hidden_block(W1, b1, X, rows, k0, k1, j0, j1, H_a):
    """``H_a[k, j] = b1[j] + W1[j] · X[rows[k]]`` for ``k0 <= k < k1`` and ``j0 <= j < j1``.

    Four units by two examples at a time (eight dot products share their loads); units past
    the end are clamped onto the last valid one and not written, and an odd last example
    takes a 4-by-1 pass, so that which code computes an element depends on its position in
    ``rows`` and in the fixed unit blocks only.
    """
    d = X.shape[1]
    zero = W1.dtype.type(0)
    for j in range(j0, j1, 4):
        ja, jb, jc, jd = j, min(j + 1, j1 - 1), min(j + 2, j1 - 1), min(j + 3, j1 - 1)
        wa, wb, wc, wd = W1[ja], W1[jb], W1[jc], W1[jd]
        n2 = k1 - (k1 - k0) % 2
        for k in range(k0, n2, 2):
            k2 = k + 1
            xa = X[rows[k]]
            xb = X[rows[k2]]
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
            for i in range(d):
                u = xa[i]
                v = xb[i]
                s0 += wa[i] * u
                s1 += wb[i] * u
                s2 += wc[i] * u
                s3 += wd[i] * u
                s4 += wa[i] * v
                s5 += wb[i] * v
                s6 += wc[i] * v
                s7 += wd[i] * v
            H_a[k, ja] = b1[ja] + s0
            H_a[k2, ja] = b1[ja] + s4
            if j + 1 < j1:
                H_a[k, jb] = b1[jb] + s1
                H_a[k2, jb] = b1[jb] + s5
            if j + 2 < j1:
                H_a[k, jc] = b1[jc] + s2
                H_a[k2, jc] = b1[jc] + s6
            if j + 3 < j1:
                H_a[k, jd] = b1[jd] + s3
                H_a[k2, jd] = b1[jd] + s7
        if n2 < k1:                                   # the odd last example: 4 units x 1
            k = n2
            xa = X[rows[k]]
            s0 = s1 = s2 = s3 = zero
            for i in range(d):
                u = xa[i]
                s0 += wa[i] * u
                s1 += wb[i] * u
                s2 += wc[i] * u
                s3 += wd[i] * u
            H_a[k, ja] = b1[ja] + s0
            if j + 1 < j1:
                H_a[k, jb] = b1[jb] + s1
            if j + 2 < j1:
                H_a[k, jc] = b1[jc] + s2
            if j + 3 < j1:
                H_a[k, jd] = b1[jd] + s3


@njit(**_JIT)
def _w1_row_grad(G_ha, X, rows, j, acc):
    """``acc = Σ_k G_ha[k, j] X[rows[k]]`` (k in order; four examples per pass over acc)."""
    n = rows.shape[0]
    d = X.shape[1]
    zero = G_ha.dtype.type(0)
    for i in range(d):
        acc[i] = zero
    n4 = n - n % 4
    for k in range(0, n4, 4):
        c0, c1, c2, c3 = G_ha[k, j], G_ha[k + 1, j], G_ha[k + 2, j], G_ha[k + 3, j]
        if c0 == zero and c1 == zero and c2 == zero and c3 == zero:
            continue  # unit dead on these four examples (common with ReLU): nothing to add
        x0, x1, x2, x3 = X[rows[k]], X[rows[k + 1]], X[rows[k + 2]], X[rows[k + 3]]
        for i in range(d):
            acc[i] = acc[i] + c0 * x0[i] + c1 * x1[i] + c2 * x2[i] + c3 * x3[i]
    for k in range(n4, n):
        c = G_ha[k, j]
        if c == zero:
            continue
        x = X[rows[k]]
        for i in range(d):
            acc[i] += c * x[i]


@njit(**_JIT)
def _w1_block_grad(G_ha, X, rows, k0, k1, j0, j1, acc, init):
    """``acc[u] (=|+=) Σ_k G_ha[k, j0 + u] X[rows[k]]`` over ``k0 <= k < k1``, for the units
    ``j0 <= j0 + u < j1`` (at most 4); ``init`` zeroes acc first.

    Four units by four examples per pass over the rows of ``acc`` (each X row loaded once
    for four units); k runs in order, so each element's sum has a fixed order.
    """
    d = X.shape[1]
    zero = G_ha.dtype.type(0)
    nu = j1 - j0
    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
    if init:
        for i in range(d):
            a0[i] = zero
            a1[i] = zero
            a2[i] = zero
            a3[i] = zero
    ju = np.empty(4, np.int64)
    for u in range(4):
        ju[u] = j0 + min(u, nu - 1)
    c = np.zeros((4, 4), G_ha.dtype)
    n4 = k1 - (k1 - k0) % 4
    for k in range(k0, n4, 4):
        nonzero = False
        for e in range(4):
            for u in range(4):
                v = G_ha[k + e, ju[u]] if u < nu else zero
                c[u, e] = v
                if v != zero:
                    nonzero = True
        if not nonzero:
            continue  # units dead on these four examples (common with ReLU): nothing to add
        x0, x1, x2, x3 = X[rows[k]], X[rows[k + 1]], X[rows[k + 2]], X[rows[k + 3]]
        c00, c01, c02, c03 = c[0, 0], c[0, 1], c[0, 2], c[0, 3]
        c10, c11, c12, c13 = c[1, 0], c[1, 1], c[1, 2], c[1, 3]
        c20, c21, c22, c23 = c[2, 0], c[2, 1], c[2, 2], c[2, 3]
        c30, c31, c32, c33 = c[3, 0], c[3, 1], c[3, 2], c[3, 3]
        for i in range(d):
            v0 = x0[i]
            v1 = x1[i]
            v2 = x2[i]
            v3 = x3[i]
            a0[i] = a0[i] + c00 * v0 + c01 * v1 + c02 * v2 + c03 * v3
            a1[i] = a1[i] + c10 * v0 + c11 * v1 + c12 * v2 + c13 * v3
            a2[i] = a2[i] + c20 * v0 + c21 * v1 + c22 * v2 + c23 * v3
            a3[i] = a3[i] + c30 * v0 + c31 * v1 + c32 * v2 + c33 * v3
    for k in range(n4, k1):
        x = X[rows[k]]
        for u in range(nu):
            cu = G_ha[k, j0 + u]
            if cu != zero:
                au = acc[u]
                for i in range(d):
                    au[i] += cu * x[i]


@njit(**_JIT)
def _sign(w, zero, one):
    """np.sign for a finite float: -1, 0 or 1 in w's dtype."""
    if w > zero:
        return one
    if w < zero:
        return -one
    return zero


@njit(**_JIT)
def _sgd_row(W, j, grad, lr, l1, l2x2):
    """``W[j] -= lr * (grad + (l1 sign(W[j]) + 2 l2 W[j]))`` in one pass (``l2x2`` is ``2 l2``)."""
    row = W[j]
    zero = W.dtype.type(0)
    one = W.dtype.type(1)
    for i in range(row.shape[0]):
        w = row[i]
        row[i] = w - lr * (grad[i] + (l1 * _sign(w, zero, one) + l2x2 * w))


@njit(**_JIT)
def _sgd_head(W2, b2, dW2, db2, lr, l1, l2x2):
    """The output layer's step: every row of W2 with its penalty, and b2 (not penalized)."""
    for c in range(W2.shape[0]):
        _sgd_row(W2, c, dW2[c], lr, l1, l2x2)
        b2[c] = b2[c] - lr * db2[c]


@njit(**_JIT)
def _head(H_a, W2, b2, y, rows, k0, k1, inv_K, H_s, G_oa, G_ha, dW2, db2, db1):
    """Output layer, loss and backward pass down to ``G_ha`` for rows ``k0 <= k < k1`` of a
    minibatch (serial).

    Fills those rows of ``H_s``, ``G_oa`` (already divided by K) and ``G_ha``, and sets
    ``dW2``, ``db2``, ``db1`` to their sums over those rows. Returns ``(loss_sum, n_errors)``;
    loss_sum is accumulated in float64 from per-example losses computed in the model's dtype.
    """
    d_h = H_a.shape[1]
    m = W2.shape[0]
    zero = H_a.dtype.type(0)
    one = H_a.dtype.type(1)
    dW2[:, :] = zero
    db2[:] = zero
    db1[:] = zero
    e = np.empty(m, H_a.dtype)
    loss_sum = 0.0
    n_errors = 0
    for k in range(k0, k1):
        hs = H_s[k]
        for j in range(d_h):
            a = H_a[k, j]
            hs[j] = a if a > zero else zero
        go = G_oa[k]
        for c in range(m):
            w = W2[c]
            s = zero
            for j in range(d_h):
                s += w[j] * hs[j]
            go[c] = b2[c] + s                       # o_a, overwritten by dL/do_a below
        best = 0
        omax = go[0]
        for c in range(1, m):
            if go[c] > omax:                          # first max wins, as np.argmax
                omax = go[c]
                best = c
        total = zero
        for c in range(m):
            e[c] = math.exp(go[c] - omax)             # once: exp dominates this function
            total += e[c]
        yk = y[rows[k]]
        loss = (math.log(total) + omax) - go[yk]     # logsumexp(o_a) - o_a[y]
        loss_sum += np.float64(loss)
        if best != yk:
            n_errors += 1
        for c in range(m):                            # softmax - onehot, over K
            p = e[c] / total
            if c == yk:
                p = p - one
            go[c] = p * inv_K
        gh = G_ha[k]
        gh[:] = zero
        for c in range(m):
            gc = go[c]
            w = W2[c]
            for j in range(d_h):
                gh[j] += gc * w[j]
            dwc = dW2[c]
            for j in range(d_h):
                dwc[j] += gc * hs[j]
            db2[c] += gc
        for j in range(d_h):
            if not H_a[k, j] > zero:
                gh[j] = zero
            db1[j] += gh[j]
    return loss_sum, n_errors


@njit(**_JIT)
def _sum_chunks(n, loss_p, err_p, dW2_p, db2_p, db1_p, dW2, db2, db1):
    """Add the first ``n`` head chunks' partial sums in chunk order into ``dW2, db2, db1``;
    returns the loss sum and error count. A function of its own, with loops: written as
    array expressions inside the ``parallel=True`` kernel, each ``+=`` would become a
    parallel region of its own (microseconds each, every minibatch)."""
    loss = loss_p[0]
    errors = err_p[0]
    m, d_h = dW2.shape
    for c in range(m):
        db2[c] = db2_p[0, c]
        for j in range(d_h):
            dW2[c, j] = dW2_p[0, c, j]
    for j in range(d_h):
        db1[j] = db1_p[0, j]
    for p in range(1, n):
        loss += loss_p[p]
        errors += err_p[p]
        for c in range(m):
            db2[c] += db2_p[p, c]
            for j in range(d_h):
                dW2[c, j] += dW2_p[p, c, j]
        for j in range(d_h):
            db1[j] += db1_p[p, j]
    return loss, errors


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------

@njit(**_JIT)
def _train_item(blk0, blk1, W1, b1, X, G_ha, db1, prev_rows, rows, next_rows, lr, l1, l2x2,
                H_a, acc):
    """One thread's share of a training step, unit blocks ``blk0 <= blk < blk1``: the
    previous step's update of their rows of W1 and b1 (when ``prev_rows`` is not empty),
    then their pre-activations for ``rows``. Each minibatch is walked in row tiles, each
    tile applied to every block while it is in cache; the next tile's rows (at the end, the
    first tile of ``next_rows``) are prefetched meanwhile."""
    d_h = W1.shape[0]
    n_prev = prev_rows.shape[0]
    if n_prev > 0:
        for t0 in range(0, n_prev, ROW_TILE):
            t1 = min(t0 + ROW_TILE, n_prev)
            for blk in range(blk0, blk1):
                j0 = blk * UNIT_BLOCK
                _w1_block_grad(G_ha, X, prev_rows, t0, t1, j0, min(j0 + UNIT_BLOCK, d_h),
                               acc[blk], t0 == 0)
        for blk in range(blk0, blk1):
            j0 = blk * UNIT_BLOCK
            for j in range(j0, min(j0 + UNIT_BLOCK, d_h)):
                _sgd_row(W1, j, acc[blk, j - j0], lr, l1, l2x2)
                b1[j] = b1[j] - lr * db1[j]
    n = rows.shape[0]
    for t0 in range(0, n, ROW_TILE):
        t1 = min(t0 + ROW_TILE, n)
        if t1 < n:
            _prefetch_rows(X, rows, t1, t1 + ROW_TILE)
        else:
            _prefetch_rows(X, next_rows, 0, ROW_TILE)
        for blk in range(blk0, blk1):
            j0 = blk * UNIT_BLOCK
            _hidden_block(W1, b1, X, rows, t0, t1, j0, min(j0 + UNIT_BLOCK, d_h), H_a)


@njit(**_JIT)
def _sgd1_row_dot(W1, j, c, x_prev, x_next, lr, l1, l2x2):
    """One pass over row j of W1 for pure SGD (K = 1): the update with the outer-product
    gradient ``c x_prev`` plus penalties, fused with the next example's dot product
    ``W1[j] · x_next`` on the updated row (so W1 is streamed once per step)."""
    row = W1[j]
    zero = W1.dtype.type(0)
    one = W1.dtype.type(1)
    s = zero
    for i in range(row.shape[0]):
        w = row[i]
        w = w - lr * (c * x_prev[i] + (l1 * _sign(w, zero, one) + l2x2 * w))
        row[i] = w
        s += w * x_next[i]
    return s


@njit(**_JIT)
def _train_steps_k1(W1, b1, W2, b2, X, y, order, lr, l1_1, l2x2_1, l1_2, l2x2_2):
    """Pure SGD (batch size 1), serial: a parallel region would cost more than one step.

    Same arithmetic as :func:`_train_steps` except that each step streams W1 once (see
    :func:`_sgd1_row_dot`); the first step of a call applies a zero step (lr = 0, exact) so
    that every forward pass goes through the same code, however the epoch is cut in calls.
    """
    n = order.shape[0]
    d_h = W1.shape[0]
    m = W2.shape[0]
    dt = W1.dtype
    zero = dt.type(0)
    one = dt.type(1)
    H_a = np.empty((1, d_h), dt)
    H_s = np.empty((1, d_h), dt)
    G_oa = np.empty((1, m), dt)
    G_ha = np.zeros((1, d_h), dt)
    dW2 = np.empty((m, d_h), dt)
    db2 = np.empty(m, dt)
    db1 = np.zeros(d_h, dt)
    loss_sum = 0.0
    n_errors = 0
    failed = -1
    done = 0
    for step in range(n + 1):
        _prefetch_rows(X, order, step + 1, step + 2)   # the row after next, while this one runs
        x_next = X[order[min(step, n - 1)]]
        if step == 0:
            x_prev, step_lr = x_next, zero
        else:
            x_prev, step_lr = X[order[step - 1]], lr
        for j in range(d_h):
            s = _sgd1_row_dot(W1, j, G_ha[0, j], x_prev, x_next, step_lr, l1_1, l2x2_1)
            b1[j] = b1[j] - step_lr * db1[j]
            H_a[0, j] = b1[j] + s
        if step == n:
            break
        batch_loss, batch_errors = _head(H_a, W2, b2, y, order[step:step + 1], 0, 1, one, H_s,
                                         G_oa, G_ha, dW2, db2, db1)
        if not np.isfinite(batch_loss):
            failed = step
            break
        loss_sum += batch_loss
        n_errors += batch_errors
        _sgd_head(W2, b2, dW2, db2, lr, l1_2, l2x2_2)
        done = step + 1
    return loss_sum, n_errors, done, failed


@njit(parallel=True, **_JIT)
def _train_steps(W1, b1, W2, b2, X, y, order, batch_size, lr, l1_1, l2x2_1, l1_2, l2x2_2,
                 parallel, n_items):
    """Minibatch SGD over ``order`` in place; returns ``(loss_sum, n_errors, n_steps, failed)``.

    One parallel region per step (see the module docstring): it applies the previous step's
    W1/b1 update and computes this step's hidden pre-activations, ``n_items`` threads each on
    an even share of the unit blocks (pass the thread count; ignored when ``parallel`` is
    false); the head follows, serially or in row chunks.
    """
    n = order.shape[0]
    d_h, d = W1.shape
    m = W2.shape[0]
    dt = W1.dtype
    n_steps = (n + batch_size - 1) // batch_size
    n_blocks = (d_h + UNIT_BLOCK - 1) // UNIT_BLOCK
    # one work item per thread (blocks split evenly): each thread sweeps the previous
    # minibatch once for all its blocks, then the new one. Which thread computes a block
    # does not change its bits.
    n_items = min(max(n_items, 1), n_blocks)
    H_a = np.empty((batch_size, d_h), dt)
    H_s = np.empty((batch_size, d_h), dt)
    G_oa = np.empty((batch_size, m), dt)
    G_ha = np.zeros((batch_size, d_h), dt)
    dW2 = np.empty((m, d_h), dt)
    db2 = np.empty(m, dt)
    db1 = np.zeros(d_h, dt)
    acc = np.empty((n_blocks, UNIT_BLOCK, d), dt)   # one private buffer per unit block
    n_hc_max = (batch_size + HEAD_CHUNK - 1) // HEAD_CHUNK
    loss_p = np.zeros(n_hc_max)                       # one slot per head chunk
    err_p = np.zeros(n_hc_max, np.int64)
    dW2_p = np.empty((n_hc_max, m, d_h), dt)
    db2_p = np.empty((n_hc_max, m), dt)
    db1_p = np.empty((n_hc_max, d_h), dt)
    loss_sum = 0.0
    n_errors = 0
    failed = -1
    done = 0
    prev_rows = order[0:0]
    for step in range(n_steps + 1):
        start = min(step * batch_size, n)
        rows = order[start:min(start + batch_size, n)]
        next_rows = order[min(start + batch_size, n):min(start + 2 * batch_size, n)]
        if parallel:
            for item in prange(n_items):
                _train_item(item * n_blocks // n_items, (item + 1) * n_blocks // n_items, W1,
                            b1, X, G_ha, db1, prev_rows, rows, next_rows, lr, l1_1, l2x2_1,
                            H_a, acc)
        else:
            _train_item(0, n_blocks, W1, b1, X, G_ha, db1, prev_rows, rows, next_rows, lr,
                        l1_1, l2x2_1, H_a, acc)
        if step == n_steps:
            break
        K = rows.shape[0]
        inv_K = W1.dtype.type(1.0 / K)
        if K <= HEAD_CHUNK:
            batch_loss, batch_errors = _head(H_a, W2, b2, y, rows, 0, K, inv_K, H_s, G_oa,
                                             G_ha, dW2, db2, db1)
        else:
            # large minibatches: fixed row chunks, each summing into its own buffers
            # (added below in chunk order), so the bits do not depend on the threads
            n_hc = (K + HEAD_CHUNK - 1) // HEAD_CHUNK
            if parallel:
                for c in prange(n_hc):
                    loss_p[c], err_p[c] = _head(H_a, W2, b2, y, rows, c * HEAD_CHUNK,
                                                min(c * HEAD_CHUNK + HEAD_CHUNK, K), inv_K, H_s,
                                                G_oa, G_ha, dW2_p[c], db2_p[c], db1_p[c])
            else:
                for c in range(n_hc):
                    loss_p[c], err_p[c] = _head(H_a, W2, b2, y, rows, c * HEAD_CHUNK,
                                                min(c * HEAD_CHUNK + HEAD_CHUNK, K), inv_K, H_s,
                                                G_oa, G_ha, dW2_p[c], db2_p[c], db1_p[c])
            batch_loss, batch_errors = _sum_chunks(n_hc, loss_p, err_p, dW2_p, db2_p, db1_p,
                                                   dW2, db2, db1)
        if not np.isfinite(batch_loss):
            failed = step
            break
        loss_sum += batch_loss
        n_errors += batch_errors
        _sgd_head(W2, b2, dW2, db2, lr, l1_2, l2x2_2)
        prev_rows = rows
        done = step + 1
    return loss_sum, n_errors, done, failed


@njit(parallel=True, **_JIT)
def _loss_and_grads(W1, b1, W2, b2, X, y, l1_1, l2x2_1, l1_2, l2x2_2, wrt_input):
    """Mean cross-entropy sum and the gradients of J (penalties included) for all rows of X."""
    K, d = X.shape
    d_h = W1.shape[0]
    m = W2.shape[0]
    dt = W1.dtype
    rows = np.arange(K)
    n_blocks = (d_h + UNIT_BLOCK - 1) // UNIT_BLOCK
    H_a = np.empty((K, d_h), dt)
    for blk in prange(n_blocks):
        j0 = blk * UNIT_BLOCK
        _hidden_block(W1, b1, X, rows, 0, K, j0, min(j0 + UNIT_BLOCK, d_h), H_a)
    H_s = np.empty((K, d_h), dt)
    G_oa = np.empty((K, m), dt)
    G_ha = np.empty((K, d_h), dt)
    dW2 = np.empty((m, d_h), dt)
    db2 = np.empty(m, dt)
    db1 = np.empty(d_h, dt)
    inv_K = W1.dtype.type(1.0 / K)
    loss_sum, _ = _head(H_a, W2, b2, y, rows, 0, K, inv_K, H_s, G_oa, G_ha, dW2, db2, db1)
    dW1 = np.empty((d_h, d), dt)
    zero = dt.type(0)
    one = dt.type(1)
    for j in prange(d_h):
        _w1_row_grad(G_ha, X, rows, j, dW1[j])
        for i in range(d):
            w = W1[j, i]
            dW1[j, i] += l1_1 * _sign(w, zero, one) + l2x2_1 * w
    for c in range(m):
        for j in range(d_h):
            w = W2[c, j]
            dW2[c, j] += l1_2 * _sign(w, zero, one) + l2x2_2 * w
    dX = np.empty((K if wrt_input else 0, d), dt)
    if wrt_input:
        for k in prange(K):
            dx = dX[k]
            dx[:] = W1.dtype.type(0)
            for j in range(d_h):
                c = G_ha[k, j]
                if c != W1.dtype.type(0):
                    w = W1[j]
                    for i in range(d):
                        dx[i] += c * w[i]
    return loss_sum, dW1, db1, dW2, db2, dX


@njit(**_JIT)
def _forward_chunk(W1, b1, W2, b2, X, rows, H_a, O_a):
    """Logits of ``X[rows]`` into ``O_a`` (``H_a`` is scratch)."""
    d_h = W1.shape[0]
    m = W2.shape[0]
    zero = W1.dtype.type(0)
    _hidden_block(W1, b1, X, rows, 0, rows.shape[0], 0, d_h, H_a)
    for k in range(rows.shape[0]):
        h = H_a[k]
        for j in range(d_h):
            if not h[j] > zero:
                h[j] = zero
        for c in range(m):
            w = W2[c]
            s = zero
            for j in range(d_h):
                s += w[j] * h[j]
            O_a[k, c] = b2[c] + s


@njit(parallel=True, **_JIT)
def _logits(W1, b1, W2, b2, X):
    n = X.shape[0]
    d_h = W1.shape[0]
    m = W2.shape[0]
    out = np.empty((n, m), W1.dtype)
    n_chunks = (n + ROW_CHUNK - 1) // ROW_CHUNK
    for ch in prange(n_chunks):
        start = ch * ROW_CHUNK
        stop = min(start + ROW_CHUNK, n)
        rows = np.arange(start, stop)
        H_a = np.empty((stop - start, d_h), W1.dtype)
        _forward_chunk(W1, b1, W2, b2, X, rows, H_a, out[start:stop])
    return out


@njit(parallel=True, **_JIT)
def _evaluate(W1, b1, W2, b2, X, y):
    """``(loss_sum, n_errors)`` over all rows: per-chunk sums added in chunk order."""
    n = X.shape[0]
    d_h = W1.shape[0]
    m = W2.shape[0]
    n_chunks = (n + ROW_CHUNK - 1) // ROW_CHUNK
    chunk_loss = np.zeros(n_chunks)
    chunk_errors = np.zeros(n_chunks, np.int64)
    for ch in prange(n_chunks):
        start = ch * ROW_CHUNK
        stop = min(start + ROW_CHUNK, n)
        rows = np.arange(start, stop)
        H_a = np.empty((stop - start, d_h), W1.dtype)
        O_a = np.empty((stop - start, m), W1.dtype)
        _forward_chunk(W1, b1, W2, b2, X, rows, H_a, O_a)
        loss = 0.0
        errors = 0
        for k in range(stop - start):
            o = O_a[k]
            best = 0
            omax = o[0]
            for c in range(1, m):
                if o[c] > omax:
                    omax = o[c]
                    best = c
            total = W1.dtype.type(0)
            for c in range(m):
                total += math.exp(o[c] - omax)
            yk = y[start + k]
            loss += np.float64((math.log(total) + omax) - o[yk])
            if best != yk:
                errors += 1
        chunk_loss[ch] = loss
        chunk_errors[ch] = errors
    loss_sum = 0.0
    n_errors = 0
    for ch in range(n_chunks):                        # fixed order, whatever the threads
        loss_sum += chunk_loss[ch]
        n_errors += chunk_errors[ch]
    return loss_sum, n_errors


# --------------------------------------------------------------------------------------
# Public wrapper
# --------------------------------------------------------------------------------------

def _weights(params):
    return params["W1"], params["b1"], params["W2"], params["b2"]


def _penalty_scalars(params, l1, l2):
    t = params["W1"].dtype.type
    return t(l1[0]), t(2.0 * l2[0]), t(l1[1]), t(2.0 * l2[1])


def _use_parallel(batch_size):
    """Serial or ``prange`` path: both give the same bits (pinned by the tests), so the
    choice only affects speed -- a parallel region per minibatch pays off from
    :data:`PARALLEL_MIN_BATCH` examples, and never with one thread."""
    return batch_size >= PARALLEL_MIN_BATCH and numba.get_num_threads() > 1


def _labels(y):
    return np.ascontiguousarray(y, dtype=np.int64)


class NumbaBackend(Backend):
    """Compiled, fused kernels (``@njit(parallel=True)``); whole epochs per call."""

    name = "numba"

    def logits(self, params, X):
        return _logits(*_weights(params), np.ascontiguousarray(X))

    def predict_proba(self, params, X):
        return ops.softmax(self.logits(params, X), axis=1)

    def evaluate(self, params, X, y):
        loss_sum, n_errors = _evaluate(*_weights(params), np.ascontiguousarray(X), _labels(y))
        return float(loss_sum), int(n_errors)

    def loss_and_grads(self, params, X, y, l1=(0.0, 0.0), l2=(0.0, 0.0), wrt_input=False):
        X = np.ascontiguousarray(X)
        loss_sum, dW1, db1, dW2, db2, dX = _loss_and_grads(
            *_weights(params), X, _labels(y), *_penalty_scalars(params, l1, l2), bool(wrt_input))
        J = float(loss_sum) / X.shape[0]
        J += sum(ops.penalty(params[k], l1[i], l2[i]) for i, k in enumerate(ops.WEIGHTS))
        grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
        if wrt_input:
            grads["X"] = dX
        return J, grads

    def train_steps(self, params, X, y, order, batch_size, lr, l1=(0.0, 0.0), l2=(0.0, 0.0)):
        t = params["W1"].dtype.type
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape[0] == 0:
            return StepStats(0.0, 0, 0)
        X, y = np.ascontiguousarray(X), _labels(y)
        if batch_size == 1:
            loss_sum, n_errors, n_steps, failed = _train_steps_k1(
                *_weights(params), X, y, order, t(lr), *_penalty_scalars(params, l1, l2))
        else:
            loss_sum, n_errors, n_steps, failed = _train_steps(
                *_weights(params), X, y, order, int(batch_size), t(lr),
                *_penalty_scalars(params, l1, l2), _use_parallel(batch_size),
                numba.get_num_threads())
        return StepStats(float(loss_sum), int(n_errors), int(n_steps), int(failed))

    @staticmethod
    def info():
        """Numba version, threading layer (after a first parallel call), thread count."""
        try:
            layer = numba.threading_layer()
        except ValueError:                      # no parallel kernel has run yet
            warmup("float32")
            layer = numba.threading_layer()
        return {"numba": numba.__version__, "threading_layer": layer,
                "num_threads": numba.get_num_threads(),
                "max_threads": numba.config.NUMBA_NUM_THREADS,
                "cache_dir": numba.config.CACHE_DIR or None,
                "parallel_min_batch": PARALLEL_MIN_BATCH, "unit_block": UNIT_BLOCK,
                "row_tile": ROW_TILE,
                "head_chunk": HEAD_CHUNK}


def warmup(dtype="float32"):
    """Compile (or load from the on-disk cache) every kernel for ``dtype``; return seconds.

    The first call in a fresh environment measures compilation; later processes load the
    cache (see the module docstring for ``NUMBA_CACHE_DIR``).
    """
    t0 = time.perf_counter()
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 5)).astype(dt), "b1": np.zeros(3, dt),
              "W2": rng.standard_normal((2, 3)).astype(dt), "b2": np.zeros(2, dt)}
    X = rng.standard_normal((PARALLEL_MIN_BATCH, 5)).astype(dt)
    y = np.arange(PARALLEL_MIN_BATCH) % 2
    be = NumbaBackend()
    be.logits(params, X)
    be.evaluate(params, X, y)
    be.loss_and_grads(params, X, y, wrt_input=True)
    be.train_steps(params, X, y, np.arange(len(y)), 1, 0.01)
    be.train_steps(params, X, y, np.arange(len(y)), 2, 0.01)
    be.train_steps(params, X, y, np.arange(len(y)), PARALLEL_MIN_BATCH, 0.01)
    return time.perf_counter() - t0


__all__ = ["NumbaBackend", "warmup", "FASTMATH", "UNIT_BLOCK", "ROW_TILE",
           "HEAD_CHUNK", "ROW_CHUNK", "PARALLEL_MIN_BATCH"]
