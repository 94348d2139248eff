"""Checks at the boundary of every public entry point.

Every function here raises ``ValueError`` or ``TypeError`` with a message that names the
argument, says what was wrong and what is allowed. Kernels assume their input passed these.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

DTYPES = ("float32", "float64")

#: largest class label accepted when the number of classes is not yet known (a label is
#: a row of the output layer: a billion of them is a typo, not a problem to allocate for)
MAX_LABEL = 2**31 - 1


def check_dtype(dtype, name="dtype"):
    """Return the canonical dtype name ("float32" or "float64")."""
    canonical = None
    if dtype is not None:  # np.dtype(None) is float64: too easy to pass by mistake
        try:
            canonical = np.dtype(dtype).name
        except Exception:  # np.dtype raises TypeError, ValueError or KeyError on nonsense
            canonical = None
    if canonical not in DTYPES:
        raise ValueError(f"{name}={dtype!r} is not supported; use one of {DTYPES}")
    return canonical


def check_layers(layers, name="layers"):
    """Return layers as a tuple of ints ``(d, d_h, m)``."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
        raise TypeError(f"{name} must be a sequence (d, d_h, m) of positive ints, got {layers!r}")
    if len(layers) != 3:
        raise ValueError(
            f"{name} must have length 3, (inputs, hidden units, classes); got {len(layers)}: "
            f"{tuple(layers)!r} (one hidden layer only, for now)"
        )
    out = []
    for i, width in enumerate(layers):
        if isinstance(width, (bool, np.bool_)) or not isinstance(width, numbers.Integral):
            raise TypeError(f"{name}[{i}] must be an int, got {width!r}")
        if width < 1:
            raise ValueError(f"{name}[{i}] must be at least 1, got {width}")
        out.append(int(width))
    if out[2] < 2:
        raise ValueError(f"{name}[2] (number of classes) must be at least 2, got {out[2]}")
    return tuple(out)


def check_nonneg_real(value, name, *, allow_zero=True):
    """A finite real number >= 0 (> 0 when ``allow_zero`` is False)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_penalty_pair(pair, name):
    """Penalties per weight matrix: ``(lambda_W1, lambda_W2)``, each finite and >= 0."""
    if isinstance(pair, numbers.Real) and not isinstance(pair, (bool, np.bool_)):
        raise TypeError(
            f"{name} must be a pair (for W1, for W2), got the single number {pair!r}; "
            f"write {name}=({pair}, {pair}) to penalize both"
        )
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise TypeError(f"{name} must be a pair (for W1, for W2) of numbers >= 0, got {pair!r}")
    return tuple(check_nonneg_real(v, f"{name}[{i}]") for i, v in enumerate(pair))


def check_int(value, name, *, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_seed(seed, name="seed"):
    return check_int(seed, name, minimum=0)


def _as_array(value, name, what):
    """``np.asarray(value)`` with a message naming ``name`` when it cannot be read."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got a string")
    if hasattr(value, "toarray") and not isinstance(value, np.ndarray):
        raise TypeError(f"{name} is a sparse matrix; fastmlp needs {what}: "
                        f"pass {name}.toarray()")
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as {what}: {exc}") from None


def check_X(X, name="X", *, n_features=None, dtype=None):
    """A finite, non-empty 2-D real array (rows are examples); returned C-contiguous.

    With ``dtype`` the result is converted to that dtype (one copy at most); a finite value
    too large for it (above 3.4e38 for float32) is refused rather than becoming infinite.
    """
    arr = _as_array(X, name, "a 2-D array of numbers, shape (n_examples, n_features)")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D, shape (n_examples, n_features); got {arr.ndim}-D shape "
            f"{arr.shape}" + (" (use X.reshape(1, -1) for a single example)" if arr.ndim == 1 else "")
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 examples (rows); at least 1 is needed")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features (columns); at least 1 is needed")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features (columns) but the model expects {n_features}"
        )
    _check_finite(arr, name)
    if dtype is not None and arr.dtype != np.dtype(dtype):
        with np.errstate(over="ignore"):
            converted = np.ascontiguousarray(arr, dtype=dtype)
        if not np.isfinite(converted).all():
            big = np.abs(arr[~np.isfinite(converted)]).max()
            raise ValueError(
                f"{name} holds values too large for {np.dtype(dtype).name} (|value| up to "
                f"{big:.3g}; the largest allowed is {np.finfo(dtype).max:.3g})"
            )
        return converted
    return np.ascontiguousarray(arr)


def _check_finite(arr, name):
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
            "all values must be finite"
        )


def check_finite_output(values, name="X"):
    """Refuse a non-finite result computed from finite input ``name``.

    The model's outputs can overflow for inputs far larger than anything it was trained on;
    that is reported as bad input rather than returned as NaN or garbage labels.
    """
    if not np.isfinite(values).all():
        if np.ndim(values) == 0:
            raise ValueError(
                f"{name}: the model's loss overflowed (became infinite or NaN); the input "
                "values are too large for the model's dtype. Rescale the data (e.g. "
                "standardize it) as it was for training."
            )
        rows = np.unique(np.argwhere(~np.isfinite(np.atleast_2d(values)))[:, 0])
        raise ValueError(
            f"{name}: the model's outputs overflowed (became infinite or NaN) for {len(rows)} "
            f"row(s), the first being row {rows[0]}; the input values are too large for the "
            "model's dtype. Rescale the data (e.g. standardize it) as it was for training."
        )
    return values


def check_model(model, name="model"):
    from .model import MLP

    if not isinstance(model, MLP):
        raise TypeError(f"{name} must be a fastmlp.MLP, got {type(model).__name__}")
    return model


def check_y(y, name="y", *, n_examples=None, n_classes=None):
    """Integer class labels in ``[0, n_classes)``, 1-D, returned as int64."""
    arr = _as_array(y, name, "a 1-D array of integer class labels")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, shape (n_examples,); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least 1 label is needed")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(
                f"{name} must hold integer class labels; got non-integer values such as "
                f"{arr[~np.isfinite(arr) | (arr != np.round(arr))][0]!r}"
            )
    if n_examples is not None and arr.shape[0] != n_examples:
        raise ValueError(
            f"{name} has {arr.shape[0]} labels but X has {n_examples} examples; they must match"
        )
    lo, hi = arr.min(), arr.max()
    top = MAX_LABEL if n_classes is None else n_classes - 1
    if lo < 0 or hi > top:
        raise ValueError(f"{name} has labels out of range ({lo}..{hi}); allowed: 0..{top}")
    return np.ascontiguousarray(arr, dtype=np.int64)
