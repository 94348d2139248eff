"""The optimizers: each rule against a plain restatement of the spec's formulas and against
PyTorch (the oracle: ``torch.optim.SGD`` with momentum/nesterov and ``torch.optim.Adam``)."""

import math

import numpy as np
import pytest

import fastmlp
from conftest import RTOL, rel_err
from fastmlp import optim

STEPS = 25


def gradients(n, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=n) * 10 ** rng.uniform(-3, 1) for _ in range(steps)]


def spec_updates(name, theta, grads, lr, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8):
    """The spec's updates, written out once more in the plainest NumPy (float64)."""
    theta = theta.copy()
    b = m = v = None
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            theta = theta - lr * g
        elif name in ("momentum", "nesterov"):
            b = g if b is None else momentum * b + g
            theta = theta - lr * (b if name == "momentum" else g + momentum * b)
        else:
            m = (1 - beta1) * g if m is None else beta1 * m + (1 - beta1) * g
            v = (1 - beta2) * g * g if v is None else beta2 * v + (1 - beta2) * g * g
            theta = theta - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return theta


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_each_rule_is_the_spec_formula(name, dtype):
    n = 50
    theta0 = np.random.default_rng(1).normal(size=n)
    grads = gradients(n, STEPS)
    opt = optim.get_optimizer(name)
    state = opt.init_state(n, dtype)
    theta = theta0.astype(dtype)
    for g in grads:
        opt.step(theta, g.astype(dtype), state, 0.01)
    assert state.step == STEPS and theta.dtype == np.dtype(dtype)
    assert all(b.dtype == np.dtype(dtype) for b in state.buffers.values())
    # the float64 rule agrees with the spec to rounding; float32 to float32 rounding
    assert rel_err(theta - theta0, spec_updates(name, theta0, grads, 0.01) - theta0) <= \
        {"float64": 1e-12, "float32": 1e-4}[dtype]


@pytest.mark.parametrize("name, torch_kwargs", [
    ("sgd", {}), ("momentum", {"momentum": 0.8}), ("nesterov", {"momentum": 0.8, "nesterov": True}),
    ("adam", {"betas": (0.8, 0.99), "eps": 1e-6})])
def test_each_rule_is_pytorchs(name, torch_kwargs):
    torch = pytest.importorskip("torch")
    n = 40
    theta0 = np.random.default_rng(2).normal(size=n)
    grads = gradients(n, STEPS, seed=3)
    opt = {"sgd": optim.SGD(), "momentum": optim.Momentum(0.8), "nesterov": optim.Nesterov(0.8),
           "adam": optim.Adam(0.8, 0.99, 1e-6)}[name]
    state = opt.init_state(n, "float64")
    theta = theta0.copy()
    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    torch_opt = (torch.optim.Adam([p], lr=0.01, **torch_kwargs) if name == "adam" else
                 torch.optim.SGD([p], lr=0.01, **torch_kwargs))
    for g in grads:
        opt.step(theta, g, state, 0.01)
        p.grad = torch.tensor(g, dtype=torch.float64)
        torch_opt.step()
    assert rel_err(theta - theta0, p.detach().numpy() - theta0) <= RTOL["float64"]


def test_adam_corrects_its_bias_with_the_run_wide_step_count():
    opt = optim.Adam()
    state = opt.init_state(3, "float64")
    theta = np.zeros(3)
    opt.step(theta, np.array([1.0, -2.0, 0.5]), state, 0.1)
    # first step: m_hat = g, v_hat = g^2, so every weight moves by lr * sign(g) (eps aside)
    np.testing.assert_allclose(theta, [-0.1, 0.1, -0.1], rtol=1e-7)
    assert state.step == 1
    assert optim.adam_scalars(0.1, 0.9, 0.999, 1) == pytest.approx((1.0, math.sqrt(0.001)))


def test_state_copy_restore_and_fit():
    state = optim.Momentum().init_state(4, "float32")
    state.buffers["velocity"][...] = 2.0
    state.step = 7
    saved = state.copy()
    state.buffers["velocity"][...] = -1.0
    state.step = 9
    buffer = state.buffers["velocity"]
    state.restore(saved)
    assert state.step == 7 and (buffer == 2.0).all() and state.buffers["velocity"] is buffer
    assert state.matches(4, "float32") and not state.matches(5, "float32")
    assert not state.matches(4, "float64")


def test_names_objects_and_descriptions():
    for name, cls in optim.OPTIMIZERS.items():
        opt = optim.get_optimizer(name)
        assert type(opt) is cls and opt.name == name
        assert optim.optimizer_from_dict(opt.to_dict()) == opt
    assert optim.Adam(beta2=0.99).to_dict() == {"name": "adam", "beta1": 0.9, "beta2": 0.99,
                                                "eps": 1e-8}
    assert optim.Adam() != optim.Adam(eps=1e-7) and optim.SGD() == optim.SGD()
    assert repr(optim.Nesterov(0.5)) == "Nesterov(momentum=0.5)"
    opt = optim.Adam()
    assert optim.get_optimizer(opt) is opt


@pytest.mark.parametrize("make, error, match", [
    (lambda: optim.Adam(beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    (lambda: optim.Adam(beta2=-0.1), ValueError, "beta2"),
    (lambda: optim.Adam(eps=0.0), ValueError, "eps must be a finite number > 0"),
    (lambda: optim.Adam(eps="small"), TypeError, "eps"),
    (lambda: optim.Momentum(momentum=-0.5), ValueError, "momentum must be a finite number >= 0"),
    (lambda: optim.Nesterov(momentum=float("inf")), ValueError, "momentum"),
    (lambda: optim.get_optimizer("rmsprop"), ValueError, "'rmsprop' is not an optimizer; use "
                                                         "one of sgd, momentum, nesterov, adam"),
    (lambda: optim.get_optimizer(None), TypeError, "optimizer must be a name"),
    (lambda: optim.optimizer_from_dict({"name": "adam", "lr": 1}), ValueError, "unknown settings"),
])
def test_bad_hyper_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_the_numba_kernels_restate_each_rule(backend):
    """One minibatch step taken by each backend equals the rule applied to that backend's own
    gradient of J (penalties included): the kernels restate optim.Optimizer.step."""
    X = np.random.default_rng(4).normal(size=(12, 5))
    y = np.arange(12) % 3
    for name in optim.OPTIMIZERS:
        model = fastmlp.MLP((5, 6, 4, 3), activation=("tanh", "relu"), l1=0.01, l2=0.02,
                            dtype="float64", seed=1)
        ref = model.copy()
        opt = optim.get_optimizer(name)
        state, ref_state = opt.init_state(model.n_params, "float64"), \
            opt.init_state(model.n_params, "float64")
        be = fastmlp.get_backend(backend)
        for _ in range(3):                       # three steps: the state matters
            _, grad, _ = be.loss_and_grads(ref, X, y)
            opt.step(ref.theta, grad, ref_state, 0.05)
        be.train_steps(model, X, y, np.tile(np.arange(12), 3), 12, 0.05, state)
        assert state.step == ref_state.step == 3
        assert rel_err(model.theta, ref.theta) <= RTOL["float64"], name
        for key, buf in state.buffers.items():
            assert rel_err(buf, ref_state.buffers[key]) <= RTOL["float64"], (name, key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
def test_state_below_the_smallest_normal_is_stored_as_zero(backend, name, dtype):
    """With a zero gradient the state decays geometrically; a value that would become
    subnormal (a hundred-cycle assist per operation on x86) is stored as zero, by the NumPy
    rule and by every backend's training step alike; NaN stays NaN."""
    tiny = np.finfo(dtype).tiny
    opt = optim.get_optimizer(name)
    # the rule itself: values just above the smallest normal (one step makes them subnormal
    # for beta or mu up to 0.9995), a zero gradient
    state = opt.init_state(4, dtype)
    for b in state.buffers.values():
        b[:] = [1.0005 * tiny, 1.0005 * tiny, 1.0, np.nan]
    if name != "adam":
        state.buffers["velocity"][1] *= -1
    opt.step(np.ones(4, dtype), np.zeros(4, dtype), state, 0.01)
    for key, b in state.buffers.items():
        assert b[0] == 0 and b[1] == 0 and b[2] > 0.5 and np.isnan(b[3]), (key, b)
    # training steps (minibatches and single examples): zero inputs give every weight
    # matrix a zero gradient (no penalty)
    for batch_size in (4, 1):
        model = fastmlp.MLP((5, 6, 3), dtype=dtype, seed=0)
        state = opt.init_state(model.n_params, dtype)
        for b in state.buffers.values():
            b[:] = 1.0005 * tiny
        fastmlp.get_backend(backend).train_steps(model, np.zeros((8, 5), dtype),
                                                 np.arange(8) % 3, np.arange(4), batch_size,
                                                 0.01, state)
        for key, b in state.buffers.items():
            views = model.layout.views(b)
            assert np.all(views["W1"] == 0) and np.all(views["W2"] == 0), (batch_size, key)
            assert not np.any((b != 0) & (np.abs(b) < tiny)), (batch_size, key)
