"""The trainer: schedule, shuffles, minibatches, history, reproducibility, failures."""

import numpy as np
import pytest

import fastmlp
from fastmlp import ops
from conftest import make_data


def test_schedule_and_batch_order():
    assert ops.learning_rate(0.1, 0, 30) == 0.1
    assert ops.learning_rate(0.1, 15, 30) == pytest.approx(0.1 / 3)
    a = ops.epoch_order(50, seed=1, epoch=2)
    assert sorted(a) == list(range(50))
    assert np.array_equal(a, ops.epoch_order(50, seed=1, epoch=2))
    assert not np.array_equal(a, ops.epoch_order(50, seed=1, epoch=3))
    assert not np.array_equal(a, ops.epoch_order(50, seed=2, epoch=2))
    assert ops.n_batches(10, 3) == 4 and ops.n_batches(9, 3) == 3


def test_last_smaller_batch_is_kept(backend):
    # 10 examples, K=4: steps of 4, 4 and 2 examples
    X, y = make_data(10, 3, 2)
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    order = ops.epoch_order(10, 0, 0)
    params = model.copy_params()
    stats = fastmlp.get_backend(backend).train_steps(params, X, y, order, 4, 0.1)
    assert stats.n_steps == 3 and stats.failed_step == -1
    # the same three steps by hand with the numpy gradients
    ref = fastmlp.MLP((3, 4, 2), dtype="float64")
    for idx in (order[:4], order[4:8], order[8:]):
        _, g = fastmlp.gradients(ref, X[idx], y[idx])
        for k in ref.params:
            ref.params[k] -= 0.1 * g[k]
    for k in params:
        np.testing.assert_allclose(params[k], ref.params[k], rtol=1e-10)


def test_history_columns_and_eval(backend):
    X, y = fastmlp.datasets.circles(n=300, seed=0)
    split = fastmlp.datasets.split(X, y)
    model = fastmlp.MLP((2, 8, 2), dtype="float64")
    h = fastmlp.train(model, split, backend=backend, epochs=3, batch_size=16, lr=0.5,
                      progress=False, eval_train=True)
    assert len(h) == 3 and h["epoch"] == [0, 1, 2]
    assert h["lr"] == [pytest.approx(ops.learning_rate(0.5, e, 3)) for e in range(3)]
    for col in ("train_loss", "train_error", "train_eval_loss", "valid_loss", "test_error", "seconds"):
        assert all(x is not None and np.isfinite(x) for x in h[col]), col
    # the after-epoch evaluations are what evaluate() says for the final weights
    loss, err = fastmlp.evaluate(model, *split.test)
    assert h["test_loss"][-1] == pytest.approx(loss) and h["test_error"][-1] == pytest.approx(err)
    loss, err = fastmlp.evaluate(model, *split.train)
    assert h["train_eval_loss"][-1] == pytest.approx(loss)
    assert fastmlp.History.from_dict(h.to_dict()).rows == h.rows


def test_plain_xy_has_no_valid_or_test():
    X, y = make_data(40, 3, 3)
    h = fastmlp.train(fastmlp.MLP((3, 5, 3)), (X, y), epochs=1, progress=False)
    assert h["valid_loss"] == [None] and h["test_error"] == [None]


def test_training_learns_circles(backend):
    X, y = fastmlp.datasets.circles(n=600, seed=1)
    split = fastmlp.datasets.split(X, y)
    model = fastmlp.MLP((2, 20, 2), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4), dtype="float64")
    epochs = 5 if backend == "loop" else 30
    h = fastmlp.train(model, split, backend=backend, epochs=epochs, batch_size=16, lr=0.5,
                      progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["test_error"][-1] < 10.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights_bit_for_bit(backend, dtype):
    X, y = make_data(70, 5, 3, seed=2)

    def run(seed):
        model = fastmlp.MLP((5, 6, 3), l1=(1e-3, 1e-3), l2=(1e-3, 1e-3), dtype=dtype, seed=seed)
        fastmlp.train(model, (X, y), backend=backend, epochs=2, batch_size=8, seed=seed,
                      progress=False)
        return model.params

    a, b, c = run(0), run(0), run(1)
    for k in a:
        assert a[k].dtype == np.dtype(dtype)
        assert a[k].tobytes() == b[k].tobytes()
    assert a["W1"].tobytes() != c["W1"].tobytes()


def test_progress_bar_chunks_do_not_change_the_result(backend, capsys):
    X, y = make_data(300, 4, 3, seed=3)
    models = []
    for progress in (False, True):
        model = fastmlp.MLP((4, 5, 3), dtype="float64")
        fastmlp.train(model, (X, y), backend=backend, epochs=2, batch_size=7, progress=progress)
        models.append(model)
    for k in models[0].params:
        assert models[0].params[k].tobytes() == models[1].params[k].tobytes()


def test_divergence_stops_and_keeps_last_good_epoch(backend):
    X, y = make_data(64, 4, 3, seed=4)
    X *= 1e3
    model = fastmlp.MLP((4, 8, 3), dtype="float32")
    good = fastmlp.MLP((4, 8, 3), dtype="float32")
    with pytest.raises(fastmlp.DivergenceError, match="epoch 1, step") as info:
        fastmlp.train(model, (X, y), backend=backend, epochs=3, batch_size=4, lr=1e6,
                      progress=False)
    assert info.value.epoch == 0 and len(info.value.history) == 0
    for k in model.params:  # nothing trained survived: back to the initial weights
        assert np.array_equal(model.params[k], good.params[k])


def test_keyboard_interrupt_keeps_last_completed_epoch(monkeypatch):
    X, y = make_data(50, 3, 2)
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    be = fastmlp.get_backend("numpy")
    calls = {"n": 0}
    original = type(be).train_steps

    def interrupted(self, params, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            params["W1"][...] = 123.0  # half-done work that must not survive
            raise KeyboardInterrupt
        return original(self, params, *args, **kwargs)

    monkeypatch.setattr(type(be), "train_steps", interrupted)
    h = fastmlp.train(model, (X, y), backend="numpy", epochs=5, progress=False)
    assert h.interrupted and len(h) == 1
    ref = fastmlp.MLP((3, 4, 2), dtype="float64")
    monkeypatch.setattr(type(be), "train_steps", original)
    fastmlp.train(ref, (X, y), backend="numpy", epochs=5, stop_epoch=1, progress=False)
    for k in ref.params:  # exactly the first epoch of the 5-epoch schedule
        assert model.params[k].tobytes() == ref.params[k].tobytes()


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"), ({"lr": -0.1}, "lr"), ({"lr": float("inf")}, "lr"),
    ({"epochs": -1}, "epochs"), ({"backend": "cuda"}, "available backends"),
])
def test_bad_training_arguments(kwargs, match):
    X, y = make_data(10, 3, 2)
    with pytest.raises((ValueError, TypeError), match=match):
        fastmlp.train(fastmlp.MLP((3, 4, 2)), (X, y), progress=False, **kwargs)


def test_bad_data():
    model = fastmlp.MLP((3, 4, 2))
    X, y = make_data(10, 3, 2)
    with pytest.raises(ValueError, match="out of range"):
        fastmlp.train(model, (X, y + 5), progress=False)
    with pytest.raises(ValueError, match="features"):
        fastmlp.train(model, (X[:, :2], y), progress=False)
    with pytest.raises(ValueError, match="labels"):
        fastmlp.train(model, (X, y[:3]), progress=False)
    with pytest.raises(TypeError, match="data"):
        fastmlp.train(model, X, progress=False)


def test_get_backend():
    assert set(fastmlp.BACKENDS) >= {"loop", "numpy"}
    assert fastmlp.get_backend("numpy").name == "numpy"
    with pytest.raises(ValueError, match="loop"):
        fastmlp.get_backend("nope")


def test_empty_order_takes_no_step(backend):
    X, y = make_data(5, 3, 2)
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    before = model.copy_params()
    stats = fastmlp.get_backend(backend).train_steps(model.params, X, y, np.array([], np.int64), 4, 0.1)
    assert stats.n_steps == 0 and stats.loss_sum == 0 and stats.n_errors == 0
    assert all(np.array_equal(before[k], model.params[k]) for k in before)
