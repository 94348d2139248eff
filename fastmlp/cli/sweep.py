"""``fastmlp sweep``: a grid search over networks, cross-validated, on a Dask cluster.

The search is scikit-learn's ``GridSearchCV`` over ``MLPClassifier``, its fits run by
joblib's dask backend on a local cluster of worker processes (or the cluster of
``--scheduler``, or none with ``--workers 0``): see :mod:`fastmlp.sweep`. Writes
OUT/results.csv and OUT/scores.png, atomically; an OUT that holds them is refused unless
``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ._arguments import (Formatter, add_data_arguments, check_labels, int_at_least,
                         load_data, nonneg_float, positive_float, writable_folder)

#: what a sweep writes into --out
RESULTS = ("results.csv", "scores.png")
#: swept option -> MLPClassifier parameter (every option that takes several values)
SWEPT = {"hidden": "hidden", "activation": "activation", "lr": "lr", "l2": "l2",
         "batch_size": "batch_size", "optimizer": "optimizer"}
#: MLPClassifier parameter -> the option of fastmlp train that sets it
TRAIN_OPTIONS = {"hidden": "--hidden", "activation": "--activation", "lr": "--lr",
                 "l1": "--l1", "l2": "--l2", "batch_size": "--batch-size",
                 "optimizer": "--optimizer", "epochs": "--epochs", "init": "--init",
                 "schedule": "--schedule", "dtype": "--dtype", "seed": "--seed"}

DESCRIPTION = """\
A grid search over networks: scikit-learn's GridSearchCV, its fits run by joblib's dask
backend on a local Dask cluster of worker processes (one per core), on the cluster of
--scheduler, or in this process (--workers 0). Prints the candidates ranked by their mean
cross-validated accuracy and the fastmlp train command of the best; writes OUT/results.csv
and OUT/scores.png (the mean accuracy against each swept parameter). Each fit runs its numba
kernels on its share of the cores (one thread per fit with one worker per core)."""

EPILOG = """\
Every option that takes several values is swept: the candidates are all their combinations,
each trained on --cv folds of the train split (70 % of --data; the valid and test splits
are not used) and scored by its mean accuracy on the held-out folds.

examples:
  fastmlp sweep --data fashion-mnist --hidden 64 128 "256 128" --activation relu tanh \\
                --lr 0.05 0.1 --cv 3 --epochs 10 --train-size 20000
      12 candidates x 3 folds = 36 fits on one worker process per core; the results in
      runs/sweep/results.csv and runs/sweep/scores.png
  fastmlp sweep --data circles --hidden 4 16 "16 16" --lr 0.1 0.5 --workers 0 --out runs/c
      the same without Dask: one fit after another in this process
  fastmlp sweep --data fashion-mnist --hidden 64 256 --scheduler tcp://head-node:8786
      on a cluster of your own: run 'dask scheduler' on head-node, then
      'dask worker tcp://head-node:8786' on every machine that should compute (each with
      fastmlp installed)"""


def hidden_widths(text):
    """A --hidden value: the widths of one network's hidden layers, "256 128" (or
    "256,128"), or "none" for no hidden layer."""
    if text.strip().lower() == "none":
        return ()
    parts = text.replace(",", " ").split()
    try:
        widths = tuple(int(p) for p in parts)
    except ValueError:
        widths = ()
    if not parts or not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"must be the widths of one network's hidden layers, e.g. 64 or \"256 128\" "
            f"(quoted), or none; got {text!r}")
    return widths


def add(sub):
    from ..activations import NAMES
    from ..backends import BACKENDS, fastest_backend
    from ..model import INITS
    from ..optim import OPTIMIZERS
    from ..schedules import SCHEDULES

    p = sub.add_parser(
        "sweep", formatter_class=Formatter, epilog=EPILOG,
        help="cross-validate a grid of networks, on a Dask cluster; rank them, write "
             "results.csv and a figure",
        description=DESCRIPTION)
    add_data_arguments(p)
    p.add_argument("--train-size", type=int_at_least(2), default=None, metavar="N",
                   help="cross-validate on the first N examples of the (shuffled) train "
                        "split only, for speed (default: all of it)%(default).0s")
    grid = p.add_argument_group("swept (several values: one candidate per combination)")
    grid.add_argument("--hidden", type=hidden_widths, nargs="+", default=None,
                      metavar="WIDTHS",
                      help="each value one network's hidden widths: 64, \"256 128\" (quoted), "
                           "none (default: 64)%(default).0s")
    grid.add_argument("--activation", choices=NAMES, nargs="+", default=["relu"],
                      metavar="NAME",
                      help=f"activation of every hidden layer ({', '.join(NAMES)})")
    grid.add_argument("--lr", type=nonneg_float, nargs="+", default=[0.1],
                      help="learning rate (the schedule's base rate)")
    grid.add_argument("--l2", type=nonneg_float, nargs="+", default=[0.0], metavar="L",
                      help="L2 penalty of every weight matrix")
    grid.add_argument("--batch-size", type=int_at_least(1), nargs="+", default=[32],
                      metavar="K", help="minibatch size")
    grid.add_argument("--optimizer", choices=tuple(OPTIMIZERS), nargs="+", default=["sgd"],
                      metavar="NAME",
                      help=f"update rule ({', '.join(OPTIMIZERS)}; PyTorch's definitions)")
    fixed = p.add_argument_group("fixed (one value for every candidate)")
    fixed.add_argument("--epochs", type=int_at_least(1), default=10, help="epochs of each fit")
    fixed.add_argument("--l1", type=nonneg_float, default=0.0, metavar="L",
                       help="L1 penalty of every weight matrix")
    fixed.add_argument("--init", choices=INITS, default="uniform",
                       help="weight initialization")
    fixed.add_argument("--schedule", choices=tuple(SCHEDULES), default="seed",
                       help="learning rate per epoch (see fastmlp train --help)")
    fixed.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="the networks' dtype")
    fixed.add_argument("--backend", choices=BACKENDS, default=fastest_backend(),
                       help="computation backend (the default is the fastest available)")
    fixed.add_argument("--seed", type=int_at_least(0), default=0,
                       help="seeds the split, the initializations and the shuffles")
    fixed.add_argument("--cv", type=int_at_least(2), default=3, metavar="K",
                       help="cross-validation folds (stratified)")
    where = p.add_argument_group("where the fits run")
    cluster = where.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int_at_least(0), default=None, metavar="N",
                         help="worker processes of a local Dask cluster, one thread each "
                              "(default: one per core); 0: no Dask, one fit after another "
                              "in this process%(default).0s")
    cluster.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="the address of a running Dask scheduler (tcp://host:8786) "
                              "whose workers run the fits%(default).0s")
    where.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                       help="how long to wait for --scheduler and its first worker")
    p.add_argument("--out", default=os.path.join("runs", "sweep"), metavar="DIR",
                   help="folder for results.csv and scores.png")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results.csv and scores.png of an earlier sweep in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _check_out(args):
    """The folder must be writable, and results are only replaced on purpose."""
    out = writable_folder(args.out)
    for name in RESULTS:
        path = out / name
        if os.path.lexists(path) and not path.is_file():
            raise ValueError(f"--out {args.out!r}: {path} exists and is not a regular file; "
                             "fastmlp will not replace it")
    existing = [name for name in RESULTS if (out / name).exists()]
    if existing and not args.overwrite:
        raise ValueError(f"--out {args.out!r} already holds a sweep ({', '.join(existing)}). "
                         "Replace it with --overwrite, or choose another --out.")
    return out


def _grid_and_base(args):
    values = {**vars(args), "hidden": args.hidden or [(64,)]}
    grid = {param: list(dict.fromkeys(values[option]))         # repeated values once
            for option, param in SWEPT.items()}
    base = {"epochs": args.epochs, "l1": args.l1, "init": args.init,
            "schedule": args.schedule, "dtype": args.dtype, "backend": args.backend,
            "random_state": args.seed}
    return grid, base


def _train_command(args, params, base):
    """The fastmlp train command of a candidate, on the same split (the settings that differ
    from fastmlp train's defaults)."""
    from . import build_parser
    from ..sweep import format_value

    defaults = vars(build_parser().parse_args(["train"]))
    words = ["fastmlp", "train", "--data", args.data]
    if args.data_dir:
        words += ["--data-dir", args.data_dir]
    settings = {**{k: base[k] for k in ("epochs", "l1", "init", "schedule", "dtype")},
                **params, "seed": args.seed}
    for name, value in settings.items():
        default = defaults[name]
        if isinstance(default, list):             # nargs: --hidden 64, --l1 0.0, ...
            default = tuple(default) if name == "hidden" else default[0]
        if value == default:
            continue
        if name == "hidden":                      # "--hidden" alone: no hidden layer
            words += ["--hidden", *(format_value(value).split() if value else [])]
        else:
            words += [TRAIN_OPTIONS[name], format_value(value)]
    words += ["--out", os.path.join("runs", "best")]
    return " ".join(shlex.quote(w) for w in words)


def _where(args):
    """A context manager yielding the Dask client (None: no Dask), and its description."""
    from contextlib import nullcontext

    if args.workers == 0:
        return nullcontext(None), "in this process, one fit after another"
    from .. import sweep

    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ImportError("fastmlp sweep on Dask needs dask.distributed: pip install "
                          "'fastmlp[dask]', or run without Dask: --workers 0") from None
    if args.scheduler:
        try:
            client = sweep.connect(args.scheduler, timeout=args.timeout)
        except ValueError as exc:
            raise ValueError(f"--scheduler: {exc}") from None
        n = len(client.scheduler_info()["workers"])
        return client, f"on the Dask cluster at {args.scheduler} ({_count(n, 'worker')})"
    n = args.workers or sweep.cores()
    return (sweep.local_cluster(n),
            f"on a local Dask cluster of {_count(n, 'worker process', 'es')}")


def _count(n, word, plural="s"):
    return f"{n} {word}{'' if n == 1 else plural}"


def run(args):
    from ..sweep import ClusterError

    try:
        return _run(args)
    except ClusterError as exc:                 # the cluster, not the command, is at fault
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2


def _run(args):
    from .. import sweep
    from ..plots import sweep_scores

    out = _check_out(args)
    grid, base = _grid_and_base(args)
    grid, n_candidates = sweep.check_grid(grid, base)     # a bad candidate: before any work
    split = load_data(args.data, args.seed, args.data_dir)
    check_labels(split, args.data)
    X, y = split.train
    if args.train_size is not None:
        if args.train_size > len(y):
            raise ValueError(f"--train-size {args.train_size} is more than the {len(y)} "
                             f"examples of the train split of {args.data!r}")
        X, y = X[:args.train_size], y[:args.train_size]
    context, where = _where(args)
    with context as client:
        prepared = sweep.prepare(client, args.backend, args.dtype, grid["batch_size"])
        threads = sorted({share for _, _, share in prepared if share is not None})
        print(f"fastmlp: {_count(n_candidates, 'candidate')} x {args.cv} folds = "
              f"{n_candidates * args.cv} fits on {len(y)} examples of {args.data}, {where}"
              + (f"; numba threads per fit: {'/'.join(map(str, threads))}" if threads else ""),
              file=sys.stderr)
        result = sweep.search(X, y, grid, base=base, cv=args.cv, client=client,
                              progress=not args.no_progress)
    print(result.table())
    best = result.rows[0]
    print(f"{n_candidates * args.cv} fits in {result.seconds:.1f} s. The best, to train on "
          f"the whole train split and see its test error:\n  "
          f"{_train_command(args, best['params'], base)}")
    title = (f"fastmlp sweep on {args.data}: {len(y)} examples, {args.cv}-fold "
             f"cross-validation, {args.epochs} epochs")
    try:
        result.write_csv(out / "results.csv")
        sweep_scores(result.rows, result.grid, out / "scores.png", title=title)
    except OSError as exc:
        print(f"fastmlp: error: could not write the results to {out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}/results.csv, scores.png", file=sys.stderr)
    return 0
