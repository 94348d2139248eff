"""One training epoch of the numba backend, against JAX's whole epoch jitted as one lax.scan.

    python benchmarks/numba_epoch.py --hidden 256 128 [--activation relu] [--batch-size 32]
        [--optimizer sgd|momentum|nesterov|adam] [--dtype float32] [--rounds 5] [--no-jax]
        [--threads N]

The spec's "fast" workload: the 49,000-example train split of Fashion-MNIST (random pixels
of that shape when it is not installed), elastic net 1e-4 on every weight matrix, lr 0.1
(1e-3 with Adam). Both run the same minibatches of the same shuffle; JAX drops the last,
smaller one. numba and JAX rounds are interleaved, the best of ``--rounds`` is kept, and the
load average is printed: compare ratios from one quiet run (load below 1), never absolute
times across machines. The peak is this machine's large float32 product rate (numpy, 4096^2
on all threads), the practical ceiling of the useful FLOPs counted as in the spec (forward,
weight gradients, the input gradients of every layer but the first).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def peak_gflops():
    a = np.ones((4096, 4096), np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(3))
    return 2 * 4096 ** 3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def epoch_gflop(layers, n):
    flops = sum(2 * layers[i] * layers[i - 1] * (2 if i == 1 else 3)
                for i in range(1, len(layers)))
    return flops * n / 1e9


def data(dtype):
    import fastmlp

    if fastmlp.datasets.fashion_mnist_dir() is not None:
        X, y = fastmlp.datasets.split(*fastmlp.datasets.fashion_mnist(), seed=0).train
    else:
        rng = np.random.default_rng(0)
        X, y = rng.random((49_000, 784)), rng.integers(0, 10, 49_000)
    return np.ascontiguousarray(X, dtype=dtype), y


def jax_epoch(base, X, y, order, K, lr, lam, activation, optimizer, dtype):
    """A callable running one compiled JAX epoch (None when JAX is not installed)."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    f = {"relu": jax.nn.relu, "tanh": jnp.tanh, "logistic": jax.nn.sigmoid,
         "identity": lambda v: v}[activation]
    p0 = [(jnp.asarray(W), jnp.asarray(b)) for W, b in base.weights()]

    def objective(p, xb, yb):
        h = xb
        for W, b in p[:-1]:
            h = f(h @ W.T + b)
        o = h @ p[-1][0].T + p[-1][1]
        ce = jnp.mean(jax.nn.logsumexp(o, axis=1) - jnp.take_along_axis(o, yb[:, None], 1)[:, 0])
        return ce + sum(lam * jnp.abs(W).sum() + lam * jnp.square(W).sum() for W, _ in p)

    tx = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)
    Xd, yd = jax.device_put(X), jax.device_put(y.astype(np.int32))
    n_full = len(order) // K
    batches = jnp.asarray(order[:n_full * K].reshape(n_full, K))

    def step(carry, idx):
        p, s = carry
        g = jax.grad(objective)(p, Xd[idx], yd[idx])
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    def epoch(p, batches):
        (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), batches)
        return p

    compiled = jax.jit(epoch).lower(p0, batches).compile()
    return lambda: jax.block_until_ready(compiled(p0, batches))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="*", default=[256, 128])
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (workers)")
    a = ap.parse_args()

    import fastmlp
    from fastmlp import optim

    if a.threads:
        import numba

        numba.set_num_threads(a.threads)
    X, y = data(a.dtype)
    n = X.shape[0]
    layers = (784, *a.hidden, 10)
    K = a.batch_size
    lr = 1e-3 if a.optimizer == "adam" else 0.1 * min(1.0, K / 32)
    lam = 1e-4
    order = fastmlp.ops.epoch_order(n, 0, 0)
    base = fastmlp.MLP(layers, activation=a.activation, l1=lam, l2=lam, dtype=a.dtype, seed=0)
    backend = fastmlp.get_backend("numba")
    compile_seconds = backend.prepare(a.dtype, K)

    def numba_epoch():
        model = base.copy()
        state = optim.get_optimizer(a.optimizer).init_state(model.n_params, model.dtype)
        stats = backend.train_steps(model, X, y, order, K, lr, state)
        assert stats.failed_step < 0

    cases = {"numba": numba_epoch}
    if not a.no_jax:
        jax_fn = jax_epoch(base, X, y, order, K, lr, lam, a.activation, a.optimizer, a.dtype)
        if jax_fn is not None:
            cases["jax"] = jax_fn
    for fn in cases.values():
        fn()                                          # first runs: caches, JIT, page faults
    best = {name: float("inf") for name in cases}
    for _ in range(a.rounds):
        for name, fn in cases.items():
            best[name] = min(best[name], _timed(fn))
    peak = peak_gflops()
    gflop = epoch_gflop(layers, n)
    print(f"layers {layers} {a.activation} K={K} {a.optimizer} {a.dtype}, "
          f"numba prepare {compile_seconds:.2f} s, peak {peak:.0f} GFLOP/s, "
          f"load {os.getloadavg()[0]:.2f}")
    for name, t in best.items():
        print(f"  {name:6s} {t:.3f} s  {gflop / t:6.1f} GFLOP/s  ({100 * gflop / t / peak:.0f} % "
              "of peak)")
    if "jax" in best:
        print(f"  numba / jax = {best['numba'] / best['jax']:.2f}")


if __name__ == "__main__":
    main()
