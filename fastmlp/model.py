"""The model: a one-hidden-layer perceptron, its parameters, prediction and model files."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from . import _validation as v
from .io import write_npz_atomic

#: written in every model file; bumped when the layout changes
FORMAT = "fastmlp-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is truncated, foreign, corrupt or from an unknown version."""


class MLP:
    """Input -> ReLU hidden layer -> softmax, with elastic-net penalties on the weights.

    Parameters
    ----------
    layers : (d, d_h, m)
        input features, hidden units, classes.
    l1, l2 : (float, float)
        L1 and L2 penalty coefficients for (W1, W2); default no penalty.
    dtype : "float32" or "float64"
    seed : int
        seeds the initialization: weights uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``,
        biases zero. The draw is made in float64 and rounded, so float32 and float64 models
        with the same seed start from the same weights (up to rounding).

    Attributes
    ----------
    params : dict of the live arrays ``W1 (d_h, d)``, ``b1 (d_h,)``, ``W2 (m, d_h)``,
        ``b2 (m,)``; writing into them changes the model.
    """

    def __init__(self, layers, l1=(0.0, 0.0), l2=(0.0, 0.0), dtype="float32", seed=0):
        self.layers = v.check_layers(layers)
        self.l1 = v.check_penalty_pair(l1, "l1")
        self.l2 = v.check_penalty_pair(l2, "l2")
        self.dtype = np.dtype(v.check_dtype(dtype))
        self.seed = v.check_seed(seed)
        self.params = self._init_params()

    def _init_params(self):
        rng = np.random.default_rng(self.seed)
        params = {}
        # Written over consecutive layer pairs so that deeper networks only add keys.
        for i, (fan_in, fan_out) in enumerate(zip(self.layers[:-1], self.layers[1:]), start=1):
            bound = 1.0 / np.sqrt(fan_in)
            params[f"W{i}"] = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(self.dtype)
            params[f"b{i}"] = np.zeros(fan_out, dtype=self.dtype)
        return params

    # -- shapes -------------------------------------------------------------------------
    @property
    def n_features(self):
        return self.layers[0]

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def n_params(self):
        """``d_h (d + 1) + m (d_h + 1)``."""
        return sum(p.size for p in self.params.values())

    def __repr__(self):
        return (
            f"MLP(layers={self.layers}, l1={self.l1}, l2={self.l2}, "
            f"dtype={self.dtype.name!r}, seed={self.seed})"
        )

    def copy_params(self):
        """A deep copy of ``params`` (used to keep the last good epoch)."""
        return {k: p.copy() for k, p in self.params.items()}

    def set_params_from(self, params):
        """Copy ``params`` into the live arrays (their identity is kept)."""
        for k, p in params.items():
            self.params[k][...] = p

    # -- prediction -----------------------------------------------------------------------
    def _check_X(self, X):
        return v.check_X(X, "X", n_features=self.n_features, dtype=self.dtype)

    def predict_proba(self, X, backend="numpy"):
        """Class probabilities, ``(n, m)`` in the model's dtype, for the rows of ``X (n, d)``.

        Raises ``ValueError`` if ``X`` is malformed, or so large that the outputs overflow.
        """
        from .backends import get_backend

        be = get_backend(backend)
        X = self._check_X(X)
        with np.errstate(over="ignore", invalid="ignore"):
            proba = be.predict_proba(self.params, X)
        return v.check_finite_output(proba, "X")

    def predict(self, X, backend="numpy"):
        """Predicted class labels, ``(n,)`` int64: the argmax of the logits."""
        from .backends import get_backend
        from .backends.base import EVAL_CHUNK

        be = get_backend(backend)
        X = self._check_X(X)
        out = np.empty(X.shape[0], dtype=np.int64)
        for start in range(0, X.shape[0], EVAL_CHUNK):
            with np.errstate(over="ignore", invalid="ignore"):
                logits = be.logits(self.params, X[start:start + EVAL_CHUNK])
            # argmax of NaN logits is an arbitrary label: refuse rather than return it
            v.check_finite_output(logits, "X")
            out[start:start + EVAL_CHUNK] = logits.argmax(axis=1)
        return out

    # -- model files ------------------------------------------------------------------------
    def _meta(self):
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "layers": list(self.layers),
            "l1": list(self.l1),
            "l2": list(self.l2),
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    def save(self, path, extra=None):
        """Write the model to ``path`` as a ``.npz`` (no pickle), atomically.

        The file is written to a temporary name in the same folder, flushed, then renamed,
        so that an interruption never leaves a half-written model. ``extra`` is an optional
        dict of JSON-serializable metadata stored beside the model (the trainer's state).
        """
        path = _check_path(path)
        meta = self._meta()
        if extra is not None:
            if not isinstance(extra, dict):
                raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
            meta["extra"] = extra
        try:
            text = json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"extra must hold only JSON values (numbers, strings, lists, "
                            f"dicts, None): {exc}") from None
        for key, p in self.params.items():
            if not np.isfinite(p).all():
                raise ValueError(f"the model's {key} holds NaN or infinite values; "
                                 "fastmlp does not write such a model")
        arrays = {k: np.ascontiguousarray(p) for k, p in self.params.items()}
        arrays["__meta__"] = np.array(text)
        write_npz_atomic(path, arrays)

    @classmethod
    def load(cls, path, *, return_extra=False):
        """Read a model written by :meth:`save`, validating everything before use.

        Raises :class:`ModelFileError` (a ``ValueError``) for a truncated, foreign, corrupt
        or pickle-holding file; nothing in the file is executed.
        """
        arrays, meta = read_model_file(path)
        model = cls(meta["layers"], l1=tuple(meta["l1"]), l2=tuple(meta["l2"]),
                    dtype=meta["dtype"], seed=meta["seed"])
        for key, p in model.params.items():
            p[...] = arrays[key]
        if return_extra:
            return model, meta.get("extra")
        return model


def _check_path(path, name="path"):
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r:.80}")
    return os.fspath(path)


def _read_npz(path, keys):
    """``(names of the archive's arrays, {key: array} for the ``keys`` it holds)``.

    ``allow_pickle=False``: an array of pickled objects is refused, never unpickled. Every
    way a damaged archive can fail to read becomes a :class:`ModelFileError`.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            return names, {k: npz[k] for k in keys if k in names}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(
                f"{path!r} holds pickled objects; fastmlp model files never do, so it was "
                "refused without loading them"
            ) from None
        raise ModelFileError(f"{path!r} is not a readable .npz model file: {exc}") from None
    except MemoryError:
        raise
    except Exception as exc:  # zipfile, zlib, the .npy header parser: corrupt in many ways
        raise ModelFileError(
            f"{path!r} is not a valid fastmlp model file (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from None


def read_model_file(path):
    """Return ``(arrays, meta)`` from a model file, or raise :class:`ModelFileError`.

    The file is opened with ``allow_pickle=False``: pickled objects are refused, never
    unpickled, so nothing in the file runs. Everything is checked before it is returned.
    """
    path = _check_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    if not zipfile.is_zipfile(path):
        # np.load would also read a bare .npy array; a model file is always an .npz archive
        raise ModelFileError(f"{path!r} is not a fastmlp model file: not an .npz archive "
                             "(truncated, corrupt, or another kind of file)")
    # the metadata first: a foreign archive is refused without loading its arrays
    names, got = _read_npz(path, ["__meta__"])
    if "__meta__" not in got:
        raise ModelFileError(f"{path!r} is not a fastmlp model file: it has no '__meta__' entry")
    raw = got["__meta__"]
    if raw.shape != () or raw.dtype.kind != "U":
        raise ModelFileError(f"{path!r}: its '__meta__' entry is not a string")
    try:
        meta = json.loads(str(raw))
    except ValueError as exc:
        raise ModelFileError(f"{path!r}: its metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a fastmlp model file (format {meta!r:.80})")
    version = meta.get("version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path!r} is a fastmlp model file of version {meta.get('version')!r}; "
            f"this fastmlp reads version {FORMAT_VERSION}"
        )
    try:
        layers = v.check_layers(meta["layers"])
        v.check_penalty_pair(tuple(meta["l1"]), "l1")
        v.check_penalty_pair(tuple(meta["l2"]), "l2")
        dtype = v.check_dtype(meta["dtype"])
        v.check_seed(meta["seed"])
        if not isinstance(meta.get("extra", {}), dict):
            raise TypeError(f"'extra' must be a dict, got {type(meta['extra']).__name__}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r}: invalid model metadata: {exc}") from None
    d, d_h, m = layers
    expected = {"W1": (d_h, d), "b1": (d_h,), "W2": (m, d_h), "b2": (m,)}
    found = sorted(set(names) - {"__meta__"})
    if found != sorted(expected):
        raise ModelFileError(f"{path!r}: expected arrays {sorted(expected)}, found {found}")
    _, arrays = _read_npz(path, list(expected))
    for key, shape in expected.items():
        a = arrays[key]
        if a.shape != shape or a.dtype != np.dtype(dtype):
            raise ModelFileError(
                f"{path!r}: array {key} has shape {a.shape} and dtype {a.dtype}; "
                f"expected {shape} {dtype} for layers {layers}"
            )
        if not np.isfinite(a).all():
            raise ModelFileError(f"{path!r}: array {key} holds NaN or infinite values")
    return arrays, meta


__all__ = ["MLP", "ModelFileError", "FORMAT_VERSION"]
