"""Data: the IDX reader, Fashion-MNIST lookup, two circles, text files and splits."""

import gzip
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import datasets


def write_idx(path, array, compress=True):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f8"): 0x0E}
    array = np.asarray(array)
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.array(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    write_idx(path, images, compress)
    out = datasets.read_idx(path)
    assert out.shape == (2, 3, 4) and np.array_equal(out, images)
    ints = np.array([1, -2, 300000], dtype=">i4")
    write_idx(tmp_path / "i.gz", ints)
    assert datasets.read_idx(tmp_path / "i.gz").tolist() == [1, -2, 300000]


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "t", np.zeros((4, 5), dtype=np.uint8), compress=False)
    data = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(tmp_path / "t")


def make_fake_fashion(folder, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                  rng.integers(0, 10, size=n).astype(np.uint8))


def test_fashion_mnist_from_files(tmp_path, monkeypatch):
    make_fake_fashion(tmp_path)
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    X, y = datasets.fashion_mnist(tmp_path)
    assert X.shape == (10, 784) and X.dtype == np.float32
    assert y.shape == (10,) and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    raw = datasets.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_allclose(X[6:], raw.reshape(4, -1) / 255.0, rtol=1e-6)
    # the environment variable is the second place looked in
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    X2, _ = datasets.fashion_mnist(tmp_path / "elsewhere")
    assert np.array_equal(X, X2)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nothing"))
    monkeypatch.setattr(datasets, "SYSTEM_DIR", str(tmp_path / "none"))
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.fashion_mnist(tmp_path / "empty")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert datasets.ENV_VAR in message


def test_circles_is_deterministic_and_shaped():
    X, y = datasets.circles(n=200, noise=0.0, seed=1)
    assert X.shape == (200, 2) and y.shape == (200,) and set(y) == {0, 1}
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 0], 0.5)
    np.testing.assert_allclose(radius[y == 1], 1.0)
    X2, y2 = datasets.circles(n=200, noise=0.0, seed=1)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(datasets.circles(n=200, seed=2)[0], datasets.circles(n=200, seed=1)[0])


def test_load_text(tmp_path):
    path = tmp_path / "cercles.txt"
    path.write_text("0.1 0.2 0\n-1.5   2e-1 1\n0.0 0.0 1\n")
    X, y = datasets.load_text(path)
    assert X.tolist() == [[0.1, 0.2], [-1.5, 0.2], [0.0, 0.0]]
    assert y.tolist() == [0, 1, 1] and y.dtype == np.int64
    bad = tmp_path / "bad.txt"
    bad.write_text("0.1 0.2 0.5\n")
    with pytest.raises(ValueError, match="integer"):
        datasets.load_text(bad)


def test_split_sizes_disjoint_and_reproducible():
    X = np.arange(100, dtype=np.float64).reshape(100, 1)
    y = np.arange(100) % 3
    s = datasets.split(X, y, seed=5, standardize=False)
    assert [len(p[1]) for _, p in s.parts()] == [70, 15, 15]
    values = np.concatenate([p[0][:, 0] for _, p in s.parts()])
    assert sorted(values) == list(range(100))
    for _, (Xp, yp) in s.parts():  # labels stay with their rows
        assert np.array_equal(Xp[:, 0].astype(int) % 3, yp)
    s2 = datasets.split(X, y, seed=5, standardize=False)
    assert np.array_equal(s.train[0], s2.train[0])


def test_standardize_uses_train_statistics_and_survives_constant_features():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(3, 2, 1000), np.full(1000, 7.0)]).astype(np.float32)
    y = rng.integers(0, 2, 1000)
    s = datasets.split(X, y)
    Xtr = s.train[0]
    assert Xtr.dtype == np.float32
    np.testing.assert_allclose(Xtr.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Xtr[:, 0].std(), 1, rtol=1e-5)
    for _, (Xp, _) in s.parts():
        assert np.isfinite(Xp).all()
        assert not Xp[:, 1].any()  # the constant feature is centred, not divided by zero
    raw = datasets.split(X, y, standardize=False)  # same seed: the same rows
    np.testing.assert_allclose(s.mean, raw.train[0].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(s.valid[0][:, 0], (raw.valid[0][:, 0] - s.mean[0]) / s.std[0],
                               rtol=1e-5)


def test_split_checks_arguments():
    X, y = np.zeros((10, 2)), np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="add up to 1"):
        datasets.split(X, y, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="labels"):
        datasets.split(X, y[:5])


def test_env_var_name_is_documented():
    assert datasets.ENV_VAR == "FASHION_MNIST_DIR"
    assert os.path.isabs(datasets.SYSTEM_DIR)
    assert fastmlp.datasets is datasets
