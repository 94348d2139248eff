"""Every backend against the ``loop`` reference: loss, every gradient (dJ/dX included),
logits, probabilities, evaluation, and whole training runs.

The grid: float64 and float32; minibatches of 1, 2, 10 and 33; penalties off and on; a
generic shape, ``d_h = 1``, ``m = 2`` and a wide input (784); random data, and data built so
that some pre-activations are exactly 0 and some hidden units are dead. A backend added to
``fastmlp.BACKENDS`` later is pinned by the same grid without touching this file.
"""

import numpy as np
import pytest

import fastmlp
from conftest import RTOL, rel_err
from fastmlp.backends.base import StepStats
from fastmlp.backends.loop import LoopBackend

#: every backend but the reference itself
OTHERS = tuple(name for name in fastmlp.BACKENDS if name != "loop")

SHAPES = {"generic": (3, 4, 3), "d_h=1": (5, 1, 3), "m=2": (4, 6, 2), "wide": (784, 3, 10)}
PENALTIES = {"off": {}, "on": {"l1": (1e-3, 2e-3), "l2": (3e-3, 4e-3)}}
KEYS = ("W1", "b1", "W2", "b2", "X")


@pytest.fixture(params=OTHERS)
def other(request):
    return request.param


def near_ties(logits, rtol):
    """Rows whose two largest logits are within ``rtol`` (relative to the row's largest
    magnitude, at least 1) of each other: their argmax may differ between two correct
    computations, so their error counts may too."""
    top2 = np.sort(np.asarray(logits, dtype=np.float64), axis=1)[:, -2:]
    scale = np.maximum(1.0, np.abs(top2).max(axis=1))
    return int((top2[:, 1] - top2[:, 0] <= rtol * scale).sum())


def make_case(layers, K, dtype, penalty, data, seed=0):
    """A model and a minibatch. With ``data="kinks"`` the input is integer-valued, hidden unit
    0 computes ``x0 - x1`` exactly (so its pre-activation is exactly 0 whenever x0 == x1, in
    any summation order, and at least on row 0), and the last unit (when d_h > 1) is dead."""
    d, d_h, m = layers
    model = fastmlp.MLP(layers, dtype=dtype, seed=seed, **PENALTIES[penalty])
    rng = np.random.default_rng(seed)
    y = rng.integers(0, m, size=K)
    if data == "random":
        return model, rng.normal(size=(K, d)).astype(dtype), y
    X = rng.integers(-2, 3, size=(K, d)).astype(dtype)
    X[0, 1] = X[0, 0]
    W1, b1 = model.params["W1"], model.params["b1"]
    W1[0] = 0
    W1[0, :2] = (1, -1)
    b1[0] = 0
    if d_h > 1:
        b1[-1] = -(2 * np.abs(W1[-1]).sum() + 1)     # below any reachable W1 x
    h_a = X.astype(np.float64) @ W1.T.astype(np.float64) + b1
    assert (h_a[:, 0] == 0).any() and (d_h == 1 or (h_a[:, -1] < 0).all())
    return model, X, y


@pytest.mark.parametrize("data", ["random", "kinks"])
@pytest.mark.parametrize("penalty", ["off", "on"])
@pytest.mark.parametrize("K", [1, 2, 10, 33])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backend_matches_loop(other, dtype, shape, K, penalty, data):
    model, X, y = make_case(SHAPES[shape], K, dtype, penalty, data)
    rtol = RTOL[dtype]
    loop, be = fastmlp.get_backend("loop"), fastmlp.get_backend(other)
    params = model.params

    J_ref, g_ref = loop.loss_and_grads(params, X, y, model.l1, model.l2, wrt_input=True)
    J, g = be.loss_and_grads(params, X, y, model.l1, model.l2, wrt_input=True)
    assert isinstance(J, float)
    assert rel_err(J, J_ref) <= rtol
    assert set(g) == set(KEYS)
    for key in KEYS:
        assert g[key].dtype == np.dtype(dtype) and g[key].shape == g_ref[key].shape, key
        assert rel_err(g[key], g_ref[key]) <= rtol, key

    logits_ref = loop.logits(params, X)
    logits = be.logits(params, X)
    assert logits.dtype == np.dtype(dtype)
    assert rel_err(logits, logits_ref) <= rtol
    proba = be.predict_proba(params, X)
    assert proba.dtype == np.dtype(dtype)
    assert rel_err(proba, loop.predict_proba(params, X)) <= rtol

    loss_ref, err_ref = loop.evaluate(params, X, y)
    loss, err = be.evaluate(params, X, y)
    assert rel_err(loss, loss_ref) <= rtol
    assert abs(err - err_ref) <= near_ties(logits_ref, rtol)


def test_all_units_dead(other):
    # every pre-activation negative: h_s = 0, logits = b2, dJ/dW1 = dJ/db1 = dJ/dX = 0
    model, X, y = make_case((6, 4, 3), 10, "float64", "on", "random")
    model.params["b1"][...] = -100.0
    model.params["b2"][...] = (0.5, -0.25, 0.0)
    J_ref, g_ref = fastmlp.gradients(model, X, y, backend="loop", wrt_input=True)
    J, g = fastmlp.gradients(model, X, y, backend=other, wrt_input=True)
    assert not g["b1"].any() and not g["X"].any()
    assert rel_err(J, J_ref) <= RTOL["float64"]
    for key in KEYS:
        assert rel_err(g[key], g_ref[key]) <= RTOL["float64"], key


def test_loop_does_one_forward_and_one_backward_per_example(monkeypatch):
    from fastmlp.backends import loop as loop_module

    calls = {"forward_one": 0, "backward_one": 0}
    for name in calls:
        original = getattr(loop_module, name)

        def counted(*args, _original=original, _name=name):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(loop_module, name, counted)
    model, X, y = make_case(SHAPES["generic"], 10, "float64", "on", "random")
    fastmlp.get_backend("loop").loss_and_grads(model.params, X, y, model.l1, model.l2, True)
    assert calls == {"forward_one": 10, "backward_one": 10}
    fastmlp.get_backend("loop").train_steps(model.params, X, y, np.arange(10), 4, 0.1)
    assert calls == {"forward_one": 20, "backward_one": 20}


# -- whole training ----------------------------------------------------------------------------
class TieCountingLoop(LoopBackend):
    """The loop backend, one minibatch per call, counting the examples whose logits are a
    near tie just before they are scored: the only ones whose error may differ between two
    correct backends. ``ties`` gets one count per ``train_steps`` and ``evaluate`` call."""

    def __init__(self, rtol):
        self.rtol, self.ties = rtol, []

    def train_steps(self, params, X, y, order, batch_size, lr, l1=(0.0, 0.0), l2=(0.0, 0.0)):
        loss_sum, n_errors, n_steps, ties = 0.0, 0, 0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ties += near_ties(self.logits(params, X[idx]), self.rtol)
            s = super().train_steps(params, X, y, idx, batch_size, lr, l1, l2)
            assert s.failed_step == -1
            loss_sum, n_errors, n_steps = loss_sum + s.loss_sum, n_errors + s.n_errors, n_steps + 1
        self.ties.append(ties)
        return StepStats(loss_sum, n_errors, n_steps)

    def evaluate(self, params, X, y):
        self.ties.append(near_ties(self.logits(params, X), self.rtol))
        return super().evaluate(params, X, y)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_epochs_same_weights_and_history(backend, dtype):
    rtol = RTOL[dtype]
    X, y = fastmlp.datasets.circles(n=300, seed=2)
    split = fastmlp.datasets.split(X.astype(dtype), y, seed=0)     # 210 train: 14 steps/epoch
    settings = dict(epochs=2, batch_size=16, lr=0.5, seed=3, progress=False, eval_train=True)

    def run(be):
        model = fastmlp.MLP((2, 8, 2), l1=(1e-3, 1e-3), l2=(1e-3, 1e-3), dtype=dtype, seed=3)
        return model, fastmlp.train(model, split, backend=be, **settings)

    ref = TieCountingLoop(rtol)
    ref_model, ref_hist = run(ref)
    model, hist = run(backend)
    for k in model.params:
        assert model.params[k].dtype == np.dtype(dtype)
        assert rel_err(model.params[k], ref_model.params[k]) <= rtol, k

    # per epoch: train (the running pass), then train_eval, valid and test evaluations
    parts = ("train", "train_eval", "valid", "test")
    sizes = {"train": len(split.train[1]), "train_eval": len(split.train[1]),
             "valid": len(split.valid[1]), "test": len(split.test[1])}
    assert len(ref.ties) == len(parts) * settings["epochs"]
    assert len(hist) == len(ref_hist) == settings["epochs"]
    for epoch, (row, ref_row) in enumerate(zip(hist.rows, ref_hist.rows)):
        assert row["epoch"] == ref_row["epoch"] and row["lr"] == ref_row["lr"]
        for i, part in enumerate(parts):
            assert rel_err(row[f"{part}_loss"], ref_row[f"{part}_loss"]) <= rtol, part
            n = sizes[part]
            errors, ref_errors = (round(r[f"{part}_error"] * n / 100) for r in (row, ref_row))
            assert abs(errors - ref_errors) <= ref.ties[epoch * len(parts) + i], (epoch, part)
