"""Property tests (hypothesis) over depths, shapes and values, for every backend.

Values for the exact backend comparisons are drawn on a grid of multiples of 1/8 in [-2, 2],
through at most two hidden layers of relu or identity units: every product and sum up to the
logits is then exact in float32 and float64, in any order, so the pre-activations (exactly 0
often, which hypothesis likes) give the same relu' everywhere, and ties between logits are
exact ties broken the same way. The other properties use continuous values and any of the
four activations, at any depth; the finite-difference one stays away from the kinks.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastmlp
from conftest import RTOL
from fastmlp.gradcheck import FD_RTOL, check_gradients

FAST = settings(max_examples=25, deadline=None)
GRID = st.integers(-16, 16)            # eighths: values in [-2, 2]


def err(a, b):
    """``max|a - b| / max(1, max|a|, max|b|)``. Every value here is of order 1, and so are the
    summands of every gradient: a gradient that cancels to nearly 0 (hypothesis finds such
    cases, e.g. two equal rows of W2) is compared on the scale of its summands, where its
    rounding lives, rather than on its own scale."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(1.0, np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    return float(np.abs(a - b).max(initial=0.0) / scale)


ACTIVATIONS = st.sampled_from(fastmlp.activations.NAMES)


@st.composite
def networks(draw, max_hidden=3, activations=ACTIVATIONS):
    hidden = draw(st.lists(st.integers(1, 5), max_size=max_hidden))
    layers = (draw(st.integers(1, 6)), *hidden, draw(st.integers(2, 4)))
    pen = st.sampled_from([0.0, 1e-3, 0.25])
    n = len(layers) - 1
    return dict(layers=layers, activation=tuple(draw(activations) for _ in hidden),
                l1=tuple(draw(pen) for _ in range(n)), l2=tuple(draw(pen) for _ in range(n)))


@st.composite
def cases(draw):
    net = draw(networks(max_hidden=2, activations=st.sampled_from(["relu", "identity"])))
    d, m, K = net["layers"][0], net["layers"][-1], draw(st.integers(1, 9))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    model = fastmlp.MLP(dtype=dtype, **net)
    for key, p in model.params.items():
        p[...] = draw(hnp.arrays(np.int8, p.shape, elements=GRID)) / 8
    X = (draw(hnp.arrays(np.int8, (K, d), elements=GRID)) / 8).astype(dtype)
    y = draw(hnp.arrays(np.int64, K, elements=st.integers(0, m - 1)))
    return model, X, y


@pytest.mark.parametrize("name", [b for b in fastmlp.BACKENDS if b != "loop"])
@FAST
@given(case=cases())
def test_every_backend_matches_loop(name, case):
    model, X, y = case
    rtol = RTOL[model.dtype.name]
    loop, be = fastmlp.get_backend("loop"), fastmlp.get_backend(name)
    J_ref, g_ref = fastmlp.gradients(model, X, y, backend=loop, wrt_input=True)
    J, g = fastmlp.gradients(model, X, y, backend=be, wrt_input=True)
    assert np.isfinite(J) and err(J, J_ref) <= rtol
    assert set(g) == set(g_ref)
    for key in g_ref:
        assert g[key].dtype == model.dtype
        assert err(g[key], g_ref[key]) <= rtol, key
    # the logits are exact here, so evaluation agrees exactly on errors (ties included)
    assert np.array_equal(be.logits(model, X), loop.logits(model, X))
    loss, errors = be.evaluate(model, X, y)
    loss_ref, errors_ref = loop.evaluate(model, X, y)
    assert errors == errors_ref and err(loss, loss_ref) <= rtol
    assert err(be.predict_proba(model, X), loop.predict_proba(model, X)) <= rtol


@pytest.mark.parametrize("name", fastmlp.BACKENDS)
@FAST
@given(case=cases())
def test_gradient_identities(name, case):
    """Consequences of the spec's equations that hold whatever the values:
    dJ/dbL = mean(o_s) - mean(onehot(y)) (so it sums to 0 over classes), and a first-layer
    ReLU unit that is off for every example gets no gradient but its penalty's."""
    model, X, y = case
    rtol = RTOL[model.dtype.name]
    be = fastmlp.get_backend(name)
    _, g = fastmlp.gradients(model, X, y, backend=be, wrt_input=True)
    m, L = model.n_classes, model.n_layers
    expected_bL = (be.predict_proba(model, X).astype(np.float64).mean(axis=0)
                   - np.bincount(y, minlength=m) / len(y))
    # the summands o_s - onehot(y) lie in [-1, 1]: errors are measured on that scale, since
    # their mean may cancel to nearly nothing
    assert np.abs(g[f"b{L}"] - expected_bL).max() <= rtol
    assert abs(float(g[f"b{L}"].astype(np.float64).sum())) <= rtol * m
    if model.n_hidden == 0 or model.activations[0] != "relu":
        return
    a = X.astype(np.float64) @ model.params["W1"].T.astype(np.float64) + model.params["b1"]
    off = (a <= 0).all(axis=0)
    penalty = fastmlp.ops.penalty_grad(model.params["W1"], model.l1[0], model.l2[0])
    assert not g["b1"][off].any()
    assert err(g["W1"][off], penalty[off]) <= rtol
    if off.all():
        assert not g["X"].any()


@pytest.mark.parametrize("name", [b for b in fastmlp.BACKENDS if b != "loop"])
@FAST
@given(net=networks(), K=st.integers(1, 9), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(["float64", "float32"]))
def test_every_backend_matches_loop_at_any_depth_and_activation(name, net, K, seed, dtype):
    model = fastmlp.MLP(dtype=dtype, seed=seed, **net)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(K, net["layers"][0]))
    y = rng.integers(0, net["layers"][-1], size=K)
    rtol = RTOL[dtype]
    J_ref, g_ref = fastmlp.gradients(model, X, y, backend="loop", wrt_input=True)
    J, g = fastmlp.gradients(model, X, y, backend=name, wrt_input=True)
    assert err(J, J_ref) <= rtol
    for key in g_ref:
        assert g[key].dtype == model.dtype and err(g[key], g_ref[key]) <= rtol, key


@pytest.mark.parametrize("name", fastmlp.BACKENDS)
@FAST
@given(net=networks(), K=st.integers(1, 6), scale=st.floats(0.1, 3.0),
       seed=st.integers(0, 2**16))
def test_finite_differences_agree(name, net, K, scale, seed):
    model = fastmlp.MLP(dtype="float64", seed=seed, **net)
    rng = np.random.default_rng(seed)
    for _, b in model.weights():
        b[...] = rng.normal(scale=0.5, size=b.shape)
    X = rng.normal(scale=scale, size=(K, net["layers"][0]))
    y = rng.integers(0, net["layers"][-1], size=K)
    report = check_gradients(model, X, y, backend=name, wrt_input=True)
    # a finite difference across a kink measures no gradient
    assume(not any(relu or l1 for relu, l1 in report.near_kinks))
    assert report.ok(FD_RTOL["float64"]), report.table()
