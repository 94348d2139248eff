"""What the commands share: the help formatter, argument types, data loading."""

from __future__ import annotations

import argparse
import math
import os


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def int_at_least(minimum):
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


def _finite_float(text, bound, allowed):
    """``text`` as a float that is finite and ``allowed`` ("bound" is ">= 0" or "> 0")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number {bound}, got {text!r}")
    if not (allowed(value) and value != math.inf):  # the comparisons also refuse nan
        raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
    return value


def nonneg_float(text):
    return _finite_float(text, ">= 0", lambda value: value >= 0)


def positive_float(text):
    return _finite_float(text, "> 0", lambda value: value > 0)


def unit_interval(text):
    """A number in [0, 1)."""
    value = nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def penalties(values, name):
    """``--l1``/``--l2``: one value for every weight matrix, or one per weight matrix."""
    return values[0] if len(values) == 1 else tuple(values)


def add_network_arguments(p, hidden_default=(64,)):
    """The network's shape: ``--hidden``, ``--activation``, ``--init``."""
    from ..activations import NAMES
    from ..model import INITS

    p.add_argument("--hidden", type=int_at_least(1), nargs="*", default=list(hidden_default),
                   metavar="N",
                   help="width of each hidden layer, first to last (e.g. --hidden 256 128); "
                        "--hidden alone for none (softmax regression)")
    p.add_argument("--activation", nargs="+", default=["relu"], metavar="NAME",
                   help=f"activation of the hidden layers ({', '.join(NAMES)}): one for all, "
                        "or one per hidden layer")
    p.add_argument("--init", choices=INITS, default="uniform",
                   help="weight initialization: uniform in ±1/sqrt(fan_in), or scikit-learn's "
                        "glorot")


def add_data_arguments(p):
    """Where the examples come from: ``--data``, ``--data-dir``."""
    p.add_argument("--data", default="fashion-mnist",
                   help="'fashion-mnist', 'circles' (two-circles, 1100 points) or a text file "
                        "of rows 'x1 x2 ... label' (labels 0, 1, ..., m-1)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the Fashion-MNIST IDX files (default: "
                        "$FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)"
                        "%(default).0s")


def add_optimizer_hyperparameters(p):
    """The hyper-parameters of the update rules: ``--momentum``, ``--beta1``, ``--beta2``,
    ``--eps``."""
    p.add_argument("--momentum", type=nonneg_float, default=0.9,
                   help="momentum of --optimizer momentum / nesterov")
    p.add_argument("--beta1", type=unit_interval, default=0.9, help="Adam's beta1")
    p.add_argument("--beta2", type=unit_interval, default=0.999, help="Adam's beta2")
    p.add_argument("--eps", type=positive_float, default=1e-8, help="Adam's epsilon")


def activation(values):
    return values[0] if len(values) == 1 else tuple(values)


def load_data(name, seed, data_dir=None, argument="--data"):
    """``--data`` -> a Split: "fashion-mnist", "circles" or the path of a text file."""
    from .. import datasets

    if name == "fashion-mnist":
        X, y = datasets.fashion_mnist(data_dir)
    elif name == "circles":
        X, y = datasets.circles(n=1100, seed=seed)
    elif os.path.isfile(name):
        X, y = datasets.load_text(name)
    else:
        raise ValueError(f"{argument} {name!r} is neither 'fashion-mnist', 'circles' "
                         "nor an existing file of rows 'x1 x2 ... label'")
    return datasets.split(X, y, seed=seed)


def check_labels(split, data):
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


def writable_folder(path, argument="--out"):
    """Create ``path`` if needed and check that files can be written in it, now rather than
    after the work (a read-only folder, a file in the way, a full disk's permissions)."""
    from pathlib import Path

    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"{argument} {str(path)!r} exists and is not a folder")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{argument} {str(path)!r}: cannot create that folder ({exc})") from None
    if not os.path.isdir(path):
        raise ValueError(f"{argument} {str(path)!r} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{argument} {str(path)!r}: that folder is not writable")
    return Path(path)
