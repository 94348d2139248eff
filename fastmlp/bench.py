"""Speed, measured the same way every time: one definition of the workloads and their timing.

Three users share this module: ``fastmlp bench`` (a table of one epoch per backend and per
peer library), the pytest-benchmark suite in ``benchmarks/`` and the regression guard that
CI runs (``fastmlp bench --guard benchmarks/thresholds.json``).

Rules, because the machines are small and shared:

* only ratios measured in one run are compared, never absolute times across runs;
* every figure is the best (minimum) of several rounds, and the rounds of the cases being
  compared are interleaved so that a noisy moment hits all of them;
* a backend too slow for a whole epoch in a few seconds (``loop``, or ``numpy`` with tiny
  minibatches) runs the first examples of the epoch's shuffled order, a whole number of
  minibatches, and its time is scaled to the epoch; such figures are marked "extrapolated"
  with their factor.

The workload is the spec's: one epoch of layers (784, 64, 10), minibatches of 32, float32,
49,000 examples (Fashion-MNIST's train split when installed, otherwise random data of the
same shape, which the output says).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _validation as v
from . import datasets, ops
from .backends import BACKENDS, get_backend
from .backends.base import Backend
from .model import MLP

#: the spec's core workload
LAYERS = (784, 64, 10)
EXAMPLES = 49_000
BATCH_SIZE = 32
DTYPE = "float32"
LR = 0.1
PENALTY = 1e-4      # l1 and l2 on both weight matrices, as in the seed's learning curves
ROUNDS = 5
SEED = 0

#: the seed's own speed measurement (experiment 4): loop vs matrix, K=20, lambda=0.001
SEED_EXPERIMENT = {"batch_size": 20, "penalty": 1e-3, "loop_seconds": 147.7,
                   "matrix_seconds": 13.0}

#: examples run per round for the backends that cannot do a whole epoch in seconds:
#: ``name -> (applies when batch_size <= this, examples)``; the time is scaled to the epoch.
SUBSETS = {"loop": (math.inf, 1024), "numpy": (4, 2048)}

#: size of the float32 matrix product that measures the machine's practical peak
GEMM_SIZE = 4096


# -- arithmetic ---------------------------------------------------------------------------
def epoch_flops(n_examples, batch_size, layers=LAYERS):
    """Useful floating-point operations of one training epoch (the spec's count).

    Per example: forward ``2(d d_h + d_h m)``; backward ``2(d_h d + 2 m d_h)`` (dW1, dW2 and
    dL/dh_s; training needs no gradient with respect to the input); per minibatch the
    update ``2 n_params``. For (784, 64, 10), K=32 and 49,000 examples: about 10.2 GFLOP.
    """
    d, h, m = layers
    per_example = 2 * (d * h + h * m) + 2 * (h * d + 2 * m * h)
    n_params = h * (d + 1) + m * (h + 1)
    return n_examples * per_example + ops.n_batches(n_examples, batch_size) * 2 * n_params


def measured_examples(backend, batch_size, n_examples):
    """How many examples a backend runs per timed round: all of them, or a subset for the
    slow cases of :data:`SUBSETS` (rounded up to whole minibatches, at most the epoch)."""
    name = backend if isinstance(backend, str) else backend.name
    max_batch, subset = SUBSETS.get(name, (0, None))
    if subset is None or batch_size > max_batch:
        return n_examples
    return min(n_examples, ops.n_batches(subset, batch_size) * batch_size)


# -- data -----------------------------------------------------------------------------------
@dataclass
class Data:
    """Training examples in one dtype, and where they came from."""

    X: np.ndarray
    y: np.ndarray
    source: str

    @property
    def dtype(self):
        return self.X.dtype.name


def load_data(n_examples=EXAMPLES, dtype=DTYPE, source="auto", seed=SEED):
    """``n_examples`` training examples of shape (784,) in ``dtype``.

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
        return Data(np.ascontiguousarray(X[:n_examples], dtype=dtype), y[:n_examples], where)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_examples, LAYERS[0]), dtype=np.float64).astype(dtype)
    y = rng.integers(0, LAYERS[-1], size=n_examples)
    return Data(X, y, f"synthetic data of Fashion-MNIST's shape ({why})")


# -- what is timed --------------------------------------------------------------------------
@dataclass
class Workload:
    """One epoch of minibatch SGD on ``data``, as every backend and peer runs it."""

    data: Data
    batch_size: int = BATCH_SIZE
    lr: float | None = None         # None: LR, scaled by K/32 below K=32 (K=1 at 0.1 diverges)
    l1: tuple = (PENALTY, PENALTY)
    l2: tuple = (PENALTY, PENALTY)
    layers: tuple = LAYERS
    seed: int = SEED
    threads: int | None = None      # None: every library's default (all cores)

    def __post_init__(self):
        if self.lr is None:
            self.lr = LR * min(1.0, self.batch_size / BATCH_SIZE)

    @property
    def n_examples(self):
        return self.data.X.shape[0]

    def order(self, n=None):
        """The first ``n`` examples of epoch 0's shuffled order (the trainer's)."""
        return ops.epoch_order(self.n_examples, self.seed, 0)[:n]

    def initial_params(self):
        return MLP(self.layers, l1=self.l1, l2=self.l2, dtype=self.data.dtype,
                   seed=self.seed).params

    def describe(self):
        return {"layers": list(self.layers), "examples": self.n_examples,
                "batch_size": self.batch_size, "dtype": self.data.dtype, "lr": self.lr,
                "l1": list(self.l1), "l2": list(self.l2), "data": self.data.source,
                "threads": self.threads or "default (all cores)",
                "flops_per_epoch": epoch_flops(self.n_examples, self.batch_size, self.layers)}


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

    ``backend`` is a name of ``fastmlp.BACKENDS`` or a :class:`Backend` instance. The
    parameters start from the same initialization every round.
    """
    be = get_backend(backend)
    if measured is None:
        measured = measured_examples(be, work.batch_size, work.n_examples)
    X, y, K = work.data.X, work.data.y, work.batch_size
    order = work.order(measured)
    init = work.initial_params()
    lr = ops.learning_rate(work.lr, 0, 1)

    def setup():
        return ({k: p.copy() for k, p in init.items()},), {}

    def run(params, order=order):
        with np.errstate(over="ignore", invalid="ignore"):
            stats = be.train_steps(params, X, y, order, K, lr, work.l1, work.l2)
        if stats.failed_step >= 0:
            raise FloatingPointError(f"{be.name}: the loss became non-finite while timing")
        return stats

    def warm():
        run(*setup()[0], order=order[:2 * K])

    return Case(be.name, "backend", run, setup, measured, work.n_examples, warm)


def backend_gradients(backend, work, batch_size=None):
    """A :class:`Case` timing ``loss_and_grads`` on the epoch's first minibatch."""
    be = get_backend(backend)
    K = work.batch_size if batch_size is None else batch_size
    idx = work.order(K)
    X, y, params = work.data.X[idx], work.data.y[idx], work.initial_params()

    def run():
        return be.loss_and_grads(params, X, y, work.l1, work.l2)

    return Case(be.name, "backend", run, lambda: ((), {}), K, K, run)


def backend_predict(backend, work, n=10_000):
    """A :class:`Case` timing ``predict_proba`` over the first ``n`` examples."""
    be = get_backend(backend)
    X, params = work.data.X[:n], work.initial_params()

    def run():
        return be.predict_proba(params, X)

    return Case(be.name, "backend", run, lambda: ((), {}), X.shape[0], X.shape[0],
                lambda: be.predict_proba(params, X[:64]))


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


def time_cases(cases, rounds=ROUNDS, timings=None):
    """Time every case ``rounds`` times, interleaved (round 1 of all, then round 2, ...).

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
            args, kwargs = case.setup()
            t0 = time.perf_counter()
            case.run(*args, **kwargs)
            timings[case.name].rounds.append(time.perf_counter() - t0)
    return timings


def gemm_gflops(n=GEMM_SIZE, rounds=3, dtype=np.float32):
    """The machine's large matrix-product rate: best of ``rounds`` ``n x n`` products,
    ``2 n^3 / t`` in GFLOP/s (NumPy's BLAS, all its threads)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    b = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    out = np.empty_like(a)
    np.matmul(a[:256], b, out=out[:256])   # BLAS threads started outside the timing
    best = math.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


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
    done, restore = {}, []
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            done["blas"] = "not limited (threadpoolctl is not installed)"
        else:
            restore.append(threadpool_limits(threads).restore_original_limits)
            done["blas"] = threads
        if "numba" in sys.modules:
            numba = sys.modules["numba"]
            before = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            restore.append(lambda: numba.set_num_threads(before))
            done["numba"] = threads
        yield done
    finally:
        for undo in reversed(restore):
            undo()


#: run in a fresh interpreter by :func:`first_call`: import, then one first call, timed inside
_FIRST_CALL_SCRIPT = """
import importlib, json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastmlp
name, dtype, what = sys.argv[1:4]
module = importlib.import_module("fastmlp.backends." + name)
out = {"import_seconds": time.perf_counter() - t0}
if what == "warmup":
    t0 = time.perf_counter()
    out["warmup_seconds"] = module.warmup(dtype)
    out["warmup_wall_seconds"] = time.perf_counter() - t0
elif what == "train":
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 784)).astype(dtype)
    y = rng.integers(0, 10, 64)
    model = fastmlp.MLP((784, 64, 10), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4), dtype=dtype)
    t0 = time.perf_counter()
    fastmlp.train(model, (X, y), backend=name, epochs=1, batch_size=32, progress=False)
    out["first_train_seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def first_call(backend="numba", dtype=DTYPE, what="train", cache_dir=None):
    """Time a backend's first use in a fresh Python process (compile time, for numba).

    ``what``: "import" (import fastmlp and the backend's module only), "train" (then one
    tiny epoch, 64 examples of (784, 64, 10): the first call a user waits for) or "warmup"
    (then the backend module's ``warmup(dtype)``). ``cache_dir``: ``NUMBA_CACHE_DIR`` for the
    child (an empty folder means "no cache"). Returns the child's timings, seconds.
    """
    import subprocess

    if what not in ("import", "train", "warmup"):
        raise ValueError(f"what must be 'import', 'train' or 'warmup', got {what!r}")
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run([sys.executable, "-c", _FIRST_CALL_SCRIPT, backend, dtype, what],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the fresh process timing {backend!r} ({what}) failed:\n"
                           f"{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the machine --------------------------------------------------------------------------------
def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_simd():
    """The vector extensions that matter for float32 throughput, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return None
    return [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16") if f in flags]


def _version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _blas():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        try:
            config = np.show_config(mode="dicts")
            return config.get("Build Dependencies", {}).get("blas")
        except TypeError:       # NumPy < 1.25 only prints
            return None
    return [{k: info.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                      "threading_layer", "architecture", "filepath")}
            for info in threadpool_info()]


def _numpy_blas(blas):
    """The one of threadpoolctl's entries that NumPy itself uses, as a short text."""
    if not isinstance(blas, list):
        return str(blas)
    mine = [b for b in blas if b.get("user_api") == "blas" and "numpy" in (b.get("filepath") or "")]
    b = (mine or blas or [{}])[0]
    return (" ".join(str(b[k]) for k in ("internal_api", "version", "architecture") if b.get(k))
            + f", {b.get('num_threads')} threads by default")


def machine():
    """What the figures were measured on: CPU, cores, versions, BLAS, threading settings."""
    from . import __version__

    info = {
        "cpu": _cpu_model(),
        "simd": _cpu_simd(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "fastmlp": __version__,
        "numpy": np.__version__,
        "numba": _version("numba"),
        "backends": list(BACKENDS),
        "blas": _blas(),
        "environment": {k: val for k, val in sorted(os.environ.items())
                        if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "NUMBA_"))},
    }
    if "numba" in sys.modules:
        try:
            info["numba_threading_layer"] = sys.modules["numba"].threading_layer()
        except ValueError:      # no parallel region has run yet
            info["numba_threading_layer"] = None
    return info


# -- fastmlp bench ------------------------------------------------------------------------------
def run_bench(backends=None, peers=None, batch_size=BATCH_SIZE, dtype=DTYPE,
              examples=EXAMPLES, rounds=ROUNDS, source="auto", gemm=True, threads=None,
              log=None):
    """Time one epoch of the workload on each backend and each peer; return a report dict.

    ``backends``: names (default all of ``fastmlp.BACKENDS``); ``peers``: names of
    :data:`fastmlp.peers.PEERS` (default: those installed; ``()`` for none). ``log`` is
    called with progress lines. ``threads``: at most that many threads per library
    (see :func:`limit_threads`); None leaves every library its default.
    """
    from . import peers as peer_mod

    log = log or (lambda line: None)
    backends = list(BACKENDS) if backends is None else list(backends)
    for name in backends:
        get_backend(name)                       # unknown names: a clear error before any work
    if peers is None:
        peers = peer_mod.available()
    else:
        peers = list(peers)
        for name in peers:
            peer_mod.check_peer(name)
    batch_size = v.check_int(batch_size, "batch_size", minimum=1)
    rounds = v.check_int(rounds, "rounds", minimum=1)
    if threads is not None:
        threads = v.check_int(threads, "threads", minimum=1)

    log("loading data ...")
    work = Workload(load_data(examples, dtype, source), batch_size=batch_size, threads=threads)
    log(f"data: {work.data.source}")
    report = {"machine": machine(), "workload": work.describe(), "rounds": rounds,
              "results": [], "skipped": {}}
    if gemm:
        log(f"measuring the {GEMM_SIZE}x{GEMM_SIZE} float32 matrix-product rate ...")
        with limit_threads(threads):
            report["gemm_gflops"] = gemm_gflops()
    cases = [backend_epoch(name, work) for name in backends]
    for name in peers:
        log(f"preparing {name} ...")
        try:
            cases.append(peer_mod.epoch_case(name, work))
        except peer_mod.PeerUnavailable as exc:
            report["skipped"][name] = str(exc)
            log(f"skipped {name}: {exc}")
    log(f"timing {len(cases)} cases, best of {rounds} rounds (interleaved) ...")
    with limit_threads(threads) as limited:
        timings = time_cases(cases, rounds)
    report["threads_limited"] = limited
    report["machine"] = machine()               # now with numba's threading layer, if used
    flops = report["workload"]["flops_per_epoch"]
    for name, t in timings.items():
        row = {"name": name, "kind": t.case.kind, "seconds_per_epoch": t.seconds,
               "rounds_seconds": t.rounds, "measured_examples": t.case.measured,
               "extrapolated": t.case.factor != 1.0, "extrapolation_factor": t.case.factor,
               "examples_per_second": t.per_second, "gflops": flops / t.seconds / 1e9}
        if "gemm_gflops" in report:
            row["fraction_of_gemm"] = row["gflops"] / report["gemm_gflops"]
        for ref in ("loop", "numpy", *peers):
            if ref in timings and ref != name:
                row[f"speedup_vs_{ref}"] = timings[ref].seconds / t.seconds
        row.update(t.case.info)
        report["results"].append(row)
    return report


def format_report(report):
    """The report as a text table with the machine and the workload above it."""
    m, w = report["machine"], report["workload"]
    blas = _numpy_blas(m["blas"])
    simd = f" ({' '.join(m['simd'])})" if m.get("simd") else ""
    lines = [
        f"machine: {m['cpu']}{simd}, {m['usable_cores']} usable cores of {m['cores']}; "
        f"Python {m['python']}, NumPy {m['numpy']}, numba {m['numba']}; BLAS: {blas}",
        f"workload: one epoch of {w['examples']} examples, layers {tuple(w['layers'])}, "
        f"K={w['batch_size']}, {w['dtype']}, lr={w['lr']}, l1={tuple(w['l1'])}, "
        f"l2={tuple(w['l2'])}; {w['flops_per_epoch'] / 1e9:.2f} GFLOP of useful arithmetic; "
        f"threads: {w['threads']}",
        f"data: {w['data']}",
    ]
    if "gemm_gflops" in report:
        floor = w["flops_per_epoch"] / report["gemm_gflops"] / 1e9
        lines.append(f"large float32 matrix products ({GEMM_SIZE}x{GEMM_SIZE}, threads: "
                     f"{w['threads']}): {report['gemm_gflops']:.1f} GFLOP/s "
                     f"(practical floor for this epoch: {floor:.3f} s)")
    lines.append(f"best of {report['rounds']} rounds per case, rounds interleaved")
    names = [r["name"] for r in report["results"]]
    refs = [ref for ref in ("loop", "numpy") if ref in names]
    refs += [r["name"] for r in report["results"] if r["kind"] == "peer"]
    head = ["", "s/epoch", "examples/s"] + [f"x {ref}" for ref in refs] + ["GFLOP/s"]
    if "gemm_gflops" in report:
        head.append("% GEMM")
    rows = []
    for r in report["results"]:
        label = f"{r['name']}{' (peer)' if r['kind'] == 'peer' else ''}"
        secs = f"{r['seconds_per_epoch']:.3f}" + ("*" if r["extrapolated"] else "")
        cells = [label, secs, f"{r['examples_per_second']:,.0f}"]
        cells += [f"{r[f'speedup_vs_{ref}']:.2f}" if f"speedup_vs_{ref}" in r else "1"
                  for ref in refs]
        cells.append(f"{r['gflops']:.2f}")
        if "fraction_of_gemm" in r:
            cells.append(f"{100 * r['fraction_of_gemm']:.1f}")
        rows.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (f"{c:<{wd}}" if i == 0 else f"{c:>{wd}}") for i, (c, wd) in enumerate(zip(cells, widths)))
    lines += ["", fmt(head), fmt(["-" * wd for wd in widths])] + [fmt(c) for c in rows]
    notes = ["x NAME: how many times faster than NAME (its seconds / these seconds)"]
    for r in report["results"]:
        if r["extrapolated"]:
            notes.append(f"* {r['name']}: measured on {r['measured_examples']} examples, "
                         f"extrapolated x{r['extrapolation_factor']:.1f} to the epoch")
        if r.get("compile_seconds") is not None:
            notes.append(f"{r['name']}: compilation took {r['compile_seconds']:.2f} s, "
                         "not included")
        if r.get("note"):
            notes.append(f"{r['name']}: {r['note']}")
    for name, why in report["skipped"].items():
        notes.append(f"{name}: skipped ({why})")
    return "\n".join(lines + [""] + notes)


# -- the regression guard -------------------------------------------------------------------
#: what a thresholds file may set about the guard's workload, with the defaults
GUARD_WORKLOAD = {"batch_size": BATCH_SIZE, "dtype": DTYPE, "examples": 16_384,
                  "rounds": ROUNDS, "threads": 1}


def read_thresholds(thresholds):
    """Validate a thresholds document (a dict, or the path of a JSON file).

    Returns ``(min_speedup, workload)``: ``{"a/b": float or None}`` meaning "backend ``a``
    at least that many times faster than backend ``b``" (None: reported, not checked), and
    the guard's workload settings (:data:`GUARD_WORKLOAD` completed by the file's).
    """
    where = "thresholds"
    if not isinstance(thresholds, dict):
        where = str(thresholds)
        try:
            with open(thresholds, encoding="utf-8") as f:
                thresholds = json.load(f)
        except OSError as exc:
            raise FileNotFoundError(f"cannot read the thresholds file {where!r}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"the thresholds file {where!r} is not valid JSON: {exc}") from None
    if not isinstance(thresholds, dict) or not isinstance(thresholds.get("min_speedup"), dict):
        raise ValueError(f"{where}: expected a JSON object with a 'min_speedup' object "
                         '{"fast/slow": minimum ratio, ...}')
    from .backends import _REGISTRY

    checked = {}
    for key, value in thresholds["min_speedup"].items():
        parts = key.split("/")
        if len(parts) != 2 or parts[0] == parts[1]:
            raise ValueError(f"{where}: min_speedup key {key!r} must be 'fast/slow', two "
                             f"different backend names among {sorted(_REGISTRY)}")
        for name in parts:
            if name not in _REGISTRY:
                raise ValueError(f"{where}: min_speedup key {key!r} names the unknown backend "
                                 f"{name!r}; known backends: {', '.join(_REGISTRY)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value > 0 or not math.isfinite(value)):
            raise ValueError(f"{where}: min_speedup[{key!r}] must be a positive number or null "
                             f"(measured, not checked), got {value!r}")
        checked[key] = None if value is None else float(value)
    workload = dict(GUARD_WORKLOAD)
    for key, value in thresholds.get("workload", {}).items():
        if key not in GUARD_WORKLOAD:
            raise ValueError(f"{where}: unknown workload setting {key!r}; allowed: "
                             f"{', '.join(GUARD_WORKLOAD)}")
        workload[key] = value
    v.check_dtype(workload["dtype"], "workload.dtype")
    for key in ("batch_size", "examples", "rounds"):
        v.check_int(workload[key], f"workload.{key}", minimum=1)
    if workload["threads"] is not None:
        v.check_int(workload["threads"], "workload.threads", minimum=1)
    return checked, workload


@dataclass
class GuardResult:
    """What the guard found: ``ok`` is False when a checked ratio stayed below its minimum."""

    ok: bool
    lines: list
    ratios: dict


def check_ratios(ratios, min_speedup, available=None):
    """Compare measured speed-ups with their minimums: ``(failed keys, lines)``.

    ``ratios``: ``{"a/b": measured speed-up}``, absent keys meaning "a backend is missing";
    ``min_speedup`` as returned by :func:`read_thresholds`; ``available``: the backend names
    present (to say which one is missing).
    """
    failed, lines = [], []
    for key, minimum in min_speedup.items():
        if key not in ratios:
            missing = [n for n in key.split("/") if available is None or n not in available]
            lines.append(f"skip  {key}: backend {' and '.join(missing)} not available here"
                         + (f" (minimum {minimum:g}x not checked)" if minimum else ""))
        elif minimum is None:
            lines.append(f"info  {key}: {ratios[key]:.2f}x (no minimum set yet)")
        elif ratios[key] >= minimum:
            lines.append(f"ok    {key}: {ratios[key]:.2f}x >= {minimum:g}x")
        else:
            failed.append(key)
            lines.append(f"FAIL  {key}: {ratios[key]:.2f}x < {minimum:g}x: "
                         f"{key.split('/')[0]} is slower relative to {key.split('/')[1]} "
                         "than the threshold allows")
    return failed, lines


def run_guard(thresholds, backends=None, source="synthetic", log=None):
    """Measure the ratios a thresholds file names and check them.

    ``backends`` maps names to :class:`Backend` instances (default: ``fastmlp.BACKENDS``
    through ``get_backend``); tests pass a deliberately slowed one. Backends are timed
    together, interleaved, best of the file's rounds; a ratio below its minimum is measured
    again with twice the rounds (the best of all rounds counts) before it fails, so that a
    busy moment on a shared machine is not taken for a regression.
    """
    min_speedup, settings = read_thresholds(thresholds)
    log = log or (lambda line: None)
    if backends is None:
        backends = {name: get_backend(name) for name in BACKENDS}
    for name, be in backends.items():
        if not isinstance(be, Backend):
            raise TypeError(f"backends[{name!r}] must be a fastmlp Backend, got {be!r}")
    pairs = {key: key.split("/") for key in min_speedup
             if all(name in backends for name in key.split("/"))}
    needed = sorted({name for pair in pairs.values() for name in pair})
    work = Workload(load_data(settings["examples"], settings["dtype"], source),
                    batch_size=settings["batch_size"], threads=settings["threads"])
    log(f"guard: one epoch of {settings['examples']} examples, K={settings['batch_size']}, "
        f"{settings['dtype']}, best of {settings['rounds']} rounds, threads: "
        f"{settings['threads'] or 'default'}; data: {work.data.source}")
    cases = []
    for name in needed:
        cases.append(backend_epoch(backends[name], work))
        cases[-1].name = name              # the key in the thresholds, whatever the instance
    with limit_threads(settings["threads"]):
        timings = time_cases(cases, settings["rounds"]) if cases else {}

    def speedups():
        return {key: timings[b].seconds / timings[a].seconds for key, (a, b) in pairs.items()}

    ratios = speedups()
    failed, _ = check_ratios(ratios, min_speedup)
    if failed:
        again = sorted({name for key in failed for name in pairs[key]})
        log(f"guard: {', '.join(failed)} below the minimum; measuring "
            f"{', '.join(again)} again with {2 * settings['rounds']} more rounds")
        with limit_threads(settings["threads"]):
            time_cases([timings[name].case for name in again], 2 * settings["rounds"], timings)
        ratios = speedups()
        failed, _ = check_ratios(ratios, min_speedup)
    _, lines = check_ratios(ratios, min_speedup, backends)
    for name in needed:
        t = timings[name]
        lines.append(f"      {name}: {t.seconds:.3f} s per epoch of {t.case.examples} examples"
                     + (f" (measured on {t.case.measured} examples, x{t.case.factor:.1f})"
                        if t.case.factor != 1.0 else ""))
    return GuardResult(not failed, lines, ratios)


def main(argv=None):
    """``python -m fastmlp.bench ...`` is ``fastmlp bench ...``."""
    from .cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
