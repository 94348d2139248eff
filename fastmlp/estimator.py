"""``MLPClassifier``: fastmlp as a scikit-learn estimator.

Needs scikit-learn (``pip install fastmlp[sklearn]``). ``import fastmlp`` does not import
this module: ``fastmlp.MLPClassifier`` is resolved on first use.
"""

from __future__ import annotations

import numbers
from contextlib import nullcontext

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without sklearn
    raise ImportError(
        "fastmlp.MLPClassifier needs scikit-learn >= 1.6: pip install 'fastmlp[sklearn]'"
    ) from exc

from . import _validation as v
from . import optim
from .backends import get_backend
from .datasets import Split
from .model import MLP
from .schedules import get_schedule
from .threads import check_n_threads, numba_threads
from .training import DivergenceError, train


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron trained by fastmlp, with the scikit-learn API.

    Input -> hidden layers -> softmax over the classes, trained by minibatch steps on the
    mean cross-entropy plus elastic-net penalties on every weight matrix.

    Parameters
    ----------
    hidden : int or sequence of int, default 64
        the width of each hidden layer (an int: one hidden layer; ``()``: none, softmax
        regression) -- scikit-learn's ``hidden_layer_sizes``.
    activation : str or sequence of str, default "relu"
        "relu", "tanh", "logistic" or "identity" for every hidden layer, or one per layer.
    init : "uniform" or "glorot", default "uniform"
        ``"uniform"``: weights uniform in ±1/sqrt(fan_in) (the seed's); ``"glorot"``:
        scikit-learn's.
    l1, l2 : float or sequence of float, default 0.0
        L1 and L2 penalty coefficients: one number for every weight matrix, or one per
        matrix. Biases are not penalized. scikit-learn's ``alpha`` (added to the summed loss
        as ``alpha/2 ||W||²`` and divided by the batch size) is ``l2 = alpha / (2 K)``.
    batch_size : int, default 32
        minibatch size K (the last, smaller minibatch of an epoch is kept).
    lr : float, default 0.1
        the learning rate (the schedule's base rate) -- ``learning_rate_init``.
    epochs : int, default 30
        epochs of ``fit`` -- ``max_iter``; also the length the schedule is spread over for
        ``partial_fit``.
    optimizer : "sgd", "momentum", "nesterov" or "adam", default "sgd"
        PyTorch's update rules (see :mod:`fastmlp.optim`; scikit-learn's Adam places eps
        elsewhere, and its momentum keeps the learning rate inside the velocity).
    momentum : float, default 0.9
        for "momentum" and "nesterov".
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's.
    schedule : "seed", "constant", "cosine" or "plateau", default "seed"
        the learning rate per epoch (see :mod:`fastmlp.schedules`).
    early_stopping : bool, default False
        stop when the validation loss has not improved by more than ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best epoch's weights. The validation data
        is ``fit``'s ``X_val, y_val`` when given, else ``validation_fraction`` of the
        training data, set aside stratified by class.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
    backend : str, default "auto"
        one of ``fastmlp.BACKENDS``, or "auto" for the fastest available. Backends agree to
        rounding; the same backend with the same seed gives bit-identical weights.
    n_threads : int or None, default None
        the threads one ``fit``, ``partial_fit`` or ``predict`` of the numba backend runs
        (at most numba's ``NUMBA_NUM_THREADS``; set for the calling thread only, for the
        call). None: this caller's share of the cores -- in a task of a Dask worker, one
        thread (or the worker's ``NUMBA_NUM_THREADS`` divided among its threads, when that
        is set); elsewhere numba's count for the calling thread, all the cores unless
        ``NUMBA_NUM_THREADS`` says otherwise (joblib's loky workers set it to their share).
        See :mod:`fastmlp.threads`. Results do not depend on it; the other backends ignore
        it.
    dtype : "float32" or "float64", default "float32"
        the model's dtype; ``X`` is converted to it.
    random_state : int, RandomState or None, default 0
        seeds the initialization, the shuffles and the validation split. An int is used as
        is (so ``random_state=s`` gives the weights of ``fastmlp.train(MLP(..., seed=s),
        seed=s)``); None or a RandomState draw a seed, kept in ``seed_``. The default is
        fixed, as in the rest of fastmlp: the same call trains the same model.
    progress : bool, default False
        show a progress bar.

    Attributes
    ----------
    classes_ : ndarray (m,)
        the class labels (any sortable type), in the order of ``predict_proba``'s columns.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when ``X`` had string column names.
    model_ : fastmlp.MLP
        the trained network (``model_.params`` holds ``W1, b1, ..., WL, bL``); save it with
        ``model_.save(path)``.
    history_ : fastmlp.History
        one row per epoch trained (``history_["train_loss"]``, ...); it carries the
        optimizer's state from one ``partial_fit`` to the next.
    loss_curve_ : list of float
        mean cross-entropy of each epoch (penalties not included), as training saw it.
    best_loss_ : float or None
        the smallest of ``loss_curve_`` (None with early stopping, as in scikit-learn).
    validation_scores_ : list of float or None
        the accuracy on the validation data after each epoch, when there is validation data.
    best_validation_score_ : float or None
        the validation accuracy of the epoch whose weights the model holds with early
        stopping, else the best of ``validation_scores_``.
    n_iter_ : int
        epochs trained so far.
    seed_ : int
    backend_ : str
        the backend used (``backend`` with "auto" resolved).

    Notes
    -----
    If training diverges, :class:`fastmlp.DivergenceError` is raised and the estimator
    keeps the model of the last good epoch. On Ctrl-C, the estimator keeps the last
    completed epoch and the ``KeyboardInterrupt`` is raised again, so that it also stops
    an enclosing loop such as ``GridSearchCV``.
    """

    def __init__(self, hidden=64, *, activation="relu", init="uniform", l1=0.0, l2=0.0,
                 batch_size=32, lr=0.1, epochs=30, optimizer="sgd", momentum=0.9, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, schedule="seed", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, backend="auto",
                 n_threads=None, dtype="float32", random_state=0, progress=False):
        self.hidden = hidden
        self.activation = activation
        self.init = init
        self.l1 = l1
        self.l2 = l2
        self.batch_size = batch_size
        self.lr = lr
        self.epochs = epochs
        self.optimizer = optimizer
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # -- checks ---------------------------------------------------------------------------
    def _checked_params(self):
        """The hyper-parameters, validated, before any data is looked at."""
        p = {
            "hidden": _hidden(self.hidden),
            "batch_size": v.check_int(self.batch_size, "batch_size", minimum=1),
            "lr": v.check_nonneg_real(self.lr, "lr"),
            "epochs": v.check_int(self.epochs, "epochs", minimum=1),
            "optimizer": self._optimizer(),
            "schedule": get_schedule(self.schedule),
            "early_stopping": v.check_bool(self.early_stopping, "early_stopping"),
            "validation_fraction": self.validation_fraction,
            "patience": v.check_int(self.n_iter_no_change, "n_iter_no_change", minimum=1),
            "tol": v.check_nonneg_real(self.tol, "tol"),
            "backend": _backend_name(self.backend),
            "n_threads": check_n_threads(self.n_threads),
            "dtype": v.check_dtype(self.dtype),
            "progress": v.check_bool(self.progress, "progress"),
        }
        if p["early_stopping"]:
            fraction = v.check_nonneg_real(self.validation_fraction, "validation_fraction",
                                           allow_zero=False)
            if fraction >= 1:
                raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
        # the network's own checks (activation, init, penalties) with the real depth
        MLP((1, *p["hidden"], 2), activation=self.activation, l1=self.l1, l2=self.l2,
            init=self.init)
        return p

    def _optimizer(self):
        name = self.optimizer
        if isinstance(name, optim.Optimizer):
            return name
        make = {"sgd": optim.SGD, "momentum": lambda: optim.Momentum(self.momentum),
                "nesterov": lambda: optim.Nesterov(self.momentum),
                "adam": lambda: optim.Adam(self.beta_1, self.beta_2, self.epsilon)}
        if not isinstance(name, str) or name not in make:
            return optim.get_optimizer(name)        # its error names the allowed ones
        return make[name]()

    def _seed(self):
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, (bool, np.bool_)):
            return v.check_seed(rs, "random_state")
        if rs is None or isinstance(rs, np.random.RandomState):
            return int(check_random_state(rs).randint(np.iinfo(np.int32).max))
        raise TypeError(f"random_state must be an int >= 0, a numpy RandomState or None, "
                        f"got {rs!r}")

    def _validate_X_y(self, X, y, dtype, reset):
        # a value too large for float32 is refused by validate_data, with its own message
        with np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype)
        check_classification_targets(y)
        return X, y

    # -- training -------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None):
        """Train a new model on ``X (n, d)`` and labels ``y (n,)`` for ``epochs`` epochs.

        ``X_val, y_val``: validation data of your own (for early stopping and
        ``validation_scores_``), instead of setting ``validation_fraction`` of ``X`` aside.
        Returns self.
        """
        p = self._checked_params()
        seed = self._seed()
        X, y = self._validate_X_y(X, y, p["dtype"], reset=True)
        classes, y_index = np.unique(y, return_inverse=True)
        _check_n_classes(classes, "y")
        validation = self._validation_data(X_val, y_val, classes, p["dtype"])
        self._start(p, seed, classes, X.shape[1])
        self._train(p, X, y_index, stop_epoch=p["epochs"], validation=validation)
        return self

    def _validation_data(self, X_val, y_val, classes, dtype):
        if X_val is None and y_val is None:
            return None
        if X_val is None or y_val is None:
            raise ValueError("X_val and y_val go together: give both or neither")
        with np.errstate(over="ignore", invalid="ignore"):
            X_val, y_val = validate_data(self, X_val, y_val, reset=False, dtype=dtype)
        unknown = np.setdiff1d(y_val, classes)
        if unknown.size:
            raise ValueError(f"y_val holds labels {unknown[:5].tolist()} that y does not have "
                             f"({classes.tolist()})")
        return X_val, np.searchsorted(classes, y_val)

    def partial_fit(self, X, y, classes=None):
        """One epoch on ``(X, y)``, continuing from the current model and optimizer state.

        ``classes`` (all the labels that will ever be seen) is required on the first call.
        Epoch ``e`` (``n_iter_`` before the call) uses the schedule's rate for epoch ``e`` of
        ``epochs`` and the shuffle seeded by ``(seed_, e)``, and the optimizer's step count
        runs on, so ``epochs`` calls on the whole data give exactly the model of ``fit``.
        Returns self.
        """
        p = self._checked_params()
        first = not hasattr(self, "model_")
        if first:
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit: "
                                 "all the labels that will ever be seen, e.g. np.unique(y)")
            classes = np.unique(np.asarray(classes))
            _check_n_classes(classes, "classes")
            seed = self._seed()
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={np.unique(classes).tolist()} differs from the "
                                 f"classes of the first call, {self.classes_.tolist()}; "
                                 "call fit to start over")
            self._check_same_network(p)
        X, y = self._validate_X_y(X, y, p["dtype"] if first else self.model_.dtype.name,
                                  reset=first)
        known = classes if first else self.classes_
        unknown = np.setdiff1d(y, known)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown[:5].tolist()} that are not in classes "
                             f"{known.tolist()}; classes must list, on the first call, every "
                             "label that will be seen")
        if first:
            self._start(p, seed, classes, X.shape[1])
        else:
            self.model_.l1, self.model_.l2 = self.l1, self.l2
            self.backend_ = p["backend"]
        p["early_stopping"] = False            # one epoch at a time: nothing to stop
        self._train(p, X, np.searchsorted(self.classes_, y), stop_epoch=self.n_iter_ + 1)
        return self

    def _check_same_network(self, p):
        fitted = self.model_
        for name, now, then in (("hidden", p["hidden"], fitted.layers[1:-1]),
                                ("activation", MLP((1, *p["hidden"], 2),
                                                   activation=self.activation).activations,
                                 fitted.activations),
                                ("dtype", p["dtype"], fitted.dtype.name),
                                ("optimizer", p["optimizer"],
                                 self.history_.optimizer_state.optimizer)):
            if now != then:
                raise ValueError(f"{name}={now!r} differs from the fitted model's {then!r}; "
                                 "partial_fit continues that model: call fit to start a new one")

    def _start(self, p, seed, classes, n_features):
        """A fresh model; its attributes are set before training, so that a divergence or
        an interruption leaves the estimator holding the last good epoch."""
        self.classes_ = classes
        self.seed_ = seed
        self.backend_ = p["backend"]
        self.model_ = MLP((n_features, *p["hidden"], len(classes)), activation=self.activation,
                          l1=self.l1, l2=self.l2, dtype=p["dtype"], seed=seed, init=self.init)
        self.history_ = None
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.best_loss_ = None
        self.validation_scores_ = None
        self.best_validation_score_ = None

    def _train(self, p, X, y_index, stop_epoch, validation=None):
        data = (X, y_index) if validation is None else Split((X, y_index), validation)
        try:
            with self._threads(p["n_threads"]):
                history = train(self.model_, data, backend=self.backend_, epochs=p["epochs"],
                                batch_size=p["batch_size"], lr=p["lr"], optimizer=p["optimizer"],
                                schedule=p["schedule"], early_stopping=p["early_stopping"],
                                patience=p["patience"], tol=p["tol"],
                                validation_fraction=self.validation_fraction, seed=self.seed_,
                                progress=p["progress"], start_epoch=self.n_iter_,
                                stop_epoch=stop_epoch, history=self.history_)
        except DivergenceError as exc:
            self._record(exc.history, p)
            raise
        self._record(history, p)
        if history.interrupted:
            raise KeyboardInterrupt

    def _threads(self, n_threads):
        """The numba backend's thread count for this call (see :mod:`fastmlp.threads`)."""
        if self.backend_ != "numba":
            return nullcontext()
        return numba_threads(n_threads)

    def _record(self, history, p):
        self.history_ = history
        self.n_iter_ = len(history)
        self.loss_curve_ = history["train_loss"]
        self.best_loss_ = None if p["early_stopping"] or not self.loss_curve_ else \
            min(self.loss_curve_)
        errors = history["valid_error"]
        if errors and errors[-1] is not None:
            self.validation_scores_ = [1.0 - e / 100.0 for e in errors]
            best = history.best_epoch
            self.best_validation_score_ = (self.validation_scores_[best] if best is not None
                                           else max(self.validation_scores_))

    # -- prediction -----------------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities ``(n, m)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        n_threads = check_n_threads(self.n_threads)
        with np.errstate(over="ignore", invalid="ignore"):
            X = validate_data(self, X, reset=False, dtype=self.model_.dtype)
        with self._threads(n_threads):
            return self.model_.predict_proba(X, backend=self.backend_)

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each row of ``X``, ``(n,)``, from ``classes_``."""
        # the argmax of the probabilities (not of the logits), so that predict always
        # agrees with predict_proba, even where rounding makes two probabilities tie
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.non_deterministic = False
        return tags


def _hidden(value):
    """``hidden``: an int (one hidden layer) or a sequence of widths -> a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"hidden must be an int or a sequence of ints (one width per hidden "
                        f"layer), got {value!r}")
    return tuple(v.check_int(w, f"hidden[{i}]", minimum=1) for i, w in enumerate(value))


def _backend_name(backend):
    try:
        return get_backend(backend).name
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _check_n_classes(classes, name):
    if len(classes) < 2:
        # "1 class" is the wording scikit-learn's checks look for
        raise ValueError(f"{name} holds {len(classes)} class ({classes.tolist()}); a "
                         "classifier needs at least 2 classes")


__all__ = ["MLPClassifier"]
