"""Every backend against the ``loop`` reference: loss, every gradient (dJ/dX included),
logits, probabilities, evaluation, and whole training runs with every optimizer.

The grid: networks of 0 to 4 hidden layers covering every activation and mixed lists;
float64 and float32; minibatches of 1, 2, 10 and 33; penalties that differ per layer (and
none); random data, and data built so that some ReLU pre-activations are exactly 0 and some
units are dead. A backend added to ``fastmlp.BACKENDS`` later is pinned by the same grid
without touching this file.
"""

import numpy as np
import pytest

import fastmlp
from conftest import RTOL, rel_err
from fastmlp.backends.base import StepStats
from fastmlp.backends.loop import LoopBackend

#: every backend but the reference itself
OTHERS = tuple(name for name in fastmlp.BACKENDS if name != "loop")

#: name -> (layers, activation): 0 to 4 hidden layers, every activation, mixed lists
NETWORKS = {
    "softmax-regression": ((5, 3), "relu"),
    "relu": ((3, 4, 3), "relu"),
    "tanh": ((4, 6, 2), "tanh"),
    "logistic": ((4, 5, 3), "logistic"),
    "identity": ((3, 4, 3), "identity"),
    "unit-wide": ((5, 1, 3), "relu"),
    "wide-input": ((784, 3, 10), "relu"),
    "2-mixed": ((4, 6, 5, 3), ("tanh", "logistic")),
    "3-mixed": ((5, 7, 4, 6, 3), ("relu", "tanh", "identity")),
    "4-mixed": ((4, 5, 6, 3, 5, 2), ("logistic", "relu", "tanh", "relu")),
}


def penalties(n_weights, on):
    """Coefficients that differ per weight matrix (so a layer mixed up with another shows)."""
    if not on:
        return {}
    return {"l1": tuple(1e-3 * (l + 1) for l in range(n_weights)),
            "l2": tuple(2e-3 * (l + 2) for l in range(n_weights))}


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


def make_case(network, K, dtype, penalty=True, data="random", seed=0):
    """A model and a minibatch. With ``data="kinks"`` the input is integer-valued, the first
    hidden unit computes ``x0 - x1`` exactly (so its pre-activation is exactly 0 whenever
    x0 == x1, in any summation order, and at least on row 0), and the last first-layer unit
    (when there are two or more) is dead."""
    layers, activation = NETWORKS[network]
    model = fastmlp.MLP(layers, activation=activation, dtype=dtype, seed=seed,
                        **penalties(len(layers) - 1, penalty))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, layers[-1], size=K)
    if data == "random":
        return model, rng.normal(size=(K, layers[0])).astype(dtype), y
    X = rng.integers(-2, 3, size=(K, layers[0])).astype(dtype)
    X[0, 1] = X[0, 0]
    W1, b1 = model.params["W1"], model.params["b1"]
    W1[0] = 0
    W1[0, :2] = (1, -1)
    b1[0] = 0
    if W1.shape[0] > 1:
        b1[-1] = -(2 * np.abs(W1[-1]).sum() + 1)     # below any reachable W1 x
    a = X.astype(np.float64) @ W1.T.astype(np.float64) + b1
    assert (a[:, 0] == 0).any() and (W1.shape[0] == 1 or (a[:, -1] < 0).all())
    return model, X, y


def keys(model):
    return (*model.layout.keys, "X")


def all_gradients(be, model, X, y):
    J, grad, dX = be.loss_and_grads(model, X, y, wrt_input=True)
    grads = model.layout.views(grad)
    grads["X"] = dX
    return J, grads


def check_against_loop(other, model, X, y, rtol):
    loop, be = fastmlp.get_backend("loop"), fastmlp.get_backend(other)
    dtype = model.dtype
    J_ref, g_ref = all_gradients(loop, model, X, y)
    J, g = all_gradients(be, model, X, y)
    assert isinstance(J, float)
    assert rel_err(J, J_ref) <= rtol
    for key in keys(model):
        assert g[key].dtype == dtype and g[key].shape == g_ref[key].shape, key
        assert rel_err(g[key], g_ref[key]) <= rtol, key

    logits_ref = loop.logits(model, X)
    logits = be.logits(model, X)
    assert logits.dtype == dtype and logits.shape == (X.shape[0], model.n_classes)
    assert rel_err(logits, logits_ref) <= rtol
    proba = be.predict_proba(model, X)
    assert proba.dtype == dtype
    assert rel_err(proba, loop.predict_proba(model, X)) <= rtol

    loss_ref, err_ref = loop.evaluate(model, X, y)
    loss, err = be.evaluate(model, X, y)
    assert rel_err(loss, loss_ref) <= rtol
    assert abs(err - err_ref) <= near_ties(logits_ref, rtol)


@pytest.mark.parametrize("K", [1, 2, 10, 33])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_backend_matches_loop(other, network, dtype, K):
    model, X, y = make_case(network, K, dtype)
    check_against_loop(other, model, X, y, RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("network", ["relu", "unit-wide", "3-mixed", "4-mixed"])
def test_backend_matches_loop_at_relu_kinks_and_without_penalties(other, network, dtype):
    for penalty in (True, False):
        model, X, y = make_case(network, 10, dtype, penalty=penalty, data="kinks")
        check_against_loop(other, model, X, y, RTOL[dtype])


def test_all_units_dead(other):
    # every first-layer pre-activation negative: what reaches the output is the biases'
    # path alone, and dJ/dW1 = dJ/db1 = dJ/dX = 0 (the penalty of W1 aside)
    model, X, y = make_case("3-mixed", 10, "float64", penalty=False)
    model.params["b1"][...] = -100.0
    J_ref, g_ref = fastmlp.gradients(model, X, y, backend="loop", wrt_input=True)
    J, g = fastmlp.gradients(model, X, y, backend=other, wrt_input=True)
    assert not g["W1"].any() and not g["b1"].any() and not g["X"].any()
    assert rel_err(J, J_ref) <= RTOL["float64"]
    for key in keys(model):
        assert rel_err(g[key], g_ref[key]) <= RTOL["float64"], key


def test_stable_activations_for_huge_pre_activations(backend):
    # |a| ~ 1e4: tanh and the logistic saturate without overflow warnings (RuntimeWarnings
    # from fastmlp are errors in this suite) and the gradients stay finite
    for act in ("tanh", "logistic"):
        model = fastmlp.MLP((2, 3, 2), activation=act, dtype="float32", seed=0)
        model.params["W1"][...] = [[1e4, 0], [-1e4, 0], [0, 1e4]]
        X = np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=np.float32)
        J, g = fastmlp.gradients(model, X, [0, 1], backend=backend, wrt_input=True)
        assert np.isfinite(J) and all(np.isfinite(a).all() for a in g.values()), act
        h = fastmlp.activations.ACTIVATIONS[act].function(X @ model.params["W1"].T)
        assert set(np.unique(h)) <= {-1.0, 0.0, 1.0}, act


def test_loop_does_one_forward_and_one_backward_per_example(monkeypatch):
    from fastmlp.backends import loop as loop_module

    calls = {"forward_one": 0, "backward_one": 0}
    for name in calls:
        original = getattr(loop_module, name)

        def counted(*args, _original=original, _name=name):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(loop_module, name, counted)
    model, X, y = make_case("3-mixed", 10, "float64")
    loop = fastmlp.get_backend("loop")
    loop.loss_and_grads(model, X, y, True)
    assert calls == {"forward_one": 10, "backward_one": 10}
    state = fastmlp.optim.SGD().init_state(model.n_params, model.dtype)
    loop.train_steps(model, X, y, np.arange(10), 4, 0.1, state)
    assert calls == {"forward_one": 20, "backward_one": 20}
    assert state.step == 3


# -- whole training ----------------------------------------------------------------------------
class TieCountingLoop(LoopBackend):
    """The loop backend, one minibatch per call, counting the examples whose logits are a
    near tie just before they are scored: the only ones whose error may differ between two
    correct backends. ``ties`` gets one count per ``train_steps`` and ``evaluate`` call."""

    def __init__(self, rtol):
        self.rtol, self.ties = rtol, []

    def train_steps(self, model, X, y, order, batch_size, lr, state):
        loss_sum, n_errors, n_steps, ties = 0.0, 0, 0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ties += near_ties(self.logits(model, X[idx]), self.rtol)
            s = super().train_steps(model, X, y, idx, batch_size, lr, state)
            assert s.failed_step == -1
            loss_sum, n_errors, n_steps = loss_sum + s.loss_sum, n_errors + s.n_errors, n_steps + 1
        self.ties.append(ties)
        return StepStats(loss_sum, n_errors, n_steps)

    def evaluate(self, model, X, y):
        self.ties.append(near_ties(self.logits(model, X), self.rtol))
        return super().evaluate(model, X, y)


#: optimizer -> learning rate that trains the tiny problem without diverging
OPTIMIZERS = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "adam": 0.01}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_epochs_same_weights_state_and_history(backend, dtype, optimizer):
    rtol = RTOL[dtype]
    X, y = fastmlp.datasets.circles(n=300, seed=2)
    split = fastmlp.datasets.split(X.astype(dtype), y, seed=0)     # 210 train: 14 steps/epoch
    settings = dict(epochs=2, batch_size=16, lr=OPTIMIZERS[optimizer], optimizer=optimizer,
                    seed=3, progress=False, eval_train=True)

    def run(be):
        model = fastmlp.MLP((2, 8, 6, 2), activation=("tanh", "relu"), l1=(1e-3, 2e-3, 0.0),
                            l2=(1e-3, 0.0, 3e-3), dtype=dtype, seed=3)
        return model, fastmlp.train(model, split, backend=be, **settings)

    ref = TieCountingLoop(rtol)
    ref_model, ref_hist = run(ref)
    model, hist = run(backend)
    assert model.theta.dtype == np.dtype(dtype)
    for k in model.params:
        assert rel_err(model.params[k], ref_model.params[k]) <= rtol, k
    state, ref_state = hist.optimizer_state, ref_hist.optimizer_state
    assert state.step == ref_state.step == 2 * 14
    for name, buf in state.buffers.items():
        assert buf.dtype == np.dtype(dtype)
        assert rel_err(buf, ref_state.buffers[name]) <= rtol, name

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


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_pure_sgd_one_example_per_step(other, optimizer):
    # batch size 1 has its own fast path in the numba backend
    X, y = fastmlp.datasets.circles(n=120, seed=5)
    settings = dict(epochs=1, batch_size=1, lr=OPTIMIZERS[optimizer] / 10, optimizer=optimizer,
                    seed=1, progress=False)
    models = {}
    for name in ("loop", other):
        models[name] = fastmlp.MLP((2, 5, 4, 2), activation=("relu", "logistic"), l1=1e-3,
                                   l2=1e-3, dtype="float64", seed=1)
        fastmlp.train(models[name], (X, y), backend=name, **settings)
    assert rel_err(models[other].theta, models["loop"].theta) <= RTOL["float64"]
