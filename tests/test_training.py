"""The trainer: schedules, shuffles, minibatches, history, optimizer state, early stopping,
reproducibility and failures."""

import json
import math

import numpy as np
import pytest

import fastmlp
from conftest import make_data
from fastmlp import ops, schedules


def test_schedules():
    lr, E = 0.1, 30
    seed, constant, cosine = (schedules.get_schedule(n) for n in ("seed", "constant", "cosine"))
    assert seed.rate(lr, 0, E) == 0.1 and seed.rate(lr, 15, E) == pytest.approx(0.1 / 3)
    assert constant.rate(lr, 29, E) == lr
    assert cosine.rate(lr, 0, E) == lr
    assert cosine.rate(lr, 15, E) == pytest.approx(lr / 2)
    assert cosine.rate(lr, 40, E) == cosine.rate(lr, E - 1, E) > 0       # its last value
    plateau = schedules.Plateau(patience=2, tol=0.01)
    # improves, then two epochs without an improvement larger than tol: divided by 5
    values = [1.0, 0.5, 0.495, 0.499, 0.3, 0.31, 0.305, 0.304]
    rates = [plateau.rate(lr, e, E, values) for e in range(len(values) + 1)]
    assert rates == pytest.approx([lr, lr, lr, lr, lr / 5, lr / 5, lr / 5, lr / 25, lr / 25])
    with pytest.raises(ValueError, match="'warmup' is not a schedule"):
        schedules.get_schedule("warmup")
    with pytest.raises(ValueError, match="patience"):
        schedules.Plateau(patience=0)


def test_batch_order():
    a = ops.epoch_order(50, seed=1, epoch=2)
    assert sorted(a) == list(range(50))
    assert np.array_equal(a, ops.epoch_order(50, seed=1, epoch=2))
    assert not np.array_equal(a, ops.epoch_order(50, seed=1, epoch=3))
    assert not np.array_equal(a, ops.epoch_order(50, seed=2, epoch=2))
    assert ops.n_batches(10, 3) == 4 and ops.n_batches(9, 3) == 3


def test_last_smaller_batch_is_kept(backend):
    # 10 examples, K=4: steps of 4, 4 and 2 examples
    X, y = make_data(10, 3, 2)
    model = fastmlp.MLP((3, 4, 5, 2), activation="tanh", dtype="float64")
    ref = model.copy()
    order = ops.epoch_order(10, 0, 0)
    state = fastmlp.optim.SGD().init_state(model.n_params, model.dtype)
    stats = fastmlp.get_backend(backend).train_steps(model, X, y, order, 4, 0.1, state)
    assert stats.n_steps == 3 and stats.failed_step == -1 and state.step == 3
    # the same three steps by hand with the numpy gradients
    for idx in (order[:4], order[4:8], order[8:]):
        _, g = fastmlp.gradients(ref, X[idx], y[idx], backend="numpy")
        for k in ref.params:
            ref.params[k] -= 0.1 * g[k]
    np.testing.assert_allclose(model.theta, ref.theta, rtol=1e-10)


def test_history_columns_and_eval(backend):
    X, y = fastmlp.datasets.circles(n=300, seed=0)
    split = fastmlp.datasets.split(X, y)
    model = fastmlp.MLP((2, 8, 2), dtype="float64")
    h = fastmlp.train(model, split, backend=backend, epochs=3, batch_size=16, lr=0.5,
                      progress=False, eval_train=True)
    assert len(h) == 3 and h["epoch"] == [0, 1, 2]
    assert h["lr"] == [pytest.approx(0.5 / (1 + 4 * e / 3)) for e in range(3)]
    for col in ("train_loss", "train_error", "train_eval_loss", "valid_loss", "test_error", "seconds"):
        assert all(x is not None and np.isfinite(x) for x in h[col]), col
    # the after-epoch evaluations are what evaluate() says for the final weights
    loss, err = fastmlp.evaluate(model, *split.test, backend=backend)
    assert h["test_loss"][-1] == pytest.approx(loss) and h["test_error"][-1] == pytest.approx(err)
    loss, err = fastmlp.evaluate(model, *split.train, backend=backend)
    assert h["train_eval_loss"][-1] == pytest.approx(loss)
    again = fastmlp.History.from_dict(json.loads(h.to_json()))
    assert again.rows == h.rows and again.settings == h.settings
    assert h.settings["optimizer"] == {"name": "sgd"} and h.settings["schedule"] == {"name": "seed"}


def test_plain_xy_has_no_valid_or_test():
    X, y = make_data(40, 3, 3)
    h = fastmlp.train(fastmlp.MLP((3, 5, 3)), (X, y), epochs=1, progress=False)
    assert h["valid_loss"] == [None] and h["test_error"] == [None]


@pytest.mark.parametrize("layers, activation", [((2, 20, 2), "relu"),
                                                ((2, 16, 16, 2), ("tanh", "relu"))])
def test_training_learns_circles(backend, layers, activation):
    X, y = fastmlp.datasets.circles(n=600, seed=1)
    split = fastmlp.datasets.split(X, y)
    model = fastmlp.MLP(layers, activation=activation, l1=1e-4, l2=1e-4, dtype="float64")
    epochs = 5 if backend == "loop" else 30
    h = fastmlp.train(model, split, backend=backend, epochs=epochs, batch_size=16, lr=0.5,
                      progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["test_error"][-1] < 10.0


@pytest.mark.parametrize("optimizer, lr", [("momentum", 0.05), ("nesterov", 0.05),
                                           ("adam", 0.01)])
def test_every_optimizer_learns_circles(backend, optimizer, lr):
    X, y = fastmlp.datasets.circles(n=600, seed=1)
    split = fastmlp.datasets.split(X, y)
    model = fastmlp.MLP((2, 16, 16, 2), dtype="float64", seed=2)
    h = fastmlp.train(model, split, backend=backend, epochs=4 if backend == "loop" else 20,
                      batch_size=16, lr=lr, optimizer=optimizer, schedule="constant",
                      progress=False)
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h.optimizer_state.step == len(h) * math.ceil(len(split.train[1]) / 16)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights_bit_for_bit(backend, dtype):
    X, y = make_data(70, 5, 3, seed=2)

    def run(seed):
        model = fastmlp.MLP((5, 6, 4, 3), activation=("relu", "logistic"), l1=1e-3, l2=1e-3,
                            dtype=dtype, seed=seed)
        fastmlp.train(model, (X, y), backend=backend, epochs=2, batch_size=8, seed=seed,
                      optimizer="adam", lr=1e-2, progress=False)
        return model.theta

    a, b, c = run(0), run(0), run(1)
    assert a.dtype == np.dtype(dtype)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_progress_bar_chunks_do_not_change_the_result(backend):
    X, y = make_data(300, 4, 3, seed=3)
    results = []
    for progress in (False, True):
        model = fastmlp.MLP((4, 5, 3), dtype="float64")
        h = fastmlp.train(model, (X, y), backend=backend, epochs=2, batch_size=7,
                          optimizer="adam", lr=0.01, progress=progress)
        results.append((model.theta.tobytes(), h.optimizer_state.step,
                        h.optimizer_state.buffers["exp_avg_sq"].tobytes()))
    assert results[0] == results[1]


def test_a_run_continued_from_its_history_ends_as_one_call(backend):
    """Epochs 0-1 then 2-3, the optimizer's state carried by the history, give the weights
    of epochs 0-3 in one call: the step counter runs over the whole run."""
    X, y = make_data(90, 4, 3, seed=5)
    settings = dict(backend=backend, epochs=4, batch_size=8, lr=0.01, optimizer="adam",
                    schedule="cosine", progress=False)
    whole = fastmlp.MLP((4, 6, 3), dtype="float64")
    fastmlp.train(whole, (X, y), **settings)
    parts = fastmlp.MLP((4, 6, 3), dtype="float64")
    h = fastmlp.train(parts, (X, y), stop_epoch=2, **settings)
    assert h.optimizer_state.step == 2 * 12
    h = fastmlp.train(parts, (X, y), start_epoch=2, history=h, **settings)
    assert len(h) == 4 and h.optimizer_state.step == 4 * 12
    assert parts.theta.tobytes() == whole.theta.tobytes()


def test_early_stopping_restores_the_best_epoch(backend):
    X, y = fastmlp.datasets.circles(n=400, noise=0.3, seed=3)     # noisy: valid loss turns up
    split = fastmlp.datasets.split(X, y, seed=1)
    model = fastmlp.MLP((2, 64, 64, 2), dtype="float64", seed=1)
    snapshots = {}

    def keep(epoch, history):
        snapshots[epoch] = model.theta.copy()

    h = fastmlp.train(model, split, backend=backend, epochs=200, batch_size=8, lr=0.05,
                      optimizer="adam", schedule="constant", early_stopping=True, patience=3,
                      tol=0.0, progress=False, on_epoch_end=keep)
    assert h.stopped_early
    best = h.best_epoch
    assert len(h) == best + 1 + 3
    valid = h["valid_loss"]
    assert valid[best] == min(valid) and all(v >= valid[best] for v in valid[best + 1:])
    assert model.theta.tobytes() == snapshots[best].tobytes()
    assert "* best epoch (stopped early" in h.table()
    # continuing a run that stopped early trains nothing more
    again = fastmlp.train(model, split, backend=backend, epochs=200, batch_size=8, lr=0.05,
                          optimizer="adam", schedule="constant", early_stopping=True,
                          patience=3, tol=0.0, progress=False, start_epoch=len(h), history=h)
    assert again is h and len(h) == best + 4
    assert model.theta.tobytes() == snapshots[best].tobytes()
    # restored state too: one more epoch from here continues from the best epoch's state
    assert h.optimizer_state.step == (best + 1) * math.ceil(len(split.train[1]) / 8)


def test_early_stopping_continues_only_with_the_best_epochs_weights():
    X, y = fastmlp.datasets.circles(n=200, seed=3)
    split = fastmlp.datasets.split(X, y, seed=1)
    model = fastmlp.MLP((2, 8, 2), dtype="float64")
    settings = dict(epochs=6, batch_size=8, early_stopping=True, patience=5, progress=False)
    h = fastmlp.train(model, split, stop_epoch=3, **settings)
    restored = fastmlp.History.from_dict(h.to_dict())        # no weights in a plain document
    restored.optimizer_state = h.optimizer_state
    if restored.best_epoch == 2:
        fastmlp.train(model, split, start_epoch=3, history=restored, **settings)
    else:
        with pytest.raises(ValueError, match="best_snapshot does not hold that epoch"):
            fastmlp.train(model, split, start_epoch=3, history=restored, **settings)


def test_early_stopping_on_plain_data_sets_a_stratified_part_aside():
    X, y = make_data(200, 3, 2, seed=6)
    y[:150] = 0                                        # 150 of class 0, 50 of class 1
    y[150:] = 1
    h = fastmlp.train(fastmlp.MLP((3, 5, 2)), (X, y), epochs=3, early_stopping=True,
                      validation_fraction=0.2, patience=5, progress=False, seed=4)
    assert h.validation == {"source": "validation_fraction", "fraction": 0.2, "n_valid": 40,
                            "n_train": 160, "stratified": True, "seed": 4}
    assert all(v is not None for v in h["valid_loss"])
    (Xt, yt), (Xv, yv) = fastmlp.datasets.holdout(X, y, 0.2, seed=4)
    assert (yv == 0).sum() == 30 and (yv == 1).sum() == 10
    assert len(yt) == 160 and not set(map(tuple, Xt)) & set(map(tuple, Xv))


def test_early_stopping_on_the_error_rate(backend):
    X, y = fastmlp.datasets.circles(n=300, seed=2)
    h = fastmlp.train(fastmlp.MLP((2, 8, 2), dtype="float64"), fastmlp.datasets.split(X, y),
                      backend=backend, epochs=40, batch_size=16, lr=0.5, early_stopping=True,
                      monitor="valid_error", patience=2, progress=False)
    errors = h["valid_error"]
    assert h.best_epoch == errors.index(min(errors[:h.best_epoch + 1]))
    if h.stopped_early:
        assert len(h) == h.best_epoch + 3


def test_plateau_follows_the_valid_loss():
    X, y = fastmlp.datasets.circles(n=300, noise=0.3, seed=2)
    split = fastmlp.datasets.split(X, y)
    sched = schedules.Plateau(patience=2, tol=0.0)
    h = fastmlp.train(fastmlp.MLP((2, 32, 2), dtype="float64"), split, epochs=25,
                      batch_size=8, lr=0.3, schedule=sched, progress=False)
    assert h["lr"] == [sched.rate(0.3, e, 25, h["valid_loss"]) for e in range(25)]
    assert min(h["lr"]) < 0.3                          # it did divide


def test_divergence_stops_and_restores_weights_and_state():
    from fastmlp.backends.numpy import NumpyBackend

    class PoisonsEpoch2(NumpyBackend):
        calls = 0

        def train_steps(self, model, X, y, order, batch_size, lr, state):
            stats = super().train_steps(model, X, y, order, batch_size, lr, state)
            self.calls += 1
            if self.calls == 2:
                model.params["W2"][0, 0] = np.inf
            return stats

    X, y = make_data(64, 4, 3, seed=4)
    model = fastmlp.MLP((4, 8, 3), dtype="float32")
    snapshot = {}

    def keep(epoch, history):
        snapshot["theta"] = model.theta.copy()
        snapshot["state"] = history.optimizer_state.copy()

    with pytest.raises(fastmlp.DivergenceError, match=r"the weights became non-finite by step "
                                                      r"16 of epoch 2 .* last good epoch \(1\)"
                       ) as info:
        fastmlp.train(model, (X, y), backend=PoisonsEpoch2(), epochs=3, batch_size=4, lr=0.1,
                      optimizer="momentum", progress=False, on_epoch_end=keep)
    h = info.value.history
    assert info.value.epoch == 1 and len(h) == 1
    assert model.theta.tobytes() == snapshot["theta"].tobytes()
    assert h.optimizer_state.step == snapshot["state"].step == 16
    assert h.optimizer_state.buffers["velocity"].tobytes() == \
        snapshot["state"].buffers["velocity"].tobytes()


def test_divergence_names_the_same_step_on_every_backend():
    X, y = make_data(64, 4, 3, seed=4)
    messages = set()
    for backend in fastmlp.BACKENDS:
        model = fastmlp.MLP((4, 8, 3), dtype="float32")
        with pytest.raises(fastmlp.DivergenceError) as info:
            fastmlp.train(model, (X, y), backend=backend, epochs=3, batch_size=4, lr=1e6,
                          progress=False)
        messages.add((str(info.value), info.value.step))
        assert np.array_equal(model.theta, fastmlp.MLP((4, 8, 3), dtype="float32").theta)
    assert len(messages) == 1, messages


def test_divergence_from_huge_inputs_says_so():
    X, y = make_data(64, 4, 3, seed=4)
    X *= 1e30
    with pytest.raises(fastmlp.DivergenceError, match=r"inputs reach \|x\| = .*e\+30: "
                                                      "standardize them"):
        fastmlp.train(fastmlp.MLP((4, 8, 3)), (X, y), epochs=1, progress=False)


def test_a_non_finite_validation_loss_stops_the_run_and_json_stays_strict(backend, tmp_path):
    X, y = make_data(60, 3, 2, seed=1)
    split = fastmlp.datasets.Split((X, y), (np.full((4, 3), 3e38), np.array([0, 1, 0, 1])))
    model = fastmlp.MLP((3, 4, 2), dtype="float32")
    model.params["W1"][...] = 1.0          # then W1 x overflows for those valid rows
    with pytest.raises(fastmlp.DivergenceError, match="valid split's loss became non-finite"):
        fastmlp.train(model, split, backend=backend, epochs=2, progress=False)
    h = fastmlp.History(rows=[{"epoch": 0, "lr": 0.1, "train_loss": float("nan"),
                               "train_error": 1.0, "seconds": 1.0}])
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        h.to_json(tmp_path / "h.json")


def test_keyboard_interrupt_keeps_last_completed_epoch_and_state(monkeypatch):
    X, y = make_data(50, 3, 2)
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    be = fastmlp.get_backend("numpy")
    calls = {"n": 0}
    original = type(be).train_steps

    def interrupted(self, model, X, y, order, batch_size, lr, state):
        calls["n"] += 1
        if calls["n"] == 2:
            model.params["W1"][...] = 123.0      # half-done work that must not survive
            state.step += 1000
            state.buffers["exp_avg"][...] = 7.0
            raise KeyboardInterrupt
        return original(self, model, X, y, order, batch_size, lr, state)

    monkeypatch.setattr(type(be), "train_steps", interrupted)
    h = fastmlp.train(model, (X, y), backend="numpy", epochs=5, optimizer="adam",
                      progress=False)
    assert h.interrupted and h.interrupted_by == 2 and len(h) == 1
    ref = fastmlp.MLP((3, 4, 2), dtype="float64")
    monkeypatch.setattr(type(be), "train_steps", original)
    r = fastmlp.train(ref, (X, y), backend="numpy", epochs=5, stop_epoch=1, optimizer="adam",
                      progress=False)
    # exactly the first epoch of the 5-epoch schedule, weights and optimizer state
    assert model.theta.tobytes() == ref.theta.tobytes()
    assert h.optimizer_state.step == r.optimizer_state.step == 2
    assert h.optimizer_state.buffers["exp_avg"].tobytes() == \
        r.optimizer_state.buffers["exp_avg"].tobytes()


def test_compile_time_is_measured_apart():
    if "numba" not in fastmlp.BACKENDS:
        pytest.skip("numba is not installed")
    X, y = make_data(64, 5, 2)
    h = fastmlp.train(fastmlp.MLP((5, 4, 2)), (X, y), backend="numba", epochs=1,
                      batch_size=16, progress=False)
    assert h.compile_seconds >= 0 and h["seconds"][0] < 1.0
    assert h.to_dict()["compile_seconds"] == h.compile_seconds


def test_a_batch_larger_than_the_data(backend):
    X, y = make_data(200, 3, 2)
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    ref = model.copy()
    h = fastmlp.train(model, (X, y), backend=backend, epochs=1, batch_size=20_000_000,
                      progress=False)
    fastmlp.train(ref, (X, y), backend="numpy", epochs=1, batch_size=200, progress=False)
    assert len(h) == 1 and h.optimizer_state.step == 1
    np.testing.assert_allclose(model.theta, ref.theta, rtol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"), ({"lr": -0.1}, "lr"), ({"lr": float("inf")}, "lr"),
    ({"lr": 1e39}, "lr=1e\\+39 is too large for a float32 model"),
    ({"epochs": -1}, "epochs"), ({"backend": "cuda"}, "available backends"),
    ({"optimizer": "rmsprop"}, "'rmsprop' is not an optimizer"),
    ({"optimizer": 3}, "optimizer must be a name"),
    ({"schedule": "linear"}, "'linear' is not a schedule"),
    ({"patience": 0}, "patience"), ({"tol": -1.0}, "tol"),
    ({"monitor": "test_loss"}, "monitor='test_loss' is not allowed"),
    ({"early_stopping": "yes"}, "early_stopping must be True or False"),
    ({"early_stopping": True, "validation_fraction": 1.5}, "validation_fraction must be in"),
    ({"state": fastmlp.optim.Adam().init_state(22, "float32")}, "made by Adam"),
    ({"optimizer": "momentum", "state": fastmlp.optim.Momentum().init_state(5, "float32")},
     "does not fit the model"),
])
def test_bad_training_arguments(kwargs, match):
    X, y = make_data(10, 3, 2)
    with pytest.raises((ValueError, TypeError), match=match):
        fastmlp.train(fastmlp.MLP((3, 4, 2)), (X, y), progress=False, **kwargs)


def test_early_stopping_without_validation_data_is_refused():
    X, y = make_data(30, 3, 2)
    split = fastmlp.datasets.split(X, y, fractions=(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="early_stopping=True needs validation data"):
        fastmlp.train(fastmlp.MLP((3, 4, 2)), split, early_stopping=True, progress=False)


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
    assert fastmlp.get_backend("auto").name == fastmlp.fastest_backend()
    with pytest.raises(ValueError, match="loop"):
        fastmlp.get_backend("nope")


def test_empty_order_takes_no_step(backend):
    X, y = make_data(5, 3, 2)
    model = fastmlp.MLP((3, 4, 2), dtype="float64")
    before = model.theta.copy()
    state = fastmlp.optim.Adam().init_state(model.n_params, model.dtype)
    stats = fastmlp.get_backend(backend).train_steps(model, X, y, np.array([], np.int64), 4,
                                                     0.1, state)
    assert stats.n_steps == 0 and stats.loss_sum == 0 and stats.n_errors == 0
    assert np.array_equal(before, model.theta) and state.step == 0
