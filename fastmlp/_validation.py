"""Checks at the boundary of every public entry point.

Every function here raises ``ValueError`` or ``TypeError`` with a message that names the
argument, says what was wrong and what is allowed. Kernels assume their input passed these.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

DTYPES = ("float32", "float64")


def check_dtype(dtype, name="dtype"):
    """Return the canonical dtype name ("float32" or "float64")."""
    try:
        canonical = np.dtype(dtype).name
    except TypeError:
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


def check_X(X, name="X", *, n_features=None, dtype=None):
    """A finite, non-empty 2-D real array (rows are examples); returned C-contiguous.

    With ``dtype`` the result is converted to that dtype (one copy at most).
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D array of numbers, got a string")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
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
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features (columns) but the model expects {n_features}"
        )
    if dtype is not None:
        arr = np.ascontiguousarray(arr, dtype=dtype)
    else:
        arr = np.ascontiguousarray(arr)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
            "all values must be finite"
        )
    return arr


def check_y(y, name="y", *, n_examples=None, n_classes=None):
    """Integer class labels in ``[0, n_classes)``, 1-D, returned as int64."""
    if isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D array of integer labels, got a string")
    arr = np.asarray(y)
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
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        allowed = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise ValueError(f"{name} has labels out of range ({lo}..{hi}); allowed: {allowed}")
    return np.ascontiguousarray(arr, dtype=np.int64)
