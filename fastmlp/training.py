"""Training: the trainer every backend shares, its per-epoch history, and the one-call helpers.

``train`` runs epochs of minibatch steps taken by an optimizer (:mod:`fastmlp.optim`) at
the rate of a schedule (:mod:`fastmlp.schedules`), evaluates the splits after each epoch,
can stop early and restore the best weights, and never leaves the model half-trained: a
divergence or Ctrl-C restores the last completed epoch (weights and optimizer state).
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from . import _aligned
from . import _validation as v
from . import datasets, ops
from .backends import get_backend
from .datasets import Split
from .model import check_model
from .optim import get_optimizer
from .schedules import get_schedule

#: fewest examples per ``train_steps`` call when a progress bar is shown: the trainer
#: returns from the backend only as often as the bar needs (a whole epoch otherwise).
PROGRESS_CHUNK = 4096

#: what early stopping may monitor
MONITORS = ("valid_loss", "valid_error")

#: training inputs larger than this are named as the likely cause of a divergence
LARGE_INPUT = 1e4


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

    ``compile_seconds``: time spent compiling (or loading compiled) kernels before the first
    epoch, never counted in ``seconds``. With early stopping, ``best_epoch`` is the epoch
    whose weights the model holds and ``stopped_early`` says whether it stopped;
    ``validation`` describes where the validation data came from. ``optimizer_state`` is the
    optimizer's state after the last epoch (it continues a run: see :func:`train`).
    """

    rows: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    interrupted: bool = False
    #: the signal that interrupted the run (2 for Ctrl-C, 15 for SIGTERM, ...), or None
    interrupted_by: int | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    compile_seconds: float = 0.0
    validation: dict | None = None
    optimizer_state: object = field(default=None, repr=False, compare=False)
    #: the best epoch's (theta, optimizer state) while early stopping waits
    best_snapshot: object = field(default=None, repr=False, compare=False)

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
                "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
                "compile_seconds": self.compile_seconds, "validation": self.validation,
                "columns": {c: self[c] for c in COLUMNS}}

    @classmethod
    def from_dict(cls, d):
        """The inverse of :meth:`to_dict`, checked: raises ``ValueError`` naming what is
        wrong in a damaged or hand-edited document."""
        if not isinstance(d, dict) or not isinstance(d.get("columns"), dict):
            raise ValueError("a history is an object with a 'columns' object")
        cols = d["columns"]
        unknown = set(cols) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown history columns {sorted(unknown)}")
        if not isinstance(cols.get("epoch"), list):
            raise ValueError("the history has no 'epoch' column")
        n = len(cols["epoch"])
        for c, values in cols.items():
            if not isinstance(values, list) or len(values) != n:
                raise ValueError(f"history column {c!r} does not hold {n} values, one per epoch")
            for value in values:
                if value is not None and (isinstance(value, bool) or not isinstance(
                        value, (int, float)) or not math.isfinite(value)):
                    raise ValueError(f"history column {c!r} holds {value!r}, not a finite "
                                     "number")
        if cols["epoch"] != list(range(n)):
            raise ValueError("the history's epochs are not 0, 1, 2, ... in order")
        for c in ("lr", "train_loss", "train_error", "seconds"):
            if c in cols and any(value is None for value in cols[c]):
                raise ValueError(f"history column {c!r} has missing values")
        best = d.get("best_epoch")
        if best is not None and (type(best) is not int or not 0 <= best < max(n, 1)):
            raise ValueError(f"best_epoch {best!r} is not one of the history's epochs")
        validation = d.get("validation")
        if validation is not None and not isinstance(validation, dict):
            raise ValueError("'validation' must be an object or null")
        settings = d.get("settings", {})
        if not isinstance(settings, dict):
            raise ValueError("'settings' must be an object")
        rows = [{c: cols[c][i] for c in COLUMNS if c in cols and cols[c][i] is not None}
                for i in range(n)]
        return cls(rows=rows, settings=settings, interrupted=bool(d.get("interrupted", False)),
                   best_epoch=best, stopped_early=bool(d.get("stopped_early", False)),
                   compile_seconds=float(d.get("compile_seconds") or 0.0),
                   validation=validation)

    def to_json(self, path=None):
        """The history as strict JSON (no NaN or infinity can appear in it); written
        atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
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
                    mark = "*" if row["epoch"] == self.best_epoch else " "
                    cells.append(f"{val + 1:>9d}{mark}")
                elif k == "lr":
                    cells.append(f"{val:>10.4g}")
                elif k.endswith("error"):
                    cells.append(f"{val:>10.2f}")
                else:
                    cells.append(f"{val:>10.4f}")
            lines.append("  ".join(cells))
        if self.best_epoch is not None:
            lines.append(f"* best epoch ({'stopped early, ' if self.stopped_early else ''}"
                         "its weights are the model's)")
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
        # aligned: the numba kernels read its rows as whole cache lines (fastmlp._aligned)
        X = _aligned.aligned(v.check_X(X, f"{name} X", n_features=n_features, dtype=dtype))
        y = v.check_y(y, f"{name} y", n_examples=X.shape[0], n_classes=n_classes)
        checked[name] = (X, y)
    return checked


def evaluate(model, X, y, backend="auto"):
    """``(mean loss, error %)`` of ``model`` on ``(X, y)``; loss is mean cross-entropy."""
    check_model(model)
    be = get_backend(backend)
    X = v.check_X(X, "X", n_features=model.n_features, dtype=model.dtype)
    y = v.check_y(y, "y", n_examples=X.shape[0], n_classes=model.n_classes)
    with np.errstate(over="ignore", invalid="ignore"):
        loss_sum, n_errors = be.evaluate(model, X, y)
    v.check_finite_output(np.float64(loss_sum), "X")
    return loss_sum / len(y), 100.0 * n_errors / len(y)


def gradients(model, X, y, backend="auto", wrt_input=False):
    """The minibatch objective and its gradients, by the chosen backend.

    Returns ``(J, grads)``: ``J`` the mean cross-entropy over the rows of ``X`` plus the
    model's elastic-net penalties (a float); ``grads`` a dict with the keys of
    ``model.params`` (``W1, b1, ..., WL, bL``; plus ``"X"``, dJ/dX of shape ``(K, d)``, when
    ``wrt_input``), in the model's dtype.
    """
    check_model(model)
    be = get_backend(backend)
    X = v.check_X(X, "X", n_features=model.n_features, dtype=model.dtype)
    y = v.check_y(y, "y", n_examples=X.shape[0], n_classes=model.n_classes)
    with np.errstate(over="ignore", invalid="ignore"):
        J, grad, dX = be.loss_and_grads(model, X, y, wrt_input=bool(wrt_input))
    v.check_finite_output(np.float64(J), "X")
    v.check_finite_output(grad, "X")
    grads = model.layout.views(grad)
    if wrt_input:
        grads["X"] = v.check_finite_output(dX, "X")
    return J, grads


def _check_lr(lr, dtype, name="lr"):
    lr = v.check_nonneg_real(lr, name)
    with np.errstate(over="ignore"):
        representable = np.isfinite(np.asarray(lr, dtype=dtype))
    if not representable:
        raise ValueError(f"{name}={lr:g} is too large for a {np.dtype(dtype).name} model "
                         f"(largest {np.finfo(dtype).max:.3g})")
    return lr


def _monitored(row, monitor):
    """What a schedule watches in a history row: the valid loss when there is one, else
    the train loss; early stopping's ``monitor`` when it is given."""
    if monitor is not None:
        return row[monitor]
    return row["valid_loss"] if row.get("valid_loss") is not None else row["train_loss"]


def _best_so_far(values, tol):
    """``(best epoch, epochs waited since)`` under the rule "an epoch improves when its value
    is below the best so far minus tol"."""
    best, best_value, waited = None, math.inf, 0
    for epoch, value in enumerate(values):
        if value < best_value - tol:
            best, best_value, waited = epoch, value, 0
        else:
            waited += 1
    return best, waited


def train(model, data, *, backend="auto", epochs=30, batch_size=32, lr=0.1, optimizer="sgd",
          schedule="seed", early_stopping=False, patience=10, tol=1e-4, monitor="valid_loss",
          validation_fraction=0.1, seed=0, progress=True, eval_train=False, start_epoch=0,
          stop_epoch=None, history=None, state=None, on_epoch_end=None):
    """Train ``model`` in place by minibatch steps, as in the spec.

    Each epoch ``e`` shuffles the train split with a generator seeded by ``(seed, e)``, cuts
    it into minibatches of ``batch_size`` (the last, smaller one kept) and takes one step
    per minibatch with ``optimizer`` at the rate ``schedule`` gives for the epoch.

    Parameters
    ----------
    model : MLP
    data : (X, y) or Split
        ``X (n, d)``, ``y (n,)`` int labels in ``[0, m)``. With a Split, valid and test are
        evaluated after every epoch.
    backend : str
        one of ``fastmlp.BACKENDS``, or "auto" for the fastest available.
    epochs, batch_size, lr : the run's length (the schedules spread over it), K, base rate.
    optimizer : "sgd", "momentum", "nesterov", "adam" or a :mod:`fastmlp.optim` object.
    schedule : "seed" (``lr / (1 + 4e/epochs)``), "constant", "cosine", "plateau" or a
        :mod:`fastmlp.schedules` object.
    early_stopping : bool
        stop after ``patience`` epochs in a row without improvement of ``monitor``
        ("valid_loss" or "valid_error") by more than ``tol``, and restore the best epoch's
        weights (a run that stops has ``best_epoch + 1 + patience`` epochs). The validation
        data is the Split's valid part; for a plain ``(X, y)``, ``validation_fraction`` of
        it is set aside (stratified by class, seeded by ``seed``) and
        ``history.validation`` says so.
    progress : bool
        show a tqdm progress bar with the epoch's metrics.
    eval_train : bool
        also re-evaluate the whole train split after each epoch.
    start_epoch, history, state : continue a run: epochs before ``start_epoch`` are taken as
        done (``history`` holds their rows; ``state``, default ``history.optimizer_state``,
        the optimizer's state after them); the shuffles and the schedule are those of the
        full run, so a continued run ends with the same weights as an uninterrupted one.
    stop_epoch : int or None
        train epochs ``start_epoch .. stop_epoch - 1`` only (default ``epochs``). It may go
        past ``epochs``: the schedule keeps its course (this is how
        ``MLPClassifier.partial_fit`` trains one epoch at a time).
    on_epoch_end : callable(epoch, history) or None
        called after each completed epoch (used for checkpoints).

    Returns
    -------
    History
        If the loss or the weights become non-finite, :class:`DivergenceError` is raised and
        the model (and optimizer state) keep the last good epoch. On Ctrl-C
        (KeyboardInterrupt) they are restored to the last completed epoch (the last row of
        the history) and the history so far is returned with ``history.interrupted = True``.
    """
    check_model(model, writable=True)
    be = get_backend("auto" if backend is None else backend)
    epochs = v.check_int(epochs, "epochs", minimum=0)
    batch_size = v.check_int(batch_size, "batch_size", minimum=1)
    lr = _check_lr(lr, model.dtype)
    optimizer = get_optimizer(optimizer)
    schedule = get_schedule(schedule)
    early_stopping = v.check_bool(early_stopping, "early_stopping")
    patience = v.check_int(patience, "patience", minimum=1)
    tol = v.check_nonneg_real(tol, "tol")
    monitor = v.check_choice(monitor, "monitor", MONITORS)
    seed = v.check_seed(seed)
    start_epoch = v.check_int(start_epoch, "start_epoch", minimum=0)
    if stop_epoch is None:
        stop_epoch = epochs
    stop_epoch = v.check_int(stop_epoch, "stop_epoch", minimum=0)
    if start_epoch > stop_epoch:
        raise ValueError(f"start_epoch={start_epoch} is past the last epoch to train "
                         f"(stop_epoch={stop_epoch}); it must be <= stop_epoch")
    if stop_epoch > 0 and epochs == 0:
        raise ValueError("epochs must be >= 1 when stop_epoch > 0: the learning-rate schedule "
                         "is spread over epochs")
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
    if state is None and history is not None:
        state = history.optimizer_state
    if state is None:
        state = optimizer.init_state(model.n_params, model.dtype)
    elif getattr(state, "optimizer", None) != optimizer:
        raise ValueError(f"state was made by {getattr(state, 'optimizer', state)!r}, not by "
                         f"the optimizer {optimizer!r}; pass the optimizer that made it")
    elif not state.matches(model.n_params, model.dtype):
        raise ValueError("state does not fit the model: its buffers must be one writable "
                         f"{model.dtype.name} value per parameter ({model.n_params})")

    parts = as_split(data, model.n_features, model.n_classes, model.dtype)
    validation = history.validation if history is not None else None
    if early_stopping and "valid" not in parts:
        if isinstance(data, Split):
            raise ValueError("early_stopping=True needs validation data, and this Split has "
                             "no valid part: split with a valid fraction, or pass (X, y) "
                             "with validation_fraction")
        fraction = v.check_nonneg_real(validation_fraction, "validation_fraction",
                                       allow_zero=False)
        parts["train"], parts["valid"] = datasets.holdout(*parts["train"], fraction, seed)
        validation = {"source": "validation_fraction", "fraction": fraction,
                      "n_valid": len(parts["valid"][1]), "n_train": len(parts["train"][1]),
                      "stratified": True, "seed": seed}
    elif early_stopping:
        validation = {"source": "the valid part of the data", "n_valid": len(parts["valid"][1])}
    X, y = parts["train"]
    evals = [(name, Xp, yp) for name, (Xp, yp) in parts.items() if name != "train"]
    if eval_train:
        evals.insert(0, ("train_eval", X, y))
    n = X.shape[0]
    input_scale = float(np.abs(X).max())
    # Whole epochs per backend call without a bar; with one, a few calls per epoch,
    # always cut on minibatch boundaries so that the arithmetic is the same.
    chunk = n if not progress else max(1, PROGRESS_CHUNK // batch_size) * batch_size
    if history is None:
        history = History()
    history.settings = {
        "backend": be.name, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "layers": list(model.layers), "activations": list(model.activations),
        "l1": list(model.l1), "l2": list(model.l2), "dtype": model.dtype.name,
        "init": model.init, "optimizer": optimizer.to_dict(), "schedule": schedule.to_dict(),
        "early_stopping": ({"patience": patience, "tol": tol, "monitor": monitor}
                           if early_stopping else None),
        "n_train": n, "eval_train": eval_train,
    }
    history.validation = validation
    history.interrupted, history.interrupted_by = False, None
    history.optimizer_state = state
    theta = model.theta

    if early_stopping and history.rows:
        best, _ = _best_so_far([r[monitor] for r in history.rows], tol)
        history.best_epoch = best
        if history.best_snapshot is None:
            if best != len(history.rows) - 1:
                raise ValueError(
                    f"early stopping cannot continue this run: its best epoch ({best}) is not "
                    "its last and history.best_snapshot does not hold that epoch's weights "
                    "(continue from the History or the checkpoint that training left)")
            history.best_snapshot = (theta.copy(), state.copy())   # the best is the last
        if history.stopped_early:
            return history                     # that run is over: nothing more to train

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(stop_epoch - start_epoch) * n, unit="ex", unit_scale=True,
                   desc=f"fastmlp[{be.name}]", dynamic_ncols=True, leave=True)

    def announce(message):
        if bar is not None:
            bar.set_description_str(f"fastmlp[{be.name}]: {message}")
            bar.refresh()

    good, n_rows = None, 0

    def back_to_the_last_good_epoch():
        theta[...] = good[0]
        state.restore(good[1])

    try:
        # compile (or load) the kernels first, timed apart; a Ctrl-C held meanwhile stops
        # the run like any other, with the epochs done (none)
        history.compile_seconds = be.prepare(model.dtype, batch_size,
                                             with_evaluation=bool(evals),
                                             announce=announce if bar is not None else None)
        if bar is not None:
            bar.set_description_str(f"fastmlp[{be.name}]")
        for epoch in range(start_epoch, stop_epoch):
            watched = [_monitored(row, None) for row in history.rows]
            lr_e = _check_lr(schedule.rate(lr, epoch, epochs, watched), model.dtype,
                             "the scheduled learning rate")
            order = ops.epoch_order(n, seed, epoch)
            good, n_rows = (theta.copy(), state.copy()), len(history.rows)
            loss_sum, n_errors, steps_done, seconds = 0.0, 0, 0, 0.0
            for start in range(0, n, chunk):
                t0 = time.perf_counter()
                # overflow is detected below and reported as a DivergenceError
                with np.errstate(over="ignore", invalid="ignore"):
                    stats = be.train_steps(model, X, y, order[start:start + chunk],
                                           batch_size, lr_e, state)
                seconds += time.perf_counter() - t0
                loss_sum += stats.loss_sum
                n_errors += stats.n_errors
                step = steps_done + stats.n_steps
                what = None
                if stats.failed_step >= 0:
                    what = "the loss became non-finite at"
                    step = steps_done + stats.failed_step
                elif not np.isfinite(theta).all():
                    what, step = "the weights became non-finite by", step - 1
                if what is not None:
                    back_to_the_last_good_epoch()
                    advice = (f"the training inputs reach |x| = {input_scale:.3g}: "
                              "standardize them (fastmlp.datasets.split does)"
                              if input_scale > LARGE_INPUT else
                              "try a smaller learning rate")
                    raise DivergenceError(
                        f"training diverged: {what} step {step + 1} of epoch {epoch + 1} "
                        f"(lr {lr_e:g}); the model keeps the weights of the last good "
                        f"epoch ({epoch}). Hint: {advice}.", epoch, step, history)
                steps_done += stats.n_steps
                if bar is not None:
                    seen = min(start + chunk, n)
                    bar.update(min(chunk, n - start))
                    bar.set_postfix_str(
                        f"epoch {epoch + 1}/{stop_epoch} loss {loss_sum / seen:.4f} "
                        f"err {100.0 * n_errors / seen:.2f}%", refresh=False)
            row = {"epoch": epoch, "lr": lr_e, "train_loss": loss_sum / n,
                   "train_error": 100.0 * n_errors / n, "seconds": seconds}
            t0 = time.perf_counter()
            for name, Xe, ye in evals:
                with np.errstate(over="ignore", invalid="ignore"):
                    e_loss, e_err = be.evaluate(model, Xe, ye)
                if not math.isfinite(e_loss):
                    back_to_the_last_good_epoch()
                    raise DivergenceError(
                        f"the {name.replace('_eval', '')} split's loss became non-finite after "
                        f"epoch {epoch + 1}: its inputs (|x| up to "
                        f"{float(np.abs(Xe).max()):.3g}) are too large for the model's outputs "
                        f"in {model.dtype.name}; standardize them as the training data. The "
                        f"model keeps the weights of epoch {epoch}.", epoch, steps_done, history)
                row[f"{name}_loss"] = e_loss / len(ye)
                row[f"{name}_error"] = 100.0 * e_err / len(ye)
            row["eval_seconds"] = time.perf_counter() - t0
            history.rows.append(row)
            stop = False
            if early_stopping:
                best, waited = _best_so_far([r[monitor] for r in history.rows], tol)
                history.best_epoch = best
                if best == epoch:
                    history.best_snapshot = (theta.copy(), state.copy())
                if waited >= patience:
                    best_theta, best_state = history.best_snapshot
                    theta[...] = best_theta
                    state.restore(best_state)
                    history.stopped_early = stop = True
            if bar is not None:
                shown = {"train": row["train_error"]}
                for name in ("valid", "test"):
                    if f"{name}_error" in row:
                        shown[name] = row[f"{name}_error"]
                bar.set_postfix_str(
                    f"epoch {epoch + 1}/{stop_epoch} loss {row['train_loss']:.4f} err% " +
                    " ".join(f"{k} {val:.2f}" for k, val in shown.items()))
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
            if stop:
                break
    except KeyboardInterrupt as exc:
        # Ctrl-C in the steps, the evaluation, the hook or between epochs: an epoch counts
        # once its row is in the history, so that model and history agree.
        if good is not None and len(history.rows) == n_rows:
            back_to_the_last_good_epoch()
        history.interrupted = True
        history.interrupted_by = getattr(exc, "signum", signal.SIGINT)
    finally:
        if bar is not None:
            bar.close()
    return history
