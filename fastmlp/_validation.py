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
    """Return layers as a tuple of ints ``(d, h_1, ..., h_{L-1}, m)``: at least two entries
    (inputs and classes), every width >= 1, at least 2 classes."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
        raise TypeError(f"{name} must be a sequence (d, h_1, ..., m) of positive ints, "
                        f"got {layers!r}")
    if len(layers) < 2:
        raise ValueError(
            f"{name} must have at least 2 entries, (inputs, [hidden widths ...,] classes); "
            f"got {len(layers)}: {tuple(layers)!r}")
    out = []
    for i, width in enumerate(layers):
        if isinstance(width, (bool, np.bool_)) or not isinstance(width, numbers.Integral):
            raise TypeError(f"{name}[{i}] must be an int, got {width!r}")
        if width < 1:
            raise ValueError(f"{name}[{i}] must be at least 1, got {width}")
        out.append(int(width))
    if out[-1] < 2:
        raise ValueError(f"{name}[-1] (number of classes) must be at least 2, got {out[-1]}")
    return tuple(out)


def check_activations(activation, n_hidden, name="activation"):
    """One activation name for every hidden layer, or a sequence of one per hidden layer:
    returns a tuple of ``n_hidden`` names."""
    from .activations import NAMES

    def one(value, where):
        if not isinstance(value, str):
            raise TypeError(f"{where} must be an activation name ({', '.join(NAMES)}), "
                            f"got {value!r}")
        if value not in NAMES:
            raise ValueError(f"{where}={value!r} is not an activation; use one of "
                             f"{', '.join(NAMES)}")
        return value

    if isinstance(activation, str):
        return (one(activation, name),) * n_hidden
    if not hasattr(activation, "__len__"):
        raise TypeError(f"{name} must be an activation name ({', '.join(NAMES)}) or a "
                        f"sequence of one per hidden layer, got {activation!r}")
    if len(activation) != n_hidden:
        raise ValueError(
            f"{name} lists {len(activation)} activation(s) but the network has {n_hidden} "
            f"hidden layer(s); give one name for all of them or exactly {n_hidden}")
    return tuple(one(a, f"{name}[{i}]") for i, a in enumerate(activation))


def check_penalties(value, name, n_weights):
    """An elastic-net coefficient: one number for every weight matrix, or a sequence of one
    per weight matrix (``n_weights`` of them); each finite and >= 0. Returns a tuple."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return (check_nonneg_real(value, name),) * n_weights
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a number >= 0 (for every weight matrix) or a sequence "
                        f"of {n_weights} (one per weight matrix), got {value!r}")
    if len(value) != n_weights:
        raise ValueError(
            f"{name} lists {len(value)} value(s) but the network has {n_weights} weight "
            f"matrices (W1..W{n_weights}); give one number for all of them or exactly "
            f"{n_weights}")
    return tuple(check_nonneg_real(x, f"{name}[{i}]") for i, x in enumerate(value))


def check_named(value, name, registry, base, what, module):
    """An instance of ``base`` (returned as is) or a name of ``registry`` (name -> class,
    made with its default settings): how optimizers and schedules are given."""
    if isinstance(value, base):
        return value
    if isinstance(value, str):
        if value not in registry:
            raise ValueError(f"{name}={value!r} is not {what}; use one of "
                             f"{', '.join(registry)} or a {module} object")
        return registry[value]()
    raise TypeError(f"{name} must be a name ({', '.join(registry)}) or a {module} object, "
                    f"got {value!r}")


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed; use one of {', '.join(choices)}")
    return value


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


def check_int(value, name, *, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(seed, name="seed"):
    return check_int(seed, name, minimum=0)


def _as_array(value, name, what):
    """``np.asarray(value)`` with a message naming ``name`` when it cannot be read."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got a string")
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; fastmlp would ignore its mask: fill or drop "
                        f"the masked entries (e.g. {name}.filled(value)) and pass a plain array")
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


def check_param_array(value, name, shape, dtype):
    """Values for one parameter array: ``shape`` and ``dtype`` exactly (an array of another
    dtype is refused rather than silently converted; a list is read in ``dtype``), finite."""
    dtype = np.dtype(dtype)
    if isinstance(value, np.ndarray) and not isinstance(value, np.ma.MaskedArray):
        arr = value
        if arr.dtype != dtype:
            raise TypeError(f"{name} has dtype {arr.dtype} but the model is {dtype.name}; "
                            f"convert it first (.astype({dtype.name!r}))")
    else:
        arr = _as_array(value, name, f"an array of shape {shape}")
        if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype,
                                                                          np.complexfloating)):
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        arr = arr.astype(dtype)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}; the model's is {tuple(shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values; parameters must be finite")
    return arr


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
