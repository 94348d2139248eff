"""Minibatch SGD: the trainer every backend shares, and its per-epoch history."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from . import _validation as v
from . import ops
from .backends import get_backend
from .datasets import Split

#: fewest examples per ``train_steps`` call when a progress bar is shown: the trainer
#: returns from the backend only as often as the bar needs (a whole epoch otherwise).
PROGRESS_CHUNK = 4096


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or weights. The model was restored to the last
    good epoch; ``epoch``, ``step`` say where it happened and ``history`` holds the epochs done."""

    def __init__(self, message, epoch, step, history):
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, history


#: the per-epoch columns of a History, in order
COLUMNS = ("epoch", "lr", "train_loss", "train_error",
           "train_eval_loss", "train_eval_error", "valid_loss", "valid_error",
           "test_loss", "test_error", "seconds", "eval_seconds")


@dataclass
class History:
    """What training did, one row per completed epoch.

    Losses are mean cross-entropy (the penalties are not included), errors are in percent.
    ``train_loss``/``train_error`` are running means over the epoch's minibatches, taken from
    the forward pass that training does anyway (the weights change during the epoch);
    ``train_eval_*`` re-evaluate the train split after the epoch (with ``eval_train=True``);
    ``valid_*``/``test_*`` are evaluated after the epoch when the data has them. ``seconds``
    is training time alone; ``eval_seconds`` the evaluation time. Missing values are None.
    """

    rows: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    interrupted: bool = False

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, column):
        """The column ``column`` as a list over epochs, e.g. ``history["test_error"]``."""
        if column not in COLUMNS:
            raise KeyError(f"unknown column {column!r}; columns: {', '.join(COLUMNS)}")
        return [row.get(column) for row in self.rows]

    @property
    def last(self):
        return self.rows[-1] if self.rows else {}

    def to_dict(self):
        return {"settings": self.settings, "interrupted": self.interrupted,
                "columns": {c: self[c] for c in COLUMNS}}

    @classmethod
    def from_dict(cls, d):
        cols = d["columns"]
        n = len(cols["epoch"])
        rows = [{c: cols[c][i] for c in COLUMNS if c in cols} for i in range(n)]
        return cls(rows=rows, settings=d.get("settings", {}), interrupted=d.get("interrupted", False))

    def to_json(self, path=None):
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from .io import write_text_atomic

            write_text_atomic(path, text + "\n")
        return text

    def table(self):
        """The history as a fixed-width text table."""
        head = ["epoch", "lr", "train loss", "train err%", "valid loss", "valid err%",
                "test loss", "test err%", "seconds"]
        keys = ["epoch", "lr", "train_loss", "train_error", "valid_loss", "valid_error",
                "test_loss", "test_error", "seconds"]
        lines = ["  ".join(f"{h:>10}" for h in head)]
        for row in self.rows:
            cells = []
            for k in keys:
                val = row.get(k)
                if val is None:
                    cells.append(f"{'-':>10}")
                elif k == "epoch":
                    cells.append(f"{val + 1:>10d}")
                elif k == "lr":
                    cells.append(f"{val:>10.4g}")
                elif k.endswith("error"):
                    cells.append(f"{val:>10.2f}")
                else:
                    cells.append(f"{val:>10.4f}")
            lines.append("  ".join(cells))
        return "\n".join(lines)


def as_split(data, n_features, n_classes, dtype=None):
    """``(X, y)`` or a :class:`Split` -> ``{name: (X, y)}``, validated, X in ``dtype``."""
    if isinstance(data, Split):
        parts = dict(data.parts())
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        parts = {"train": tuple(data)}
    else:
        raise TypeError("data must be (X, y) or a fastmlp.datasets.Split, "
                        f"got {type(data).__name__}")
    checked = {}
    for name, (X, y) in parts.items():
        X = v.check_X(X, f"{name} X", n_features=n_features, dtype=dtype)
        y = v.check_y(y, f"{name} y", n_examples=X.shape[0], n_classes=n_classes)
        checked[name] = (X, y)
    return checked


def evaluate(model, X, y, backend="numpy"):
    """``(mean loss, error %)`` of ``model`` on ``(X, y)``; loss is mean cross-entropy."""
    v.check_model(model)
    be = get_backend(backend)
    X = v.check_X(X, "X", n_features=model.n_features, dtype=model.dtype)
    y = v.check_y(y, "y", n_examples=X.shape[0], n_classes=model.n_classes)
    with np.errstate(over="ignore", invalid="ignore"):
        loss_sum, n_errors = be.evaluate(model.params, X, y)
    v.check_finite_output(np.float64(loss_sum), "X")
    return loss_sum / len(y), 100.0 * n_errors / len(y)


def train(model, data, *, backend="numpy", epochs=30, batch_size=32, lr=0.1, seed=0,
          progress=True, eval_train=False, start_epoch=0, stop_epoch=None, history=None,
          on_epoch_end=None):
    """Train ``model`` in place by minibatch SGD, as in the spec.

    Each epoch ``e`` shuffles the train split with a generator seeded by ``(seed, e)``, cuts
    it into minibatches of ``batch_size`` (the last, smaller one kept) and takes one step
    per minibatch with learning rate ``lr / (1 + 4 e / epochs)``.

    Parameters
    ----------
    model : MLP
    data : (X, y) or Split
        ``X (n, d)``, ``y (n,)`` int labels in ``[0, m)``. With a Split, valid and test are
        evaluated after every epoch.
    backend : str
        one of ``fastmlp.BACKENDS``.
    progress : bool
        show a tqdm progress bar with the epoch's metrics.
    eval_train : bool
        also re-evaluate the whole train split after each epoch.
    start_epoch, history : resume a run: epochs before ``start_epoch`` are taken as done
        (``history``, if given, holds their rows); the schedule and the shuffles are those
        of the full run, so a resumed run ends with the same weights as an uninterrupted one.
    stop_epoch : int or None
        train epochs ``start_epoch .. stop_epoch - 1`` only (default ``epochs``). It may go
        past ``epochs``: the schedule ``lr / (1 + 4e/epochs)`` keeps decaying (this is how
        ``MLPClassifier.partial_fit`` trains one epoch at a time).
    on_epoch_end : callable(epoch, history) or None
        called after each completed epoch (used for checkpoints).

    Returns
    -------
    History
        If the loss or the weights become non-finite, :class:`DivergenceError` is raised and
        the model keeps the weights of the last good epoch. On Ctrl-C (KeyboardInterrupt) the
        model is restored to the last completed epoch (the last row of the history) and the
        history so far is returned with ``history.interrupted = True``.
    """
    v.check_model(model)
    be = get_backend(backend)
    epochs = v.check_int(epochs, "epochs", minimum=0)
    batch_size = v.check_int(batch_size, "batch_size", minimum=1)
    lr = v.check_nonneg_real(lr, "lr")
    seed = v.check_seed(seed)
    start_epoch = v.check_int(start_epoch, "start_epoch", minimum=0)
    if stop_epoch is None:
        stop_epoch = epochs
    stop_epoch = v.check_int(stop_epoch, "stop_epoch", minimum=0)
    if start_epoch > stop_epoch:
        raise ValueError(f"start_epoch={start_epoch} is past the last epoch to train "
                         f"(stop_epoch={stop_epoch}); it must be <= stop_epoch")
    if stop_epoch > epochs and epochs == 0:
        raise ValueError("epochs must be >= 1 when stop_epoch > 0: the learning-rate schedule "
                         "lr / (1 + 4e/epochs) is spread over epochs")
    if history is not None:
        if not isinstance(history, History):
            raise TypeError(f"history must be a fastmlp.History or None, "
                            f"got {type(history).__name__}")
        if len(history) != start_epoch:
            raise ValueError(f"history holds {len(history)} epoch(s) but start_epoch is "
                             f"{start_epoch}; it must hold the epochs before start_epoch")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"on_epoch_end must be a callable (epoch, history) or None, "
                        f"got {on_epoch_end!r}")
    parts = as_split(data, model.n_features, model.n_classes, model.dtype)
    X, y = parts["train"]
    X = np.ascontiguousarray(X, dtype=model.dtype)
    evals = [(name, np.ascontiguousarray(Xp, dtype=model.dtype), yp)
             for name, (Xp, yp) in parts.items() if name != "train"]
    if eval_train:
        evals.insert(0, ("train_eval", X, y))
    n = X.shape[0]
    steps_per_epoch = ops.n_batches(n, batch_size)
    # Whole epochs per backend call without a bar; with one, a few calls per epoch,
    # always cut on minibatch boundaries so that the arithmetic is the same.
    chunk = n if not progress else max(1, PROGRESS_CHUNK // batch_size) * batch_size
    if history is None:
        history = History()
    history.settings = {
        "backend": be.name, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "layers": list(model.layers), "l1": list(model.l1), "l2": list(model.l2),
        "dtype": model.dtype.name, "n_train": n, "eval_train": eval_train,
    }
    history.interrupted = False
    l1, l2, params = model.l1, model.l2, model.params

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(stop_epoch - start_epoch) * n, unit="ex", unit_scale=True,
                   desc=f"fastmlp[{be.name}]", dynamic_ncols=True, leave=True)
    good, n_rows = None, 0
    try:
        for epoch in range(start_epoch, stop_epoch):
            lr_e = ops.learning_rate(lr, epoch, epochs)
            order = ops.epoch_order(n, seed, epoch)
            good, n_rows = model.copy_params(), len(history.rows)
            loss_sum, n_errors, steps_done, seconds = 0.0, 0, 0, 0.0
            try:
                for start in range(0, n, chunk):
                    t0 = time.perf_counter()
                    # overflow is detected below and reported as a DivergenceError
                    with np.errstate(over="ignore", invalid="ignore"):
                        stats = be.train_steps(params, X, y, order[start:start + chunk],
                                               batch_size, lr_e, l1, l2)
                    seconds += time.perf_counter() - t0
                    loss_sum += stats.loss_sum
                    n_errors += stats.n_errors
                    bad = stats.failed_step
                    if bad < 0 and not all(np.isfinite(p).all() for p in params.values()):
                        bad = stats.n_steps - 1
                    if bad >= 0:
                        step = steps_done + bad
                        model.set_params_from(good)
                        raise DivergenceError(
                            f"training diverged at epoch {epoch + 1}, step {step + 1} of "
                            f"{steps_per_epoch}: the loss or the weights became non-finite "
                            f"(lr={lr_e:.4g}); the model keeps the weights of the last good "
                            "epoch. Try a smaller learning rate.", epoch, step, history)
                    steps_done += stats.n_steps
                    if bar is not None:
                        seen = min(start + chunk, n)
                        bar.update(min(chunk, n - start))
                        bar.set_postfix_str(
                            f"epoch {epoch + 1}/{epochs} loss {loss_sum / seen:.4f} "
                            f"err {100.0 * n_errors / seen:.2f}%", refresh=False)
            except KeyboardInterrupt:
                model.set_params_from(good)
                history.interrupted = True
                return history
            row = {"epoch": epoch, "lr": lr_e, "train_loss": loss_sum / n,
                   "train_error": 100.0 * n_errors / n, "seconds": seconds}
            t0 = time.perf_counter()
            for name, Xe, ye in evals:
                with np.errstate(over="ignore", invalid="ignore"):
                    e_loss, e_err = be.evaluate(params, Xe, ye)
                row[f"{name}_loss"] = e_loss / len(ye)
                row[f"{name}_error"] = 100.0 * e_err / len(ye)
            row["eval_seconds"] = time.perf_counter() - t0
            history.rows.append(row)
            if bar is not None:
                shown = {"train": row["train_error"]}
                for name in ("valid", "test"):
                    if f"{name}_error" in row:
                        shown[name] = row[f"{name}_error"]
                bar.set_postfix_str(
                    f"epoch {epoch + 1}/{epochs} loss {row['train_loss']:.4f} err% " +
                    " ".join(f"{k} {val:.2f}" for k, val in shown.items()))
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
    except KeyboardInterrupt:
        # Ctrl-C outside the steps (in the evaluation, the hook, between epochs): an epoch
        # counts once its row is in the history, so that model and history agree.
        if good is not None and len(history.rows) == n_rows:
            model.set_params_from(good)
        history.interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return history


def gradients(model, X, y, backend="numpy", wrt_input=False):
    """The minibatch objective and its gradients, by the chosen backend.

    Returns ``(J, grads)``: ``J`` the mean cross-entropy over the rows of ``X`` plus the
    model's elastic-net penalties (a float); ``grads`` a dict with the keys of
    ``model.params`` (plus ``"X"``, dJ/dX of shape ``(K, d)``, when ``wrt_input``).
    """
    v.check_model(model)
    be = get_backend(backend)
    X = v.check_X(X, "X", n_features=model.n_features, dtype=model.dtype)
    y = v.check_y(y, "y", n_examples=X.shape[0], n_classes=model.n_classes)
    with np.errstate(over="ignore", invalid="ignore"):
        J, grads = be.loss_and_grads(model.params, X, y, model.l1, model.l2,
                                     wrt_input=bool(wrt_input))
    v.check_finite_output(np.float64(J), "X")
    for g in grads.values():
        v.check_finite_output(g, "X")
    return J, grads

