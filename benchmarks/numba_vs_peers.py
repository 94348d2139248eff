"""Seconds per training epoch: fastmlp's numba backend against numpy, PyTorch and JAX.

    python benchmarks/numba_vs_peers.py [--rounds 3] [--batch-sizes 1 32 256] [--dtypes float32 float64]

Workload (the spec's "fast" figures): one epoch of layers (784, 64, 10) over 49,000 examples
of Fashion-MNIST shape (random pixels in [0, 1), labels 0..9), lr 0.01, elastic net 1e-4 on
both weight matrices for fastmlp and JAX; PyTorch is the plain loop (nn.Linear,
CrossEntropyLoss, SGD, no penalty). Each figure is the best of ``--rounds`` epochs (fewer when
an epoch takes over 30 s), measured in this one run; ratios are "numba time / peer time". Compilation is excluded (numba's is
reported separately as the warmup time; JAX's first call is discarded). The large-GEMM rate
(numpy float32 4096x4096 @ 4096x4096) gives the practical floor of ~10.4 GFLOP per epoch at
K=32. Peers that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

N, LAYERS, LR, LAM = 49_000, (784, 64, 10), 0.01, 1e-4
#: useful FLOPs per epoch: forward 2(784*64 + 64*10) per example, backward about the same
EPOCH_GFLOP = 2 * 2 * N * (784 * 64 + 64 * 10) / 1e9


def best_of(fn, rounds, budget=30.0):
    """Best of ``rounds`` timings; stops repeating once ``budget`` seconds are spent (the
    slow peers at K=1 take minutes per epoch)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget:
            break
    return min(times)


def gemm_gflops(n=4096, rounds=3):
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    return 2 * n**3 / best_of(lambda: a @ b, rounds) / 1e9


def data(dtype):
    rng = np.random.default_rng(0)
    X = rng.random((N, LAYERS[0]), dtype=np.float32).astype(dtype)
    y = rng.integers(0, LAYERS[2], N)
    return X, y


def fastmlp_epoch(backend, dtype, K):
    import fastmlp
    from fastmlp import ops
    from fastmlp.backends import get_backend

    be = get_backend(backend)
    X, y = data(dtype)
    model = fastmlp.MLP(LAYERS, l1=(LAM, LAM), l2=(LAM, LAM), dtype=dtype, seed=0)
    order = ops.epoch_order(N, 0, 0)
    return lambda: be.train_steps(model.params, X, y, order, K, LR, model.l1, model.l2)


def torch_epoch(dtype, K):
    import torch

    X, y = data(dtype)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10)).to(tdt)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    order = torch.from_numpy(np.random.default_rng(0).permutation(N))

    def epoch():
        for start in range(0, N, K):
            idx = order[start:start + K]
            opt.zero_grad()
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return epoch


def jax_epoch(dtype, K):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    X, y = data(dtype)
    rng = np.random.default_rng(0)
    d, h, m = LAYERS
    params = (rng.uniform(-d**-0.5, d**-0.5, (h, d)).astype(dtype), np.zeros(h, dtype),
              rng.uniform(-h**-0.5, h**-0.5, (m, h)).astype(dtype), np.zeros(m, dtype))
    params = tuple(jnp.asarray(p) for p in params)
    n_full = N // K                    # full minibatches only (drops < K examples)
    order = jnp.asarray(np.random.default_rng(0).permutation(N)[:n_full * K].reshape(n_full, K))
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    lam = jnp.asarray(LAM, dtype)
    lr = jnp.asarray(LR, dtype)

    def loss(p, xb, yb):
        W1, b1, W2, b2 = p
        o = jnp.maximum(xb @ W1.T + b1, 0) @ W2.T + b2
        ce = jnp.mean(jax.nn.logsumexp(o, axis=1) - jnp.take_along_axis(o, yb[:, None], 1)[:, 0])
        pen = sum(lam * jnp.abs(W).sum() + lam * (W * W).sum() for W in (W1, W2))
        return ce + pen

    @jax.jit
    def epoch(p, X, y, order):
        def step(p, idx):
            g = jax.grad(loss)(p, X[idx], y[idx])
            return tuple(a - lr * b for a, b in zip(p, g)), None
        return jax.lax.scan(step, p, order)[0]

    jax.block_until_ready(epoch(params, Xj, yj, order))          # compile
    return lambda: jax.block_until_ready(epoch(params, Xj, yj, order))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--peers", nargs="+", default=["numpy", "torch", "jax"])
    ap.add_argument("--no-gemm", action="store_true")
    args = ap.parse_args(argv)

    from fastmlp.backends.numba import NumbaBackend, warmup

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    for dtype in args.dtypes:
        print(f"numba warmup {dtype}: {warmup(dtype):.2f} s (compile, or load from cache)")
    print("numba:", NumbaBackend.info())
    print(f"load average before timing: {os.getloadavg()}")
    peers = {"numpy": lambda dt, K: fastmlp_epoch("numpy", dt, K),
             "torch": torch_epoch, "jax": jax_epoch}
    available = []
    for name in args.peers:
        try:
            __import__(name)
            available.append(name)
        except ImportError:
            print(f"{name}: not installed, skipped")
    if "torch" in available:
        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "jax" in available:
        import jax
        print(f"jax {jax.__version__}")
    if not args.no_gemm:
        rate = gemm_gflops()
        print(f"large GEMM float32 (numpy 4096^3): {rate:.1f} GFLOP/s; "
              f"floor for {EPOCH_GFLOP:.1f} GFLOP/epoch: {EPOCH_GFLOP / rate:.3f} s")
    print(f"\nseconds per epoch (best of {args.rounds}); ratio = numba / peer")
    print(f"{'dtype':8} {'K':>4} {'numba':>8} " + " ".join(f"{p:>16}" for p in available)
          + "   numba GFLOP/s")
    for dtype in args.dtypes:
        for K in args.batch_sizes:
            t_nb = best_of(fastmlp_epoch("numba", dtype, K), args.rounds)
            cells = []
            for p in available:
                fn = peers[p](dtype, K)
                t = best_of(fn, args.rounds)
                cells.append(f"{t:8.3f} ({t_nb / t:5.2f}x)")
            print(f"{dtype:8} {K:4d} {t_nb:8.3f} " + " ".join(f"{c:>16}" for c in cells)
                  + f"   {EPOCH_GFLOP / t_nb:8.1f}", flush=True)
    print(f"load average after timing: {os.getloadavg()}")


if __name__ == "__main__":
    main()
