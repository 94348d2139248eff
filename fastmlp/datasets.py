"""Data: Fashion-MNIST from its IDX files, the two-circles problem, text files, and splits."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _aligned
from . import _validation as v

#: where Debian's ``dataset-fashion-mnist`` package puts the files
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "FASHION_MNIST_DIR"

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# IDX element-type codes (third byte of the magic number)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataNotFoundError(FileNotFoundError):
    """The Fashion-MNIST files are not installed where fastmlp looks."""


def read_idx(path):
    """Read one IDX file (``.gz`` or not) into an array of its stored shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number {data[:4]!r})")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{str(path)!r} is truncated: its header is incomplete")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{str(path)!r} is truncated or corrupt: the header announces shape {shape} "
            f"({expected} bytes of data) but the file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_file(folder, stem):
    for name in (stem + ".gz", stem):
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_dir(path=None):
    """The first folder holding all four Fashion-MNIST files: ``path``, ``$FASHION_MNIST_DIR``,
    then ``/usr/share/datasets/fashion-mnist/``; None when none has them."""
    for folder in (path, os.environ.get(ENV_VAR), SYSTEM_DIR):
        if folder and all(_find_file(folder, stem) for stem in FASHION_FILES.values()):
            return Path(folder)
    return None


def fashion_mnist(path=None):
    """Fashion-MNIST's 70,000 images (60,000 train + 10,000 test files, concatenated).

    Returns
    -------
    X : float32 array (70000, 784), pixels divided by 255 (in [0, 1])
    y : int64 array (70000,), labels 0..9 (see ``FASHION_CLASSES``)
    """
    folder = fashion_mnist_dir(path)
    if folder is None:
        looked = [str(p) for p in (path, os.environ.get(ENV_VAR), SYSTEM_DIR) if p]
        raise DataNotFoundError(
            "Fashion-MNIST not found (looked in: " + ", ".join(looked) + "). Install it with "
            "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four IDX "
            f"files ({', '.join(s + '.gz' for s in FASHION_FILES.values())}) in a folder and "
            f"set {ENV_VAR} to it."
        )
    parts = {key: read_idx(_find_file(folder, stem)) for key, stem in FASHION_FILES.items()}
    images = np.concatenate([parts["train_images"], parts["test_images"]])
    labels = np.concatenate([parts["train_labels"], parts["test_labels"]])
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"Fashion-MNIST files in {folder} have unexpected shapes "
                         f"{images.shape} and {labels.shape}")
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X *= np.float32(1.0 / 255.0)
    return X, labels.astype(np.int64)


def circles(n=1000, noise=0.08, seed=0, factor=0.5):
    """The two-circles problem: class 0 on a disc's rim of radius ``factor``, class 1 on the
    unit circle around it, with Gaussian noise of standard deviation ``noise``.

    Returns ``X`` float64 ``(n, 2)`` and ``y`` int64 ``(n,)`` (balanced classes), drawn from a
    generator seeded with ``seed``.
    """
    n = v.check_int(n, "n", minimum=2)
    noise = v.check_nonneg_real(noise, "noise")
    seed = v.check_seed(seed)
    factor = v.check_nonneg_real(factor, "factor", allow_zero=False)
    if factor >= 1:
        raise ValueError(f"factor must be in (0, 1) (inner radius / outer radius), got {factor}")
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % 2
    radius = np.where(y == 0, factor, 1.0)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    X += rng.normal(0.0, noise, size=X.shape)
    order = rng.permutation(n)
    return X[order], y[order]


def load_text(path):
    """Read whitespace-separated rows ``x1 x2 ... label`` (the seed's ``cercles.txt`` format).

    Returns ``X`` float64 ``(n, columns - 1)`` and ``y`` int64 ``(n,)``.
    """
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: expected rows of numbers 'x1 x2 ... label': {exc}") from None
    if table.shape[0] == 0:
        raise ValueError(f"{str(path)!r} holds no rows")
    if table.shape[1] < 2:
        raise ValueError(f"{str(path)!r}: rows need at least one feature and a label, "
                         f"got {table.shape[1]} column(s)")
    X = v.check_X(table[:, :-1], f"features of {str(path)!r}")
    y = v.check_y(table[:, -1], f"labels (last column) of {str(path)!r}")
    return X, y


@dataclass(frozen=True)
class Split:
    """Train, valid and test parts, each ``(X, y)``; ``mean`` and ``std`` of the standardization
    (None when not standardized). ``valid`` and ``test`` may be None."""

    train: tuple
    valid: tuple | None = None
    test: tuple | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def parts(self):
        """``[(name, (X, y)), ...]`` for the parts present."""
        return [(name, part) for name, part in
                (("train", self.train), ("valid", self.valid), ("test", self.test))
                if part is not None]


def split(X, y, fractions=(0.7, 0.15, 0.15), seed=0, standardize=True):
    """Shuffle, cut into train/valid/test, then standardize with the train part's statistics.

    A feature that is constant on the train part is centred but not scaled (its std is
    taken as 1), so it never produces NaN. ``X`` keeps its float dtype (float32 stays
    float32; integer input becomes float64).
    """
    X = v.check_X(X, "X")
    y = v.check_y(y, "y", n_examples=X.shape[0])
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__len__") or len(fractions) != 3:
        raise TypeError(f"fractions must be (train, valid, test), got {fractions!r}")
    fr = [v.check_nonneg_real(f, f"fractions[{i}]") for i, f in enumerate(fractions)]
    if abs(sum(fr) - 1.0) > 1e-9:
        raise ValueError(f"fractions must add up to 1, got {tuple(fractions)} (sum {sum(fr)})")
    n = X.shape[0]
    n_train = int(round(fr[0] * n))
    n_valid = int(round(fr[1] * n))
    if n_train < 1:
        raise ValueError(f"fractions[0]={fr[0]} leaves no training example out of {n}")
    n_valid = min(n_valid, n - n_train)
    order = np.random.default_rng(v.check_seed(seed)).permutation(n)
    cuts = np.split(order, [n_train, n_train + n_valid])
    mean = std = None
    if standardize:
        Xtr = X[cuts[0]].astype(np.float64)
        mean = Xtr.mean(axis=0)
        std = Xtr.std(axis=0)
        std[std == 0] = 1.0
    parts = []
    for idx in cuts:
        if len(idx) == 0:
            parts.append(None)
            continue
        Xp = X[idx]
        if standardize:
            Xp = ((Xp - mean) / std).astype(X.dtype)
        parts.append((_aligned.aligned(Xp), y[idx]))
    return Split(parts[0], parts[1], parts[2], mean, std)


def holdout(X, y, fraction=0.1, seed=0):
    """Set ``fraction`` of the examples aside for validation, stratified by class.

    Each class keeps the same share in both parts (rounded; every class keeps at least one
    example on the training side, and at least one example is set aside), drawn from a
    generator seeded with ``seed``. Returns ``((X_train, y_train), (X_valid, y_valid))``, rows in their original
    order within each part.
    """
    X = v.check_X(X, "X")
    y = v.check_y(y, "y", n_examples=X.shape[0])
    fraction = v.check_nonneg_real(fraction, "validation_fraction", allow_zero=False)
    if fraction >= 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(v.check_seed(seed))
    labels, counts = np.unique(y, return_counts=True)
    share = np.minimum(np.round(fraction * counts).astype(int), counts - 1)
    if share.sum() == 0 and counts.max() > 1:     # tiny data: one example of the largest class
        share[np.argmax(counts)] = 1
    if share.sum() == 0:
        raise ValueError(f"validation_fraction={fraction} of {len(y)} examples sets none aside "
                         "(every class has a single example); give validation data")
    valid = np.zeros(len(y), dtype=bool)
    for label, n_valid in zip(labels, share):
        members = np.flatnonzero(y == label)
        valid[rng.permutation(members)[:n_valid]] = True
    return (X[~valid], y[~valid]), (X[valid], y[valid])
