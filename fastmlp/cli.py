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
CHECKPOINT = "checkpoint.npz"
#: the settings a checkpoint must share with the command that resumes it: everything that
#: changes the weights (the backend only changes rounding: a warning, not a refusal)
RESUME_SETTINGS = ("data_sha256", "n_examples", "hidden", "epochs", "batch_size", "lr",
                   "l1", "l2", "dtype", "seed")


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _nonneg_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    if not (value >= 0 and value != float("inf")):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _add_train(sub):
    from .backends import BACKENDS, fastest_backend

    p = sub.add_parser(
        "train", formatter_class=_Formatter,
        help="train a model and write it, its history and its learning curves",
        description="Train an MLP by minibatch SGD. The data is shuffled and split 70/15/15 "
                    "into train/valid/test, standardized with the train split's statistics. "
                    "Writes OUT/model.npz, OUT/history.json and OUT/learning-curves.png. "
                    "Ctrl-C stops after the last completed epoch and writes them; with "
                    "--checkpoint-every, a killed run continues with --resume and ends with "
                    "the same weights as an uninterrupted one.")
    p.add_argument("--data", default="fashion-mnist",
                   help="'fashion-mnist', 'circles' (two-circles, 1100 points) or a text file "
                        "of rows 'x1 x2 ... label' (labels 0, 1, ..., m-1)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, "
                        "then /usr/share/datasets/fashion-mnist)")
    p.add_argument("--hidden", type=_int_at_least(1), default=64, help="hidden units")
    p.add_argument("--backend", choices=BACKENDS, default=fastest_backend(),
                   help="computation backend (default: the fastest available)")
    p.add_argument("--epochs", type=_int_at_least(1), default=30)
    p.add_argument("--batch-size", type=_int_at_least(1), default=32, help="minibatch size K")
    p.add_argument("--lr", type=_nonneg_float, default=0.1,
                   help="learning rate at epoch 0; epoch e uses lr / (1 + 4e/epochs)")
    p.add_argument("--l1", type=_nonneg_float, nargs="+", default=[0.0], metavar="L",
                   help="L1 penalty: one value for both weight matrices, or two (W1 W2)")
    p.add_argument("--l2", type=_nonneg_float, nargs="+", default=[0.0], metavar="L",
                   help="L2 penalty: one value for both weight matrices, or two (W1 W2)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seeds the split, the initialization and the shuffles")
    p.add_argument("--eval-train", action="store_true",
                   help="re-evaluate the whole train split after each epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # "%(default).0s" prints nothing but tells the defaults formatter not to add "(default: None)"
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for model.npz, history.json, learning-curves.png "
                        "(without it, nothing is written)%(default).0s")
    p.add_argument("--checkpoint-every", type=_int_at_least(1), default=None, metavar="N",
                   help=f"every N epochs, write OUT/{CHECKPOINT} (the model, the epoch reached, "
                        "the history and the settings), atomically")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run saved in OUT/{CHECKPOINT}; the data and the "
                        "hyper-parameters must be those of the checkpoint")
    p.set_defaults(run=_run_train)


def _fingerprint(split):
    """SHA-256 of the split's arrays: the same data, split the same way, or not."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for name, (X, y) in split.parts():
        for a in (X, y):
            digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
            digest.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return digest.hexdigest()


def _check_labels(split, data):
    """Labels must be 0..m-1 with every class present: one missing is most often a typo
    (labels counted from 1) and a huge one would allocate a huge output layer."""
    import numpy as np

    labels = np.unique(np.concatenate([part[1] for _, part in split.parts()]))
    n_classes = int(labels[-1]) + 1
    if len(labels) != n_classes or n_classes < 2:
        missing = np.setdiff1d(np.arange(min(n_classes, 1000)), labels).tolist()
        raise ValueError(
            f"--data {data!r}: labels must be 0, 1, ..., m-1 with m >= 2 and every class "
            f"present; found {len(labels)} distinct label(s) from {labels[0]} to {labels[-1]}"
            + (f" (missing: {missing[:10]}{' ...' if len(missing) > 10 else ''})"
               if missing else ""))
    return n_classes


def _run_train(args):
    from .model import MLP
    from .training import DivergenceError, train

    if (args.resume or args.checkpoint_every) and not args.out:
        raise ValueError("--resume and --checkpoint-every need --out DIR, the folder that "
                         f"holds {CHECKPOINT}")
    l1, l2 = _penalty(args.l1, "--l1"), _penalty(args.l2, "--l2")
    if args.out:  # fail now rather than after training, when the results are written
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--out {args.out!r}: cannot create that folder ({exc})") from None
        if not os.access(args.out, os.W_OK):
            raise ValueError(f"--out {args.out!r}: that folder is not writable")
    split = load_data(args.data, args.seed, args.data_dir)
    X, y = split.train
    n_classes = _check_labels(split, args.data)
    checkpoint = Path(args.out) / CHECKPOINT if args.out else None
    settings = None
    if args.resume or args.checkpoint_every:
        settings = {"data": args.data, "data_sha256": _fingerprint(split),
                    "n_examples": sum(len(part[1]) for _, part in split.parts()),
                    "hidden": args.hidden, "epochs": args.epochs,
                    "batch_size": args.batch_size, "lr": args.lr, "l1": list(l1),
                    "l2": list(l2), "dtype": args.dtype, "seed": args.seed,
                    "backend": args.backend}
    if args.resume:
        layers = (X.shape[1], args.hidden, n_classes)
        model, history = _load_checkpoint(checkpoint, settings, layers)
        print(f"fastmlp: resuming {checkpoint} after epoch {len(history)} of {args.epochs}",
              file=sys.stderr)
    else:
        model = MLP((X.shape[1], args.hidden, n_classes), l1=l1, l2=l2, dtype=args.dtype,
                    seed=args.seed)
        history = None

    def checkpoint_every(epoch, history):
        if (epoch + 1) % args.checkpoint_every == 0 or epoch + 1 == args.epochs:
            _save_checkpoint(checkpoint, model, history, settings)

    print(f"fastmlp: {model} on {args.data}: "
          + ", ".join(f"{name} {len(part[1])}" for name, part in split.parts())
          + f"; backend {args.backend}", file=sys.stderr)
    status = 0
    try:
        history = train(model, split, backend=args.backend, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        progress=not args.no_progress, eval_train=args.eval_train,
                        start_epoch=len(history) if history else 0, history=history,
                        on_epoch_end=checkpoint_every if args.checkpoint_every else None)
    except DivergenceError as exc:
        print(f"fastmlp: {exc}", file=sys.stderr)
        history, status = exc.history, 3
    if history.interrupted:
        message = f"fastmlp: interrupted; keeping the {len(history)} completed epoch(s)"
        if settings is not None:
            _save_checkpoint(checkpoint, model, history, settings)
            message += "; continue with the same command and --resume"
        print(message, file=sys.stderr)
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
        try:
            _write_run(args.out, model, history)
        except OSError as exc:  # a full disk, say: say so plainly (earlier files are intact)
            print(f"fastmlp: error: could not write the results to {args.out}: {exc}",
                  file=sys.stderr)
            return 1
    return status


def _save_checkpoint(path, model, history, settings):
    """The model, the epochs done, the history and the settings, in one atomic file."""
    model.save(path, extra={"kind": "fastmlp-checkpoint", "epoch": len(history),
                            "history": history.to_dict(), "settings": settings})


def _load_checkpoint(path, settings, layers):
    """``(model, history)`` from a checkpoint made with the same settings, or a clear error."""
    from .model import MLP, ModelFileError
    from .training import History

    if not path.is_file():
        raise FileNotFoundError(f"--resume: there is no checkpoint {str(path)!r} to resume "
                                "from (write one with --checkpoint-every N)")
    model, extra = MLP.load(path, return_extra=True)
    try:
        if not isinstance(extra, dict) or extra.get("kind") != "fastmlp-checkpoint":
            raise ValueError("it is a model file, not a checkpoint")
        saved, epoch = extra["settings"], extra["epoch"]
        history = History.from_dict(extra["history"])
        if type(epoch) is not int or epoch != len(history) or not 0 <= epoch <= saved["epochs"]:
            raise ValueError(f"epoch {epoch!r} disagrees with its history of {len(history)} epochs")
        history.interrupted = False
        differences = [f"{key}: checkpoint {saved.get(key)!r}, now {settings[key]!r}"
                       for key in RESUME_SETTINGS if saved.get(key) != settings[key]]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r} is not a valid fastmlp checkpoint: {exc}") from None
    if differences:
        raise ValueError(
            f"--resume: {str(path)!r} was made with other data or hyper-parameters ("
            + "; ".join(differences) + "). Resume with the same command as the checkpointed "
            "run, or start a new run without --resume.")
    if model.layers != layers or model.dtype.name != settings["dtype"]:
        raise ModelFileError(f"{str(path)!r}: its model {model} does not match its settings")
    if saved.get("backend") != settings["backend"]:
        print(f"fastmlp: warning: the checkpoint was trained with backend "
              f"{saved.get('backend')!r}, resumed with {settings['backend']!r}: backends agree "
              "to rounding, so the weights will not be bit-identical to an uninterrupted run",
              file=sys.stderr)
    return model, history


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
_COMMANDS = (_add_train, _add_info, _add_gradcheck, _add_reproduce, _add_bench)


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
