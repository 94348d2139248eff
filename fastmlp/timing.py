"""What is timed and how: workloads, timed cases, interleaved rounds, thread limits.

One definition shared by ``fastmlp bench`` (:mod:`fastmlp.bench`), the peer libraries
(:mod:`fastmlp.peers`), the pytest-benchmark suite in ``benchmarks/`` and the CI guard. It
imports neither of the first two, so that both can import it.

Rules, because the machines are small and shared:

* only ratios measured in one run are compared, never absolute times across runs;
* every figure is the best (minimum) of several rounds, and the rounds of the cases being
  compared are interleaved so that a noisy moment hits all of them;
* a case too slow for a whole epoch in a few seconds (``loop``, or ``numpy`` with tiny
  minibatches) runs the first examples of the epoch's shuffled order, a whole number of
  minibatches, and its time is scaled to the epoch; such figures are marked "extrapolated"
  with their factor.

The default workload is the spec's: one epoch of layers (784, 64, 10), ReLU, minibatches of
32, float32, plain SGD, every penalty 1e-4, 49,000 examples (Fashion-MNIST's train split when
installed, otherwise random data of the same shape, which the output says).
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _aligned
from . import _validation as v
from . import datasets, ops
from .backends import get_backend
from .model import MLP
from .optim import get_optimizer
from .threads import numba_threads

#: the spec's core workload
LAYERS = (784, 64, 10)
#: the deep network of the spec's figures
DEEP_LAYERS = (784, 256, 128, 10)
EXAMPLES = 49_000
BATCH_SIZE = 32
DTYPE = "float32"
PENALTY = 1e-4      # l1 and l2 on every weight matrix, as in the seed's learning curves
ROUNDS = 5
SEED = 0
#: seconds of rest before each timed round: the previous case's library threads go idle
#: first (OpenBLAS's threads spin for a while after a product, taking a core from whatever
#: runs next: on a 2-core Xeon, numba's epoch of (784, 64, 10) took 0.198-0.218 s right after
#: BLAS products and 0.148-0.159 s after half a second's rest, best three of four)
SETTLE_SECONDS = 0.5

#: default learning rate per optimizer at K >= 32: the seed's 0.1 for SGD; momentum's
#: velocity sums about 1/(1 - mu) = 10 gradients, so a tenth of it takes steps of the same
#: size; Adam's steps are about lr per parameter whatever the gradient, 1e-3 as everywhere.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adam": 1e-3}

#: examples run per round for the cases that cannot do a whole epoch in seconds:
#: ``name -> (applies when batch_size <= this, examples)``; the time is scaled to the epoch.
SUBSETS = {"loop": (math.inf, 1024), "numpy": (4, 2048), "torch": (4, 8192),
           "sklearn": (4, 8192)}


# -- arithmetic ---------------------------------------------------------------------------
def example_flops(layers):
    """Useful floating-point operations to train on one example (the spec's count).

    The forward pass ``2 Σ_l n_l n_{l-1}``, the weight gradients the same again, and the
    input gradients of every layer but the first ``2 Σ_{l>=2} n_l n_{l-1}`` (a training step
    needs no dJ/dx). Biases, activations and the update are not counted: they are linear in
    the widths, the products are quadratic.
    """
    layers = v.check_layers(layers)
    products = [n_out * n_in for n_in, n_out in zip(layers[:-1], layers[1:])]
    return 2 * sum(products) + 2 * sum(products) + 2 * sum(products[1:])


def epoch_flops(layers=LAYERS, n_examples=EXAMPLES):
    """Useful floating-point operations of one epoch: :func:`example_flops` per example.

    (784, 64, 10) over 49,000 examples: 10.02 GFLOP; (784, 256, 128, 10): 49.35 GFLOP.
    """
    return v.check_int(n_examples, "n_examples", minimum=1) * example_flops(layers)


def measured_examples(name, batch_size, n_examples):
    """How many examples case ``name`` (a backend or a peer) runs per timed round: all of
    them, or a subset for the slow cases of :data:`SUBSETS` (rounded up to whole minibatches,
    at most the epoch)."""
    max_batch, subset = SUBSETS.get(name, (0, None))
    if subset is None or batch_size > max_batch:
        return n_examples
    return min(n_examples, -(-subset // batch_size) * batch_size)


# -- data -----------------------------------------------------------------------------------
@dataclass
class Data:
    """Training examples ``X (n, 784)`` in one dtype, labels ``y (n,)``, and where they came
    from."""

    X: np.ndarray
    y: np.ndarray
    source: str

    @property
    def dtype(self):
        return self.X.dtype.name


def load_data(n_examples=EXAMPLES, dtype=DTYPE, source="auto", seed=SEED):
    """``n_examples`` training examples of shape (784,) in ``dtype``, aligned as the trainer
    aligns them (:mod:`fastmlp._aligned`).

    ``source``: "fashion-mnist" (the standardized train split, 49,000 examples at most),
    "synthetic" (standard normal features, uniform labels, any number) or "auto" (the first
    when installed, else the second).
    """
    n_examples = v.check_int(n_examples, "n_examples", minimum=1)
    dtype = v.check_dtype(dtype)
    if source not in ("auto", "fashion-mnist", "synthetic"):
        raise ValueError(f"source must be 'auto', 'fashion-mnist' or 'synthetic', got {source!r}")
    why = "chosen"
    if source == "auto":
        source = "fashion-mnist" if datasets.fashion_mnist_dir() is not None else "synthetic"
        why = "Fashion-MNIST is not installed"
    if source == "fashion-mnist":
        X, y = datasets.split(*datasets.fashion_mnist(), seed=seed).train
        if n_examples > X.shape[0]:
            raise ValueError(f"n_examples={n_examples} is more than Fashion-MNIST's train split "
                             f"({X.shape[0]}); use at most that, or synthetic data")
        where = f"Fashion-MNIST ({datasets.fashion_mnist_dir()}), standardized train split"
        return Data(_aligned.aligned(X[:n_examples].astype(dtype, copy=False)), y[:n_examples],
                    where)
    rng = np.random.default_rng(seed)
    X = _aligned.aligned(rng.standard_normal((n_examples, LAYERS[0]), dtype=np.float64)
                         .astype(dtype))
    y = rng.integers(0, LAYERS[-1], size=n_examples)
    return Data(X, y, f"synthetic data of Fashion-MNIST's shape ({why})")


# -- what is timed --------------------------------------------------------------------------
@dataclass
class Workload:
    """One epoch of minibatch training on ``data``, as every backend and peer runs it.

    Parameters
    ----------
    data : Data
        its width must be ``layers[0]`` and its labels below ``layers[-1]``.
    layers : (d, h_1, ..., h_{L-1}, m)
    activation : str or sequence of str
        one name for every hidden layer or one per hidden layer (see :class:`fastmlp.MLP`).
    init : "uniform" or "glorot"
    optimizer : str or fastmlp.optim.Optimizer
        a name takes the default hyper-parameters; stored as the optimizer object.
    batch_size : int
    lr : float or None
        None: :data:`DEFAULT_LR` for the optimizer, scaled by K/32 below K=32 (K=1 at the
        K=32 rate diverges).
    l1, l2 : float or sequence of float
        one for every weight matrix or one per weight matrix.
    seed : int
        of the initialization and of epoch 0's shuffle.
    threads : int or None
        at most this many threads per library; None: every library's default (all cores).
    """

    data: Data
    layers: tuple = LAYERS
    activation: str | tuple = "relu"
    init: str = "uniform"
    optimizer: object = "sgd"
    batch_size: int = BATCH_SIZE
    lr: float | None = None
    l1: float | tuple = PENALTY
    l2: float | tuple = PENALTY
    seed: int = SEED
    threads: int | None = None

    def __post_init__(self):
        self.optimizer = get_optimizer(self.optimizer)
        self.batch_size = v.check_int(self.batch_size, "batch_size", minimum=1)
        if self.threads is not None:
            self.threads = v.check_int(self.threads, "threads", minimum=1)
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer.name] * min(1.0, self.batch_size / BATCH_SIZE)
        self.lr = v.check_nonneg_real(self.lr, "lr", allow_zero=False)
        model = self.model()                # validates layers, activations, penalties, init
        self.layers, self.activation = model.layers, model.activation
        self.l1, self.l2 = model.l1, model.l2
        if self.data.X.shape[1] != model.n_features:
            raise ValueError(f"layers[0]={model.n_features} but the data has "
                             f"{self.data.X.shape[1]} features")
        if self.data.y.max(initial=0) >= model.n_classes:
            raise ValueError(f"layers[-1]={model.n_classes} classes but the data has labels "
                             f"up to {self.data.y.max()}")

    @property
    def n_examples(self):
        return self.data.X.shape[0]

    @property
    def activations(self):
        """One activation name per hidden layer."""
        return v.check_activations(self.activation, len(self.layers) - 2)

    def order(self, n=None):
        """The first ``n`` examples of epoch 0's shuffled order (the trainer's)."""
        return ops.epoch_order(self.n_examples, self.seed, 0)[:n]

    def model(self):
        """A new :class:`fastmlp.MLP` with the initial weights every case starts from."""
        return MLP(self.layers, self.activation, self.l1, self.l2, self.data.dtype, self.seed,
                   self.init)

    def flops(self):
        """Useful floating-point operations of the epoch (:func:`epoch_flops`)."""
        return epoch_flops(self.layers, self.n_examples)

    def label(self):
        """A one-line description: network, optimizer, K, dtype."""
        acts = self.activations
        act = acts[0] if len(set(acts)) == 1 else "/".join(acts)
        opt = self.optimizer
        hyper = "".join(f", {f}={getattr(opt, f):g}" for f in opt.fields)
        return (f"layers {self.layers}{f' {act}' if acts else ''}, {self.init} init, "
                f"{opt.name} (lr={self.lr:g}{hyper}), K={self.batch_size}, {self.data.dtype}")

    def describe(self):
        """The workload as JSON values."""
        return {"layers": list(self.layers), "activations": list(self.activations),
                "init": self.init, "optimizer": self.optimizer.to_dict(), "lr": self.lr,
                "examples": self.n_examples, "batch_size": self.batch_size,
                "dtype": self.data.dtype, "l1": list(self.l1), "l2": list(self.l2),
                "data": self.data.source, "threads": self.threads or "default (all cores)",
                "flops_per_epoch": self.flops()}


@dataclass
class Case:
    """Something to time: ``run(*args, **kwargs)`` is one round, ``setup()`` returns a fresh
    ``(args, kwargs)`` (untimed; pytest-benchmark's ``pedantic`` convention), ``warm()``
    runs once before timing (compilation, caches). ``run`` covers ``measured`` examples of
    an epoch of ``examples``; ``info`` carries notes such as a compile time."""

    name: str
    kind: str                       # "backend" or "peer"
    run: Callable
    setup: Callable
    measured: int
    examples: int
    warm: Callable | None = None
    info: dict = field(default_factory=dict)

    @property
    def factor(self):
        """Scale from one round to a whole epoch (1.0 when nothing is extrapolated)."""
        return self.examples / self.measured


def backend_epoch(backend, work, measured=None):
    """A :class:`Case` timing ``backend.train_steps`` over (a subset of) one epoch.

    ``backend`` is a name of ``fastmlp.BACKENDS`` or a :class:`fastmlp.Backend` instance.
    Every round starts from the same initial weights and a fresh optimizer state, at the
    epoch-0 rate of the seed's schedule (the base rate).
    """
    be = get_backend(backend)
    if measured is None:
        measured = measured_examples(be.name, work.batch_size, work.n_examples)
    X, y, K = work.data.X, work.data.y, work.batch_size
    order = work.order(measured)
    start = work.model()
    optimizer = work.optimizer

    def setup():
        model = start.copy()
        return (model, optimizer.init_state(model.n_params, model.dtype)), {}

    def run(model, state, order=order):
        with np.errstate(over="ignore", invalid="ignore"):
            stats = be.train_steps(model, X, y, order, K, work.lr, state)
        if stats.failed_step >= 0:
            raise FloatingPointError(f"{be.name}: the loss became non-finite while timing "
                                     f"{work.label()}; lower the learning rate")
        return stats

    def warm():
        be.prepare(work.data.dtype, K, with_evaluation=False)
        run(*setup()[0], order=order[:2 * K])

    return Case(be.name, "backend", run, setup, measured, work.n_examples, warm)


def backend_gradients(backend, work, batch_size=None):
    """A :class:`Case` timing ``loss_and_grads`` on the epoch's first minibatch."""
    be = get_backend(backend)
    K = work.batch_size if batch_size is None else batch_size
    idx = work.order(K)
    X, y, model = work.data.X[idx], work.data.y[idx], work.model()

    def run():
        return be.loss_and_grads(model, X, y, wrt_input=False)

    return Case(be.name, "backend", run, lambda: ((), {}), K, K, run)


def backend_predict(backend, work, n=10_000):
    """A :class:`Case` timing ``predict_proba`` over the first ``n`` examples."""
    be = get_backend(backend)
    X, model = work.data.X[:n], work.model()

    def run():
        return be.predict_proba(model, X)

    return Case(be.name, "backend", run, lambda: ((), {}), X.shape[0], X.shape[0],
                lambda: be.predict_proba(model, X[:64]))


# -- timing -----------------------------------------------------------------------------------
@dataclass
class Timing:
    """The rounds of one case; ``seconds`` is the best round scaled to the whole epoch."""

    case: Case
    rounds: list = field(default_factory=list)

    @property
    def best(self):
        return min(self.rounds)

    @property
    def seconds(self):
        return self.best * self.case.factor

    @property
    def per_second(self):
        return self.case.examples / self.seconds


def settled(setup):
    """``setup``, then :data:`SETTLE_SECONDS` of rest: a round's untimed preparation that
    leaves the machine quiet for the timed part."""
    def settled_setup():
        prepared = setup()
        time.sleep(SETTLE_SECONDS)
        return prepared
    return settled_setup


def time_cases(cases, rounds=ROUNDS, timings=None):
    """Time every case ``rounds`` times, interleaved (round 1 of all, then round 2, ...),
    each round after :data:`SETTLE_SECONDS` of rest (:func:`settled`).

    Each case's ``warm`` runs first. Pass ``timings`` (a previous result) to add rounds to it.
    Returns ``{name: Timing}``.
    """
    rounds = v.check_int(rounds, "rounds", minimum=1)
    if timings is None:
        timings = {}
        for case in cases:
            if case.warm is not None:
                case.warm()
            timings[case.name] = Timing(case)
    for _ in range(rounds):
        for case in cases:
            args, kwargs = settled(case.setup)()
            t0 = time.perf_counter()
            case.run(*args, **kwargs)
            timings[case.name].rounds.append(time.perf_counter() - t0)
    return timings


@contextmanager
def limit_threads(threads):
    """Run the block with at most ``threads`` threads in BLAS, OpenMP and numba (None: as is).

    Multithreaded BLAS on a busy 2-core machine is erratic (a thread that loses its core
    stalls the others: rounds 10-50x slower), while one thread per process shares the
    machine fairly; the guard therefore measures with one thread. BLAS and OpenMP are
    limited through threadpoolctl when it is installed; numba through ``set_num_threads``
    when it is in use. Yields a dict saying what was limited.
    """
    if threads is None:
        yield {}
        return
    threads = v.check_int(threads, "threads", minimum=1)
    done = {}
    with ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            done["blas"] = "not limited (threadpoolctl is not installed)"
        else:
            stack.enter_context(threadpool_limits(threads))
            done["blas"] = threads
        if "numba" in sys.modules:
            stack.enter_context(numba_threads(threads))
            done["numba"] = threads
        yield done


__all__ = ["LAYERS", "DEEP_LAYERS", "EXAMPLES", "BATCH_SIZE", "DTYPE", "PENALTY", "ROUNDS",
           "SEED", "SETTLE_SECONDS", "DEFAULT_LR", "SUBSETS", "example_flops", "epoch_flops",
           "measured_examples", "Data", "load_data", "Workload", "Case", "backend_epoch",
           "backend_gradients", "backend_predict", "Timing", "settled", "time_cases",
           "limit_threads"]
