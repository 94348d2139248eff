"""Cache-line alignment of the buffers the kernels read row by row (fastmlp._aligned):
parameters, optimizer state, the data training runs on, the numba workspaces. Alignment is
a matter of speed only: the same data at another address gives the same bits."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _aligned
from fastmlp.backends import BACKENDS, get_backend
from fastmlp.optim import get_optimizer
from fastmlp.training import as_split


def misaligned(a, offset=16):
    """A C-contiguous copy of ``a`` whose data starts ``offset`` bytes past a cache line."""
    raw = np.empty(a.nbytes + 2 * _aligned.ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _aligned.ALIGNMENT + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert a.size == 0 or out.ctypes.data % _aligned.ALIGNMENT == offset
    return out


@pytest.mark.parametrize("shape", [0, 1, 7, (3, 5), (64, 784)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_empty_zeros_and_copies_start_on_a_cache_line(shape, dtype):
    for a in (_aligned.empty(shape, dtype), _aligned.zeros(shape, dtype)):
        assert a.shape == np.empty(shape).shape and a.dtype == np.dtype(dtype)
        assert _aligned.is_aligned(a) and a.flags.writeable
    assert not _aligned.zeros(shape, dtype).any()
    src = misaligned(np.arange(np.prod(shape, dtype=int)).astype(dtype).reshape(shape))
    for a in (_aligned.copy(src), _aligned.aligned(src)):
        assert _aligned.is_aligned(a) and np.array_equal(a, src)
        assert not np.shares_memory(a, src)
    ok = _aligned.copy(src)
    assert _aligned.aligned(ok) is ok                       # already aligned: no copy


@pytest.mark.parametrize("layers", [(784, 10), (784, 64, 10), (5, 3, 7, 2), (784, 100, 10)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_and_optimizer_state_are_aligned(tmp_path, layers, dtype):
    model = fastmlp.MLP(layers, dtype=dtype, seed=1)
    assert _aligned.is_aligned(model.theta)
    assert _aligned.is_aligned(model.copy().theta)
    assert _aligned.is_aligned(model.astype("float64").theta)
    model.save(tmp_path / "m.npz")
    assert _aligned.is_aligned(fastmlp.MLP.load(tmp_path / "m.npz").theta)
    state = get_optimizer("adam").init_state(model.n_params, model.dtype)
    for s in (state, state.copy()):
        assert all(_aligned.is_aligned(b) for b in s.buffers.values())


def test_training_data_is_aligned_once_and_keeps_its_values():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    split = fastmlp.datasets.split(X, y, seed=0)
    for _, (Xp, _) in split.parts():
        assert _aligned.is_aligned(Xp)
    parts = as_split((misaligned(X), y), 20, 3, np.float32)
    assert _aligned.is_aligned(parts["train"][0]) and np.array_equal(parts["train"][0], X)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [1, 32])
def test_the_address_of_the_data_changes_no_bit(backend, batch_size):
    """Misaligned inputs reach the kernels only through direct backend calls; they must give
    the bits of aligned ones (the vector loads take any address)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 40)).astype(np.float32)
    y = rng.integers(0, 4, 200)
    be = get_backend(backend)
    out = []
    for Xs in (_aligned.copy(X), misaligned(X, 4), misaligned(X, 16)):
        model = fastmlp.MLP((40, 32, 16, 4), activation="tanh", l1=1e-4, l2=1e-4, seed=0)
        state = get_optimizer("adam").init_state(model.n_params, model.dtype)
        be.train_steps(model, Xs, y, np.random.default_rng(0).permutation(200), batch_size,
                       1e-3, state)
        out.append((model.theta.copy(), be.logits(model, Xs)))
    for theta, logits in out[1:]:
        assert np.array_equal(theta, out[0][0]) and np.array_equal(logits, out[0][1])


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
@pytest.mark.parametrize("layers, K", [((784, 64, 10), 32), ((40, 33, 17, 5), 33)])
def test_numba_workspaces_are_aligned(layers, K):
    from fastmlp.backends.numba import _inference, _train

    theta = fastmlp.MLP(layers).theta
    ws = _train.workspace(theta, layers, 1000, K, 2)
    floats = [a for a in ws if isinstance(a, np.ndarray) and a.dtype == theta.dtype]
    assert floats and all(_aligned.is_aligned(a) for a in floats)
    H = ws[3]
    assert H.strides[0] % _aligned.ALIGNMENT == 0           # both steps' halves aligned
    _, _, A, B, _ = _inference.logits_buffers(np.array(layers), 1000, 2, theta.dtype)
    assert _aligned.is_aligned(A) and _aligned.is_aligned(B)
