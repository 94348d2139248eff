"""The same epoch in other libraries, for comparison: PyTorch, JAX and scikit-learn.

Each peer trains the same network (layers, initialization, minibatches of K in the same
shuffled order, learning rate) written the way a user of that library would write it.
They are optional (``pip install 'fastmlp[bench]'``) and imported only here, only when used.

* ``torch``: ``nn.Linear``/``ReLU``, ``CrossEntropyLoss`` plus the elastic-net penalties
  written into the loss, ``torch.optim.SGD``; one thread per core.
* ``jax``: the whole epoch compiled as one ``lax.scan`` over the minibatches (the last,
  smaller minibatch is one more compiled step); compilation is timed apart.
* ``sklearn``: ``MLPClassifier(solver="sgd", batch_size=K, max_iter=1)``; one ``fit`` is one
  epoch. It has no L1 penalty, and its ``alpha`` is set to give the same L2 gradient
  (``2 l2 W``); it shuffles with its own generator.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings

import numpy as np

from . import ops
from .bench import Case, measured_examples

#: name -> the module it needs
PEERS = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}


class PeerUnavailable(RuntimeError):
    """The peer's library is not installed (or cannot run this workload)."""


def check_peer(name):
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")
    return name


def available():
    """Names of the peers whose library is installed."""
    return [name for name, module in PEERS.items() if importlib.util.find_spec(module)]


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def epoch_case(name, work):
    """A :class:`fastmlp.bench.Case` timing one epoch of ``work`` in peer ``name``."""
    check_peer(name)
    if importlib.util.find_spec(PEERS[name]) is None:
        raise PeerUnavailable(f"{PEERS[name]} is not installed (pip install 'fastmlp[bench]')")
    return {"torch": _torch_epoch, "jax": _jax_epoch, "sklearn": _sklearn_epoch}[name](work)


def _torch_epoch(work):
    import torch
    from torch import nn

    torch.set_num_threads(work.threads or _cores())
    dtype = {"float32": torch.float32, "float64": torch.float64}[work.data.dtype]
    K, (l1a, l1b), (l2a, l2b) = work.batch_size, work.l1, work.l2
    measured = measured_examples("torch", K, work.n_examples)
    X, y = torch.from_numpy(work.data.X), torch.from_numpy(work.data.y)
    order = torch.from_numpy(work.order(measured))
    init = work.initial_params()
    lr = ops.learning_rate(work.lr, 0, 1)
    d, h, m = work.layers

    def setup():
        model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, m)).to(dtype)
        with torch.no_grad():
            for layer, (w, b) in zip((model[0], model[2]), (("W1", "b1"), ("W2", "b2"))):
                layer.weight.copy_(torch.from_numpy(init[w]))
                layer.bias.copy_(torch.from_numpy(init[b]))
        return (model, torch.optim.SGD(model.parameters(), lr=lr)), {}

    def run(model, opt, order=order):
        loss_fn = nn.CrossEntropyLoss()
        W1, W2 = model[0].weight, model[2].weight
        for start in range(0, len(order), K):
            idx = order[start:start + K]
            loss = loss_fn(model(X[idx]), y[idx])
            loss = (loss + l1a * W1.abs().sum() + l2a * W1.square().sum()
                    + l1b * W2.abs().sum() + l2b * W2.square().sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def warm():
        run(*setup()[0], order=order[:2 * K])

    return Case("torch", "peer", run, setup, measured, work.n_examples, warm,
                {"version": torch.__version__, "threads": torch.get_num_threads()})


def _jax_epoch(work):
    if work.threads == 1 and "jax" not in sys.modules:
        # XLA reads its thread settings once, when it starts
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                                   "=false intra_op_parallelism_threads=1").strip()
    import jax
    import jax.numpy as jnp

    if work.data.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    K, (l1a, l1b), (l2a, l2b) = work.batch_size, work.l1, work.l2
    measured = measured_examples("jax", K, work.n_examples)
    order = work.order(measured)
    n_full = measured // K
    batches = jnp.asarray(order[:n_full * K].reshape(n_full, K))
    tail = jnp.asarray(order[n_full * K:])
    X, y = jax.device_put(work.data.X), jax.device_put(work.data.y.astype(np.int32))
    t = work.data.X.dtype.type
    lr = t(ops.learning_rate(work.lr, 0, 1))
    init = {k: jnp.asarray(p) for k, p in work.initial_params().items()}

    def objective(p, xb, yb):
        o = jax.nn.relu(xb @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
        ce = jnp.mean(jax.nn.logsumexp(o, axis=1) - jnp.take_along_axis(o, yb[:, None], 1)[:, 0])
        return (ce + t(l1a) * jnp.abs(p["W1"]).sum() + t(l2a) * jnp.square(p["W1"]).sum()
                + t(l1b) * jnp.abs(p["W2"]).sum() + t(l2b) * jnp.square(p["W2"]).sum())

    def step(p, X, y, idx):
        g = jax.grad(objective)(p, X[idx], y[idx])
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g)

    def epoch(p, X, y, batches, tail):
        p, _ = jax.lax.scan(lambda q, idx: (step(q, X, y, idx), None), p, batches)
        if tail.shape[0]:                           # the last, smaller minibatch
            p = step(p, X, y, tail)
        return p

    t0 = time.perf_counter()
    compiled = jax.jit(epoch).lower(init, X, y, batches, tail).compile()
    compile_seconds = time.perf_counter() - t0

    def run():
        jax.block_until_ready(compiled(init, X, y, batches, tail))

    return Case("jax", "peer", run, lambda: ((), {}), measured, work.n_examples, run,
                {"version": jax.__version__, "compile_seconds": compile_seconds})


def _sklearn_epoch(work):
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    K = work.batch_size
    measured = measured_examples("sklearn", K, work.n_examples)
    idx = work.order(measured)
    X, y = work.data.X[idx], work.data.y[idx]

    def setup():
        model = MLPClassifier(
            hidden_layer_sizes=(work.layers[1],), activation="relu", solver="sgd",
            alpha=2.0 * work.l2[0] * K, batch_size=K, learning_rate="constant",
            learning_rate_init=ops.learning_rate(work.lr, 0, 1), momentum=0.0,
            nesterovs_momentum=False, max_iter=1, shuffle=True, random_state=work.seed)
        return (model,), {}

    def run(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)

    return Case("sklearn", "peer", run, setup, measured, work.n_examples, None,
                {"version": sklearn.__version__,
                 "note": f"L2 only (alpha={2.0 * work.l2[0] * K:g}), no L1; own shuffle"})
