"""``fastmlp train``: train a model, write it, its history and its learning curves.

Nothing a run finished is lost: Ctrl-C, SIGTERM and SIGHUP stop after the last completed
epoch and write the results (exit 130, 143, 129); a divergence writes the last good epoch
(exit 3); a checkpoint that cannot be written is warned about and training goes on; a
folder that already holds a run is refused unless ``--resume`` or ``--overwrite`` says what
to do with it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._arguments import (Formatter, activation, add_data_arguments, add_network_arguments,
                         add_optimizer_hyperparameters, check_labels, int_at_least, load_data,
                         nonneg_float, penalties, writable_folder)

CHECKPOINT = "checkpoint.npz"
#: what a run writes into --out
RESULTS = ("model.npz", "history.json", "learning-curves.png")
#: the settings a checkpoint must share with the command that resumes it: everything that
#: changes the weights (the backend only changes rounding: a warning, not a refusal)
RESUME_SETTINGS = ("data_sha256", "n_examples", "hidden", "activation", "init", "epochs",
                   "batch_size", "lr", "l1", "l2", "dtype", "seed", "optimizer", "schedule",
                   "early_stopping")
#: exit statuses
DIVERGED = 3
INTERRUPTED = 130


def add(sub):
    from ..backends import BACKENDS, fastest_backend
    from ..optim import OPTIMIZERS
    from ..schedules import SCHEDULES
    from ..training import MONITORS

    p = sub.add_parser(
        "train", formatter_class=Formatter,
        help="train a model and write it, its history and its learning curves",
        description="Train an MLP by minibatch steps. The data is shuffled and split 70/15/15 "
                    "into train/valid/test, standardized with the train split's statistics. "
                    "Writes OUT/model.npz, OUT/history.json and OUT/learning-curves.png. "
                    "Ctrl-C, SIGTERM and SIGHUP stop after the last completed epoch and write "
                    "them; with --checkpoint-every, a killed run continues with --resume and "
                    "ends with the same weights as an uninterrupted one.")
    add_data_arguments(p)
    add_network_arguments(p)
    p.add_argument("--backend", choices=BACKENDS, default=fastest_backend(),
                   help="computation backend: loop (the readable reference), numpy, numba; "
                        "the default is the fastest one installed")
    p.add_argument("--epochs", type=int_at_least(1), default=30,
                   help="epochs to train (the schedules spread over them)")
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="minibatch size K")
    p.add_argument("--lr", type=nonneg_float, default=0.1,
                   help="learning rate (the schedule's base rate)")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                   help="update rule (PyTorch's definitions)")
    add_optimizer_hyperparameters(p)
    p.add_argument("--schedule", choices=tuple(SCHEDULES), default="seed",
                   help="learning rate per epoch e of E: seed lr/(1+4e/E), constant, cosine "
                        "lr(1+cos(pi e/E))/2, plateau (divided by 5 after 5 epochs without "
                        "improvement of the valid loss)")
    p.add_argument("--early-stopping", action="store_true",
                   help="stop after --patience epochs without improvement of --monitor on the "
                        "valid split, and keep the best epoch's weights")
    p.add_argument("--patience", type=int_at_least(1), default=10,
                   help="epochs without improvement before early stopping")
    p.add_argument("--tol", type=nonneg_float, default=1e-4,
                   help="an epoch improves when the monitored value drops by more than this")
    p.add_argument("--monitor", choices=MONITORS, default="valid_loss",
                   help="what early stopping watches")
    p.add_argument("--l1", type=nonneg_float, nargs="+", default=[0.0], metavar="L",
                   help="L1 penalty: one value for every weight matrix, or one per matrix "
                        "(W1 W2 ...)")
    p.add_argument("--l2", type=nonneg_float, nargs="+", default=[0.0], metavar="L",
                   help="L2 penalty: one value for every weight matrix, or one per matrix "
                        "(W1 W2 ...)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point type of the weights and of every computation")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seeds the split, the initialization and the shuffles")
    p.add_argument("--eval-train", action="store_true",
                   help="re-evaluate the whole train split after each epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # "%(default).0s" prints nothing but tells the defaults formatter not to add "(default: None)"
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for model.npz, history.json, learning-curves.png "
                        "(without it, nothing is written)%(default).0s")
    p.add_argument("--checkpoint-every", type=int_at_least(1), default=None, metavar="N",
                   help=f"every N epochs, write OUT/{CHECKPOINT} (the model, the optimizer's "
                        "state, the epoch reached, the history and the settings), atomically")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run saved in OUT/{CHECKPOINT}; the data and the "
                        "hyper-parameters must be those of the checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an OUT that already holds one (its files are "
                        "replaced)")
    p.set_defaults(run=run)


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


def _optimizer(args):
    from .. import optim

    return {"sgd": lambda: optim.SGD(), "momentum": lambda: optim.Momentum(args.momentum),
            "nesterov": lambda: optim.Nesterov(args.momentum),
            "adam": lambda: optim.Adam(args.beta1, args.beta2, args.eps)}[args.optimizer]()


def _check_out(args):
    """The folder must be writable, and a folder holding a run is only reused on purpose."""
    if (args.resume or args.checkpoint_every) and not args.out:
        raise ValueError("--resume and --checkpoint-every need --out DIR, the folder that "
                         f"holds {CHECKPOINT}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: "
                         "give one of them")
    if not args.out:
        return None
    out = writable_folder(args.out)
    for name in (CHECKPOINT, *RESULTS):
        path = out / name
        if os.path.lexists(path) and not path.is_file():
            raise ValueError(f"--out {args.out!r}: {path} exists and is not a regular file; "
                             "fastmlp will not replace it")
    existing = [name for name in (CHECKPOINT, *RESULTS) if (out / name).exists()]
    if existing and not (args.resume or args.overwrite):
        raise ValueError(
            f"--out {args.out!r} already holds a run ({', '.join(existing)}). Continue it with "
            "--resume (from its checkpoint), start over with --overwrite, or choose another "
            "--out.")
    return out


def run(args):
    from .._signals import Terminated, stop_signals_as_interrupts
    from ..model import MLP
    from ..training import DivergenceError, train

    out = _check_out(args)
    l1, l2 = penalties(args.l1, "--l1"), penalties(args.l2, "--l2")
    optimizer = _optimizer(args)
    split = load_data(args.data, args.seed, args.data_dir)
    X, y = split.train
    n_classes = check_labels(split, args.data)
    layers = (X.shape[1], *args.hidden, n_classes)
    act = activation(args.activation)
    # the model first: its checks name the bad argument before any checkpoint is read
    model = MLP(layers, activation=act, l1=l1, l2=l2, dtype=args.dtype, seed=args.seed,
                init=args.init)
    checkpoint = out / CHECKPOINT if out is not None else None
    settings = {"data": args.data, "data_sha256": _fingerprint(split),
                "n_examples": sum(len(part[1]) for _, part in split.parts()),
                "hidden": list(args.hidden), "activation": list(model.activations),
                "init": args.init, "epochs": args.epochs, "batch_size": args.batch_size,
                "lr": args.lr, "l1": list(model.l1), "l2": list(model.l2), "dtype": args.dtype,
                "seed": args.seed, "optimizer": optimizer.to_dict(), "schedule": args.schedule,
                "early_stopping": ({"patience": args.patience, "tol": args.tol,
                                    "monitor": args.monitor} if args.early_stopping else None),
                "backend": args.backend}
    history = None
    if args.resume:
        model, history = _resume(checkpoint, settings, model)
        print(f"fastmlp: resuming {checkpoint} after epoch {len(history)} of {args.epochs}",
              file=sys.stderr)

    saver = None
    if args.checkpoint_every:
        from ..checkpoint import CheckpointWriter

        saver = CheckpointWriter(checkpoint, model, settings, args.checkpoint_every, args.epochs)

    print(f"fastmlp: {model} on {args.data}: "
          + ", ".join(f"{name} {len(part[1])}" for name, part in split.parts())
          + f"; backend {args.backend}, optimizer {optimizer!r}", file=sys.stderr)
    status, signum = 0, None
    with stop_signals_as_interrupts():
        try:
            history = train(model, split, backend=args.backend, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, optimizer=optimizer,
                            schedule=args.schedule, early_stopping=args.early_stopping,
                            patience=args.patience, tol=args.tol, monitor=args.monitor,
                            seed=args.seed, progress=not args.no_progress,
                            eval_train=args.eval_train,
                            start_epoch=len(history) if history else 0, history=history,
                            on_epoch_end=saver)
        except DivergenceError as exc:
            print(f"fastmlp: {exc}", file=sys.stderr)
            history, status = exc.history, DIVERGED
        except Terminated as exc:       # outside train's own handling (reading the data ...)
            signum = exc.signum
            raise
        try:
            if history.interrupted:
                signum = history.interrupted_by
            return _finish(args, out, model, history, saver, status, signum)
        except KeyboardInterrupt:
            # a second signal while the results are written: they are written atomically,
            # so each file is whole or untouched; say so rather than print a traceback
            print("fastmlp: interrupted again while writing the results; files already "
                  "written are complete", file=sys.stderr)
            return INTERRUPTED


def _resume(path, settings, model):
    """``(model, history)`` from a checkpoint made with the same settings, or a clear error."""
    from ..checkpoint import load_checkpoint
    from ..model import ModelFileError

    if not path.is_file():
        raise FileNotFoundError(f"--resume: there is no checkpoint {str(path)!r} to resume "
                                "from (write one with --checkpoint-every N)")
    loaded, history, saved = load_checkpoint(path)
    if not isinstance(saved, dict) or not all(key in saved for key in RESUME_SETTINGS):
        raise ModelFileError(f"{str(path)!r} is not a valid fastmlp checkpoint: its settings "
                             "are missing or incomplete")
    differences = [f"{key}: checkpoint {saved[key]!r}, now {settings[key]!r}"
                   for key in RESUME_SETTINGS if saved[key] != settings[key]]
    if differences:
        raise ValueError(
            f"--resume: {str(path)!r} was made with other data or hyper-parameters ("
            + "; ".join(differences) + "). Resume with the same command as the checkpointed "
            "run, or start a new run with --overwrite.")
    if loaded.describe() != model.describe():
        raise ModelFileError(f"{str(path)!r}: its model {loaded} does not match its settings")
    if len(history) > settings["epochs"]:
        raise ModelFileError(f"{str(path)!r}: it holds {len(history)} epochs of a run of "
                             f"{settings['epochs']}")
    if saved.get("backend") != settings["backend"]:
        print(f"fastmlp: warning: the checkpoint was trained with backend "
              f"{saved.get('backend')!r}, resumed with {settings['backend']!r}: backends agree "
              "to rounding, so the weights will not be bit-identical to an uninterrupted run",
              file=sys.stderr)
    return loaded, history


def _finish(args, out, model, history, saver, status, signum):
    import signal

    if history.interrupted:
        name = "Ctrl-C" if signum in (None, signal.SIGINT) else signal.Signals(signum).name
        message = (f"fastmlp: interrupted ({name}); keeping the {len(history)} completed "
                   "epoch(s)")
        if saver is not None:
            saver.write(history)
            message += "; continue with the same command and --resume"
        print(message, file=sys.stderr)
        status = 128 + signum if signum else INTERRUPTED   # 130, 143, 129: as the shell
    print(history.table())
    if history.rows:
        # the metrics of the weights the model holds: the best epoch's after early stopping
        kept = history.best_epoch if history.stopped_early else len(history) - 1
        row = history.rows[kept]
        summary = [f"train error {row['train_error']:.2f}%"]
        for name in ("valid", "test"):
            if row.get(f"{name}_error") is not None:
                summary.append(f"{name} error {row[f'{name}_error']:.2f}% "
                               f"(accuracy {100 - row[f'{name}_error']:.2f}%)")
        seconds = sum(history["seconds"])
        print(f"after {len(history)} epochs"
              + (f", the model of epoch {kept + 1}" if kept != len(history) - 1 else "")
              + ": " + ", ".join(summary)
              + f"; training took {seconds:.2f} s ({seconds / len(history):.3f} s per epoch)"
              + (f", compiling {history.compile_seconds:.1f} s more"
                 if history.compile_seconds >= 0.5 else ""))
    if out is not None:
        try:
            write_run(out, model, history)
        except OSError as exc:  # a full disk, say: say so plainly (earlier files are intact)
            print(f"fastmlp: error: could not write the results to {out}: {exc}",
                  file=sys.stderr)
            return 1
    if saver is not None and saver.failures:
        print(f"fastmlp: warning: {saver.failures} checkpoint write(s) failed (see above); "
              "the results above are complete", file=sys.stderr)
    return status


def write_run(out, model, history):
    from ..plots import learning_curves

    out = Path(out)
    model.save(out / "model.npz")
    history.to_json(out / "history.json")
    if history.rows:
        s = history.settings
        title = (f"layers {tuple(s['layers'])}, {'/'.join(s['activations']) or 'no hidden'}, "
                 f"K={s['batch_size']}, {s['optimizer']['name']} lr={s['lr']}, "
                 f"{s['dtype']}, backend {s['backend']}")
        learning_curves(history, out / "learning-curves.png", title=title)
    print(f"wrote {out}/model.npz, history.json" + (", learning-curves.png" if history.rows else ""),
          file=sys.stderr)
