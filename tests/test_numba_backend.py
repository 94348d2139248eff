"""The numba backend: deterministic whatever the threads, dtype-true, NaN-honest, guarded.

Specific to numba (the cross-backend suites pin every backend to the loop and numpy ones).
The kernels compile once per dtype and machine (``cache=True``); the networks here are small
and share those compilations.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

import fastmlp  # noqa: E402
from fastmlp import optim  # noqa: E402
from fastmlp.backends import numba as nbmod  # noqa: E402

from conftest import RTOL, rel_err  # noqa: E402

numba_be = fastmlp.get_backend("numba")
numpy_be = fastmlp.get_backend("numpy")

OPTIMIZERS = tuple(optim.OPTIMIZERS)
DTYPES = ("float32", "float64")
#: a deep network mixing every activation; 37 and 23 units are no multiple of a unit block
#: (4) nor of a work item (16), 21 inputs no multiple of a vector's lanes
DEEP = ((21, 37, 23, 9, 7, 5), ("relu", "tanh", "logistic", "identity"))
WORKER_COUNTS = (1, 2, 3, 6)
#: single examples, a minibatch smaller than a head chunk, an odd one, one over two chunks, a
#: whole split
BATCH_SIZES = (1, 3, 10, 37, 300)
N = 300


def problem(dtype, layers=DEEP[0], activation=DEEP[1], n=N, seed=0):
    rng = np.random.default_rng(seed)
    model = fastmlp.MLP(layers, activation=activation, l1=1e-4, l2=2e-4, dtype=dtype,
                        seed=seed)
    X = rng.normal(size=(n, layers[0])).astype(dtype)
    y = rng.integers(0, layers[-1], n)
    return model, X, y


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def train_with_workers(model, X, y, order, batch_size, optimizer, n_workers, lr=0.05):
    """One training call on exactly ``n_workers`` workers, through the wrapper's helper."""
    state = optim.get_optimizer(optimizer).init_state(model.n_params, model.dtype)
    n_steps = -(-len(order) // batch_size)
    stats = nbmod._train_on_workers(nbmod._network_arrays(model), *nbmod._penalties(model),
                                    X, y, order, batch_size,
                                    nbmod._rule(state, model.dtype, lr, n_steps), n_workers)
    return stats, state


# -- determinism ---------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_bits_do_not_depend_on_the_worker_count(optimizer, batch_size):
    """Work is split into fixed items that the workers claim in any order: 1 (the serial
    path), 2, 3 or 6 workers (more than the threads) give the same bits."""
    model, X, y = problem("float32")
    order = fastmlp.ops.epoch_order(N, 0, 0)
    results = set()
    for n_workers in WORKER_COUNTS:
        m = model.copy()
        stats, state = train_with_workers(m, X, y, order, batch_size, optimizer, n_workers)
        results.add((digest(m.theta, *state.buffers.values()), stats))
    assert len(results) == 1


@pytest.mark.parametrize("n", (1, 255, 256, 700))
def test_logits_bits_do_not_depend_on_the_worker_count(n):
    model, X, _ = problem("float32", n=n)
    network = nbmod._network_arrays(model)
    outs = {digest(nbmod._logits(network, X, w)) for w in WORKER_COUNTS}
    assert len(outs) == 1


def test_items_grow_with_the_minibatch_and_keep_every_worker_busy():
    from fastmlp.backends.numba._compile import ITEM_UNITS, MAX_ITEM_UNITS
    from fastmlp.backends.numba._train import item_units

    assert item_units(256, 32, 2) == ITEM_UNITS == 16
    assert item_units(256, 128, 2) == 32 and item_units(256, 256, 2) == MAX_ITEM_UNITS == 64
    assert item_units(256, 4096, 2) == 64                     # never past the scratch rows
    assert item_units(128, 256, 2) == 32                      # two items per worker
    assert item_units(64, 256, 2) == 16 and item_units(7, 256, 6) == 16


def test_large_minibatches_give_the_bits_of_any_worker_count():
    """At K=256 a 200-unit layer's items are 64, 48, 32 or 16 units for 1, 2, 3 or 6
    workers: the same bits all the same."""
    from fastmlp.backends.numba._train import item_units

    assert [item_units(200, 256, w) for w in WORKER_COUNTS] == [64, 48, 32, 16]
    model, X, y = problem("float32", layers=(29, 200, 33, 5), activation="tanh", n=600)
    order = np.random.default_rng(1).permutation(600)
    results = set()
    for n_workers in WORKER_COUNTS:
        m = model.copy()
        stats, state = train_with_workers(m, X, y, order, 256, "adam", n_workers)
        results.add((digest(m.theta, *state.buffers.values()), stats))
    assert len(results) == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in, n_out, K", [(784, 64, 32), (37, 7, 5), (101, 7, 5), (256, 9, 3)])
def test_the_tile_shape_changes_no_bit(dtype, n_in, n_out, K):
    """The 4 x 4 tiles (AVX-512) and the 4 x 2 tiles (AVX2) give every element the same
    sequence of operations, so a machine's tile choice never changes the results; nor does
    how the units are grouped into calls of the weight-gradient pass."""
    from fastmlp.backends.numba import _layers, _simd

    rng = np.random.default_rng(5)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    IN = rng.standard_normal((50, n_in)).astype(dtype)
    rows = rng.permutation(50)[:K].astype(np.int64)
    D = rng.standard_normal((K, n_out)).astype(dtype)
    outs, grads, backs = [], [], []
    for forward, grad_pass, backprop_pass in (
            (_layers.forward_block_4x4, _layers.grad_pass_4x4, _layers.backprop_pass_4x4),
            (_layers.forward_block_4x2, _layers.grad_pass_4x2, _layers.backprop_pass_4x2)):
        OUT = np.zeros((K, n_out), dtype)
        forward(W, b, IN, rows, 0, K, 0, n_out, OUT)
        n = _simd.VECTOR_BYTES // np.dtype(dtype).itemsize
        whole = n_in - n_in % (4 * n)                     # the passes' part of the width
        G = np.zeros((-(-n_out // 4) * 4, n_in), dtype)
        grad_pass(D, IN, rows, 0, K, 0, n_out, whole, G, 0, False)         # all units at once
        by_block = np.zeros_like(G)
        for j in range(0, n_out, 4):                                       # a call per block
            grad_pass(D, IN, rows, 0, K, j, min(j + 4, n_out), whole, by_block, j, False)
        assert by_block.tobytes() == G.tobytes()
        D_in = np.zeros((K, n_in), dtype)                 # W^T delta, by blocks of 4 rows
        for k in range(0, K - K % 4, 4):
            backprop_pass(D, W, k, whole, D_in)
        outs.append(OUT)
        grads.append(G[:n_out])
        backs.append(D_in)
    assert np.abs(outs[0] - (b + IN[rows] @ W.T)).max() < 1e-3 * n_in
    assert outs[0].tobytes() == outs[1].tobytes()
    assert whole == 0 or np.abs(grads[0][:, :whole] - (D.T @ IN[rows])[:, :whole]).max() < 1e-3 * K
    assert grads[0].tobytes() == grads[1].tobytes()
    tiled = K - K % 4
    assert whole == 0 or tiled == 0 or \
        np.abs(backs[0][:tiled, :whole] - (D @ W)[:tiled, :whole]).max() < 1e-3 * n_out
    assert backs[0].tobytes() == backs[1].tobytes()


_SUBPROCESS = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import numba, numpy as np
    import fastmlp
    from test_numba_backend import problem, digest
    print(numba.get_num_threads())
    for dtype in ("float32", "float64"):
        for optimizer in fastmlp.optim.OPTIMIZERS:
            for K in (1, 10, 37):
                model, X, y = problem(dtype)
                fastmlp.train(model, (X, y), backend="numba", epochs=2, batch_size=K,
                              optimizer=optimizer, lr=0.05, progress=False)
                print(dtype, optimizer, K, digest(model.theta))
""")


def test_bits_do_not_depend_on_numba_num_threads():
    """Whole training runs in fresh processes with NUMBA_NUM_THREADS=1 and 2."""
    script = _SUBPROCESS.format(tests=os.path.dirname(os.path.abspath(__file__)))
    outputs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = out.stdout.split("\n")
        assert lines[0] == threads
        outputs.append(lines[1:])
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("batch_size", (1, 10))
def test_calls_cut_at_minibatch_boundaries_give_the_same_bits(batch_size):
    """The trainer cuts epochs into chunks for its progress bar: every call leaves no update
    pending, so the cut changes nothing."""
    model, X, y = problem("float32")
    order = fastmlp.ops.epoch_order(N, 0, 0)
    whole, cut = model.copy(), model.copy()
    s_whole = optim.Adam().init_state(model.n_params, model.dtype)
    s_cut = optim.Adam().init_state(model.n_params, model.dtype)
    numba_be.train_steps(whole, X, y, order, batch_size, 0.01, s_whole)
    at = 13 * batch_size
    numba_be.train_steps(cut, X, y, order[:at], batch_size, 0.01, s_cut)
    numba_be.train_steps(cut, X, y, order[at:], batch_size, 0.01, s_cut)
    assert s_whole.step == s_cut.step
    assert digest(whole.theta, *s_whole.buffers.values()) == digest(cut.theta,
                                                                   *s_cut.buffers.values())


# -- the same results as the numpy backend ---------------------------------------------------------

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("batch_size", (1, 2, 10, 33))
def test_training_matches_numpy(optimizer, batch_size):
    model, X, y = problem("float64")
    order = fastmlp.ops.epoch_order(N, 1, 0)
    results = {}
    for be in (numba_be, numpy_be):
        m = model.copy()
        state = optim.get_optimizer(optimizer).init_state(m.n_params, m.dtype)
        stats = be.train_steps(m, X, y, order, batch_size, 0.05, state)
        results[be.name] = (m.theta, stats, state)
    (t_nb, s_nb, st_nb), (t_np, s_np, st_np) = results["numba"], results["numpy"]
    assert s_nb.n_steps == s_np.n_steps == st_nb.step == -(-N // batch_size)
    assert s_nb.n_errors == s_np.n_errors
    assert rel_err(s_nb.loss_sum, s_np.loss_sum) <= RTOL["float64"]
    assert rel_err(t_nb, t_np) <= RTOL["float64"]
    for key in st_np.buffers:
        assert rel_err(st_nb.buffers[key], st_np.buffers[key]) <= RTOL["float64"], key


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits_and_gradients_match_numpy(dtype):
    model, X, y = problem(dtype, n=300)
    assert rel_err(numba_be.logits(model, X), numpy_be.logits(model, X)) <= RTOL[dtype]
    J, grad, dX = numba_be.loss_and_grads(model, X[:37], y[:37], wrt_input=True)
    J_ref, grad_ref, dX_ref = numpy_be.loss_and_grads(model, X[:37], y[:37], wrt_input=True)
    assert rel_err(J, J_ref) <= RTOL[dtype]
    assert rel_err(grad, grad_ref) <= RTOL[dtype]
    assert rel_err(dX, dX_ref) <= RTOL[dtype]


def test_a_batch_larger_than_the_data_allocates_for_the_data():
    model, X, y = problem("float32", layers=(20, 8, 3), activation="relu", n=200)
    before = model.theta.copy()
    history = fastmlp.train(model, (X, y), backend="numba", epochs=2, batch_size=20_000_000,
                            progress=False)
    assert len(history.rows) == 2
    assert not np.array_equal(model.theta, before)
    assert np.isfinite(model.theta).all()


# -- NaN, dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", (1, 2, 4))
@pytest.mark.parametrize("batch_size", (1, 10))
def test_a_nan_weight_makes_logits_and_loss_nan(layer, batch_size):
    """NaN must propagate: through a ReLU that would clip it, a tanh, a logistic; the step
    whose loss is NaN is not taken."""
    model, X, y = problem("float32")
    model.params[f"W{layer}"][0, 0] = np.nan
    assert np.isnan(numba_be.logits(model, X)).all()
    loss, _ = numba_be.evaluate(model, X, y)
    assert np.isnan(loss)
    before = model.theta.copy()
    state = optim.SGD().init_state(model.n_params, model.dtype)
    stats = numba_be.train_steps(model, X, y, np.arange(N), batch_size, 0.1, state)
    assert stats.failed_step == 0 and stats.n_steps == 0 and state.step == 0
    assert digest(model.theta) == digest(before)


def test_a_non_finite_loss_midway_stops_where_numpy_stops():
    model, X, y = problem("float64")
    X[50] = np.inf
    results = {}
    for be in (numba_be, numpy_be):
        m = model.copy()
        with np.errstate(all="ignore"):
            results[be.name] = be.train_steps(m, X, y, np.arange(N), 4, 0.1,
                                              optim.Momentum().init_state(m.n_params,
                                                                          m.dtype)), m
    (s_nb, m_nb), (s_np, m_np) = results["numba"], results["numpy"]
    assert s_nb.failed_step == s_np.failed_step == s_nb.n_steps == 12
    assert rel_err(m_nb.theta, m_np.theta) <= RTOL["float64"]


def test_float32_is_float32_throughout():
    model, X, y = problem("float32")
    assert numba_be.logits(model, X).dtype == np.float32
    _, grad, dX = numba_be.loss_and_grads(model, X, y, wrt_input=True)
    assert grad.dtype == dX.dtype == np.float32
    state = optim.Adam().init_state(model.n_params, model.dtype)
    numba_be.train_steps(model, X, y, np.arange(N), 10, 0.01, state)
    assert model.theta.dtype == np.float32
    assert all(b.dtype == np.float32 for b in state.buffers.values())


def test_float32_kernels_do_no_float64_arithmetic():
    """No float -> double conversion in the arithmetic compiled for float32 (fresh, uncached
    compilations of the kernels, so that their LLVM IR can be read)."""
    import numba

    from fastmlp.backends.numba import _layers, _update

    rng = np.random.default_rng(0)
    f32 = np.float32
    W, IN, D = (rng.normal(size=s).astype(f32) for s in ((6, 21), (9, 21), (9, 6)))
    b, G = np.zeros(6, f32), np.zeros((8, 21), f32)
    rows = np.arange(9)
    h = np.array([0.1, 0.9, 0.9, 0.1, 0.999, 0.001, 1e-8], f32)
    calls = {
        _layers.forward_block: (W, b, IN, rows, 0, 9, 0, 6, np.zeros((9, 6), f32)),
        _layers.weight_grad_block: (D, IN, rows, 0, 9, 0, 4, G, 0, False),
        _layers.backprop_block: (D, W, 0, 9, np.zeros((9, 21), f32)),
        _layers.activate: (IN, 0, 9, 0, 21, 2),
        _layers.times_derivative: (IN, IN.copy(), 0, 9, 1),
        _update.update_rows: (W, W.copy(), W.copy(), W.copy(), 0, 6, 0, f32(1e-3), f32(1e-3),
                              3, h, f32(0.1), f32(0.9)),
    }
    for kernel, args in calls.items():
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
        fresh = numba.njit(**options)(kernel.py_func)
        fresh(*args)
        ir = fresh.inspect_llvm(fresh.signatures[0])
        assert "fpext float" not in ir and "fpext <" not in ir, kernel.py_func.__name__


# -- compilation ---------------------------------------------------------------------------------

def _signature_counts():
    return {name: [len(d.signatures) for d in dispatchers]
            for name, dispatchers in nbmod.KERNELS.items()}


def test_another_depth_or_activation_compiles_nothing():
    """Kernel signatures do not depend on the network: after a first call, networks of
    other depths and activations reuse the same compilations."""
    for layers, act in (((21, 9, 5), "relu"), DEEP):
        model, X, y = problem("float32", layers, act)
        fastmlp.train(model, (X, y), backend="numba", epochs=1, batch_size=10,
                      progress=False)
        numba_be.loss_and_grads(model, X, y)
    before = _signature_counts()
    for layers, act in (((21, 5), ()), ((21, 3, 4, 5, 6, 7, 5), "tanh"),
                        ((21, 40, 5), "logistic"), ((21, 17, 5), "identity")):
        model, X, y = problem("float32", layers, act or "relu")
        fastmlp.train(model, (X, y), backend="numba", epochs=1, batch_size=10,
                      optimizer="nesterov", progress=False)
        numba_be.logits(model, X[::2])              # a non-contiguous view is copied
        numba_be.loss_and_grads(model, X, y)
    assert _signature_counts() == before


def test_kernels_are_cached_on_disk():
    for name, dispatchers in nbmod.KERNELS.items():
        for d in dispatchers:
            assert type(d._cache).__name__ != "NullCache", name


def test_import_fastmlp_compiles_nothing_and_does_not_import_numba():
    code = ("import sys, fastmlp; print('numba' in sys.modules, "
            "'fastmlp.backends.numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_warmup_prepare_and_info():
    seconds = nbmod.warmup("float32", what="training")
    assert isinstance(seconds, float) and seconds >= 0
    assert numba_be.prepare("float32", 32) == 0.0            # ready: nothing to do
    assert numba_be.prepare("float32", 1, with_evaluation=False) >= 0.0
    info = numba_be.info()
    assert info["numba"] and info["workers"] >= 1 and info["num_threads"] >= 1
    assert info["fastmath"] == ["contract", "reassoc"]
    assert info["vector_bytes"] in (32, 64)


# -- guards ----------------------------------------------------------------------------------

def test_read_only_inputs_are_copied_not_recompiled():
    model, X, y = problem("float32")
    expected = numba_be.logits(model, X)
    before = _signature_counts()
    X.flags.writeable = False
    y.flags.writeable = False
    model.theta.flags.writeable = False
    assert digest(numba_be.logits(model, X)) == digest(expected)
    numba_be.loss_and_grads(model, X, y)
    assert _signature_counts() == before


def test_read_only_parameters_cannot_be_trained():
    model, X, y = problem("float32")
    model.theta.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        numba_be.train_steps(model, X, y, np.arange(N), 10, 0.1,
                             optim.SGD().init_state(model.n_params, model.dtype))


@pytest.mark.parametrize("what, match", [
    ("X dtype", "float32 array with 21 columns"),
    ("X width", "float32 array with 21 columns"),
    ("y range", "labels in 0..4"),
    ("y length", "labels in 0..4"),
    ("order range", "order must index"),
    ("batch size", "batch_size must be at least 1"),
    ("state dtype", "optimizer state does not match"),
    ("state read-only", "optimizer state does not match"),
])
def test_wrong_arrays_get_a_clear_error(what, match):
    model, X, y = problem("float32")
    order = np.arange(N)
    state = optim.Adam().init_state(model.n_params, model.dtype)
    K = 10
    if what == "X dtype":
        X = X.astype(np.float64)
    elif what == "X width":
        X = X[:, :-1].copy()
    elif what == "y range":
        y = y.copy()
        y[3] = 5
    elif what == "y length":
        y = y[:-1]
    elif what == "order range":
        order = order + 1
    elif what == "batch size":
        K = 0
    elif what == "state dtype":
        state = optim.Adam().init_state(model.n_params, "float64")
    elif what == "state read-only":
        state.buffers["exp_avg"].flags.writeable = False
    before = model.theta.copy()
    with pytest.raises(ValueError, match=match):
        numba_be.train_steps(model, X, y, order, K, 0.1, state)
    assert digest(model.theta) == digest(before)


# -- threads and processes around the backend --------------------------------------------------

def _train_deep(seed):
    """A deep network trained two epochs on 2 threads; returns its weights' bytes (run in this
    process, in threads, and in forked children)."""
    import numba

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    model, X, y = problem("float32", seed=seed)
    fastmlp.train(model, (X, y), backend="numba", epochs=2, batch_size=37, optimizer="adam",
                  lr=0.01, progress=False)
    return model.theta.tobytes()


def test_a_forked_child_trains_after_the_parent_did():
    """A multiprocessing pool with the fork start method, after the parent trained on its
    worker threads: every child trains too, to the parent's bits (no hang, no crash)."""
    import multiprocessing

    expected = [_train_deep(seed) for seed in (0, 1)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_train_deep, [0, 1]).get(timeout=300)
    assert got == expected


def test_several_threads_may_train_at_once():
    """Python threads calling the backend at the same moment share its worker pool: each
    call completes, with the bits of the same call made alone."""
    from concurrent.futures import ThreadPoolExecutor

    expected = [_train_deep(seed) for seed in range(4)]
    with ThreadPoolExecutor(max_workers=4) as callers:
        got = list(callers.map(_train_deep, range(4)))
    assert got == expected


def test_callers_that_grow_the_worker_pool_at_once_all_run(monkeypatch):
    """A caller wanting more workers than the pool has replaces the pool and shuts the old
    one down; a caller submitting at that moment must not reach the old pool ("cannot
    schedule new futures after shutdown"). Six threads asking for 2..7 workers at once, on
    a fresh pool each round, with thread switches every microsecond (the race needed a
    switch between two bytecodes: it failed about one round in three)."""
    import threading

    from fastmlp.backends.numba import _workers

    def kernel(w, seen):
        seen[w] = True

    def call(n, barrier, outcomes):
        barrier.wait()
        try:
            for _ in range(3):
                seen = [False] * n
                _workers.run(kernel, n, seen)
                outcomes.append(all(seen))
        except Exception as exc:            # noqa: BLE001 - reported by the assertion
            outcomes.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(40):
            monkeypatch.setattr(_workers, "_pool", None)
            monkeypatch.setattr(_workers, "_pool_size", 0)
            barrier, outcomes = threading.Barrier(6), []
            callers = [threading.Thread(target=call, args=(n, barrier, outcomes))
                       for n in range(2, 8)]
            for t in callers:
                t.start()
            for t in callers:
                t.join()
            _workers._pool.shutdown()
            assert outcomes == [True] * 18, [o for o in outcomes if o is not True][:3]
    finally:
        sys.setswitchinterval(interval)
