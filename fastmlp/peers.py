"""The same epoch in other libraries, for comparison: PyTorch, JAX and scikit-learn.

Each peer trains the network of a :class:`fastmlp.timing.Workload` -- its layers and
activations, its initial weights, minibatches of K in the same shuffled order, its optimizer
with the same hyper-parameters and learning rate -- written the way a user of that library
would write it. They are optional (``pip install 'fastmlp[bench]'``) and imported only here,
only when used.

* ``torch``: an ``nn.Sequential`` of ``nn.Linear`` and the activation modules,
  ``CrossEntropyLoss`` plus the elastic-net penalties written into the loss,
  ``torch.optim.SGD`` (with ``momentum``/``nesterov``) or ``torch.optim.Adam``; one thread
  per core.
* ``jax``: the whole epoch compiled as one ``lax.scan`` over the minibatches (the last,
  smaller minibatch is one more compiled step), gradients by ``jax.grad``, the optimizer
  from optax (``optax.sgd``, ``optax.sgd(momentum=..., nesterov=...)``, ``optax.adam``);
  compilation is timed apart.
* ``sklearn``: ``MLPClassifier(hidden_layer_sizes=..., activation=..., solver="sgd" or
  "adam", batch_size=K, max_iter=1)``; one ``fit`` is one epoch. It has no L1 penalty, one
  ``alpha`` for every layer (set to give the same L2 gradient, ``2 l2 W``) and one
  activation for every hidden layer; it draws its own initial weights (Glorot) and shuffles
  with its own generator. Its Adam places epsilon slightly differently (see
  :mod:`fastmlp.optim`): the same work per step.

The optimizers' definitions agree with fastmlp's (PyTorch's): optax's ``trace`` is
PyTorch's momentum buffer, its Nesterov step ``g + mu b``, its Adam the bias-corrected
``m_hat / (sqrt(v_hat) + eps)``; ``tests/test_bench.py`` checks that an epoch of torch and of
JAX ends with the weights of fastmlp's numpy backend, to float32 rounding.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings

import numpy as np

from .timing import Case, measured_examples

#: name -> the modules it needs
PEERS = {"torch": ("torch",), "jax": ("jax", "optax"), "sklearn": ("sklearn",)}

#: fastmlp's activation names -> the peer's (scikit-learn uses fastmlp's names)
TORCH_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "logistic": "Sigmoid",
                     "identity": "Identity"}
JAX_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": None}


class PeerUnavailable(RuntimeError):
    """The peer's library is not installed, or it cannot run this workload."""


def check_peer(name):
    """``name`` must be one of :data:`PEERS`."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")
    return name


def missing(name):
    """The modules peer ``name`` needs that are not installed (empty: it can run)."""
    return [module for module in PEERS[check_peer(name)]
            if importlib.util.find_spec(module) is None]


def available():
    """Names of the peers whose libraries are installed."""
    return [name for name in PEERS if not missing(name)]


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def jax_environment(threads):
    """Environment variables that hold XLA's CPU runtime to ``threads`` threads (empty for
    None). XLA sizes its thread pool from ``NPROC`` when it starts; the ``XLA_FLAGS`` that
    used to do this (``--xla_cpu_multi_thread_eigen=false``) no longer limit it (measured:
    JAX 0.10's 4096x4096 product ran on two cores with them, on one with ``NPROC=1``)."""
    return {} if threads is None else {"NPROC": str(threads)}


def epoch_case(name, work):
    """A :class:`fastmlp.timing.Case` timing one epoch of ``work`` in peer ``name``.

    Raises :class:`PeerUnavailable` when the library is missing or cannot run the workload.
    """
    absent = missing(name)
    if absent:
        raise PeerUnavailable(f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} "
                              "not installed (pip install 'fastmlp[bench]')")
    return {"torch": _torch_epoch, "jax": _jax_epoch, "sklearn": _sklearn_epoch}[name](work)


def _penalized(work):
    """``[(layer index, l1, l2)]`` for the weight matrices that carry a penalty: a user
    writes no term for a zero coefficient."""
    return [(l, l1, l2) for l, (l1, l2) in enumerate(zip(work.l1, work.l2)) if l1 or l2]


# -- PyTorch ----------------------------------------------------------------------------------
def _torch_optimizer(torch, parameters, work):
    opt, lr = work.optimizer, work.lr
    if opt.name == "sgd":
        return torch.optim.SGD(parameters, lr=lr)
    if opt.name in ("momentum", "nesterov"):
        return torch.optim.SGD(parameters, lr=lr, momentum=opt.momentum,
                               nesterov=opt.name == "nesterov")
    return torch.optim.Adam(parameters, lr=lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)


def _torch_epoch(work):
    import torch
    from torch import nn

    torch.set_num_threads(work.threads or _cores())
    dtype = getattr(torch, work.data.dtype)
    K = work.batch_size
    measured = measured_examples("torch", K, work.n_examples)
    X, y = torch.from_numpy(work.data.X), torch.from_numpy(work.data.y)
    order = torch.from_numpy(work.order(measured))
    start = work.model().weights()
    activations = work.activations
    penalized = _penalized(work)

    def network():
        modules = []
        for l, (W, b) in enumerate(start):
            linear = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b))
            modules.append(linear)
            if l < len(activations):
                modules.append(getattr(nn, TORCH_ACTIVATIONS[activations[l]])())
        return nn.Sequential(*modules)

    def setup():
        model = network()
        return (model, _torch_optimizer(torch, model.parameters(), work)), {}

    def run(model, opt, order=order):
        loss_fn = nn.CrossEntropyLoss()
        weights = [m.weight for m in model if isinstance(m, nn.Linear)]
        for first in range(0, len(order), K):
            idx = order[first:first + K]
            loss = loss_fn(model(X[idx]), y[idx])
            for l, l1, l2 in penalized:
                loss = loss + l1 * weights[l].abs().sum() + l2 * weights[l].square().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def warm():
        run(*setup()[0], order=order[:2 * K])

    return Case("torch", "peer", run, setup, measured, work.n_examples, warm,
                {"version": torch.__version__, "threads": torch.get_num_threads()})


# -- JAX ----------------------------------------------------------------------------------------
def _optax_optimizer(optax, work):
    opt, lr = work.optimizer, work.lr
    if opt.name == "sgd":
        return optax.sgd(lr)
    if opt.name in ("momentum", "nesterov"):
        return optax.sgd(lr, momentum=opt.momentum, nesterov=opt.name == "nesterov")
    return optax.adam(lr, b1=opt.beta1, b2=opt.beta2, eps=opt.eps)


def _jax_epoch(work):
    if "jax" not in sys.modules:                 # XLA sizes its thread pool once, at start
        os.environ.update(jax_environment(work.threads))
    import jax
    import jax.numpy as jnp
    import optax

    if work.data.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    K = work.batch_size
    measured = measured_examples("jax", K, work.n_examples)
    order = work.order(measured)
    n_full = measured // K
    batches = jnp.asarray(order[:n_full * K].reshape(n_full, K))
    tail = jnp.asarray(order[n_full * K:])
    X, y = jax.device_put(work.data.X), jax.device_put(work.data.y.astype(np.int32))
    init = [(jnp.asarray(W), jnp.asarray(b)) for W, b in work.model().weights()]
    activations = [getattr(jax.nn, JAX_ACTIVATIONS[a]) if JAX_ACTIVATIONS[a] else (lambda a: a)
                   for a in work.activations]
    penalized = _penalized(work)
    tx = _optax_optimizer(optax, work)

    def objective(params, xb, yb):
        h = xb
        for (W, b), f in zip(params[:-1], activations):
            h = f(h @ W.T + b)
        W, b = params[-1]
        loss = optax.softmax_cross_entropy_with_integer_labels(h @ W.T + b, yb).mean()
        for l, l1, l2 in penalized:
            W = params[l][0]
            loss = loss + l1 * jnp.abs(W).sum() + l2 * jnp.square(W).sum()
        return loss

    def step(carry, idx):
        params, opt_state = carry
        grads = jax.grad(objective)(params, X[idx], y[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def epoch(params, X, y, batches, tail):
        carry, _ = jax.lax.scan(step, (params, tx.init(params)), batches)
        if tail.shape[0]:                           # the last, smaller minibatch
            carry, _ = step(carry, tail)
        return carry[0]

    threads = os.environ.get("NPROC", "all cores")        # what XLA started with
    t0 = time.perf_counter()
    compiled = jax.jit(epoch).lower(init, X, y, batches, tail).compile()
    compile_seconds = time.perf_counter() - t0

    def run():
        return jax.block_until_ready(compiled(init, X, y, batches, tail))

    return Case("jax", "peer", run, lambda: ((), {}), measured, work.n_examples, run,
                {"version": jax.__version__, "optax": optax.__version__, "threads": threads,
                 "compile_seconds": compile_seconds})


# -- scikit-learn ---------------------------------------------------------------------------
def _sklearn_solver(work):
    """``MLPClassifier`` keywords for the workload's optimizer."""
    opt = work.optimizer
    if opt.name == "adam":
        return {"solver": "adam", "beta_1": opt.beta1, "beta_2": opt.beta2,
                "epsilon": opt.eps}
    return {"solver": "sgd", "learning_rate": "constant",
            "momentum": getattr(opt, "momentum", 0.0),
            "nesterovs_momentum": opt.name == "nesterov"}


def _sklearn_epoch(work):
    if len(set(work.activations)) > 1:
        raise PeerUnavailable("scikit-learn's MLPClassifier has one activation for every "
                              f"hidden layer, not {'/'.join(work.activations)}")
    if len(set(work.l2)) > 1:
        raise PeerUnavailable("scikit-learn's MLPClassifier has one L2 coefficient (alpha) "
                              f"for every layer, not {work.l2}")
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    K = work.batch_size
    measured = measured_examples("sklearn", K, work.n_examples)
    idx = work.order(measured)
    X, y = work.data.X[idx], work.data.y[idx]
    alpha = 2.0 * work.l2[0] * K       # its gradient is alpha W / K; ours 2 l2 W
    activation = work.activations[0] if work.activations else "relu"   # unused without layers

    def setup():
        model = MLPClassifier(
            hidden_layer_sizes=work.layers[1:-1], activation=activation, alpha=alpha,
            batch_size=K, learning_rate_init=work.lr, max_iter=1, shuffle=True,
            random_state=work.seed, **_sklearn_solver(work))
        return (model,), {}

    def run(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)

    notes = [f"L2 only (alpha={alpha:g})" + ("; its L1 is not applied" if any(work.l1) else ""),
             "its own Glorot initial weights and shuffle"]
    if work.optimizer.name == "adam":
        notes.append("its Adam puts epsilon inside the step size")
    return Case("sklearn", "peer", run, setup, measured, work.n_examples, None,
                {"version": sklearn.__version__, "note": "; ".join(notes)})


__all__ = ["PEERS", "TORCH_ACTIVATIONS", "JAX_ACTIVATIONS", "PeerUnavailable", "check_peer",
           "missing", "available", "jax_environment", "epoch_case"]
