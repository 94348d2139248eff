"""The training kernels: whole epochs (or progress-bar chunks of them) per call.

Minibatches (:func:`minibatch_worker`, on the buffers of :func:`workspace`) run on
``n_workers`` workers (threads, :mod:`._workers`) that start once per call and go through
the same steps together. Each step of a network of L layers has L phases, and a phase is a
fixed list of work items that the workers claim one at a time from shared counters (each
worker its own slot of them first, then the others': :func:`_claim`):

* one phase per hidden layer l, whose items are fixed groups of units (:func:`item_units`) --
  whole rows of ``W_l``. An item first takes the *previous* step's update of its rows
  (their gradient ``Σ_k δ^l[k, j] h^{l-1}[k]`` is a sum over that minibatch in a fixed
  order, so no reduction crosses items; the optimizer's state of those rows is updated with
  them), then computes its units' activations for the current minibatch, the rows going by
  tiles of :data:`ROW_TILE` through all of the item's unit blocks;
* one phase for the output layer and the backward pass, whose items are fixed chunks of
  :data:`HEAD_CHUNK` rows: each computes its logits, loss and output delta, then every
  hidden delta of its rows (a row's deltas need no other row), and the output layer's
  gradient of its rows into its own buffer. The worker that finishes the last chunk adds
  the chunks' sums in chunk order, checks the loss and updates the output layer.

Every worker also asks for the next minibatch's gathered rows of X to be brought into its
core's cache: a few lines per turn while it waits at the end of a phase, the rest before
its first head chunk (:func:`_wait`).

A worker that runs out of items waits (spinning, then yielding) until every item of the
phase is done, which is all the synchronization there is: well under a microsecond per
phase instead of a parallel region's launch (2.5 µs with the omp layer, much more on a busy
machine), and a slow or descheduled worker only delays the one item it holds, because the
others claim the rest. A worker only ever waits for
items that a running worker has claimed, so any number of workers on any number of threads
makes progress. Which worker computes an item changes no arithmetic: the bits are the same
for any thread count and worker count (one worker is the serial path). The update of a
hidden layer is taken at the start of the next step (or at the end of the call), so every
call leaves no update pending. A worker takes its arrays without reference counts
(:func:`._simd.unmanaged`; the caller keeps them alive), so that the views it makes and the
functions it calls on every step count none on the cache lines that both workers share.

Batch size 1 (:func:`single_example_worker`, on the same workers, phases and buffers)
streams each weight matrix once per step: the previous example's update of a row, then the
next example's dot product with it while the row is in cache. A hidden layer's items are
groups of rows, as above; the output layer is one item, which also computes every delta.
"""

from __future__ import annotations

import numpy as np

from ... import _aligned
from ._compile import (HEAD_CHUNK, ITEM_UNITS, MAX_ITEM_UNITS, PREFETCH_PER_SPIN, ROW_TILE,
                       UNIT_BLOCK, njit)
from ._layers import (activate, backprop_block, bias_grad, forward_block, prefetch_rows,
                      prefetch_rows_for_write, row_lines, softmax_delta, times_derivative,
                      weight_grad_block)
from ._network import bias, head_chunk, layer_state, matrix, sum_chunks, weight
from ._simd import (atomic_add, atomic_load, lanes, spin_pause, unmanaged, vfma, vlane, vload,
                    vload_part, vsplat, vsums)
from ._update import (ADAM, MOMENTUM, NESTEROV, SGD, update_layer_rows, update_rank_one_row,
                      update_rows)

#: a step's outcome in ``status``: not reached, loss finite (update taken), loss not finite
_PENDING, _TAKEN, _FAILED = 0, 1, 2


@njit
def _wait(sync, phase, target, X, next_rows, fetched):
    """Wait until ``target`` items of ``phase`` are done (acquire: what their workers wrote
    is visible afterwards); returns how many lines of the next step's rows ``X[next_rows]``
    are prefetched, ``fetched`` of them before.

    Each turn of the spin first asks for the next :data:`PREFETCH_PER_SPIN` of those lines
    (:func:`._layers.prefetch_rows`), then, when all are asked for, pauses. A prefetch that
    misses every cache holds a fill buffer for a memory latency, and asked for all at once
    before the head chunk, the thousands of lines of a minibatch stalled the
    worker: on (784, 64, 10) they took 16 % of its time. Taken while waiting, they cost little
    (one process, alternating epoch by epoch with the old placement and an identical twin,
    30-40 rounds, the same bits: the paired median of the epoch's time against the old
    placement 0.91-0.92 on (784, 64, 10) in three runs of a fast hour, 0.97, 1.01 and 0.97 in
    three runs of a slow one, where the twin strayed up to 3 %; 0.96-0.98 on (784, 256, 128,
    10) in four runs)."""
    total = row_lines(X, next_rows)
    spins = 0
    while atomic_load(sync, (phase, sync.shape[1] - 1)) < target:
        spins += 1
        if fetched < total:
            fetched = prefetch_rows(X, next_rows, fetched, PREFETCH_PER_SPIN)
        else:
            spin_pause(spins)
    return fetched


@njit
def _claim(sync, phase, n_items, w, v):
    """The next item of ``phase`` for worker ``w``, trying slot ``v`` first: ``(item,
    slot)``, item -1 when every item is claimed.

    A phase's items are split into one contiguous slot per worker, each counted by
    ``sync[phase, slot]``. A worker takes its own slot's items first, then helps the
    following slots: the same worker updates the same rows of W step after step, so they
    stay in its core's cache, and a late or descheduled worker's items are still done.
    """
    n_slots = sync.shape[1] - 1
    while v < w + n_slots:
        slot = v % n_slots
        i = slot * n_items // n_slots + atomic_add(sync, (phase, slot), 1)
        if i < (slot + 1) * n_items // n_slots:
            return i, v
        v += 1
    return -1, v


@njit(inline=True)
def _hidden_item(item, units, W, B, b, code, IN_prev, rows_prev, D, IN, rows, OUT, S1W, S2W,
                 S1B, S2B, l1, l2x2, opt, h, step_size, bc2_sqrt, G, GB, shared):
    """Units ``item * units ..`` (``units`` of them at most) of a hidden layer: the previous
    step's update of their rows of ``W`` and ``B`` (``b``: the same biases, 1-D; when
    ``rows_prev`` is not empty, ``D`` holds that step's deltas), then their activations for
    ``rows``. The rows go by tiles of :data:`ROW_TILE`, each tile through all the item's unit
    blocks while its inputs are in cache. ``G``/``GB``: the worker's scratch for the item's
    gradient rows (:data:`MAX_ITEM_UNITS` of them). ``shared``: other workers' backward
    passes have read ``W`` since its last update (a hidden layer after the first, several
    workers), so the rows are first fetched for writing
    (:func:`._layers.prefetch_rows_for_write`)."""
    n_out = W.shape[0]
    kp = rows_prev.shape[0]
    kb = rows.shape[0]
    u0 = item * units
    u1 = min(u0 + units, n_out)
    if kp > 0:
        if shared:
            prefetch_rows_for_write(W, u0, u1)
        for t0 in range(0, kp, ROW_TILE):
            weight_grad_block(D, IN_prev, rows_prev, t0, min(t0 + ROW_TILE, kp), u0, u1, G,
                              np.int64(0), t0 == 0)
        bias_grad(D, np.int64(0), kp, u0, u1, GB)
        update_layer_rows(W, G, S1W, S2W, B, GB, S1B, S2B, u0, u1, l1, l2x2, opt, h,
                          step_size, bc2_sqrt)
    if kb > 0:
        for t0 in range(0, kb, ROW_TILE):
            t1 = min(t0 + ROW_TILE, kb)
            forward_block(W, b, IN, rows, t0, t1, u0, u1, OUT)
        activate(OUT, np.int64(0), kb, u0, u1, code)


@njit(inline=True)
def _update_output_layer(step, theta, offs, layers, l1, l2x2, h, opt, sc, s1, s2, n_c, loss_p,
                         err_p, dW_part, db_part, dWL, dbL, batch_loss, batch_err, status):
    """The end of a step's head phase (one worker): the loss and error count of the
    minibatch from its chunks, in chunk order; when the loss is finite, the output layer's
    gradient (the chunks' partial sums, in chunk order) and its update."""
    L = layers.shape[0] - 1
    loss, errors = sum_chunks(n_c, loss_p, err_p, dW_part, db_part, dWL, dbL)
    batch_loss[step] = loss
    batch_err[step] = errors
    if not np.isfinite(loss):
        status[step] = _FAILED
        return
    S1W, S2W, S1B, S2B = layer_state(s1, s2, offs, layers, L)
    update_layer_rows(weight(theta, offs, layers, L), dWL, S1W, S2W, bias(theta, offs, layers, L),
                      dbL, S1B, S2B, np.int64(0), layers[L], l1[L - 1], l2x2[L - 1], opt, h,
                      sc[step, 0], sc[step, 1])
    status[step] = _TAKEN


@njit
def minibatch_worker(w, theta, offs, layers, acts, l1, l2x2, X, y, order, batch_size, h, opt,
                     sc, s1, s2, ws):
    """Worker ``w`` of a minibatch training call (see the module docstring): every step,
    every phase, the items it claims, with ``ws`` from :func:`workspace` (its own scratch
    is ``G[w]``/``GB[w]``; every other buffer is shared, each item writing its own part).

    Trains on the minibatches ``order[i:i + batch_size]`` in place; ``h``: the optimizer's
    scalars (see :mod:`._update`), ``sc[s]``: step s's Adam scalars, ``s1``/``s2``: its flat
    state buffers (empty when unused). The outcome of each step goes to ``ws``'s
    ``batch_loss``, ``batch_err`` and ``status`` (:func:`outcome` reads them).
    """
    theta, offs, layers, acts, l1, l2x2, X, y, order, h, sc, s1, s2 = unmanaged(
        (theta, offs, layers, acts, l1, l2x2, X, y, order, h, sc, s1, s2))
    (hoff, doff, iu, H, D, O, dW_part, db_part, loss_p, err_p, dWL, dbL, G, GB, ident, sync,
     batch_loss, batch_err, status) = unmanaged(ws)
    done = sync.shape[1] - 1                          # sync[phase, done]: items finished
    several = done > 1                                # more than one worker (one slot each)
    n = order.shape[0]
    L = layers.shape[0] - 1
    K = min(batch_size, n)
    n_steps = (n + batch_size - 1) // batch_size
    Gw = G[w]
    GBw = GB[w]
    prev_rows = order[0:0]
    for step in range(n_steps + 1):
        start = min(step * batch_size, n)
        rows = order[start:min(start + batch_size, n)]
        next_rows = order[min(start + batch_size, n):min(start + 2 * batch_size, n)]
        fetched = 0                                    # lines of X[next_rows] prefetched
        kb = rows.shape[0]
        kp = prev_rows.shape[0]
        cur = step % 2
        Hc = H[cur]
        Hp = H[1 - cur]
        ps = max(step - 1, 0)                          # the step whose update is taken now
        for l in range(1, L):
            phase = step * L + l - 1
            n_out = layers[l]
            n_in = layers[l - 1]
            if l == 1:
                IN_prev, rows_prev, IN, rin = X, prev_rows, X, rows
            else:
                IN_prev, rows_prev = matrix(Hp, hoff[l - 1], K, n_in), ident[:kp]
                IN, rin = matrix(Hc, hoff[l - 1], K, n_in), ident[:kb]
            # the layer's views, once per phase rather than per item
            W = weight(theta, offs, layers, l)
            B = bias(theta, offs, layers, l)
            b = theta[offs[l - 1, 1]:offs[l - 1, 1] + n_out]
            Dl = matrix(D, doff[l], K, n_out)
            OUT = matrix(Hc, hoff[l], K, n_out)
            S1W, S2W, S1B, S2B = layer_state(s1, s2, offs, layers, l)
            n_items = (n_out + iu[l] - 1) // iu[l]
            item, v = _claim(sync, phase, n_items, w, w)
            while item >= 0:
                _hidden_item(item, iu[l], W, B, b, acts[l - 1], IN_prev, rows_prev, Dl, IN, rin,
                             OUT, S1W, S2W, S1B, S2B, l1[l - 1], l2x2[l - 1], opt, h, sc[ps, 0],
                             sc[ps, 1], Gw, GBw, l > 1 and several)
                atomic_add(sync, (phase, done), 1)
                item, v = _claim(sync, phase, n_items, w, v)
            fetched = _wait(sync, phase, n_items, X, next_rows, fetched)
        if step == n_steps:
            break
        fetched = prefetch_rows(X, next_rows, fetched, row_lines(X, next_rows))  # the rest
        phase = step * L + L - 1
        n_c = (kb + HEAD_CHUNK - 1) // HEAD_CHUNK
        inv_K = theta.dtype.type(1.0 / kb)
        c, v = _claim(sync, phase, n_c, w, w)
        while c >= 0:
            loss_p[c], err_p[c] = head_chunk(c, theta, offs, layers, acts, y, rows, X, Hc, hoff,
                                             D, doff, K, kb, inv_K, O, dW_part[c], db_part[c],
                                             ident)
            if atomic_add(sync, (phase, done), 1) == n_c - 1:       # the last chunk is done
                _update_output_layer(step, theta, offs, layers, l1, l2x2, h, opt, sc, s1, s2,
                                     n_c, loss_p, err_p, dW_part, db_part, dWL, dbL, batch_loss,
                                     batch_err, status)
                atomic_add(sync, (phase, done), 1)
            c, v = _claim(sync, phase, n_c, w, v)
        _wait(sync, phase, n_c + 1, X, next_rows, fetched)
        if status[step] != _TAKEN:
            break
        prev_rows = rows


def item_units(n_out, batch_size, n_workers):
    """Units per work item of a hidden layer of ``n_out`` units, at minibatches of
    ``batch_size`` on ``n_workers`` workers: :data:`ITEM_UNITS`, larger for larger minibatches
    (up to :data:`MAX_ITEM_UNITS`) as long as every worker keeps two items or more.

    Each item reads the previous and the current minibatch's rows of its input once per
    step: at K=32 they stay in the core's cache from item to item, at K=256 (1.6 MB of
    784-wide float32 rows) they do not, and fewer, larger items read them fewer times --
    (784, 256, 128, 10) at K=256 on one thread of a Xeon took 0.68 s per epoch with 64-unit
    items against 0.80 s with 16-unit ones. Which worker computes which units changes no
    arithmetic, so the bits do not depend on this choice."""
    units = ITEM_UNITS * min(MAX_ITEM_UNITS // ITEM_UNITS, max(1, batch_size // 64))
    fair = n_out // (2 * n_workers) // UNIT_BLOCK * UNIT_BLOCK     # two items per worker
    return max(ITEM_UNITS, min(units, fair))


def workspace(theta, layers, n, batch_size, n_workers):
    """The buffers of a minibatch training call of ``n`` examples on ``n_workers`` workers,
    as the tuple :func:`minibatch_worker` takes. Allocated here, in NumPy (nothing to
    compile), so that a worker never allocates and so never fails halfway through an item."""
    L = len(layers) - 1
    dt = theta.dtype
    K = min(batch_size, n)
    n_steps = -(-n // batch_size)
    hidden = np.array([0] + list(layers[1:L]), np.int64) * K
    hoff = np.zeros(L + 1, np.int64)                  # hidden activations, two steps' worth
    hoff[1:] = np.cumsum(hidden)
    doff = np.zeros(L + 2, np.int64)                  # deltas of the step being taken
    doff[2:] = np.cumsum(np.asarray(layers[1:], np.int64) * K)
    m, n_last = layers[L], layers[L - 1]
    n_chunks = -(-K // HEAD_CHUNK)
    widest = max(layers[:L])
    line = _aligned.ALIGNMENT // dt.itemsize         # values per cache line
    empty = _aligned.empty                            # rows of whole cache lines load whole
    iu = np.array([0] + [item_units(w, K, n_workers) for w in layers[1:L]] + [0], np.int64)
    return (hoff, doff, iu, empty((2, -(-max(hoff[L], 1) // line) * line), dt),
            empty(doff[L + 1], dt), empty((K, m), dt),
            empty((n_chunks, -(-m // UNIT_BLOCK) * UNIT_BLOCK, n_last), dt),
            empty((n_chunks, m), dt), np.empty(n_chunks), np.empty(n_chunks, np.int64),
            empty((m, n_last), dt), empty((m, 1), dt),
            empty((n_workers, MAX_ITEM_UNITS, widest), dt),
            empty((n_workers, MAX_ITEM_UNITS, 1), dt), np.arange(K, dtype=np.int64),
            np.zeros((L * (n_steps + 1), n_workers + 1), np.int64), np.zeros(n_steps),
            np.zeros(n_steps, np.int64), np.zeros(n_steps, np.int64))


def outcome(ws):
    """``(loss_sum, n_errors, n_steps, failed)`` of a finished call from its workspace
    (``failed``: the step whose loss was not finite, where the call stopped before its
    update, or -1); the losses added in step order, as the other backends do."""
    batch_loss, batch_err, status = ws[-3:]
    taken = status == _TAKEN
    done = len(status) if taken.all() else int(taken.argmin())
    failed = done if done < len(status) and status[done] == _FAILED else -1
    loss_sum = float(np.cumsum(batch_loss[:done])[-1]) if done else 0.0
    return loss_sum, int(batch_err[:done].sum()), done, failed


@njit
def _dot_row(W, j, x):
    """``W[j] · x`` in four vector accumulators (the tail in a masked one), added across
    lanes by :func:`._simd.vsums` and then in order."""
    d = x.shape[0]
    n = lanes(W)
    z = vsplat(W.dtype.type(0))
    a = b = c = e = z
    d4 = d - d % (4 * n)
    for i in range(0, d4, 4 * n):
        a = vfma(vload(W, (j, i)), vload(x, i), a)
        b = vfma(vload(W, (j, i + n)), vload(x, i + n), b)
        c = vfma(vload(W, (j, i + 2 * n)), vload(x, i + 2 * n), c)
        e = vfma(vload(W, (j, i + 3 * n)), vload(x, i + 3 * n), e)
    for i in range(d4, d, n):
        a = vfma(vload_part(W, (j, i), d - i), vload_part(x, i, d - i), a)
    t = vsums((a, b, c, e))
    return ((vlane(t[0], 0) + vlane(t[0], 1)) + vlane(t[0], 2)) + vlane(t[0], 3)


@njit(inline=True)
def _rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, opt, h, step_size,
                    bc2_sqrt, update):
    """Rows ``u0..u1`` of :func:`_single_example_rows`, one at a time: its update (when
    ``update``), then its dot product."""
    for j in range(u0, u1):
        if update:
            update_rank_one_row(W, S1W, S2W, j, d[j], IN_prev, l1, l2x2, opt, h, step_size,
                                bc2_sqrt)
        OUT[0, j] = B[j, 0] + _dot_row(W, j, IN)


# :func:`_rows_then_dots` compiled once per rule, the rule a constant: LLVM keeps that rule's
# loop alone, inside the row loop. With managed arrays, a row update that branched on the rule
# at run time took the reference counts of all its arrays on every row (90 ns a row of 16
# inputs, against 6). Even without reference counts (:func:`._simd.unmanaged`), a call per row
# that branches on the rule costs: a deep step at K=1 took 80-98 us that way against 65-76 us
# (two threads, three alternating pairs of processes).

@njit
def _sgd_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h, step_size,
                        bc2_sqrt, update):
    _rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, SGD, h, step_size,
                    bc2_sqrt, update)


@njit
def _momentum_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h,
                             step_size, bc2_sqrt, update):
    _rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, MOMENTUM, h,
                    step_size, bc2_sqrt, update)


@njit
def _nesterov_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h,
                             step_size, bc2_sqrt, update):
    _rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, NESTEROV, h,
                    step_size, bc2_sqrt, update)


@njit
def _adam_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h, step_size,
                         bc2_sqrt, update):
    _rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, ADAM, h, step_size,
                    bc2_sqrt, update)


@njit(inline=True)
def _single_example_rows(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, S1B, S2B, l1, l2x2, opt,
                         h, step_size, bc2_sqrt, update):
    """Rows ``u0..u1`` of a layer at batch size 1: when ``update``, the previous example's
    step of their biases and, row by row, of their weights (the rank-one gradient
    ``d[j] IN_prev``); then each row's pre-activation for ``IN`` while the row is in cache."""
    zero = W.dtype.type(0)
    if update:
        update_rows(B, d.reshape((d.shape[0], 1)), S1B, S2B, u0, u1, np.int64(0), zero, zero,
                    opt, h, step_size, bc2_sqrt)
    if opt == SGD:
        _sgd_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h,
                            step_size, bc2_sqrt, update)
    elif opt == MOMENTUM:
        _momentum_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h,
                                 step_size, bc2_sqrt, update)
    elif opt == NESTEROV:
        _nesterov_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h,
                                 step_size, bc2_sqrt, update)
    else:
        _adam_rows_then_dots(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, l1, l2x2, h,
                             step_size, bc2_sqrt, update)


@njit(inline=True)
def _single_example_backward(step, theta, offs, layers, acts, y, order, Hc, hoff, D, doff, O,
                             batch_loss, batch_err, status):
    """The end of a step at batch size 1 (one worker): the example's loss and output delta
    from its logits ``O``, then, when the loss is finite, every hidden delta."""
    L = layers.shape[0] - 1
    one = theta.dtype.type(1)
    loss, errors = softmax_delta(O, matrix(D, doff[L], 1, layers[L]), y, order[step:step + 1],
                                 np.int64(0), np.int64(1), one)
    batch_loss[step] = loss
    batch_err[step] = errors
    if not np.isfinite(loss):
        status[step] = _FAILED
        return
    for l in range(L, 1, -1):
        D_in = matrix(D, doff[l - 1], 1, layers[l - 1])
        backprop_block(matrix(D, doff[l], 1, layers[l]), weight(theta, offs, layers, l),
                       np.int64(0), np.int64(1), D_in)
        times_derivative(D_in, matrix(Hc, hoff[l - 1], 1, layers[l - 1]), np.int64(0),
                         np.int64(1), acts[l - 2])
    status[step] = _TAKEN


@njit
def single_example_worker(w, theta, offs, layers, acts, l1, l2x2, X, y, order, h, opt, sc, s1,
                          s2, ws):
    """Worker ``w`` of a batch-size-1 training call, with ``ws`` from :func:`workspace`
    (``batch_size`` 1): as :func:`minibatch_worker`, one example per step. Each step has a
    phase per layer; a hidden layer's items are groups of rows, each row taking the previous
    example's update just before its dot product with the next example's input (the row
    is read from the cache once per step for both). The output layer is one item, which
    also computes the loss and every delta: a layer's deltas need all of its rows."""
    theta, offs, layers, acts, l1, l2x2, X, y, order, h, sc, s1, s2 = unmanaged(
        (theta, offs, layers, acts, l1, l2x2, X, y, order, h, sc, s1, s2))
    (hoff, doff, iu, H, D, O, dW_part, db_part, loss_p, err_p, dWL, dbL, G, GB, ident, sync,
     batch_loss, batch_err, status) = unmanaged(ws)
    done = sync.shape[1] - 1
    n = order.shape[0]
    L = layers.shape[0] - 1
    for step in range(n + 1):
        # the next example's row, asked for at once while this one runs (a few dozen lines)
        next_rows = order[min(step + 1, n):min(step + 2, n)]
        fetched = prefetch_rows(X, next_rows, 0, row_lines(X, next_rows))
        x = X[order[min(step, n - 1)]]
        update = step > 0
        x_prev = X[order[step - 1]] if update else x
        cur = step % 2
        ps = max(step - 1, 0)                          # the step whose update is taken now
        for l in range(1, L + 1):
            phase = step * L + l - 1
            n_out = layers[l]
            n_in = layers[l - 1]
            if l == 1:
                IN_prev, IN = x_prev, x
            else:
                IN_prev = H[1 - cur, hoff[l - 1]:hoff[l - 1] + n_in]
                IN = H[cur, hoff[l - 1]:hoff[l - 1] + n_in]
            OUT = matrix(H[cur], hoff[l], 1, n_out) if l < L else O
            W = weight(theta, offs, layers, l)
            B = bias(theta, offs, layers, l)
            d = D[doff[l]:doff[l] + n_out]
            S1W, S2W, S1B, S2B = layer_state(s1, s2, offs, layers, l)
            units = iu[l] if l < L else n_out
            n_items = (n_out + units - 1) // units
            item, v = _claim(sync, phase, n_items, w, w)
            while item >= 0:
                u0 = item * units
                u1 = min(u0 + units, n_out)
                _single_example_rows(u0, u1, W, B, d, IN_prev, IN, OUT, S1W, S2W, S1B, S2B,
                                     l1[l - 1], l2x2[l - 1], opt, h, sc[ps, 0], sc[ps, 1],
                                     update)
                if l < L:
                    activate(OUT, np.int64(0), np.int64(1), u0, u1, acts[l - 1])
                elif step < n:
                    _single_example_backward(step, theta, offs, layers, acts, y, order, H[cur],
                                             hoff, D, doff, O, batch_loss, batch_err, status)
                atomic_add(sync, (phase, done), 1)
                item, v = _claim(sync, phase, n_items, w, v)
            _wait(sync, phase, n_items, X, next_rows, fetched)
        if step == n or status[step] != _TAKEN:
            break
