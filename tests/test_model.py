"""The model: initialization, shapes and dtypes, prediction, model files."""

import numpy as np
import pytest

import fastmlp


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_dtypes_and_init(dtype):
    model = fastmlp.MLP((784, 64, 10), dtype=dtype, seed=3)
    p = model.params
    assert {k: v.shape for k, v in p.items()} == {
        "W1": (64, 784), "b1": (64,), "W2": (10, 64), "b2": (10,)}
    assert all(v.dtype == np.dtype(dtype) for v in p.values())
    assert model.n_params == 64 * (784 + 1) + 10 * (64 + 1)
    assert np.abs(p["W1"]).max() <= 1 / np.sqrt(784)
    assert np.abs(p["W2"]).max() <= 1 / np.sqrt(64)
    # uniform draw: it fills the interval, not a small part of it
    assert np.abs(p["W1"]).max() > 0.9 / np.sqrt(784)
    assert not p["b1"].any() and not p["b2"].any()


def test_same_seed_same_weights_and_float32_is_rounded_float64():
    a = fastmlp.MLP((5, 4, 3), seed=7, dtype="float64")
    b = fastmlp.MLP((5, 4, 3), seed=7, dtype="float64")
    c = fastmlp.MLP((5, 4, 3), seed=7, dtype="float32")
    d = fastmlp.MLP((5, 4, 3), seed=8, dtype="float64")
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])
        assert np.array_equal(a.params[k].astype(np.float32), c.params[k])
    assert not np.array_equal(a.params["W1"], d.params["W1"])


def test_params_are_live():
    model = fastmlp.MLP((2, 3, 2), dtype="float64")
    model.params["W2"][...] = 0
    model.params["b2"][...] = [5.0, 0.0]
    assert (model.predict([[1.0, 2.0], [-3.0, 4.0]]) == 0).all()
    proba = model.predict_proba([[1.0, 2.0]])
    np.testing.assert_allclose(proba, [[np.exp(5) / (np.exp(5) + 1), 1 / (np.exp(5) + 1)]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_proba(backend, dtype):
    model = fastmlp.MLP((6, 5, 4), dtype=dtype, seed=1)
    X = np.random.default_rng(0).normal(size=(20, 6))
    proba = model.predict_proba(X, backend=backend)
    assert proba.shape == (20, 4) and proba.dtype == np.dtype(dtype)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    labels = model.predict(X, backend=backend)
    assert labels.dtype == np.int64
    assert np.array_equal(labels, proba.argmax(axis=1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    model = fastmlp.MLP((7, 5, 3), l1=(1e-3, 2e-3), l2=(3e-3, 4e-3), dtype=dtype, seed=4)
    model.params["b1"][...] = np.arange(5)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = fastmlp.MLP.load(path)
    assert (loaded.layers, loaded.l1, loaded.l2, loaded.dtype, loaded.seed) == (
        model.layers, model.l1, model.l2, model.dtype, model.seed)
    for k in model.params:
        assert loaded.params[k].dtype == model.params[k].dtype
        assert np.array_equal(loaded.params[k], model.params[k])
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left


def test_load_refuses_foreign_and_pickled_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(fastmlp.ModelFileError, match="not a fastmlp model file"):
        fastmlp.MLP.load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W1=np.array([object()], dtype=object))
    with pytest.raises(fastmlp.ModelFileError, match="pickled"):
        fastmlp.MLP.load(pickled)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.MLP.load(garbage)


def test_load_refuses_truncated_file(tmp_path):
    path = tmp_path / "m.npz"
    fastmlp.MLP((30, 20, 3)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(fastmlp.ModelFileError):
        fastmlp.MLP.load(path)


@pytest.mark.parametrize("layers, error", [
    ((2, 3), ValueError), ((2, 0, 2), ValueError), ((2, 3, 1), ValueError),
    ((2.5, 3, 2), TypeError), ("abc", TypeError), ((2, 3, 2, 2), ValueError),
])
def test_bad_layers(layers, error):
    with pytest.raises(error, match="layers"):
        fastmlp.MLP(layers)


def test_bad_penalties_and_dtype():
    with pytest.raises(ValueError, match=r"l1\[0\]"):
        fastmlp.MLP((2, 3, 2), l1=(-1.0, 0.0))
    with pytest.raises(ValueError, match=r"l2\[1\]"):
        fastmlp.MLP((2, 3, 2), l2=(0.0, float("nan")))
    with pytest.raises(TypeError, match="l1"):
        fastmlp.MLP((2, 3, 2), l1=0.1)
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


def test_saved_file_has_the_usual_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "m.npz"
    fastmlp.MLP((3, 2, 2)).save(path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
