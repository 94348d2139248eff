"""Finite-difference gradient checks: they pass for every backend, and they catch wrong
gradients (fake backends with a deliberate bug each)."""

import math

import numpy as np
import pytest

import fastmlp
from conftest import RTOL, make_data, rel_err
from fastmlp import ops
from fastmlp.cli import main
from fastmlp.gradcheck import (FD_ROUNDING, FD_RTOL, SEED_CASE, check_gradients, objective,
                               run_checks, seed_report)

PENALTIES = {"l1": (1e-3, 2e-3), "l2": (3e-3, 4e-3)}


def small_case(dtype="float64", K=7, layers=(4, 5, 3), seed=0, activation="relu", **penalties):
    if not penalties:
        n = len(layers) - 1
        penalties = {"l1": tuple(1e-3 * (l + 1) for l in range(n)),
                     "l2": tuple(3e-3 + 1e-3 * l for l in range(n))}
    model = fastmlp.MLP(layers, activation=activation, dtype=dtype, seed=seed, **penalties)
    X, y = make_data(K, layers[0], layers[-1], seed=seed)
    return model, X, y


def kinks(report):
    """The report's kinks, summed over the layers."""
    return sum(relu + l1 for relu, l1 in report.near_kinks)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_backend_agrees_with_finite_differences(backend, dtype):
    model, X, y = small_case(dtype)
    report = check_gradients(model, X, y, backend=backend, wrt_input=True)
    assert list(report.checks) == ["W1", "b1", "W2", "b2", "X"]
    assert kinks(report) == 0
    for name, c in report.checks.items():
        expected_shape = X.shape if name == "X" else model.params[name].shape
        assert c.analytic.shape == c.numeric.shape == expected_shape
        assert c.analytic.dtype == np.dtype(dtype)      # the backend's own gradient
        assert c.numeric.dtype == np.float64            # differences always in float64
        assert np.abs(c.analytic).max() > 1e-3          # nothing trivially zero
    assert report.ok(), report.table()
    assert report.max_rel_err <= FD_RTOL[dtype]
    assert report.J == pytest.approx(fastmlp.gradients(model, X, y, backend=backend)[0],
                                     rel=RTOL[dtype])


@pytest.mark.parametrize("layers, activation", [
    ((4, 3), "relu"), ((4, 5, 3), "tanh"), ((4, 5, 3), "logistic"), ((4, 5, 3), "identity"),
    ((4, 6, 5, 3), ("tanh", "relu")), ((3, 5, 4, 6, 2), ("logistic", "identity", "tanh"))])
def test_any_depth_and_activation_agrees_with_finite_differences(backend, layers, activation):
    model, X, y = small_case(layers=layers, activation=activation, K=9)
    report = check_gradients(model, X, y, backend=backend, wrt_input=True)
    assert list(report.checks) == [*model.layout.keys, "X"]
    assert report.ok(), report.table()
    assert len(report.near_kinks) == len(layers) - 1


def test_float32_model_is_differenced_in_float64():
    m32, X, y = small_case("float32")
    m64 = m32.astype("float64")
    X32 = X.astype(np.float32)   # the values the float32 model sees
    r32 = check_gradients(m32, X32, y, wrt_input=True)
    r64 = check_gradients(m64, X32.astype(np.float64), y, wrt_input=True)
    for name in r32.checks:
        assert np.array_equal(r32.checks[name].numeric, r64.checks[name].numeric), name


def test_the_model_is_left_unchanged(backend):
    model, X, y = small_case()
    before = model.theta.copy()
    check_gradients(model, X, y, backend=backend, wrt_input=True)
    assert model.theta.tobytes() == before.tobytes()


def test_objective_is_every_backends_J(backend):
    model, X, y = small_case()
    J, _ = fastmlp.gradients(model, X, y, backend=backend)
    J_fd = objective(model, X, y)
    assert J_fd == pytest.approx(J, rel=RTOL["float64"])


# -- fake backends, each with one deliberate bug ------------------------------------------------
def buggy(backend, bug):
    """An instance of a subclass of ``backend``'s class whose gradients have ``bug``."""
    base = type(fastmlp.get_backend(backend))

    class Buggy(base):
        name = f"{backend}+{bug}"

        def loss_and_grads(self, model, X, y, wrt_input=False):
            J, grad, dX = super().loss_and_grads(model, X, y, wrt_input)
            grads = model.layout.views(grad)
            if bug == "drops the penalty":
                for W, key, l1, l2 in zip(model.layout.views(model.theta).values(),
                                          model.layout.keys, (*model.l1, 0), (*model.l2, 0)):
                    if key.startswith("W"):
                        grads[key] -= ops.penalty_grad(model.params[key],
                                                       model.l1[int(key[1:]) - 1],
                                                       model.l2[int(key[1:]) - 1])
            elif bug == "one entry off":
                grads["W1"][1, 2] += grads["W1"].dtype.type(1e-4)
            elif bug == "sum, not mean":
                grads["b2"] *= X.shape[0]
            elif bug == "transposed W2":   # dL/dW2 = h_s dL/do_aᵀ by mistake (square W2 here)
                grads["W2"][...] = grads["W2"].T.copy()
            return J, grad, dX

    return Buggy()


class ForgetsReluDerivative(type(fastmlp.get_backend("numpy"))):
    """The numpy equations with dL/dh_a = dL/dh_s: relu' forgotten."""

    name = "numpy-without-relu'"

    def loss_and_grads(self, model, X, y, wrt_input=False):
        J, grad, dX = super().loss_and_grads(model, X, y, wrt_input)
        grads = model.layout.views(grad)
        params = model.params
        K = X.shape[0]
        o_s = ops.softmax(self.logits(model, X), axis=1)
        o_s[np.arange(K), y] -= 1
        g_ha = (o_s / K) @ params["W2"]                       # no ⊙ 1[h_a > 0]
        grads["W1"][...] = g_ha.T @ X + ops.penalty_grad(params["W1"], model.l1[0], model.l2[0])
        grads["b1"][...] = g_ha.sum(axis=0)
        if wrt_input:
            dX = g_ha @ params["W1"]
        return J, grad, dX


@pytest.mark.parametrize("bug, wrong", [
    ("one entry off", ["W1"]),
    ("drops the penalty", ["W1", "W2"]),       # biases are not penalized
    ("sum, not mean", ["b2"]),
    ("transposed W2", ["W2"]),
])
def test_a_wrong_gradient_is_flagged(backend, bug, wrong):
    model, X, y = small_case(layers=(4, 3, 3))
    assert check_gradients(model, X, y, backend=backend).ok()   # the genuine backend passes
    report = check_gradients(model, X, y, backend=buggy(backend, bug))
    assert not report.ok()
    assert report.failures() == wrong, report.table()
    assert "NO" in report.table()


def test_a_forgotten_relu_derivative_is_flagged():
    model, X, y = small_case()
    h_a = X @ model.params["W1"].T + model.params["b1"]
    assert (h_a < 0).any()                       # some units are off: relu' matters
    report = check_gradients(model, X, y, backend=ForgetsReluDerivative(), wrt_input=True)
    assert report.failures() == ["W1", "b1", "X"], report.table()


# -- kinks --------------------------------------------------------------------------------------
def test_kinks_are_counted_and_explain_a_disagreement():
    model, X, y = small_case(l1=(0.0, 0.0), l2=(0.0, 0.0))
    model.params["W1"][0] = 0.0          # unit 0: h_a = 0 exactly for every example,
    model.params["b1"][0] = 0.0          # where relu' = 0 but (relu(ε) - relu(-ε)) / 2ε = 1/2
    report = check_gradients(model, X, y)
    assert report.near_kinks == ((X.shape[0], 0), (0, 0))
    assert "b1" in report.failures()
    assert "within eps of their kink" in report.table()
    assert f"layer 1: {X.shape[0]} ReLU pre-activation(s)" in report.table()
    # away from the kink the same unit checks out
    model.params["b1"][0] = 0.5
    assert kinks(check_gradients(model, X, y)) == 0


def test_kinks_are_counted_per_layer():
    model, X, y = small_case(layers=(4, 5, 6, 3), l1=(0.0, 0.5, 0.0), l2=0.0)
    model.params["W2"][2] = 0.0          # layer 2's unit 2: pre-activation exactly 0
    model.params["b2"][2] = 0.0
    model.params["W2"][0, :2] = (1e-9, -1e-9)     # two L1-penalized weights within eps of 0
    report = check_gradients(model, X, y)
    (relu1, l1_1), (relu2, l1_2), (relu3, l1_3) = report.near_kinks
    # (more of layer 2 may sit at 0: an example whose first layer is all off gives b2 = 0)
    assert relu2 >= X.shape[0] and l1_2 == 2
    assert l1_1 == l1_3 == relu3 == 0                  # no L1 there; the output has no ReLU
    assert f"layer 2: {relu2} ReLU pre-activation(s), 2 L1-penalized weight(s)" in report.table()


def test_l1_at_exactly_zero_weights_uses_sign_0():
    # the centered difference of |w| at w = 0 is 0 = sign(0): the sub-gradient the spec uses
    model, X, y = small_case(l1=(0.5, 0.5), l2=(0.0, 0.0))
    model.params["W2"][:, 0] = 0.0
    report = check_gradients(model, X, y)
    assert kinks(report) == 0 and report.ok(), report.table()


# -- the report -----------------------------------------------------------------------------------
def test_report_table_and_digits():
    model, X, y = small_case()
    report = check_gradients(model, X, y)
    text = report.table(values=True)
    for name in ("W1", "b1", "W2", "b2", "digits", "max rel err", "finite difference"):
        assert name in text
    c = report.checks["W2"]
    assert c.max_rel_err == pytest.approx(rel_err(c.analytic, c.numeric), rel=1e-12)
    assert c.max_abs_diff == pytest.approx(np.abs(c.analytic - c.numeric).max(), rel=1e-12)
    assert c.digits == pytest.approx(-math.log10(c.max_rel_err))
    assert report.atol == pytest.approx(FD_ROUNDING * max(1.0, report.J) / report.eps)
    assert str(report) == report.table()


def test_tolerances_rtol_and_atol():
    model, X, y = small_case()
    # eps = 1e-3: rounding is negligible (atol ~ 1e-12) but truncation, ~eps^2, is not
    coarse = check_gradients(model, X, y, eps=1e-3)
    assert coarse.atol < 1e-11
    assert not coarse.ok(rtol=1e-9) and coarse.ok(rtol=1e-4)
    assert 1e-9 < coarse.max_rel_err < 1e-4
    # eps = 1e-6: differences accurate to ~1e-10 absolute, within atol whatever the rtol
    fine = check_gradients(model, X, y, eps=1e-6)
    assert all(c.max_abs_diff <= fine.atol for c in fine.checks.values())
    assert fine.ok(rtol=0.0)


def test_bad_arguments():
    model, X, y = small_case()
    with pytest.raises(ValueError, match="eps"):
        check_gradients(model, X, y, eps=0.0)
    # a step so small that rounding swamps the difference: the check could not fail
    with pytest.raises(ValueError, match=r"eps=1e-15 is outside 1e-10..0.01"):
        check_gradients(model, X, y, eps=1e-15)
    with pytest.raises(ValueError, match="eps=0.1 is outside"):
        check_gradients(model, X, y, eps=0.1)
    with pytest.raises(TypeError, match="model"):
        check_gradients(model.params, X, y)
    with pytest.raises(ValueError, match="features"):
        check_gradients(model, X[:, :2], y)
    with pytest.raises(ValueError, match="labels out of range"):
        check_gradients(model, X, y + 5)
    with pytest.raises(ValueError, match="backend"):
        check_gradients(model, X, y, backend="fortran")


# -- the seed's checks -----------------------------------------------------------------------------
def test_seed_checks_agree_to_6_digits(backend):
    result = run_checks(backend, **SEED_CASE)
    assert result.failures == []
    assert [r.n_examples for r in result.reports] == [1, 10]
    for r in result.reports:
        assert r.dtype == "float64" and kinks(r) == 0
        assert min(c.digits for c in r.checks.values()) >= 6, r.table()
    # the single example has one hidden unit on and one off: both values of relu' are used
    assert sorted(result.reports[0].checks["b1"].analytic != 0) == [False, True]


def test_seed_report_text():
    text = seed_report()
    assert isinstance(text, str)
    assert "layers (2, 2, 2)" in text and "lambda = 0.001" in text and "standardized" in text
    assert "K=1" in text and "K=10" in text
    assert "loop vs numpy backend" in text and "all checks passed" in text


def test_cli_gradcheck_runs_the_seed_case(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The seed's gradient check") and "all checks passed" in out


def test_cli_gradcheck_other_cases(backend, capsys):
    status = main(["gradcheck", "--backend", backend, "--hidden", "3", "--batch-size", "4", "33",
                   "--dtype", "float32", "--l1", "0", "--l2", "1e-3", "2e-3", "--wrt-input",
                   "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.startswith("Gradient check") and "K=33" in out and "float32" in out
    assert "\nX " in out                         # dJ/dX was checked


def test_cli_gradcheck_fails_with_a_reason(capsys):
    # a step of 0.01 is far too coarse: truncation error fails the 1e-6 tolerance
    assert main(["gradcheck", "--eps", "0.01"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert "failed their tolerance: " in captured.err and "(K=10)" in captured.err
    assert main(["gradcheck", "--batch-size", "100000"]) == 2
    assert "batch_sizes" in capsys.readouterr().err


def test_cli_gradcheck_help_lists_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["gradcheck", "--help"])
    out = capsys.readouterr().out
    for option in ("--backend", "--eps", "--hidden", "--activation", "--init", "--batch-size",
                   "--l1", "--l2", "--seed", "--dtype", "--rtol", "--wrt-input", "--data"):
        assert option in out, option
