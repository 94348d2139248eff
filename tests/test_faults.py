"""Nothing a user trained is lost: divergence, Ctrl-C at any point of an epoch, and resuming
from a checkpoint, for every backend (faults are injected by a backend that wraps the real one)."""

import numpy as np
import pytest

import fastmlp
from conftest import make_data


class Faulty(fastmlp.Backend):
    """The real backend ``name``, with one fault injected at the ``at``-th call of ``where``."""

    def __init__(self, name, where, at, fault):
        self.inner = fastmlp.get_backend(name)
        self.name = self.inner.name
        self.where, self.at, self.fault, self.calls = where, at, fault, 0

    def _maybe(self, where, model, when):
        if where == self.where and self.calls == self.at:
            self.fault(model.params, when)

    def logits(self, model, X):
        return self.inner.logits(model, X)

    def loss_and_grads(self, model, X, y, wrt_input=False):
        return self.inner.loss_and_grads(model, X, y, wrt_input)

    def prepare(self, *args, **kwargs):
        return self.inner.prepare(*args, **kwargs)

    def train_steps(self, model, *args, **kwargs):
        self.calls += self.where == "train_steps"
        self._maybe("train_steps", model, "before")
        stats = self.inner.train_steps(model, *args, **kwargs)
        self._maybe("train_steps", model, "after")
        return stats

    def evaluate(self, model, X, y):
        self.calls += self.where == "evaluate"
        self._maybe("evaluate", model, "before")
        return self.inner.evaluate(model, X, y)


def run(backend, epochs=5, on_epoch_end=None, **kwargs):
    """Train on a small split, keeping a copy of the weights after every completed epoch."""
    X, y = make_data(90, 4, 3, seed=5)
    split = fastmlp.datasets.split(X, y)
    model = fastmlp.MLP((4, 6, 5, 3), activation=("relu", "tanh"), l2=1e-3, dtype="float64")
    snapshots = [(model.theta.copy(), 0)]

    def keep(epoch, history):
        snapshots.append((model.theta.copy(), history.optimizer_state.step))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)

    try:
        history = fastmlp.train(model, split, backend=backend, epochs=epochs, batch_size=8,
                                lr=0.3, progress=False, on_epoch_end=keep, **kwargs)
    except fastmlp.DivergenceError as exc:
        return model, exc, snapshots
    return model, history, snapshots


def same(model, snapshot):
    return model.theta.tobytes() == snapshot[0].tobytes()


def poison_weights(params, when):
    if when == "after":
        params["W2"][0, 0] = np.inf


def poison_loss(params, when):
    if when == "before":  # the backend itself must see the non-finite loss and stop
        params["W1"][...] = np.nan  # through the ReLU too: no backend may hide a NaN


@pytest.mark.parametrize("fault, step", [(poison_weights, "last"), (poison_loss, 0)],
                         ids=["weights become inf", "loss becomes NaN"])
def test_divergence_in_a_later_epoch_keeps_the_last_good_epoch(backend, fault, step):
    faulty = Faulty(backend, "train_steps", at=3, fault=fault)
    model, exc, snapshots = run(faulty)
    assert isinstance(exc, fastmlp.DivergenceError)
    n_train = len(fastmlp.datasets.split(*make_data(90, 4, 3, seed=5)).train[1])
    steps = fastmlp.ops.n_batches(n_train, 8)
    expected_step = steps - 1 if step == "last" else step
    assert (exc.epoch, exc.step) == (2, expected_step)
    what = "the weights became non-finite by" if step == "last" else \
        "the loss became non-finite at"
    assert f"{what} step {expected_step + 1} of epoch 3" in str(exc)
    assert len(exc.history) == 2 and not exc.history.interrupted
    assert same(model, snapshots[2])  # the weights after the 2nd epoch, bit for bit
    assert exc.history.optimizer_state.step == snapshots[2][1] == 2 * steps


def interrupt(params, when):
    if when == "before":
        params["W1"][...] = 123.0  # work cut short, which must not survive
        raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["train_steps", "evaluate", "on_epoch_end"])
def test_ctrl_c_anywhere_keeps_model_and_history_in_step(backend, where):
    if where == "on_epoch_end":
        def hook(epoch, history):
            if epoch == 2:
                raise KeyboardInterrupt
        model, history, snapshots = run(backend, on_epoch_end=hook)
        done = 3  # the row was written: the epoch counts
    else:
        # evaluate runs twice per epoch here (valid, test): its 5th call is in the 3rd epoch
        faulty = Faulty(backend, where, at=3 if where == "train_steps" else 5, fault=interrupt)
        model, history, snapshots = run(faulty)
        done = 2
    assert isinstance(history, fastmlp.History) and history.interrupted
    assert len(history) == done and history["epoch"] == list(range(done))
    assert same(model, snapshots[done])
    assert history.optimizer_state.step == snapshots[done][1]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_from_a_checkpoint_ends_with_the_same_weights(backend, tmp_path, optimizer):
    from fastmlp.checkpoint import load_checkpoint, save_checkpoint

    X, y = make_data(90, 4, 3, seed=6)
    path = tmp_path / "checkpoint.npz"

    def new_model():
        return fastmlp.MLP((4, 6, 5, 3), activation="tanh", l1=(1e-4, 0.0, 1e-4),
                           dtype="float32", seed=3)

    settings = dict(backend=backend, epochs=6, batch_size=7, lr=0.4 if optimizer == "sgd"
                    else 0.01, optimizer=optimizer, seed=3, progress=False)
    full = new_model()
    full_history = fastmlp.train(full, (X, y), **settings)

    first = new_model()

    def checkpoint_then_die(epoch, history):
        save_checkpoint(path, first, history)
        if epoch == 3:
            raise KeyboardInterrupt

    fastmlp.train(first, (X, y), on_epoch_end=checkpoint_then_die, **settings)
    model, history, _ = load_checkpoint(path)
    assert len(history) == 4 and history.optimizer_state.step == 4 * 13     # ceil(90 / 7)
    fastmlp.train(model, (X, y), start_epoch=len(history), history=history, **settings)
    assert model.theta.tobytes() == full.theta.tobytes()
    assert history["train_loss"] == full_history["train_loss"]
    assert history.optimizer_state.buffers.keys() == full_history.optimizer_state.buffers.keys()
    for name, buf in history.optimizer_state.buffers.items():
        assert buf.tobytes() == full_history.optimizer_state.buffers[name].tobytes()
