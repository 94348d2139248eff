"""Loss and gradients on tiny cases computed by hand, for every backend."""

import math

import numpy as np
import pytest

import fastmlp
from conftest import RTOL, rel_err


def hand_model(dtype="float64", l1=(0.0, 0.0), l2=(0.0, 0.0)):
    """layers (2, 2, 2) with W1 = W2 = identity and zero biases."""
    model = fastmlp.MLP((2, 2, 2), l1=l1, l2=l2, dtype=dtype)
    model.params["W1"][...] = np.eye(2)
    model.params["W2"][...] = np.eye(2)
    model.params["b1"][...] = 0
    model.params["b2"][...] = 0
    return model


# Example 1: x = (1, -1), y = 0 -> h_a = (1, -1), h_s = (1, 0), o_a = (1, 0)
#   L = log(1 + e^-1); with s = 1/(1+e): dL/do_a = (-s, s)
#   dW2 = [[-s, 0], [s, 0]], db2 = (-s, s), dh_a = (-s, 0) (second unit is off)
#   dW1 = [[-s, s], [0, 0]], db1 = (-s, 0), dx = (-s, 0)
S = 1.0 / (1.0 + math.e)
ONE = {
    "J": math.log(1 + math.exp(-1)),
    "W1": [[-S, S], [0, 0]], "b1": [-S, 0], "W2": [[-S, 0], [S, 0]], "b2": [-S, S], "X": [[-S, 0]],
}
# Example 2: x = (0, 2), y = 1 -> h_a = (0, 2) (the first pre-activation exactly 0: relu' = 0),
#   o_a = (0, 2), L = log(1 + e^-2); with t = 1/(1+e^2): dL/do_a = (t, -t)
#   dW2 = [[0, 2t], [0, -2t]], db2 = (t, -t), dh_a = (0, -t)
#   dW1 = [[0, 0], [0, -2t]], db1 = (0, -t), dx = (0, -t)
T = 1.0 / (1.0 + math.e ** 2)
TWO = {
    "J": math.log(1 + math.exp(-2)),
    "W1": [[0, 0], [0, -2 * T]], "b1": [0, -T], "W2": [[0, 2 * T], [0, -2 * T]], "b2": [T, -T],
    "X": [[0, -T]],
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_example_by_hand(backend, dtype):
    model = hand_model(dtype)
    J, g = fastmlp.gradients(model, [[1.0, -1.0]], [0], backend=backend, wrt_input=True)
    assert J == pytest.approx(ONE["J"], rel=RTOL[dtype])
    for key in ("W1", "b1", "W2", "b2", "X"):
        assert g[key].dtype == np.dtype(dtype)
        assert rel_err(g[key], ONE[key]) <= RTOL[dtype], key


def test_minibatch_is_the_mean(backend):
    model = hand_model()
    J, g = fastmlp.gradients(model, [[1.0, -1.0], [0.0, 2.0]], [0, 1], backend=backend,
                             wrt_input=True)
    assert J == pytest.approx((ONE["J"] + TWO["J"]) / 2, rel=RTOL["float64"])
    for key in ("W1", "b1", "W2", "b2"):
        expected = (np.array(ONE[key]) + np.array(TWO[key])) / 2
        assert rel_err(g[key], expected) <= RTOL["float64"], key
    # dJ/dX: each row is its own example's gradient divided by K
    assert rel_err(g["X"], np.vstack([ONE["X"], TWO["X"]]) / 2) <= RTOL["float64"]


def test_penalties_by_hand(backend):
    # |W1|_1 = |W2|_1 = 2 and ||W1||^2 = ||W2||^2 = 2 for identities:
    # J += 0.1*2 + 0.3*2 + 0.2*2 + 0.4*2 = 2.0
    # dW1 += 0.1 sign(W1) + 2*0.3 W1 = 0.7 I; dW2 += 0.2 sign(W2) + 2*0.4 W2 = 1.0 I
    # (the off-diagonal zeros have sign 0: no L1 sub-gradient there); biases unpenalized.
    model = hand_model(l1=(0.1, 0.2), l2=(0.3, 0.4))
    J, g = fastmlp.gradients(model, [[1.0, -1.0]], [0], backend=backend)
    assert J == pytest.approx(ONE["J"] + 2.0, rel=RTOL["float64"])
    assert rel_err(g["W1"], np.array(ONE["W1"]) + 0.7 * np.eye(2)) <= RTOL["float64"]
    assert rel_err(g["W2"], np.array(ONE["W2"]) + 1.0 * np.eye(2)) <= RTOL["float64"]
    assert rel_err(g["b1"], ONE["b1"]) <= RTOL["float64"]
    assert rel_err(g["b2"], ONE["b2"]) <= RTOL["float64"]


def test_no_input_gradient_unless_asked(backend):
    model = hand_model()
    _, g = fastmlp.gradients(model, [[1.0, -1.0]], [0], backend=backend)
    assert set(g) == {"W1", "b1", "W2", "b2"}


def test_stable_for_huge_logits(backend):
    # o_a = (1000, 0): a naive softmax overflows; the stable one gives L = 0 and finite grads
    model = hand_model()
    model.params["W2"][...] = [[1000.0, 0.0], [0.0, 0.0]]
    J, g = fastmlp.gradients(model, [[1.0, 0.0]], [0], backend=backend)
    assert J == pytest.approx(0.0, abs=1e-12)
    assert all(np.isfinite(a).all() for a in g.values())
    J, _ = fastmlp.gradients(model, [[1.0, 0.0]], [1], backend=backend)
    assert J == pytest.approx(1000.0, rel=1e-12)


def test_derivative_identities():
    """The seed's question 1, checked numerically."""
    x = np.linspace(-6, 6, 101)
    sigmoid = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(sigmoid, (np.tanh(x / 2) + 1) / 2, rtol=1e-12)
    np.testing.assert_allclose(np.log(sigmoid), -np.log1p(np.exp(-x)), rtol=1e-12)
    h = 1e-6
    num = lambda f: (f(x + h) - f(x - h)) / (2 * h)  # noqa: E731
    np.testing.assert_allclose(num(lambda z: 1 / (1 + np.exp(-z))), sigmoid * (1 - sigmoid), atol=1e-8)
    np.testing.assert_allclose(num(np.tanh), 1 - np.tanh(x) ** 2, atol=1e-8)
    xs = x[np.abs(x) > 1e-3]
    np.testing.assert_allclose((np.abs(xs + h) - np.abs(xs - h)) / (2 * h), np.sign(xs), atol=1e-8)


def test_ops_logsumexp_matches_naive():
    z = np.random.default_rng(0).normal(size=(5, 7))
    np.testing.assert_allclose(fastmlp.ops.logsumexp(z, axis=1), np.log(np.exp(z).sum(axis=1)))
    np.testing.assert_allclose(fastmlp.ops.softmax(z).sum(axis=1), 1.0)
