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
  fastmlp gradcheck                                     (the seed's gradient checks)

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


# -- gradcheck ---------------------------------------------------------------------------------
def _add_gradcheck(sub):
    from .backends import BACKENDS
    from .gradcheck import SEED_CASE

    seed = SEED_CASE
    p = sub.add_parser(
        "gradcheck", formatter_class=_Formatter,
        help="check a backend's gradients by finite differences and against the loop backend",
        description="Compare a backend's hand-written gradients with centered finite "
                    "differences of J (in float64), per parameter, on the first K rows of the "
                    "train split, then with the loop backend's gradients on the same rows. "
                    "The defaults are the seed's checks: layers (2, 2, 2), all four penalties "
                    "0.001, float64, K = 1 and 10 on two circles. Exits with status 1 when a "
                    "check fails its tolerance. Every parameter is differenced (two "
                    "evaluations of J each): keep models small.")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="backend whose gradients are checked (compared with loop; loop itself "
                        "is compared with numpy)")
    p.add_argument("--data", default="circles",
                   help="'circles', 'fashion-mnist' or a text file of rows 'x1 x2 ... label'")
    p.add_argument("--data-dir", default=None, help="folder holding the Fashion-MNIST files")
    p.add_argument("--hidden", type=int, default=seed["hidden"], help="hidden units")
    p.add_argument("--batch-size", type=int, nargs="+", default=list(seed["batch_sizes"]),
                   metavar="K", help="one or more minibatch sizes (the first K train rows)")
    p.add_argument("--l1", type=float, nargs="+", default=[seed["l1"][0]], metavar="L",
                   help="L1 penalty: one value for both weight matrices, or two (W1 W2)")
    p.add_argument("--l2", type=float, nargs="+", default=[seed["l2"][0]], metavar="L",
                   help="L2 penalty: one value for both weight matrices, or two (W1 W2)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=seed["dtype"])
    p.add_argument("--seed", type=int, default=seed["seed"],
                   help="seeds the data split and the initial weights")
    p.add_argument("--eps", type=float, default=seed["eps"], help="finite-difference step")
    p.add_argument("--rtol", type=float, default=None,
                   help="tolerance of the finite-difference check (default 1e-6 in float64, "
                        "1e-4 in float32)")
    p.add_argument("--wrt-input", action="store_true", help="also check dJ/dX")
    p.set_defaults(run=_run_gradcheck)


def _run_gradcheck(args):
    from .gradcheck import cli_report

    data = None if args.data == "circles" else load_data(args.data, args.seed, args.data_dir).train
    text, failures = cli_report(
        backend=args.backend, data=data, source=f"{args.data}, train split, standardized",
        hidden=args.hidden, batch_sizes=tuple(args.batch_size),
        l1=_penalty(args.l1, "--l1"), l2=_penalty(args.l2, "--l2"), dtype=args.dtype,
        seed=args.seed, eps=args.eps, rtol=args.rtol, wrt_input=args.wrt_input)
    print(text)
    if failures:
        which = ", ".join(msg.split(":")[0] for msg in failures)
        print(f"fastmlp: {len(failures)} gradient check(s) failed their tolerance: {which}",
              file=sys.stderr)
        return 1
    return 0


# -- reproduce ---------------------------------------------------------------------------------
def _add_reproduce(sub):
    from .backends import BACKENDS, fastest_backend
    from .reproduce import EXPERIMENTS

    p = sub.add_parser(
        "reproduce", formatter_class=_Formatter,
        help="regenerate the seed's experiments as figures and numbers",
        description="Run the original study's experiments and write into OUT: gradcheck.txt, "
                    "boundaries-{hidden,epochs,weight-decay}.png (two circles), "
                    "learning-curves.png (Fashion-MNIST), speed.png (every backend) and "
                    "results.json (every number, the settings, the seeds and the machine). "
                    "Without Fashion-MNIST the experiments that need it are skipped, and said so.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figures and numbers")
    p.add_argument("--quick", action="store_true",
                   help="a short version for CI (a subset of Fashion-MNIST, 3 epochs, short "
                        "timings), stated in every title")
    p.add_argument("--backend", choices=BACKENDS, default=fastest_backend(),
                   help="backend of the trainings (the speed figure times every backend)")
    p.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=None, metavar="NAME",
                   help=f"run only these experiments ({', '.join(EXPERIMENTS)}); default all")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the data, splits, initializations and shuffles")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, "
                        "then /usr/share/datasets/fashion-mnist)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_reproduce)


def _run_reproduce(args):
    from .reproduce import reproduce

    results = reproduce(args.out, quick=args.quick, backend=args.backend, only=args.only,
                        seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress)
    done = ", ".join(results["experiments"]) or "nothing"
    print(f"fastmlp reproduce: wrote {done} into {args.out} (numbers in results.json) "
          f"in {results['wall_seconds']:.1f} s", file=sys.stderr)
    for name, why in results["skipped"].items():
        print(f"fastmlp reproduce: skipped {name}: {why}", file=sys.stderr)
    for name, why in results["failed"].items():
        print(f"fastmlp reproduce: FAILED {name}: {why}", file=sys.stderr)
    return 1 if results["failed"] else 0


# -- main --------------------------------------------------------------------------------------
_COMMANDS = (_add_train, _add_info, _add_gradcheck, _add_reproduce)


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
