"""The model: layers of any depth, activations, penalties, initialization, parameters as live
views into one buffer, and prediction."""

import hashlib

import numpy as np
import pytest

import fastmlp


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_dtypes_and_the_flat_buffer(dtype):
    model = fastmlp.MLP((784, 256, 128, 10), dtype=dtype, seed=3)
    p = model.params
    assert {k: v.shape for k, v in p.items()} == {
        "W1": (256, 784), "b1": (256,), "W2": (128, 256), "b2": (128,), "W3": (10, 128),
        "b3": (10,)}
    assert list(p) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert model.n_params == 256 * 785 + 128 * 257 + 10 * 129 == model.theta.size
    assert model.theta.dtype == np.dtype(dtype) and model.theta.flags.c_contiguous
    for v in p.values():                     # every array is a view into the one buffer
        assert v.dtype == np.dtype(dtype) and np.shares_memory(v, model.theta)
    assert (model.n_layers, model.n_hidden, model.n_features, model.n_classes) == (3, 2, 784, 10)
    for (W, b), fan_in in zip(model.weights(), (784, 256, 128)):
        assert np.abs(W).max() <= 1 / np.sqrt(fan_in)
        assert np.abs(W).max() > 0.9 / np.sqrt(fan_in)   # the draw fills the interval
        assert not b.any()


#: sha256 of W1, b1, W2, b2 of MLP(layers, dtype, seed) computed with fastmlp 0.1.0: the
#: "uniform" initialization must give today's seeds today's weights, bit for bit
V010_INIT = {
    ((784, 64, 10), "float32", 0): "27506308397b918bf67dcb287204f029353ed776ecbdd42688cc0349e1fcaacc",
    ((2, 5, 2), "float64", 3): "6c3d643a9fe247324c4e912295f83472af4cafb835847662305250632de123ec",
    ((10, 1, 3), "float32", 123): "afd6d16df621c17f6d5bfa95a8b6bfc189d37370b4aa2609b992dbe2a0de965c",
}


@pytest.mark.parametrize("layers, dtype, seed", list(V010_INIT))
def test_uniform_init_is_fastmlp_010s_bit_for_bit(layers, dtype, seed):
    model = fastmlp.MLP(layers, dtype=dtype, seed=seed)
    digest = hashlib.sha256()
    for key in ("W1", "b1", "W2", "b2"):
        digest.update(model.params[key].tobytes())
    assert digest.hexdigest() == V010_INIT[(layers, dtype, seed)]


def test_glorot_init_bounds_per_layer():
    model = fastmlp.MLP((300, 200, 100, 10), activation=("relu", "logistic"), init="glorot",
                        seed=0, dtype="float64")
    # scikit-learn's: ±sqrt(6 / (fan_in + fan_out)), 2 instead of 6 for a logistic layer and
    # for the output layer when the last hidden layer is logistic
    bounds = [np.sqrt(6 / 500), np.sqrt(2 / 300), np.sqrt(2 / 110)]
    for (W, b), bound in zip(model.weights(), bounds):
        assert bound * 0.95 < np.abs(W).max() <= bound
        assert not b.any()
    relu = fastmlp.MLP((300, 200, 10), init="glorot", seed=0)
    assert np.abs(relu.params["W2"]).max() > np.sqrt(2 / 210)     # factor 6, not 2


def test_same_seed_same_weights_and_float32_is_rounded_float64():
    a = fastmlp.MLP((5, 4, 3, 3), seed=7, dtype="float64", activation="tanh")
    b = fastmlp.MLP((5, 4, 3, 3), seed=7, dtype="float64", activation="tanh")
    c = fastmlp.MLP((5, 4, 3, 3), seed=7, dtype="float32", activation="tanh")
    d = fastmlp.MLP((5, 4, 3, 3), seed=8, dtype="float64", activation="tanh")
    assert np.array_equal(a.theta, b.theta)
    assert np.array_equal(a.theta.astype(np.float32), c.theta)
    assert not np.array_equal(a.theta, d.theta)


def test_activations_and_penalties_per_layer():
    model = fastmlp.MLP((4, 5, 6, 3), activation=["tanh", "identity"], l1=(0.1, 0.2, 0.3),
                        l2=0.5)
    assert model.activations == ("tanh", "identity") and model.activation == ("tanh", "identity")
    assert model.l1 == (0.1, 0.2, 0.3) and model.l2 == (0.5, 0.5, 0.5)
    same = fastmlp.MLP((4, 5, 6, 3), activation="logistic")
    assert same.activations == ("logistic", "logistic") and same.activation == "logistic"
    assert fastmlp.MLP((4, 3)).activations == ()           # softmax regression
    # the one-hidden-layer pairs of fastmlp 0.1.0 keep working
    old = fastmlp.MLP((4, 5, 3), l1=(1e-3, 2e-3), l2=(3e-3, 4e-3))
    assert old.l1 == (1e-3, 2e-3) and old.l2 == (3e-3, 4e-3)
    assert "activation=('tanh', 'identity')" in repr(model) and "init='uniform'" in repr(model)


def test_params_are_live():
    model = fastmlp.MLP((2, 3, 2), dtype="float64")
    model.params["W2"][...] = 0
    model.params["b2"][...] = [5.0, 0.0]
    assert (model.predict([[1.0, 2.0], [-3.0, 4.0]]) == 0).all()
    proba = model.predict_proba([[1.0, 2.0]])
    np.testing.assert_allclose(proba, [[np.exp(5) / (np.exp(5) + 1), 1 / (np.exp(5) + 1)]])
    assert model.theta[model.layout.slices["b2"]].tolist() == [5.0, 0.0]


def test_assigning_a_parameter_copies_into_the_live_array():
    model = fastmlp.MLP((2, 3, 2), dtype="float64")
    live = model.params["b1"]
    model.params["b1"] = [1.0, 2.0, 3.0]
    assert model.params["b1"] is live and live.tolist() == [1.0, 2.0, 3.0]
    model.params.update({"b2": np.array([7.0, 8.0])})
    assert model.theta[-2:].tolist() == [7.0, 8.0]
    with pytest.raises(ValueError, match=r"params\['W1'\] has shape \(2, 3\); the model's is \(3, 2\)"):
        model.params["W1"] = np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"params\['W1'\] has dtype float32 but the model is float64"):
        model.params["W1"] = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        model.params["W1"] = np.full((3, 2), np.nan)
    with pytest.raises(KeyError, match="W3"):
        model.params["W3"] = np.zeros(2)
    with pytest.raises(TypeError, match="cannot be removed"):
        del model.params["W1"]
    with pytest.raises(TypeError, match="cannot be removed"):
        model.params.pop("W1")
    with pytest.raises(ValueError, match="exactly the keys"):
        model.params = {"W1": np.zeros((3, 2))}
    copy = fastmlp.MLP((2, 3, 2), dtype="float64", seed=9)
    model.params = copy.params
    assert np.array_equal(model.theta, copy.theta) and model.params["W1"] is not copy.params["W1"]


def test_a_damaged_model_is_refused_before_any_kernel_sees_it(backend):
    X = np.zeros((4, 2))
    model = fastmlp.MLP((2, 3, 2), dtype="float64")
    model.params["W2"][0, 1] = np.nan
    for call in (lambda: model.predict(X, backend=backend),
                 lambda: fastmlp.gradients(model, X, [0, 1, 0, 1], backend=backend),
                 lambda: fastmlp.evaluate(model, X, [0, 1, 0, 1], backend=backend),
                 lambda: fastmlp.train(model, (X, [0, 1, 0, 1]), backend=backend, epochs=1,
                                       progress=False)):
        with pytest.raises(ValueError, match=r"params\['W2'\] holds NaN or infinite values "
                                             r"\(first at index \(0, 1\)\)"):
            call()
    model = fastmlp.MLP((2, 3, 2), dtype="float64")
    dict.__setitem__(model.params, "b1", np.zeros(5))       # around the guard
    with pytest.raises(ValueError, match="altered"):
        model.predict(X, backend=backend)
    model = fastmlp.MLP((2, 3, 2), dtype="float64")
    model.theta.setflags(write=False)
    model.predict(X, backend=backend)                       # reading is fine
    with pytest.raises(ValueError, match="read-only"):
        fastmlp.train(model, (X, [0, 1, 0, 1]), backend=backend, epochs=1, progress=False)


def test_copy_and_astype():
    model = fastmlp.MLP((3, 4, 2), activation="tanh", l1=0.1, seed=2, init="glorot")
    twin = model.copy()
    assert twin.describe() == model.describe() and np.array_equal(twin.theta, model.theta)
    twin.params["W1"][0, 0] += 1
    assert not np.array_equal(twin.theta, model.theta)
    wide = model.astype("float64")
    assert wide.dtype == np.float64 and np.array_equal(wide.theta, model.theta.astype(np.float64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layers, activation", [((6, 4), "relu"), ((6, 5, 4), "relu"),
                                                ((6, 5, 7, 4), ("tanh", "logistic"))])
def test_predict_proba(backend, dtype, layers, activation):
    model = fastmlp.MLP(layers, activation=activation, dtype=dtype, seed=1)
    X = np.random.default_rng(0).normal(size=(20, 6))
    proba = model.predict_proba(X, backend=backend)
    assert proba.shape == (20, 4) and proba.dtype == np.dtype(dtype)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    labels = model.predict(X, backend=backend)
    assert labels.dtype == np.int64
    assert np.array_equal(labels, proba.argmax(axis=1))


def test_predict_defaults_to_the_fastest_backend(monkeypatch):
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    X = np.random.default_rng(1).normal(size=(5, 3))
    assert np.array_equal(model.predict(X), model.predict(X, backend=fastmlp.fastest_backend()))


@pytest.mark.parametrize("layers, error, match", [
    ((2,), ValueError, "at least 2 entries"), ((2, 0, 2), ValueError, r"layers\[1\]"),
    ((2, 3, 1), ValueError, "number of classes"), ((2.5, 3, 2), TypeError, r"layers\[0\]"),
    ("abc", TypeError, "sequence"), ((2, 3, 4, 0, 2), ValueError, r"layers\[3\]"),
])
def test_bad_layers(layers, error, match):
    with pytest.raises(error, match=match):
        fastmlp.MLP(layers)


def test_bad_activations_penalties_init_and_dtype():
    with pytest.raises(ValueError, match="'softplus' is not an activation; use one of relu, "
                                         "tanh, logistic, identity"):
        fastmlp.MLP((2, 3, 2), activation="softplus")
    with pytest.raises(ValueError, match="lists 3 activation.*has 2 hidden layer"):
        fastmlp.MLP((2, 3, 3, 2), activation=("relu", "tanh", "relu"))
    with pytest.raises(TypeError, match=r"activation\[1\]"):
        fastmlp.MLP((2, 3, 3, 2), activation=("relu", 3))
    with pytest.raises(ValueError, match=r"l1\[0\]"):
        fastmlp.MLP((2, 3, 2), l1=(-1.0, 0.0))
    with pytest.raises(ValueError, match=r"l2\[1\]"):
        fastmlp.MLP((2, 3, 2), l2=(0.0, float("nan")))
    with pytest.raises(ValueError, match="l1 lists 2 value.*has 3 weight matrices"):
        fastmlp.MLP((2, 3, 3, 2), l1=(0.1, 0.2))
    with pytest.raises(TypeError, match="l2"):
        fastmlp.MLP((2, 3, 2), l2="0.1")
    with pytest.raises(ValueError, match="init='he' is not allowed; use one of uniform, glorot"):
        fastmlp.MLP((2, 3, 2), init="he")
    with pytest.raises(ValueError, match="dtype"):
        fastmlp.MLP((2, 3, 2), dtype="float16")


def test_predict_checks_input():
    model = fastmlp.MLP((3, 4, 2))
    with pytest.raises(ValueError, match="3"):
        model.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        model.predict([[0.0, np.nan, 1.0]])
    with pytest.raises(ValueError, match="2-D"):
        model.predict([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="masked array"):
        model.predict(np.ma.masked_array(np.zeros((2, 3)), mask=[[0, 1, 0], [0, 0, 0]]))


def test_activation_functions_are_stable_and_match_their_textbook_forms():
    a = np.linspace(-30, 30, 121)
    acts = fastmlp.activations.ACTIVATIONS
    np.testing.assert_allclose(acts["logistic"].function(a), 1 / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_allclose(acts["tanh"].function(a), np.tanh(a))
    np.testing.assert_array_equal(acts["relu"].function(a), np.maximum(a, 0))
    np.testing.assert_array_equal(acts["identity"].function(a), a)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # no overflow
        for dtype in (np.float32, np.float64):
            big = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype)
            for act in acts.values():
                h = act.function(big)
                assert h.dtype == dtype and np.isfinite(h).all()
                assert act.derivative(h).dtype == dtype
    h = acts["logistic"].function(np.array([-1e4, 1e4]))
    assert h.tolist() == [0.0, 1.0]
    # derivatives from the output, as the spec's table (numerically, away from the kink)
    eps = 1e-6
    x = a[np.abs(a) > 1e-3] / 10
    for act in acts.values():
        numeric = (act.function(x + eps) - act.function(x - eps)) / (2 * eps)
        np.testing.assert_allclose(act.derivative(act.function(x)), numeric, atol=1e-8)
    assert acts["relu"].derivative(np.array([0.0])).tolist() == [0.0]     # 0 at a = 0
