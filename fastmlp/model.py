"""The model: a multilayer perceptron of any depth, its parameters and its predictions."""

from __future__ import annotations

import numpy as np

from . import _aligned
from . import _validation as v
from .activations import CODES
from .layout import Layout
from .model_file import ModelFileError, read_model_file, write_model_file

#: weight initializations (biases always start at zero)
INITS = ("uniform", "glorot")


class Parameters(dict):
    """The parameters by name, ``W1, b1, ..., WL, bL``: live views into the model's buffer.

    Writing into an array changes the model (``params["W1"][0, 0] = 1.0``). Assigning a key
    copies the new values into the live array, whose shape and dtype they must have; keys
    can be neither added nor removed.
    """

    def __setitem__(self, key, value):
        if key not in self:
            raise KeyError(f"{key!r} is not a parameter of this model; its parameters are "
                           f"{', '.join(self)}")
        target = dict.__getitem__(self, key)
        value = v.check_param_array(value, f"params[{key!r}]", target.shape, target.dtype)
        target[...] = value

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        return self[key]

    def _refuse(self, *args, **kwargs):
        raise TypeError("a model's parameters cannot be removed: its layers fix them")

    __delitem__ = pop = popitem = clear = _refuse

    def __ior__(self, other):
        self.update(other)
        return self


class MLP:
    """A multilayer perceptron for classification: input -> hidden layers -> softmax.

    Parameters
    ----------
    layers : (d, h_1, ..., h_{L-1}, m)
        input features, the width of each hidden layer (none: softmax regression), classes.
    activation : str or sequence of str
        ``"relu"``, ``"tanh"``, ``"logistic"`` or ``"identity"`` for every hidden layer, or
        one name per hidden layer.
    l1, l2 : float or sequence of float
        elastic-net coefficients: one number for every weight matrix, or one per weight
        matrix ``W1..WL``. The objective adds ``l1_l |W_l|_1 + l2_l ||W_l||^2``; biases are
        never penalized.
    dtype : "float32" or "float64"
    seed : int
        seeds the initialization. The draw is made in float64 and rounded, so float32 and
        float64 models with the same seed start from the same weights (up to rounding).
    init : "uniform" or "glorot"
        ``"uniform"``: weights uniform in ``±1/sqrt(fan_in)`` (the seed's); ``"glorot"``:
        scikit-learn's, uniform in ``±sqrt(6/(fan_in + fan_out))``, with 2 instead of 6 for
        a logistic layer (and for the output layer when the last hidden layer is logistic,
        which is scikit-learn's rule when every layer is logistic). Biases start at zero.

    Attributes
    ----------
    params : dict of the live arrays ``W1 (h_1, d)``, ``b1 (h_1,)``, ..., ``WL (m, h_{L-1})``,
        ``bL (m,)``: views into ``theta``; writing into them changes the model.
    theta : the flat buffer holding every parameter (see :mod:`fastmlp.layout`).
    """

    def __init__(self, layers, activation="relu", l1=0.0, l2=0.0, dtype="float32", seed=0,
                 init="uniform"):
        self._layers = v.check_layers(layers)
        self._activations = v.check_activations(activation, len(self._layers) - 2)
        self._layout = Layout(self._layers)
        self.l1 = l1
        self.l2 = l2
        self._dtype = np.dtype(v.check_dtype(dtype))
        self._seed = v.check_seed(seed)
        self._init = v.check_choice(init, "init", INITS)
        self._theta = self._initial_theta()
        self._views = self._layout.views(self._theta)
        self._params = Parameters(self._views)

    def _initial_theta(self):
        rng = np.random.default_rng(self._seed)
        theta = _aligned.zeros(self._layout.n_params, self._dtype)
        n_hidden = self.n_hidden
        for l, (W, _) in enumerate(self._layout.pairs(theta), start=1):
            fan_out, fan_in = W.shape
            if self._init == "uniform":
                bound = 1.0 / np.sqrt(fan_in)
            else:
                # this layer's activation, or for the output layer the last hidden one's
                feeds = self._activations[min(l, n_hidden) - 1] if n_hidden else None
                factor = 2.0 if feeds == "logistic" else 6.0
                bound = np.sqrt(factor / (fan_in + fan_out))
            W[...] = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        return theta

    # -- what the model is --------------------------------------------------------------
    @property
    def layers(self):
        return self._layers

    @property
    def activations(self):
        """One activation name per hidden layer."""
        return self._activations

    @property
    def activation(self):
        """The activation as given: one name when every hidden layer shares it, else the tuple."""
        acts = self._activations
        return acts[0] if acts and len(set(acts)) == 1 else acts

    @property
    def activation_codes(self):
        """The hidden layers' activations as the integer codes the numba kernels take."""
        return np.array([CODES[a] for a in self._activations], dtype=np.int64)

    @property
    def l1(self):
        return self._l1

    @l1.setter
    def l1(self, value):
        self._l1 = v.check_penalties(value, "l1", self.n_layers)

    @property
    def l2(self):
        return self._l2

    @l2.setter
    def l2(self, value):
        self._l2 = v.check_penalties(value, "l2", self.n_layers)

    @property
    def dtype(self):
        return self._dtype

    @property
    def seed(self):
        return self._seed

    @property
    def init(self):
        return self._init

    @property
    def layout(self):
        return self._layout

    @property
    def n_features(self):
        return self._layers[0]

    @property
    def n_classes(self):
        return self._layers[-1]

    @property
    def n_layers(self):
        """L, the number of weight matrices (hidden layers + 1)."""
        return len(self._layers) - 1

    @property
    def n_hidden(self):
        return len(self._layers) - 2

    @property
    def n_params(self):
        """``Σ_l layers[l] (layers[l-1] + 1)``."""
        return self._layout.n_params

    # -- parameters ---------------------------------------------------------------------
    @property
    def theta(self):
        """Every parameter in one flat buffer, ``W1, b1, ..., WL, bL`` (row-major)."""
        return self._theta

    @property
    def params(self):
        return self._params

    @params.setter
    def params(self, values):
        if not hasattr(values, "keys") or set(values.keys()) != set(self._layout.keys):
            got = sorted(values.keys()) if hasattr(values, "keys") else type(values).__name__
            raise ValueError(f"params must be a dict with exactly the keys "
                             f"{', '.join(self._layout.keys)}; got {got}")
        for key in self._layout.keys:        # all checked before any is written
            v.check_param_array(values[key], f"params[{key!r}]", self._layout.shapes[key],
                                self._dtype)
        self._params.update(values)

    def weights(self):
        """``[(W1, b1), ..., (WL, bL)]``, the live arrays in layer order."""
        return [(self._views[f"W{l}"], self._views[f"b{l}"]) for l in range(1, self.n_layers + 1)]

    def check(self, writable=False):
        """Refuse a model whose parameters were damaged since it was made: every entry point
        calls this before any kernel sees the arrays. Raises ``ValueError`` naming the key."""
        theta = self._theta
        if dict.keys(self._params) != self._views.keys() or any(
                dict.__getitem__(self._params, k) is not p for k, p in self._views.items()):
            raise ValueError("model.params was altered with dict methods and no longer holds "
                             "the model's arrays; assign with model.params[key] = values")
        if not theta.flags.c_contiguous or theta.dtype != self._dtype:  # pragma: no cover
            raise ValueError("the model's parameter buffer was replaced")
        if writable and not theta.flags.writeable:
            raise ValueError("the model's parameters are read-only (model.theta.flags."
                             "writeable is False); training writes them: make them writable "
                             "with model.theta.setflags(write=True), or train model.copy()")
        if not np.isfinite(theta).all():
            for key in self._layout.keys:
                bad = np.argwhere(~np.isfinite(self._views[key]))
                if len(bad):
                    raise ValueError(
                        f"model.params[{key!r}] holds NaN or infinite values (first at index "
                        f"{tuple(int(i) for i in bad[0])}); a model's parameters must be finite")
        return self

    def copy(self):
        """A new model with the same settings and a copy of the parameters."""
        return self.astype(self._dtype)

    def astype(self, dtype):
        """A new model with the same settings and the parameters converted to ``dtype``."""
        other = MLP(self._layers, self._activations, self._l1, self._l2, dtype, self._seed,
                    self._init)
        other.theta[...] = self._theta
        return other

    def __getstate__(self):
        # the views into theta are rebuilt on unpickling (a pickled view would be a copy)
        return {"description": self.describe(), "theta": self._theta}

    def __setstate__(self, state):
        d = state["description"]
        self.__init__(d["layers"], d["activations"], d["l1"], d["l2"], d["dtype"], d["seed"],
                      d["init"])
        self._theta[...] = state["theta"]

    def __repr__(self):
        act = self.activation
        return (f"MLP(layers={self._layers}, activation={act!r}, l1={self._l1}, "
                f"l2={self._l2}, dtype={self._dtype.name!r}, seed={self._seed}, "
                f"init={self._init!r})")

    # -- prediction ---------------------------------------------------------------------
    def predict_proba(self, X, backend="auto"):
        """Class probabilities, ``(n, m)`` in the model's dtype, for the rows of ``X (n, d)``.

        Raises ``ValueError`` if ``X`` is malformed, or so large that the outputs overflow.
        """
        from .backends import get_backend

        be = get_backend(backend)
        self.check()
        X = v.check_X(X, "X", n_features=self.n_features, dtype=self._dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            proba = be.predict_proba(self, X)
        return v.check_finite_output(proba, "X")

    def predict(self, X, backend="auto"):
        """Predicted class labels, ``(n,)`` int64: the argmax of the logits."""
        from .backends import get_backend
        from .backends.base import EVAL_CHUNK

        be = get_backend(backend)
        self.check()
        X = v.check_X(X, "X", n_features=self.n_features, dtype=self._dtype)
        out = np.empty(X.shape[0], dtype=np.int64)
        for start in range(0, X.shape[0], EVAL_CHUNK):
            with np.errstate(over="ignore", invalid="ignore"):
                logits = be.logits(self, X[start:start + EVAL_CHUNK])
            # argmax of NaN logits is an arbitrary label: refuse rather than return it
            v.check_finite_output(logits, "X")
            out[start:start + EVAL_CHUNK] = logits.argmax(axis=1)
        return out

    # -- model files --------------------------------------------------------------------
    def describe(self):
        """What a model file stores about the model besides its arrays."""
        return {"layers": list(self._layers), "activations": list(self._activations),
                "l1": list(self._l1), "l2": list(self._l2), "dtype": self._dtype.name,
                "seed": self._seed, "init": self._init}

    def save(self, path, extra=None, extra_arrays=None):
        """Write the model to ``path`` as a ``.npz`` (no pickle), atomically.

        The file is written to a temporary name in the same folder, flushed, then renamed,
        so that an interruption never leaves a half-written model. ``extra`` is an optional
        dict of JSON values stored beside the model, ``extra_arrays`` a dict of arrays (the
        trainer's state, in checkpoints).
        """
        self.check()
        write_model_file(path, self.describe(), self.params, extra=extra,
                         extra_arrays=extra_arrays)

    @classmethod
    def load(cls, path, *, return_extra=False):
        """Read a model written by :meth:`save` (any format version), validating everything
        before use.

        Raises :class:`ModelFileError` (a ``ValueError``) for a truncated, foreign, corrupt
        or pickle-holding file; nothing in the file is executed. With ``return_extra``,
        returns ``(model, extra, extra_arrays)``.
        """
        arrays, meta, extra_arrays = read_model_file(path)
        model = cls(meta["layers"], meta["activations"], meta["l1"], meta["l2"],
                    meta["dtype"], meta["seed"], meta["init"])
        model.params.update(arrays)
        if return_extra:
            return model, meta.get("extra"), extra_arrays
        return model


def check_model(model, name="model", writable=False):
    """``model`` must be a :class:`MLP` with intact, finite parameters."""
    if not isinstance(model, MLP):
        raise TypeError(f"{name} must be a fastmlp.MLP, got {type(model).__name__}")
    return model.check(writable=writable)


__all__ = ["MLP", "Parameters", "ModelFileError", "INITS", "check_model"]
