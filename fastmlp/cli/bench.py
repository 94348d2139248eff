"""``fastmlp bench``: one training epoch on every backend and peer library; or the CI guard."""

from __future__ import annotations

import argparse
import json
import sys

from ._arguments import (Formatter, activation, add_network_arguments,
                         add_optimizer_hyperparameters, int_at_least, nonneg_float, penalties,
                         positive_float)

EPILOG = """\
examples:
  fastmlp bench                                   (the seed's (784, 64, 10), K=32, float32, SGD)
  fastmlp bench --hidden 256 128 --activation tanh --optimizer adam --batch-size 256
  fastmlp bench --backends numba numpy --no-peers --threads 1
  fastmlp bench --guard benchmarks/thresholds.json          (the CI regression guard)"""


def add(sub):
    from ..optim import OPTIMIZERS
    from ..timing import DEFAULT_LR, PENALTY

    p = sub.add_parser(
        "bench", formatter_class=Formatter, epilog=EPILOG,
        help="time one training epoch on every backend and peer library; or check speed ratios",
        description="Time one training epoch of an MLP (784, *HIDDEN, 10) on every backend and "
                    "on the peer libraries installed (PyTorch, JAX, scikit-learn: the same "
                    "network, initial weights, minibatches, optimizer and learning rate), best "
                    "of several interleaved rounds, and print seconds, examples/s, speed-ups, "
                    "GFLOP/s of useful arithmetic and the percentage of the machine's peak: "
                    "the best large float32 matrix-product rate among NumPy's BLAS with "
                    "OPENBLAS_CORETYPE removed (in a child process; the pinned rate is shown "
                    "too when it is set) and JAX's jnp.dot. With --guard FILE: measure the "
                    "speed ratios FILE names and exit 1 when one is below its minimum (the CI "
                    "regression guard).")
    add_network_arguments(p)
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                   help="update rule (PyTorch's definitions; the peers use their own library's)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: " + ", ".join(
                       f"{k} {val:g}" for k, val in DEFAULT_LR.items())
                   + ", times K/32 below K=32)%(default).0s")
    add_optimizer_hyperparameters(p)
    p.add_argument("--l1", type=nonneg_float, nargs="+", default=[PENALTY], metavar="L",
                   help="L1 penalty: one value for every weight matrix, or one per matrix")
    p.add_argument("--l2", type=nonneg_float, nargs="+", default=[PENALTY], metavar="L",
                   help="L2 penalty: one value for every weight matrix, or one per matrix")
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="minibatch size K")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point type of the weights and of every computation")
    p.add_argument("--examples", type=int_at_least(1), default=49_000,
                   help="examples in the epoch")
    p.add_argument("--rounds", type=int_at_least(1), default=5,
                   help="timed rounds per case (the best counts)")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME",
                   help="backends to time (default: all available)%(default).0s")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the peer libraries that are installed")
    p.add_argument("--data", choices=("auto", "fashion-mnist", "synthetic"), default="auto",
                   help="Fashion-MNIST when installed (auto), or random data of its shape")
    p.add_argument("--gemm", action=argparse.BooleanOptionalAction, default=True,
                   help="measure the machine's peak first (4096x4096 float32 products in child "
                        "processes: some seconds)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="at most this many threads in BLAS, OpenMP, numba and the peers "
                        "(default: each library's own, all cores)%(default).0s")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    p.add_argument("--guard", metavar="FILE", default=None,
                   help="check the minimum speed-ups in FILE (e.g. benchmarks/thresholds.json); "
                        "the workloads then come from FILE and the other options are "
                        "ignored%(default).0s")
    p.set_defaults(run=run)


def _optimizer(args):
    from ..optim import OPTIMIZERS

    cls = OPTIMIZERS[args.optimizer]
    return cls(**{name: getattr(args, name) for name in cls.fields})


def run(args):
    from .. import bench

    log = lambda line: print(f"fastmlp bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    if args.guard:
        result = bench.run_guard(args.guard, log=log)
        print("\n".join(result.lines))
        print("guard: " + ("passed" if result.ok else "FAILED"))
        return 0 if result.ok else 1
    report = bench.run_bench(
        args.backends, None if args.peers else (), hidden=tuple(args.hidden),
        activation=activation(args.activation), init=args.init, optimizer=_optimizer(args),
        lr=args.lr, l1=penalties(args.l1, "--l1"), l2=penalties(args.l2, "--l2"),
        batch_size=args.batch_size, dtype=args.dtype, examples=args.examples,
        rounds=args.rounds, source=args.data, peak=args.gemm, threads=args.threads, log=log)
    print(json.dumps(report, indent=2) if args.json else bench.format_report(report))
    return 0
