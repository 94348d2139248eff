"""Finite-difference gradient checks, and the loop-vs-matrix comparison of the seed.

A hand-written gradient is trusted once it agrees with centered finite differences of the
objective ``J`` (spec, "The model")::

    dJ/dθ_i  ≈  (J(θ + ε e_i) - J(θ - ε e_i)) / (2 ε)

The differences are always taken in float64 on a float64 copy of the model, whatever the
model's dtype: for a float32 model the float32 analytic gradient is compared with float64
finite differences. ``J`` itself comes from the numpy backend's logits (pinned to the
``loop`` reference by the test suite) plus :func:`fastmlp.ops.penalty`, so the numbers
being differenced never depend on the backend under test.

Relative errors here are taken against the scale of the whole array, as everywhere in
fastmlp's tests: ``max|a - n| / max(max|a|, max|n|)``. Agreeing significant digits are
``-log10`` of that. A parameter passes when ``max|a - n| <= rtol * scale + atol``, where
``atol`` is what rounding of J lets finite differences resolve at all (see ``FD_ROUNDING``):
a gradient of 1e-4 cannot be checked to 1e-6 relative with differences accurate to 1e-10.

    >>> import fastmlp
    >>> X, y = fastmlp.datasets.circles(n=20)
    >>> model = fastmlp.MLP((2, 4, 2), l1=(1e-3, 1e-3), l2=(1e-3, 1e-3), dtype="float64")
    >>> report = fastmlp.check_gradients(model, X[:10], y[:10])
    >>> report.ok()
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from . import _validation as v
from . import ops

#: Default relative tolerance of a finite-difference check, per model dtype. A centered
#: difference with ε = 1e-6 in float64 is accurate to about 1e-10 absolute (rounding of J
#: divided by ε, plus ε² times the third derivative), so 1e-6 leaves a wide margin for
#: gradients of order 1e-3 and up; a float32 gradient carries float32 rounding (~1e-7).
FD_RTOL = {"float64": 1e-6, "float32": 1e-4}

#: Rounding of J, relative, in one float64 evaluation (a generous bound: a few operations per
#: term, summed). A centered difference divides two such errors by 2ε, so it cannot resolve
#: gradients below about ``FD_ROUNDING * max(1, |J|) / ε`` (2e-9 for ε = 1e-6 and J ~ 1):
#: that is the absolute tolerance ``atol`` every check adds to ``rtol`` times the gradient's scale.
FD_ROUNDING = 10 * np.finfo(np.float64).eps

#: Default relative tolerance between two backends' gradients on the same minibatch: the
#: same arithmetic in another order (the test suite's RTOL_F64 / RTOL_F32).
BACKEND_RTOL = {"float64": 1e-10, "float32": 1e-4}

#: The seed's gradient check: layers (2, 2, 2), λ = 0.001 for all four penalties, float64,
#: one example and a minibatch of 10 (ε = 1e-6). Seed 3 (data and weights) is chosen so that
#: the single example has one hidden unit on and one off, as in the seed's printout: the
#: one-example check then sees both relu' = 1 and relu' = 0 (with seed 0 both units are off
#: for it and W1, b1 would only carry the penalty).
SEED_CASE = {"hidden": (2,), "activation": "relu", "batch_sizes": (1, 10), "l1": 1e-3,
             "l2": 1e-3, "dtype": "float64", "seed": 3, "eps": 1e-6}

#: Finite-difference steps allowed. Below 1e-10 the rounding of J divided by 2ε (the
#: ``atol`` of every check) reaches 1e-5 and grows without bound, so that a check would pass
#: whatever the gradient; above 1e-2 the truncation error (ε² times the third derivative of
#: J) swamps it.
EPS_RANGE = (1e-10, 1e-2)

#: Points drawn for the two-circles data of the reports (as ``fastmlp train --data circles``).
CIRCLES_N = 1100


def rel_err(a, b):
    """``max|a - b| / max(max|a|, max|b|)`` in float64; 0 when both are all zeros."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    diff = float(np.abs(a - b).max(initial=0.0))
    return diff / scale if scale > 0 else diff


def digits(rel):
    """Agreeing significant digits of a relative error: ``-log10(rel)``, 16 when exact."""
    return 16.0 if rel <= 1e-16 else max(0.0, -math.log10(rel))


class ParamCheck(NamedTuple):
    """One parameter's check: the analytic gradient (the model's dtype), the float64 finite
    differences, their largest absolute difference and their relative error (see
    :func:`rel_err`)."""

    name: str
    analytic: np.ndarray
    numeric: np.ndarray
    max_abs_diff: float
    max_rel_err: float

    @property
    def digits(self):
        return digits(self.max_rel_err)


@dataclass(frozen=True)
class GradCheckReport:
    """What :func:`check_gradients` found.

    Attributes
    ----------
    checks : dict name -> ParamCheck, for ``W1, b1, ..., WL, bL`` (and ``X``)
    J : the objective at the model's parameters (float64)
    atol : the finite differences' absolute accuracy, ``FD_ROUNDING * max(1, |J|) / eps``
    near_kinks : per layer ``l = 1..L``, ``(relu, l1)``: ReLU pre-activations of layer l
        and L1-penalized weights of ``W_l`` close enough to their kink (0) that a step of ε
        crosses it; there a finite difference does not measure the (sub)gradient, and a
        disagreement is expected rather than a bug.
    """

    checks: dict
    J: float
    backend: str
    dtype: str
    eps: float
    n_examples: int
    atol: float = 0.0
    near_kinks: tuple = ()
    title: str = field(default="", compare=False)

    @property
    def max_rel_err(self):
        return max(c.max_rel_err for c in self.checks.values())

    def passes(self, check, rtol=None):
        """Whether one ParamCheck is within ``rtol`` (default ``FD_RTOL[dtype]``) plus ``atol``."""
        rtol = FD_RTOL[self.dtype] if rtol is None else rtol
        scale = max(np.abs(check.analytic).max(initial=0.0), np.abs(check.numeric).max(initial=0.0))
        return bool(check.max_abs_diff <= rtol * scale + self.atol)

    def failures(self, rtol=None):
        """Names of the parameters that do not pass (see :meth:`passes`)."""
        return [name for name, c in self.checks.items() if not self.passes(c, rtol)]

    def ok(self, rtol=None):
        """True when every parameter agrees within ``rtol`` (default ``FD_RTOL[dtype]``),
        up to the finite differences' own accuracy ``atol``."""
        return not self.failures(rtol)

    def table(self, values=False, rtol=None):
        """A fixed-width text table, one row per parameter; with ``values`` the analytic and
        finite-difference entries are listed too (sensible for tiny models only)."""
        rtol = FD_RTOL[self.dtype] if rtol is None else rtol
        head = (self.title or "finite-difference check") + (
            f": backend {self.backend}, {self.dtype}, K={self.n_examples}, eps={self.eps:g}, "
            f"J={self.J:.10g}")
        lines = [head, f"{'param':<6} {'shape':<10} {'max |grad|':>11} {'max abs diff':>13} "
                       f"{'max rel err':>12} {'digits':>7}   "
                       f"ok (rtol {rtol:g}, atol {self.atol:.1g})"]
        for c in self.checks.values():
            scale = float(np.abs(c.analytic).max(initial=0.0))
            lines.append(f"{c.name:<6} {str(c.analytic.shape):<10} {scale:>11.3e} "
                         f"{c.max_abs_diff:>13.2e} {c.max_rel_err:>12.2e} {c.digits:>7.1f}   "
                         f"{'yes' if self.passes(c, rtol) else 'NO'}")
        kinks = [f"layer {l}: {relu} ReLU pre-activation(s), {l1} L1-penalized weight(s)"
                 for l, (relu, l1) in enumerate(self.near_kinks, start=1) if relu or l1]
        if kinks:
            lines.append("note: within eps of their kink (0), where finite differences are "
                         "not the (sub)gradient: " + "; ".join(kinks))
        if values:
            for c in self.checks.values():
                lines.append(f"{c.name}:")
                lines.append(f"  analytic           {_fmt_values(c.analytic)}")
                lines.append(f"  finite difference  {_fmt_values(c.numeric)}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _fmt_values(a):
    return "[" + " ".join(f"{x: .10f}" for x in np.asarray(a, dtype=np.float64).ravel()) + "]"


def objective(model, X, y):
    """The spec's minibatch objective ``J`` of ``model`` (a float), evaluated in float64
    (``model`` and ``X`` are converted if they are not already)."""
    from .backends import get_backend

    model64 = model if model.dtype == np.float64 else model.astype("float64")
    logits = get_backend("numpy").logits(model64, np.asarray(X, dtype=np.float64))
    return float(ops.cross_entropy(logits, y).mean()) + ops.total_penalty(model64)


def _numeric_gradients(model, X, y, eps, wrt_input):
    """Centered finite differences of J in float64 (``model`` is float64), one parameter at a
    time, as a flat buffer laid out like ``model.theta``; and dJ/dX."""
    from .backends import get_backend

    theta = model.theta
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        saved = theta[i]
        theta[i] = saved + eps
        J_plus = objective(model, X, y)
        theta[i] = saved - eps
        J_minus = objective(model, X, y)
        theta[i] = saved
        numeric[i] = (J_plus - J_minus) / (2 * eps)
    gX = None
    if wrt_input:
        # x_k only enters example k's loss, so J(x_k ± ε) - J differ by that loss alone / K:
        # the same difference of J, with less rounding from the untouched terms.
        logits = get_backend("numpy").logits
        K = X.shape[0]
        gX = np.empty_like(X)
        for k in range(K):
            row, yk = X[k:k + 1].copy(), y[k:k + 1]
            for j in range(X.shape[1]):
                saved = row[0, j]
                row[0, j] = saved + eps
                L_plus = ops.cross_entropy(logits(model, row), yk)[0]
                row[0, j] = saved - eps
                L_minus = ops.cross_entropy(logits(model, row), yk)[0]
                row[0, j] = saved
                gX[k, j] = (L_plus - L_minus) / (2 * eps * K)
    return numeric, gX


def _near_kinks(model, X, eps, wrt_input):
    """Per layer, how many kinks of relu and |.| a single step of ±eps can cross (see
    GradCheckReport): ``((relu, l1) for each layer)``."""
    from .activations import ACTIVATIONS

    counts = []
    h = X
    for l, ((W, b), l1) in enumerate(zip(model.weights(), model.l1), start=1):
        a = h @ W.T + b
        relu = 0
        if l < model.n_layers and model.activations[l - 1] == "relu":
            # largest change of a[k, j] by one step: eps (b), eps |h_ki| (W), and through
            # dJ/dX also eps |W_ji| for the first layer
            reach = np.maximum(1.0, np.abs(h).max(axis=1, keepdims=True))
            if wrt_input and l == 1:
                reach = np.maximum(reach, np.abs(W).max(axis=1))
            relu = int((np.abs(a) <= eps * reach).sum())
        near = int(((W != 0) & (np.abs(W) < eps)).sum()) if l1 else 0
        counts.append((relu, near))
        if l < model.n_layers:
            h = ACTIVATIONS[model.activations[l - 1]].function(a)
    return tuple(counts)


def check_gradients(model, X, y, backend="numpy", eps=1e-6, wrt_input=False):
    """Compare a backend's gradients of J with centered finite differences.

    Parameters
    ----------
    model : MLP
        its parameters and penalties define J; it is not modified.
    X : array (K, d), y : int array (K,)
        the minibatch.
    backend : str or Backend
        whose analytic gradients are checked (any :class:`fastmlp.Backend` instance too).
    eps : float
        the finite-difference step, in ``EPS_RANGE`` (1e-10 to 1e-2).
    wrt_input : bool
        also check dJ/dX (reported as ``"X"``).

    Returns
    -------
    GradCheckReport
        ``.checks`` maps ``W1, b1, ..., WL, bL`` (and ``X``) to a :class:`ParamCheck`;
        ``.ok(rtol)``, ``.max_rel_err``, ``.table()``.
    """
    from .backends import get_backend
    from .model import check_model
    from .training import gradients

    check_model(model)
    eps = v.check_nonneg_real(eps, "eps", allow_zero=False)
    if not EPS_RANGE[0] <= eps <= EPS_RANGE[1]:
        raise ValueError(f"eps={eps:g} is outside {EPS_RANGE[0]:g}..{EPS_RANGE[1]:g}: a smaller "
                         "step drowns the difference in rounding (the check could no longer "
                         "fail), a larger one in truncation error")
    be = get_backend(backend)
    X = v.check_X(X, "X", n_features=model.n_features, dtype=model.dtype)
    y = v.check_y(y, "y", n_examples=X.shape[0], n_classes=model.n_classes)
    J, analytic = gradients(model, X, y, backend=be, wrt_input=wrt_input)

    model64 = model.astype("float64")
    X64 = X.astype(np.float64)
    numeric_flat, numeric_X = _numeric_gradients(model64, X64, y, eps, wrt_input)
    numeric = model64.layout.views(numeric_flat)
    if wrt_input:
        numeric["X"] = numeric_X
    checks = {}
    for name in numeric:                                # W1, b1, ..., WL, bL (, X)
        a, n = analytic[name], numeric[name]
        checks[name] = ParamCheck(name, a, n, float(np.abs(a.astype(np.float64) - n).max()),
                                  rel_err(a, n))
    J64 = objective(model64, X64, y)
    return GradCheckReport(
        checks=checks, J=J64, backend=be.name, dtype=model.dtype.name, eps=eps,
        n_examples=X.shape[0], atol=FD_ROUNDING * max(1.0, abs(J64)) / eps,
        near_kinks=_near_kinks(model64, X64, eps, wrt_input))


def compare_backends(model, X, y, backend="numpy", reference="loop", wrt_input=False):
    """``{name: relative difference}`` between two backends' gradients on one minibatch,
    plus ``"J"`` for the objective (the seed's loop-vs-matrix comparison)."""
    from .training import gradients

    J_ref, g_ref = gradients(model, X, y, backend=reference, wrt_input=wrt_input)
    J, g = gradients(model, X, y, backend=backend, wrt_input=wrt_input)
    out = {name: rel_err(g[name], g_ref[name]) for name in g_ref}
    out["J"] = rel_err(J, J_ref)
    return out


@dataclass
class CaseReport:
    """Everything :func:`run_checks` measured, its text and what failed."""

    text: str
    failures: list
    reports: list


def run_checks(backend="numpy", *, hidden=(2,), activation="relu", init="uniform",
               batch_sizes=(1, 10), l1=1e-3, l2=1e-3, dtype="float64", seed=0, eps=1e-6,
               data=None, source=None, wrt_input=False, rtol=None, values=None):
    """Finite-difference checks and the loop-vs-``backend`` comparison on several minibatches.

    The data is ``data=(X, y)`` or, by default, the two-circles problem
    (``datasets.circles(n=1100, seed=seed)``) split and standardized with the train part's
    statistics (as ``fastmlp train --data circles`` and the seed do); minibatch K is the
    first K rows of the train part. ``source`` describes ``data`` in the text. The model is ``MLP((d, hidden, m), l1, l2, dtype, seed)``.
    ``rtol`` defaults to ``FD_RTOL[dtype]`` for the finite differences; the backends are
    compared with ``BACKEND_RTOL[dtype]``. ``values`` lists every entry (default: for models
    of at most 12 parameters).

    Returns a :class:`CaseReport`: the text, a list of failure messages (empty when every
    check passed) and the :class:`GradCheckReport` of each K.
    """
    from . import datasets
    from .backends import get_backend
    from .model import MLP

    be = get_backend(backend)
    if data is None:
        X, y = datasets.circles(n=CIRCLES_N, seed=v.check_seed(seed))
        X, y = datasets.split(X, y, seed=seed).train
        source = (f"two circles (datasets.circles(n={CIRCLES_N}, seed={seed})), train split "
                  "standardized with its own mean and std")
    else:
        X, y = data
        X = v.check_X(X, "X")
        y = v.check_y(y, "y", n_examples=X.shape[0])
        source = f"{source or 'the given data'} ({X.shape[0]} rows)"
    batch_sizes = tuple(v.check_int(K, "batch_size", minimum=1) for K in batch_sizes)
    if not batch_sizes:
        raise ValueError("batch_sizes is empty: give at least one minibatch size")
    if max(batch_sizes) > X.shape[0]:
        raise ValueError(f"batch_sizes: {max(batch_sizes)} is more than the {X.shape[0]} "
                         f"examples available; allowed: 1..{X.shape[0]}")
    m = max(2, int(y.max()) + 1)
    if isinstance(hidden, int):
        hidden = (hidden,)
    model = MLP((X.shape[1], *hidden, m), activation=activation, l1=l1, l2=l2, dtype=dtype,
                seed=seed, init=init)
    rtol = FD_RTOL[model.dtype.name] if rtol is None else v.check_nonneg_real(rtol, "rtol")
    brtol = BACKEND_RTOL[model.dtype.name]
    if values is None:
        values = model.n_params <= 12
    reference = "loop" if be.name != "loop" else "numpy"

    sections = [f"model: {model}, {model.n_params} parameters\n"
                f"data:  {source}\n"
                f"minibatch of K: the first K rows"]
    failures, reports = [], []
    for K in batch_sizes:
        rep = check_gradients(model, X[:K], y[:K], backend=be, eps=eps, wrt_input=wrt_input)
        rep = replace(rep, title=f"analytic vs finite difference, K={K}")
        reports.append(rep)
        sections.append(rep.table(values=values, rtol=rtol))
        failures += [f"{name} (K={K}): analytic vs finite difference max rel err "
                     f"{rep.checks[name].max_rel_err:.2e} (max abs diff "
                     f"{rep.checks[name].max_abs_diff:.1e}) > rtol {rtol:g} (atol {rep.atol:.1g})"
                     for name in rep.failures(rtol)]

    diffs = {K: compare_backends(model, X[:K], y[:K], backend=be, reference=reference,
                                 wrt_input=wrt_input) for K in batch_sizes}
    names = [name for name in (*model.layout.keys, "X", "J") if name in diffs[batch_sizes[0]]]
    lines = [f"{reference} vs {be.name} backend, same minibatch: max relative difference "
             f"(rtol {brtol:g})",
             f"{'param':<6} " + " ".join(f"{'K=' + str(K):>10}" for K in batch_sizes)]
    for name in names:
        lines.append(f"{name:<6} " + " ".join(f"{diffs[K][name]:>10.1e}" for K in batch_sizes))
        failures += [f"{name} (K={K}): {reference} vs {be.name} relative difference "
                     f"{diffs[K][name]:.2e} > rtol {brtol:g}"
                     for K in batch_sizes if not diffs[K][name] <= brtol]
    sections.append("\n".join(lines))
    verdict = ("all checks passed" if not failures else
               f"{len(failures)} check(s) FAILED:\n  " + "\n  ".join(failures))
    sections.append(verdict)
    return CaseReport("\n\n".join(sections), failures, reports)


_SEED_TITLE = ("The seed's gradient check: layers (2, 2, 2), lambda = 0.001 for all four "
               "penalties, float64, eps = 1e-6, one example and a minibatch of 10")


def seed_report(backend="numpy"):
    """The text of the seed's gradient checks, as readable tables.

    Layers (2, 2, 2), λ = 0.001 for all four penalties, float64, ε = 1e-6, on one example
    and on a minibatch of 10 of the two-circles data (standardized), then the loop-vs-matrix
    comparison of the gradients on the same minibatches (K = 1 and K = 10).
    """
    return _SEED_TITLE + "\n\n" + run_checks(backend, **SEED_CASE).text + "\n"


def cli_report(backend="numpy", data=None, **case):
    """``(text, failures)`` for ``fastmlp gradcheck``: :func:`run_checks`, titled as the
    seed's check when ``case`` is the seed's."""
    result = run_checks(backend, data=data, **case)
    seed_case = data is None and not case.get("wrt_input") and case.get("rtol") is None and all(
        case.get(k) == val for k, val in SEED_CASE.items())
    title = _SEED_TITLE if seed_case else "Gradient check"
    return title + "\n\n" + result.text, result.failures


__all__ = ["check_gradients", "GradCheckReport", "ParamCheck", "compare_backends",
           "run_checks", "seed_report", "objective", "FD_RTOL", "BACKEND_RTOL"]
