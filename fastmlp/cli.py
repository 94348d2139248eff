"""The ``fastmlp`` command line.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its arguments
and ``_run_<name>(args)`` does the work. ``main`` dispatches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DESCRIPTION = """\
Train small multilayer perceptrons on the CPU, from first principles and fast.
The model is input -> ReLU hidden layer -> softmax, trained by minibatch SGD on the
cross-entropy plus elastic-net penalties, with hand-written gradients."""

EPILOG = """\
examples:
  fastmlp train --data fashion-mnist --out runs/fmnist
  fastmlp train --data circles --hidden 20 --batch-size 16 --lr 0.5 --epochs 30 --out runs/circles
  fastmlp train --data my-points.txt --out runs/mine   (rows: x1 x2 ... label)

Run 'fastmlp COMMAND --help' for a command's options."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _penalty(values, name):
    """One value (both weight matrices) or two (W1, W2)."""
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2:
        return tuple(values)
    raise ValueError(f"{name} takes one value (both W1 and W2) or two (W1 W2), "
                     f"got {len(values)}")


def load_data(name, seed, data_dir=None):
    """``--data`` -> a Split: "fashion-mnist", "circles" or the path of a text file."""
    from . import datasets

    if name == "fashion-mnist":
        X, y = datasets.fashion_mnist(data_dir)
    elif name == "circles":
        X, y = datasets.circles(n=1100, seed=seed)
    elif os.path.isfile(name):
        X, y = datasets.load_text(name)
    else:
        raise ValueError(f"--data {name!r} is neither 'fashion-mnist', 'circles' "
                         "nor an existing file of rows 'x1 x2 ... label'")
    return datasets.split(X, y, seed=seed)


# -- train -------------------------------------------------------------------------------------
def _add_train(sub):
    from .backends import BACKENDS, fastest_backend

    p = sub.add_parser(
        "train", formatter_class=_Formatter,
        help="train a model and write it, its history and its learning curves",
        description="Train an MLP by minibatch SGD. The data is shuffled and split 70/15/15 "
                    "into train/valid/test, standardized with the train split's statistics. "
                    "Writes OUT/model.npz, OUT/history.json and OUT/learning-curves.png.")
    p.add_argument("--data", default="fashion-mnist",
                   help="'fashion-mnist', 'circles' (two-circles, 1100 points) or a text file "
                        "of rows 'x1 x2 ... label'")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, "
                        "then /usr/share/datasets/fashion-mnist)")
    p.add_argument("--hidden", type=int, default=64, help="hidden units")
    p.add_argument("--backend", choices=BACKENDS, default=fastest_backend(),
                   help="computation backend (default: the fastest available)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size K")
    p.add_argument("--lr", type=float, default=0.1,
                   help="learning rate at epoch 0; epoch e uses lr / (1 + 4e/epochs)")
    p.add_argument("--l1", type=float, nargs="+", default=[0.0], metavar="L",
                   help="L1 penalty: one value for both weight matrices, or two (W1 W2)")
    p.add_argument("--l2", type=float, nargs="+", default=[0.0], metavar="L",
                   help="L2 penalty: one value for both weight matrices, or two (W1 W2)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the split, the initialization and the shuffles")
    p.add_argument("--eval-train", action="store_true",
                   help="re-evaluate the whole train split after each epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for model.npz, history.json, learning-curves.png "
                        "(default: nothing is written)")
    p.set_defaults(run=_run_train)


def _run_train(args):
    from .model import MLP
    from .training import DivergenceError, train

    split = load_data(args.data, args.seed, args.data_dir)
    X, y = split.train
    n_classes = int(max(int(part[1].max()) for _, part in split.parts())) + 1
    model = MLP((X.shape[1], args.hidden, n_classes), l1=_penalty(args.l1, "--l1"),
                l2=_penalty(args.l2, "--l2"), dtype=args.dtype, seed=args.seed)
    print(f"fastmlp: {model} on {args.data}: "
          + ", ".join(f"{name} {len(part[1])}" for name, part in split.parts())
          + f"; backend {args.backend}", file=sys.stderr)
    status = 0
    try:
        history = train(model, split, backend=args.backend, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        progress=not args.no_progress, eval_train=args.eval_train)
    except DivergenceError as exc:
        print(f"fastmlp: {exc}", file=sys.stderr)
        history, status = exc.history, 3
    if history.interrupted:
        print(f"fastmlp: interrupted; keeping the {len(history)} completed epoch(s)", file=sys.stderr)
        status = 130
    print(history.table())
    if history.rows:
        last = history.last
        summary = [f"train error {last['train_error']:.2f}%"]
        for name in ("valid", "test"):
            if last.get(f"{name}_error") is not None:
                summary.append(f"{name} error {last[f'{name}_error']:.2f}% "
                               f"(accuracy {100 - last[f'{name}_error']:.2f}%)")
        seconds = sum(history["seconds"])
        print(f"after {len(history)} epochs: " + ", ".join(summary)
              + f"; training took {seconds:.2f} s ({seconds / len(history):.3f} s per epoch)")
    if args.out:
        _write_run(args.out, model, history)
    return status


def _write_run(out, model, history):
    from .plots import learning_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.npz")
    history.to_json(out / "history.json")
    if history.rows:
        s = history.settings
        title = (f"layers {tuple(s['layers'])}, K={s['batch_size']}, lr={s['lr']}, "
                 f"l1={tuple(s['l1'])}, l2={tuple(s['l2'])}, {s['dtype']}, backend {s['backend']}")
        learning_curves(history, out / "learning-curves.png", title=title)
    print(f"wrote {out}/model.npz, history.json" + (", learning-curves.png" if history.rows else ""),
          file=sys.stderr)


# -- info --------------------------------------------------------------------------------------
def _add_info(sub):
    p = sub.add_parser("info", help="print the version, backends and data location as JSON",
                       description="Print what fastmlp finds on this machine, as JSON.")
    p.set_defaults(run=_run_info)


def _run_info(args):
    import numpy as np

    from . import __version__, datasets
    from .backends import BACKENDS, fastest_backend

    folder = datasets.fashion_mnist_dir()
    print(json.dumps({
        "fastmlp": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
        "backends": list(BACKENDS), "fastest_backend": fastest_backend(),
        "fashion_mnist": str(folder) if folder else None,
    }, indent=2))
    return 0


# -- bench -------------------------------------------------------------------------------------
def _add_bench(sub):
    p = sub.add_parser(
        "bench", formatter_class=_Formatter,
        help="time one training epoch on every backend and peer library; or check speed ratios",
        description="Time one epoch of minibatch SGD (layers (784, 64, 10)) on every backend and "
                    "on the peer libraries installed (PyTorch, JAX, scikit-learn), best of "
                    "several interleaved rounds, and print seconds, examples/s, speed-ups, "
                    "GFLOP/s and the fraction of the machine's large matrix-product rate. "
                    "With --guard FILE: measure the speed ratios FILE names and exit 1 when one "
                    "is below its minimum (the CI regression guard).")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size K")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--examples", type=int, default=49_000, help="examples in the epoch")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per case (the best counts)")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME",
                   help="backends to time (default: all available)")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the peer libraries that are installed")
    p.add_argument("--data", choices=("auto", "fashion-mnist", "synthetic"), default="auto",
                   help="Fashion-MNIST when installed (auto), or random data of its shape")
    p.add_argument("--gemm", action=argparse.BooleanOptionalAction, default=True,
                   help="measure the machine's large float32 matrix-product rate (a few seconds)")
    p.add_argument("--threads", type=int, default=None,
                   help="at most this many threads in BLAS, OpenMP, numba and the peers "
                        "(default: each library's own, all cores)")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    p.add_argument("--guard", metavar="FILE", default=None,
                   help="check the minimum speed-ups in FILE (e.g. benchmarks/thresholds.json); "
                        "the workload then comes from FILE and the other options are ignored")
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    from . import bench

    log = lambda line: print(f"fastmlp bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    if args.guard:
        result = bench.run_guard(args.guard, log=log)
        print("\n".join(result.lines))
        print("guard: " + ("passed" if result.ok else "FAILED"))
        return 0 if result.ok else 1
    report = bench.run_bench(args.backends, None if args.peers else (), args.batch_size,
                             args.dtype, args.examples, args.rounds, args.data,
                             gemm=args.gemm, threads=args.threads, log=log)
    print(json.dumps(report, indent=2) if args.json else bench.format_report(report))
    return 0


# -- main --------------------------------------------------------------------------------------
_COMMANDS = (_add_train, _add_info, _add_bench)


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(prog="fastmlp", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
