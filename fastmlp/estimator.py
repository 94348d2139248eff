"""``MLPClassifier``: fastmlp as a scikit-learn estimator.

Needs scikit-learn (``pip install fastmlp[sklearn]``). ``import fastmlp`` does not import
this module: ``fastmlp.MLPClassifier`` is resolved on first use.
"""

from __future__ import annotations

import numbers

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
from .backends import fastest_backend, get_backend
from .model import MLP
from .training import DivergenceError, train


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A one-hidden-layer perceptron trained by fastmlp, with the scikit-learn API.

    Input -> ``hidden`` ReLU units -> softmax over the classes, trained by minibatch SGD on
    the mean cross-entropy plus elastic-net penalties on both weight matrices, with the
    learning rate ``lr / (1 + 4 e / epochs)`` at epoch ``e``.

    Parameters
    ----------
    hidden : int, default 64
        hidden units.
    l1, l2 : float or (float, float), default 0.0
        L1 and L2 penalty coefficients; one number for both weight matrices or a pair
        ``(for W1, for W2)``. Biases are not penalized.
    batch_size : int, default 32
        minibatch size K (the last, smaller minibatch of an epoch is kept).
    lr : float, default 0.1
        learning rate at epoch 0.
    epochs : int, default 30
        epochs of ``fit``; also the length the schedule is spread over for ``partial_fit``.
    backend : str, default "numpy"
        one of ``fastmlp.BACKENDS``, or "auto" for the fastest available. Backends agree to
        rounding; the same backend with the same seed gives bit-identical weights.
    dtype : "float32" or "float64", default "float32"
        the model's dtype; ``X`` is converted to it.
    random_state : int, RandomState or None, default 0
        seeds the initialization and the shuffles. An int is used as is (so
        ``random_state=s`` gives the weights of ``fastmlp.train(MLP(..., seed=s), seed=s)``);
        None or a RandomState draw a seed, kept in ``seed_``. The default is fixed, as in
        the rest of fastmlp: the same call trains the same model.
    progress : bool, default False
        show a progress bar.

    Attributes
    ----------
    classes_ : ndarray (m,)
        the class labels (any sortable type), in the order of ``predict_proba``'s columns.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when ``X`` had string column names.
    model_ : fastmlp.MLP
        the trained network (``model_.params`` holds ``W1 (hidden, d)``, ``b1``, ``W2 (m,
        hidden)``, ``b2``); save it with ``model_.save(path)``.
    history_ : fastmlp.History
        one row per epoch trained (``history_["train_loss"]``, ...).
    loss_curve_ : list of float
        mean cross-entropy of each epoch (penalties not included), as training saw it.
    n_iter_ : int
        epochs trained so far.
    seed_ : int
        the seed used.
    backend_ : str
        the backend used (``backend`` with "auto" resolved).

    Notes
    -----
    If training diverges, :class:`fastmlp.DivergenceError` is raised and the estimator
    keeps the model of the last good epoch. On Ctrl-C, the estimator keeps the last
    completed epoch and the ``KeyboardInterrupt`` is raised again, so that it also stops
    an enclosing loop such as ``GridSearchCV``.
    """

    def __init__(self, hidden=64, *, l1=0.0, l2=0.0, batch_size=32, lr=0.1, epochs=30,
                 backend="numpy", dtype="float32", random_state=0, progress=False):
        self.hidden = hidden
        self.l1 = l1
        self.l2 = l2
        self.batch_size = batch_size
        self.lr = lr
        self.epochs = epochs
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # -- checks ---------------------------------------------------------------------------
    def _checked_params(self):
        """The hyper-parameters, validated, before any data is looked at."""
        backend = self.backend
        if isinstance(backend, str) and backend == "auto":
            backend = fastest_backend()
        return {
            "hidden": v.check_int(self.hidden, "hidden", minimum=1),
            "l1": _penalty(self.l1, "l1"),
            "l2": _penalty(self.l2, "l2"),
            "batch_size": v.check_int(self.batch_size, "batch_size", minimum=1),
            "lr": v.check_nonneg_real(self.lr, "lr"),
            "epochs": v.check_int(self.epochs, "epochs", minimum=1),
            "backend": _backend_name(backend),
            "dtype": v.check_dtype(self.dtype),
            "progress": _check_bool(self.progress, "progress"),
        }

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
    def fit(self, X, y):
        """Train a new model on ``X (n, d)`` and labels ``y (n,)`` for ``epochs`` epochs.

        Returns self.
        """
        p = self._checked_params()
        seed = self._seed()
        X, y = self._validate_X_y(X, y, p["dtype"], reset=True)
        classes, y_index = np.unique(y, return_inverse=True)
        _check_n_classes(classes, "y")
        self._start(p, seed, classes, X.shape[1])
        self._train(p, X, y_index, stop_epoch=p["epochs"])
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch of SGD on ``(X, y)``, continuing from the current model.

        ``classes`` (all the labels that will ever be seen) is required on the first call.
        Epoch ``e`` (``n_iter_`` before the call) uses the learning rate ``lr / (1 + 4 e /
        epochs)`` and the shuffle seeded by ``(seed_, e)``, so ``epochs`` calls on the whole
        data give exactly the model of ``fit``. Returns self.
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
            self._check_same_shape(p)
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
            self.model_.l1, self.model_.l2 = p["l1"], p["l2"]
            self.backend_ = p["backend"]
        self._train(p, X, np.searchsorted(self.classes_, y), stop_epoch=self.n_iter_ + 1)
        return self

    def _check_same_shape(self, p):
        fitted = {"hidden": self.model_.layers[1], "dtype": self.model_.dtype.name}
        for name, value in fitted.items():
            if p[name] != value:
                raise ValueError(f"{name}={p[name]!r} differs from the fitted model's "
                                 f"{name}={value!r}; partial_fit continues that model: "
                                 "call fit to start a new one")

    def _start(self, p, seed, classes, n_features):
        """A fresh model; its attributes are set before training, so that a divergence or
        an interruption leaves the estimator holding the last good epoch."""
        self.classes_ = classes
        self.seed_ = seed
        self.backend_ = p["backend"]
        self.model_ = MLP((n_features, p["hidden"], len(classes)), l1=p["l1"], l2=p["l2"],
                          dtype=p["dtype"], seed=seed)
        self.history_ = None
        self.n_iter_ = 0
        self.loss_curve_ = []

    def _train(self, p, X, y_index, stop_epoch):
        try:
            history = train(self.model_, (X, y_index), backend=self.backend_,
                            epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                            seed=self.seed_, progress=p["progress"], start_epoch=self.n_iter_,
                            stop_epoch=stop_epoch, history=self.history_)
        except DivergenceError as exc:
            self._record(exc.history)
            raise
        self._record(history)
        if history.interrupted:
            raise KeyboardInterrupt

    def _record(self, history):
        self.history_ = history
        self.n_iter_ = len(history)
        self.loss_curve_ = history["train_loss"]

    # -- prediction -----------------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities ``(n, m)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        with np.errstate(over="ignore", invalid="ignore"):
            X = validate_data(self, X, reset=False, dtype=self.model_.dtype)
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


def _penalty(value, name):
    """One number for both weight matrices, or a pair."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = v.check_nonneg_real(value, name)
        return (value, value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be a number >= 0 (for both weight matrices) or a pair "
                        f"(for W1, for W2), got {value!r}")
    return v.check_penalty_pair(value, name)


def _backend_name(backend):
    try:
        return get_backend(backend).name
    except ValueError as exc:
        raise ValueError(f"{exc}, or 'auto' for the fastest") from None


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_n_classes(classes, name):
    if len(classes) < 2:
        # "1 class" is the wording scikit-learn's checks look for
        raise ValueError(f"{name} holds {len(classes)} class ({classes.tolist()}); a "
                         "classifier needs at least 2 classes")


__all__ = ["MLPClassifier"]
