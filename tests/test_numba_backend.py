"""The numba backend: pinned to the loop and numpy backends, deterministic, dtype-true.

Specific to numba (the cross-backend suite covers what every backend shares). Kernels compile
once per dtype per machine (``cache=True``), so only the first run pays compilation.
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
from fastmlp import ops  # noqa: E402
from fastmlp.backends import get_backend  # noqa: E402
from fastmlp.backends import numba as nbmod  # noqa: E402

#: relative error allowed against the loop/numpy backends (max-abs error / max-abs value)
RTOL = {"float64": 1e-10, "float32": 1e-4}
#: after whole epochs of training, rounding differences are amplified a little
RTOL_TRAIN = {"float64": 1e-9, "float32": 1e-3}

DTYPES = ("float64", "float32")
BATCH_SIZES = (1, 2, 10, 33)
PENALTIES = {"off": ((0.0, 0.0), (0.0, 0.0)), "on": ((1e-3, 2e-3), (3e-3, 4e-3))}
#: (d, d_h, m): one hidden unit, two classes, a wide input, an odd hidden width
SHAPES = ((3, 1, 2), (5, 6, 2), (784, 9, 10), (7, 13, 3))

numba_be = get_backend("numba")
loop_be = get_backend("loop")
numpy_be = get_backend("numpy")


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-30)
    return float(np.abs(a - b).max(initial=0.0)) / scale


def make_problem(shape, dtype, n=33, seed=0):
    """Params with a dead ReLU unit and a unit whose pre-activation is exactly 0 on some rows."""
    d, d_h, m = shape
    rng = np.random.default_rng(seed)
    model = fastmlp.MLP(shape, dtype=dtype, seed=seed)
    p = model.params
    p["b1"][...] = rng.uniform(-0.1, 0.1, d_h).astype(dtype)
    p["b2"][...] = rng.uniform(-0.1, 0.1, m).astype(dtype)
    X = rng.uniform(0.0, 1.0, (n, d)).astype(dtype)
    X[min(3, n - 1)] = 0.0                        # every pre-activation of that row is b1
    if d_h >= 2:
        p["W1"][0] = np.abs(p["W1"][0])
        p["b1"][0] = -1e3                         # unit 0 is dead on every row
        p["W1"][1] = 0.0
        p["b1"][1] = 0.0                          # unit 1: pre-activation exactly 0
    else:
        p["b1"][0] = 0.0                          # the zero row sits exactly at the kink
    p["W2"][0, 0] = 0.0                           # an exact zero: sign(0) = 0 in the penalty
    y = rng.integers(0, m, n)
    return p, X, y


def copy(params):
    return {k: v.copy() for k, v in params.items()}


# -- loss, gradients, logits -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("K", BATCH_SIZES)
@pytest.mark.parametrize("pen", sorted(PENALTIES))
def test_loss_and_grads_match_loop_and_numpy(dtype, shape, K, pen):
    params, X, y = make_problem(shape, dtype, n=K)
    l1, l2 = PENALTIES[pen]
    J, grads = numba_be.loss_and_grads(params, X, y, l1, l2, wrt_input=True)
    assert isinstance(J, float)
    assert set(grads) == {"W1", "b1", "W2", "b2", "X"}
    for ref in (loop_be, numpy_be):
        J_ref, g_ref = ref.loss_and_grads(params, X, y, l1, l2, wrt_input=True)
        assert rel_err(J, J_ref) <= RTOL[dtype], ref.name
        for key, g in g_ref.items():
            assert grads[key].shape == g.shape
            assert grads[key].dtype == np.dtype(dtype)
            assert rel_err(grads[key], g) <= RTOL[dtype], (ref.name, key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_logits_predict_evaluate_match(dtype, shape):
    params, X, y = make_problem(shape, dtype, n=300)  # more rows than one ROW_CHUNK
    logits = numba_be.logits(params, X)
    assert logits.dtype == np.dtype(dtype) and logits.shape == (300, shape[2])
    assert rel_err(logits, loop_be.logits(params, X)) <= RTOL[dtype]
    assert rel_err(logits, numpy_be.logits(params, X)) <= RTOL[dtype]
    proba = numba_be.predict_proba(params, X)
    assert proba.dtype == np.dtype(dtype)
    assert rel_err(proba, numpy_be.predict_proba(params, X)) <= RTOL[dtype]
    loss, errors = numba_be.evaluate(params, X, y)
    loss_ref, errors_ref = numpy_be.evaluate(params, X, y)
    assert isinstance(loss, float) and isinstance(errors, int)
    assert rel_err(loss, loss_ref) <= RTOL[dtype]
    assert errors == errors_ref


# -- training ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("K", BATCH_SIZES)
@pytest.mark.parametrize("pen", sorted(PENALTIES))
def test_train_steps_match_numpy(dtype, shape, K, pen):
    params, X, y = make_problem(shape, dtype, n=70)
    l1, l2 = PENALTIES[pen]
    order = ops.epoch_order(70, 1, 0)
    p_nb, p_np = copy(params), copy(params)
    s_nb = numba_be.train_steps(p_nb, X, y, order, K, 0.05, l1, l2)
    s_np = numpy_be.train_steps(p_np, X, y, order, K, 0.05, l1, l2)
    assert s_nb.n_steps == s_np.n_steps == ops.n_batches(70, K)
    assert s_nb.failed_step == -1
    assert s_nb.n_errors == s_np.n_errors
    assert rel_err(s_nb.loss_sum, s_np.loss_sum) <= RTOL[dtype]
    for key in params:
        assert p_nb[key].dtype == np.dtype(dtype)
        assert rel_err(p_nb[key], p_np[key]) <= RTOL_TRAIN[dtype], key


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", (1, 16))
def test_two_epochs_of_training_match_numpy(dtype, K):
    X, y = fastmlp.datasets.circles(n=400)
    results = {}
    for name in ("numba", "numpy"):
        model = fastmlp.MLP((2, 32, 2), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4), dtype=dtype, seed=3)
        hist = fastmlp.train(model, (X, y), backend=name, epochs=2, batch_size=K, lr=0.1,
                             seed=5, progress=False)
        results[name] = (model.params, hist)
    (p_nb, h_nb), (p_np, h_np) = results["numba"], results["numpy"]
    for key in p_nb:
        assert rel_err(p_nb[key], p_np[key]) <= RTOL_TRAIN[dtype], key
    assert h_nb["train_error"] == h_np["train_error"]
    assert rel_err(h_nb["train_loss"], h_np["train_loss"]) <= RTOL_TRAIN[dtype]


@pytest.mark.parametrize("K", (1, 3, 10))
def test_progress_chunks_give_the_same_bits(K):
    """The trainer's progress bar cuts epochs into chunks: the arithmetic must not change."""
    X, y = fastmlp.datasets.circles(n=5000)
    params = []
    for progress in (False, True):
        model = fastmlp.MLP((2, 16, 2), l1=(1e-4, 0), l2=(0, 1e-4), dtype="float32", seed=1)
        fastmlp.train(model, (X, y), backend="numba", epochs=1, batch_size=K, progress=progress)
        params.append(model.params)
    for key in params[0]:
        assert params[0][key].tobytes() == params[1][key].tobytes()


@pytest.mark.parametrize("K", (1, 16))
def test_non_finite_loss_stops_before_the_update(K):
    params, X, y = make_problem((5, 6, 3), "float64", n=40)
    params["b2"][1] = np.inf                        # every logit row holds inf: loss is NaN
    before = copy(params)
    stats = numba_be.train_steps(params, X, y, np.arange(40), K, 0.1)
    assert stats.failed_step == 0 and stats.n_steps == 0 and stats.loss_sum == 0.0
    for key in params:
        assert params[key].tobytes() == before[key].tobytes()


def test_failure_midway_is_reported_at_the_same_step_as_numpy():
    params, X, y = make_problem((5, 6, 3), "float64", n=200)
    X[50] = np.inf                                  # the minibatch holding row 50 fails
    order = np.arange(200)
    p_nb, p_np = copy(params), copy(params)
    s_nb = numba_be.train_steps(p_nb, X, y, order, 4, 0.1)
    with np.errstate(all="ignore"):
        s_np = numpy_be.train_steps(p_np, X, y, order, 4, 0.1)
    assert s_np.failed_step == s_nb.failed_step == s_nb.n_steps == 12
    assert s_nb.n_errors == s_np.n_errors
    assert rel_err(s_nb.loss_sum, s_np.loss_sum) <= RTOL["float64"]
    for key in params:
        assert rel_err(p_nb[key], p_np[key]) <= RTOL_TRAIN["float64"], key


# -- determinism --------------------------------------------------------------------------------

def _digest(params):
    h = hashlib.sha256()
    for key in ops.PARAM_KEYS:
        h.update(np.ascontiguousarray(params[key]).tobytes())
    return h.hexdigest()


def _train_digest(dtype, K, n=600, d=50):
    rng = np.random.default_rng(7)
    X = rng.random((n, d)).astype(dtype)
    y = rng.integers(0, 10, n)
    model = fastmlp.MLP((d, 37, 10), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4), dtype=dtype, seed=2)
    stats = numba_be.train_steps(model.params, X, y, ops.epoch_order(n, 0, 0), K, 0.1,
                                 model.l1, model.l2)
    return _digest(model.params) + f" {stats.loss_sum!r} {stats.n_errors}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_bits(dtype):
    assert _train_digest(dtype, 32) == _train_digest(dtype, 32)


def test_thread_count_does_not_change_bits_in_process():
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    old = numba.get_num_threads()
    try:
        digests = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            digests.append([_train_digest("float32", K) for K in (1, 9, 32, 150)])
        assert digests[0] == digests[1]
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", (2, 9, 32, 150))
def test_serial_and_parallel_paths_give_the_same_bits(dtype, K):
    """The wrapper picks the path by batch size and thread count, and splits the hidden units
    into one share per thread: none of it may change a bit (23 units: 6 blocks, shared by
    1, 2, 3, 4 or 6 work items)."""
    rng = np.random.default_rng(4)
    X = rng.random((300, 40)).astype(dtype)
    y = rng.integers(0, 10, 300)
    out = []
    for parallel, n_items in ((False, 1), (True, 1), (True, 2), (True, 3), (True, 4), (True, 9)):
        model = fastmlp.MLP((40, 23, 10), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4), dtype=dtype, seed=2)
        p = model.params
        stats = nbmod._train_steps(p["W1"], p["b1"], p["W2"], p["b2"], X, y,
                                   ops.epoch_order(300, 0, 0), K, p["W1"].dtype.type(0.1),
                                   *nbmod._penalty_scalars(p, model.l1, model.l2), parallel,
                                   n_items)
        out.append((_digest(p), stats))
    assert all(o == out[0] for o in out[1:])


_SUBPROCESS = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_numba_backend import _train_digest, numba_be
    import numba
    X = None
    print(numba.get_num_threads())
    for dtype in ("float32", "float64"):
        for K in (1, 9, 32, 150):
            print(_train_digest(dtype, K))
""")


def test_thread_count_does_not_change_bits_across_processes():
    script = _SUBPROCESS.format(tests=os.path.dirname(os.path.abspath(__file__)))
    outputs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.split("\n")
        assert lines[0] == threads
        outputs.append(lines[1:])
    assert outputs[0] == outputs[1]


# -- dtype discipline, imports, compilation --------------------------------------------------------

def test_float32_is_float32_throughout():
    params, X, y = make_problem((5, 6, 3), "float32", n=20)
    _, grads = numba_be.loss_and_grads(params, X, y, wrt_input=True)
    assert all(g.dtype == np.float32 for g in grads.values())
    numba_be.train_steps(params, X, y, np.arange(20), 4, 0.1, (1e-3, 1e-3), (1e-3, 1e-3))
    assert all(p.dtype == np.float32 for p in params.values())
    # no float -> double conversion in the arithmetic compiled for float32 (fresh, uncached
    # dispatchers of the same functions, so that the LLVM IR is available)
    import numba
    from numba import types as t

    f32, i64 = t.float32, t.int64
    mat, vec, idx = t.Array(f32, 2, "C"), t.Array(f32, 1, "C"), t.Array(i64, 1, "C")
    kernels = {
        nbmod._hidden_block: (mat, vec, mat, idx, i64, i64, i64, i64, mat),
        nbmod._w1_block_grad: (mat, mat, idx, i64, i64, i64, i64, mat, t.boolean),
        nbmod._w1_row_grad: (mat, mat, idx, i64, vec),
        nbmod._sgd_row: (mat, i64, vec, f32, f32, f32),
    }
    for kernel, sig in kernels.items():
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
        fresh = numba.njit(**options)(kernel.py_func)
        fresh.compile(sig)
        ir = fresh.inspect_llvm(sig)
        assert "fpext float" not in ir, kernel.py_func.__name__


def test_float32_differs_from_float64():
    """float32 results are rounded to float32, not float64 results cast at the end."""
    p64, X64, y = make_problem((784, 9, 10), "float64", n=33)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    X32 = X64.astype(np.float32)
    J32, _ = numba_be.loss_and_grads(p32, X32, y)
    J64, _ = numba_be.loss_and_grads(p64, X64, y)
    J64_from_32, _ = numba_be.loss_and_grads({k: v.astype(np.float64) for k, v in p32.items()},
                                             X32.astype(np.float64), y)
    assert J32 != J64_from_32
    assert abs(J32 - J64_from_32) <= RTOL["float32"] * abs(J64)


def test_import_fastmlp_does_not_import_numba():
    code = "import sys, fastmlp; print('numba' in sys.modules, 'fastmlp.backends.numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_numba_is_registered_and_default():
    assert "numba" in fastmlp.BACKENDS
    assert fastmlp.fastest_backend() == "numba"
    assert isinstance(numba_be, nbmod.NumbaBackend)


def test_warmup_and_info():
    seconds = nbmod.warmup("float32")
    assert isinstance(seconds, float) and seconds >= 0
    info = nbmod.NumbaBackend.info()
    assert info["threading_layer"] in ("tbb", "omp", "workqueue")
    assert info["num_threads"] >= 1 and info["numba"]
    # cache=True took effect (a second process loads the kernels instead of compiling)
    assert type(nbmod._train_steps._cache).__name__ != "NullCache"
