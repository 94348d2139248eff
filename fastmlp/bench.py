"""``fastmlp bench`` and the CI guard: the machine, its peak, a table of epochs, speed ratios.

Three users share the definitions of :mod:`fastmlp.timing` (the workloads, the timed cases,
interleaved rounds): ``fastmlp bench`` (:func:`run_bench`, a table of one epoch per backend
and per peer library), the pytest-benchmark suite in ``benchmarks/`` and the regression
guard that CI runs (``fastmlp bench --guard benchmarks/thresholds.json``,
:func:`run_guard`). This module adds what frames the figures: the machine
(:func:`machine`), its practical peak (:func:`measure_peak`), the first call of a backend in
a fresh process (:func:`first_call`) and the guard's thresholds file.

The peak is the large float32 matrix-product rate of the machine's best kernel. Our machines
pin OpenBLAS to its AVX2 (Haswell) kernels with ``OPENBLAS_CORETYPE``, which halves that
rate where the cores run 512-bit FMAs at full width; so the product is timed in a child
process with ``OPENBLAS_CORETYPE`` removed from its environment (and with the pin as set,
when it is set, to show what it costs), and with JAX's ``jnp.dot`` when JAX is installed.
The best of them is the peak; this process's own BLAS and its pin are never changed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from . import _validation as v
from . import peers as peer_mod
from .backends import BACKENDS, get_backend
from .backends.base import Backend
from .optim import OPTIMIZERS
from .timing import (BATCH_SIZE, DTYPE, EXAMPLES, LAYERS, PENALTY, ROUNDS, Workload,
                     backend_epoch, limit_threads, load_data, time_cases)

#: the seed's own speed measurement (experiment 4): loop vs matrix, K=20, lambda=0.001
SEED_EXPERIMENT = {"batch_size": 20, "penalty": 1e-3, "loop_seconds": 147.7,
                   "matrix_seconds": 13.0}

#: size of the float32 matrix product that measures the machine's practical peak
GEMM_SIZE = 4096
#: timed products per peak measurement (after one untimed product); the best counts
GEMM_ROUNDS = 3


# -- a backend's first call ---------------------------------------------------------------
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


# -- the machine's peak ---------------------------------------------------------------------
#: run in a fresh interpreter by :func:`measure_peak`: the best of ROUNDS n x n float32
#: products by LIBRARY ("numpy" or "jax"), as JSON. It imports nothing of fastmlp, so that
#: the BLAS it loads is configured by the child's environment alone.
_GEMM_SCRIPT = """
import json, sys, time
library, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import numpy as np
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
out = {}
if library == "numpy":
    c = np.empty_like(a)
    def product():
        np.matmul(a, b, out=c)
    try:
        from threadpoolctl import threadpool_info
        out["kernel"] = next((i.get("architecture") for i in threadpool_info()
                              if i.get("user_api") == "blas"), None)
    except ImportError:
        pass
else:
    import jax, jax.numpy as jnp
    dot = jax.jit(jnp.dot)
    a, b = jax.device_put(a), jax.device_put(b)
    def product():
        dot(a, b).block_until_ready()
    out["version"] = jax.__version__
product()                     # threads started and code compiled outside the timing
best = float("inf")
for _ in range(rounds):
    t0 = time.perf_counter()
    product()
    best = min(best, time.perf_counter() - t0)
out["gflops"] = 2.0 * n ** 3 / best / 1e9
print(json.dumps(out))
"""


def peak_plan(environ, threads=None, jax=True):
    """The child processes :func:`measure_peak` runs: ``[(name, label, library, env)]``.

    ``environ`` is the environment they start from (``os.environ``), with at most
    ``threads`` BLAS/OpenMP/XLA threads (None: as it is). The first is NumPy's BLAS with
    ``OPENBLAS_CORETYPE`` removed; the pinned one follows when ``environ`` sets it; JAX last,
    when ``jax`` and it is installed.
    """
    env = dict(environ)
    if threads is not None:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        env.update(peer_mod.jax_environment(threads))
    pin = env.get("OPENBLAS_CORETYPE")
    plan = [("numpy-unpinned", "NumPy's BLAS, OPENBLAS_CORETYPE removed", "numpy",
             {k: val for k, val in env.items() if k != "OPENBLAS_CORETYPE"})]
    if pin:
        plan.append(("numpy-pinned", f"NumPy's BLAS as pinned here, OPENBLAS_CORETYPE={pin}",
                     "numpy", env))
    if jax and not peer_mod.missing("jax"):
        plan.append(("jax", "JAX's jnp.dot (XLA)", "jax", env))
    return plan


def _gemm_in_child(library, env, n, rounds):
    done = subprocess.run([sys.executable, "-c", _GEMM_SCRIPT, library, str(n), str(rounds)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_peak(threads=None, n=GEMM_SIZE, rounds=GEMM_ROUNDS, jax=True, log=None,
                 previous=None):
    """The machine's practical peak: the best float32 ``n x n`` matrix-product rate.

    Measured in child processes, each the best of ``rounds`` products after an untimed one,
    ``2 n^3 / t``: NumPy's BLAS with ``OPENBLAS_CORETYPE`` removed from the environment (its
    own choice of kernel for this CPU); NumPy's BLAS with the environment as it is, when
    ``OPENBLAS_CORETYPE`` is set (the pinned figure); ``jax.numpy.dot`` when ``jax`` and JAX
    is installed. ``threads``: at most that many threads in each (None: all cores).

    ``previous``: a result of this function to continue: each measurement keeps the best of
    its rates, so that a busy moment during one session does not lower the peak (and so
    flatter the "% of peak" figures).

    Returns a dict: ``gflops`` (the best), ``best`` (which measurement it was),
    ``openblas_coretype`` (the pin of this process, or None), ``sessions`` (how many times
    it was measured) and ``measurements``, a list of ``{"name", "label", "gflops", ...}``
    (``"error"`` instead of a rate when a child failed).
    """
    log = log or (lambda line: None)
    before = {m["name"]: m for m in (previous or {}).get("measurements", [])}
    measurements = []
    for name, label, library, child_env in peak_plan(os.environ, threads, jax):
        log(f"measuring the peak: {n}x{n} float32 products, {label} ...")
        result = _gemm_in_child(library, child_env, n, rounds)
        if result.get("kernel"):
            label += f" ({result['kernel']} kernels)"
        if result.get("version"):
            label = label.replace("JAX's", f"JAX {result['version']}'s")
        earlier = before.get(name, {})
        if earlier.get("gflops", -1.0) > result.get("gflops", -1.0):
            result = {k: val for k, val in earlier.items() if k not in ("name", "label")}
        measurements.append({"name": name, "label": label, **result})
    rates = [m for m in measurements if "gflops" in m]
    if not rates:
        raise RuntimeError("no matrix-product rate could be measured: "
                           + "; ".join(f"{m['label']}: {m['error']}" for m in measurements))
    best = max(rates, key=lambda m: m["gflops"])
    return {"gflops": best["gflops"], "best": best["name"], "best_label": best["label"],
            "size": n, "threads": threads,
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "sessions": (previous or {}).get("sessions", 0) + 1, "measurements": measurements}


# -- fastmlp bench ------------------------------------------------------------------------------
def _load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def run_bench(backends=None, peers=None, *, hidden=LAYERS[1:-1], activation="relu",
              init="uniform", optimizer="sgd", lr=None, l1=PENALTY, l2=PENALTY,
              batch_size=BATCH_SIZE, dtype=DTYPE, examples=EXAMPLES, rounds=ROUNDS,
              source="auto", peak=True, threads=None, log=None):
    """Time one epoch of a workload on each backend and each peer; return a report dict.

    Parameters
    ----------
    backends : names of ``fastmlp.BACKENDS`` (default all of them).
    peers : names of :data:`fastmlp.peers.PEERS` (default: those installed; ``()`` for none).
    hidden, activation, init, optimizer, lr, l1, l2, batch_size, dtype :
        the network ``(784, *hidden, 10)`` and its training, as in
        :class:`fastmlp.timing.Workload` (``lr`` None: the optimizer's default rate).
    examples, source : the epoch's examples and where they come from (see
        :func:`fastmlp.timing.load_data`).
    rounds : timed rounds per case, interleaved; the best counts.
    peak : measure the machine's peak before and after timing the cases (the best counts;
        :func:`measure_peak`, some seconds each time).
    threads : at most that many threads per library (see :func:`fastmlp.timing.limit_threads`);
        None leaves every library its default.
    log : called with progress lines.

    Returns
    -------
    dict with ``machine``, ``workload``, ``rounds``, ``peak`` (when measured),
    ``load_average`` (before and after timing), ``results`` (one row per case: seconds per
    epoch, speed-ups over the others, GFLOP/s, fraction of the peak) and ``skipped``
    (peer -> why).
    """
    from .model import MLP

    log = log or (lambda line: None)
    backends = list(BACKENDS) if backends is None else list(backends)
    for name in backends:
        get_backend(name)                       # unknown names: a clear error before any work
    if peers is None:
        peers = peer_mod.available()
    else:
        peers = [peer_mod.check_peer(name) for name in peers]
    rounds = v.check_int(rounds, "rounds", minimum=1)
    if threads is not None:
        threads = v.check_int(threads, "threads", minimum=1)
    layers = (LAYERS[0], *hidden, LAYERS[-1])
    MLP(layers, activation, l1, l2, dtype, init=init)   # bad settings: refused before loading

    log("loading data ...")
    work = Workload(load_data(examples, dtype, source), layers, activation, init, optimizer,
                    batch_size, lr, l1, l2, threads=threads)
    log(f"data: {work.data.source}")
    report = {"machine": machine(), "workload": work.describe(), "rounds": rounds,
              "results": [], "skipped": {}}
    if peak:
        report["peak"] = measure_peak(threads, log=log)
    cases = [backend_epoch(name, work) for name in backends]
    for name in peers:
        log(f"preparing {name} ...")
        try:
            cases.append(peer_mod.epoch_case(name, work))
        except peer_mod.PeerUnavailable as exc:
            report["skipped"][name] = str(exc)
            log(f"skipped {name}: {exc}")
    log(f"timing {len(cases)} cases on {work.label()}, best of {rounds} rounds "
        "(interleaved) ...")
    before = _load_average()
    with limit_threads(threads) as limited:
        timings = time_cases(cases, rounds)
    report["load_average"] = {"before": before, "after": _load_average()}
    if peak:                                    # again: the best of before and after counts
        report["peak"] = measure_peak(threads, log=log, previous=report["peak"])
    report["threads_limited"] = limited
    report["machine"] = machine()               # now with numba's threading layer, if used
    flops = work.flops()
    refs = [name for name in ("loop", "numpy", *peers) if name in timings]
    for name, t in timings.items():
        row = {"name": name, "kind": t.case.kind, "seconds_per_epoch": t.seconds,
               "rounds_seconds": t.rounds, "measured_examples": t.case.measured,
               "extrapolated": t.case.factor != 1.0, "extrapolation_factor": t.case.factor,
               "examples_per_second": t.per_second, "gflops": flops / t.seconds / 1e9}
        if "peak" in report:
            row["fraction_of_peak"] = row["gflops"] / report["peak"]["gflops"]
        for ref in refs:
            if ref != name:
                row[f"speedup_vs_{ref}"] = timings[ref].seconds / t.seconds
        row.update(t.case.info)
        report["results"].append(row)
    return report


def _penalties_text(values):
    return f"{values[0]:g}" if len(set(values)) == 1 else "(" + ", ".join(
        f"{x:g}" for x in values) + ")"


def _peak_lines(peak, flops):
    best = peak["gflops"]
    threads = "all cores" if peak["threads"] is None else (
        f"{peak['threads']} thread{'s' if peak['threads'] > 1 else ''}")
    sessions = " before and after the cases" if peak.get("sessions", 1) > 1 else ""
    lines = [f"peak: {best:.1f} GFLOP/s, the best {peak['size']}x{peak['size']} float32 "
             f"product rate ({threads}, measured{sessions}; floor for this epoch "
             f"{flops / best / 1e9:.3f} s) of:"]
    width = max(len(m["label"]) for m in peak["measurements"])
    for m in peak["measurements"]:
        if "gflops" in m:
            mark = "  <- the peak" if m["name"] == peak["best"] else ""
            lines.append(f"  {m['label']:<{width}}  {m['gflops']:7.1f} GFLOP/s{mark}")
        else:
            lines.append(f"  {m['label']:<{width}}  failed: {m['error']}")
    if not peak["openblas_coretype"]:
        lines.append("  (OPENBLAS_CORETYPE is not set here: this process's BLAS is the "
                     "unpinned one)")
    return lines


def format_report(report):
    """The report of :func:`run_bench` as a text table with the machine, the workload and
    the peak above it."""
    m, w = report["machine"], report["workload"]
    blas = _numpy_blas(m["blas"])
    simd = f" ({' '.join(m['simd'])})" if m.get("simd") else ""
    pin = m["environment"].get("OPENBLAS_CORETYPE")
    acts = w["activations"]
    act = (acts[0] if len(set(acts)) == 1 else "/".join(acts)) if acts else "no hidden layer"
    opt = w["optimizer"]
    hyper = "".join(f", {k}={val:g}" for k, val in opt.items() if k != "name")
    lines = [
        f"machine: {m['cpu']}{simd}, {m['usable_cores']} usable cores of {m['cores']}; "
        f"Python {m['python']}, NumPy {m['numpy']}, numba {m['numba']}; BLAS: {blas}; "
        f"OPENBLAS_CORETYPE={pin if pin else '(unset)'}",
        f"workload: one epoch of {w['examples']} examples, layers {tuple(w['layers'])}, {act}, "
        f"{w['init']} init, {opt['name']} (lr={w['lr']:g}{hyper}), K={w['batch_size']}, "
        f"{w['dtype']}, l1={_penalties_text(w['l1'])}, l2={_penalties_text(w['l2'])}; "
        f"{w['flops_per_epoch'] / 1e9:.2f} GFLOP of useful arithmetic; threads: {w['threads']}",
        f"data: {w['data']}",
    ]
    if "peak" in report:
        lines += _peak_lines(report["peak"], w["flops_per_epoch"])
    load = report.get("load_average") or {}
    if load.get("before"):
        lines.append("load average (1, 5, 15 min) before timing: "
                     + " ".join(f"{x:.2f}" for x in load["before"]) + "; after: "
                     + " ".join(f"{x:.2f}" for x in load["after"]))
    lines.append(f"best of {report['rounds']} rounds per case, rounds interleaved")
    names = [r["name"] for r in report["results"]]
    refs = [ref for ref in ("loop", "numpy") if ref in names]
    refs += [r["name"] for r in report["results"] if r["kind"] == "peer"]
    head = ["", "s/epoch", "examples/s"] + [f"x {ref}" for ref in refs] + ["GFLOP/s"]
    if "peak" in report:
        head.append("% peak")
    rows = []
    for r in report["results"]:
        label = f"{r['name']}{' (peer)' if r['kind'] == 'peer' else ''}"
        secs = f"{r['seconds_per_epoch']:.3f}" + ("*" if r["extrapolated"] else "")
        cells = [label, secs, f"{r['examples_per_second']:,.0f}"]
        cells += [f"{r[f'speedup_vs_{ref}']:.2f}" if f"speedup_vs_{ref}" in r else "1"
                  for ref in refs]
        cells.append(f"{r['gflops']:.2f}")
        if "peak" in report:
            cells.append(f"{100 * r['gflops'] / report['peak']['gflops']:.1f}")
        rows.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (f"{c:<{wd}}" if i == 0 else f"{c:>{wd}}") for i, (c, wd) in enumerate(zip(cells, widths)))
    lines += ["", fmt(head), fmt(["-" * wd for wd in widths])] + [fmt(c) for c in rows]
    notes = ["x NAME: how many times faster than NAME (its seconds / these seconds)"]
    if "peak" in report:
        notes.append("% peak: GFLOP/s of useful arithmetic / the peak above")
    if "peak" in report and any(r["gflops"] > report["peak"]["gflops"]
                                for r in report["results"]):
        notes.append("above 100 % of the peak: the machine was busier while the peak was "
                     "measured than while that case ran; rerun when it is quiet")
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
#: what a thresholds file may set about a guard workload, with the defaults: the network
#: (784, *hidden, 10) and its training, the examples of the epoch, rounds and threads
GUARD_WORKLOAD = {"hidden": list(LAYERS[1:-1]), "activation": "relu", "optimizer": "sgd",
                  "batch_size": BATCH_SIZE, "dtype": DTYPE, "examples": 16_384,
                  "rounds": ROUNDS, "threads": 1}

#: the name of the thresholds file's "workload", which a ratio without "@NAME" uses
DEFAULT_WORKLOAD = "default"


def parse_ratio(key):
    """``"fast/slow"`` or ``"fast/slow@workload"`` -> ``(fast, slow, workload name)``
    (the name is :data:`DEFAULT_WORKLOAD` without "@"); no validation."""
    pair, _, workload = key.partition("@")
    fast, _, slow = pair.partition("/")
    return fast, slow, workload or DEFAULT_WORKLOAD


def _check_guard_workload(settings, where):
    """A guard workload: the defaults completed by ``settings``, each checked."""
    if not isinstance(settings, dict):
        raise ValueError(f"{where} must be a JSON object of settings among "
                         f"{', '.join(GUARD_WORKLOAD)}")
    workload = dict(GUARD_WORKLOAD)
    for key, value in settings.items():
        if key not in GUARD_WORKLOAD:
            raise ValueError(f"{where}: unknown workload setting {key!r}; allowed: "
                             f"{', '.join(GUARD_WORKLOAD)}")
        workload[key] = value
    hidden = workload["hidden"]
    if not isinstance(hidden, list):
        raise ValueError(f"{where}.hidden must be a list of hidden-layer widths such as "
                         f"[256, 128] ([] for none), got {hidden!r}")
    v.check_layers([LAYERS[0], *hidden, LAYERS[-1]], f"{where}: layers")
    activation = workload["activation"]
    v.check_activations(tuple(activation) if isinstance(activation, list) else activation,
                        len(hidden), f"{where}.activation")
    v.check_choice(workload["optimizer"], f"{where}.optimizer", tuple(OPTIMIZERS))
    v.check_dtype(workload["dtype"], f"{where}.dtype")
    for key in ("batch_size", "examples", "rounds"):
        v.check_int(workload[key], f"{where}.{key}", minimum=1)
    if workload["threads"] is not None:
        v.check_int(workload["threads"], f"{where}.threads", minimum=1)
    return workload


def read_thresholds(thresholds):
    """Validate a thresholds document (a dict, or the path of a JSON file).

    The document holds ``min_speedup``, ``{"fast/slow": minimum, ...}``: backend ``fast``
    at least that many times faster than backend ``slow`` (null: measured and printed, not
    checked) on the guard's ``workload``; a key ``"fast/slow@NAME"`` measures it on the
    workload ``workloads[NAME]`` instead, whose settings complete ``workload``'s. Settings
    (:data:`GUARD_WORKLOAD`): ``hidden`` (list of widths), ``activation``, ``optimizer``
    (a name), ``batch_size``, ``dtype``, ``examples``, ``rounds``, ``threads``.

    Returns ``(min_speedup, workloads)``: ``{key: float or None}`` and
    ``{name: settings}`` with every setting present, :data:`DEFAULT_WORKLOAD` being the
    file's ``workload``. Raises ``ValueError`` naming what is wrong, ``FileNotFoundError``
    for a file that cannot be read.
    """
    from .backends import _REGISTRY

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
    workloads = {DEFAULT_WORKLOAD: _check_guard_workload(thresholds.get("workload", {}),
                                                         f"{where}: workload")}
    named = thresholds.get("workloads", {})
    if not isinstance(named, dict):
        raise ValueError(f"{where}: 'workloads' must be an object {{name: settings}}")
    for name, settings in named.items():
        if name == DEFAULT_WORKLOAD or not name or not name.replace("-", "").replace(
                "_", "").isalnum():
            raise ValueError(f"{where}: workload name {name!r} must be letters, digits, '-' "
                             f"and '_', and not {DEFAULT_WORKLOAD!r} (that is 'workload')")
        workloads[name] = _check_guard_workload(
            {**thresholds.get("workload", {}), **settings} if isinstance(settings, dict)
            else settings, f"{where}: workloads[{name!r}]")
    checked = {}
    for key, value in thresholds["min_speedup"].items():
        fast, slow, workload = parse_ratio(key)
        if not fast or not slow or "/" in slow or fast == slow:
            raise ValueError(f"{where}: min_speedup key {key!r} must be 'fast/slow' or "
                             f"'fast/slow@workload', two different backend names among "
                             f"{sorted(_REGISTRY)}")
        for name in (fast, slow):
            if name not in _REGISTRY:
                raise ValueError(f"{where}: min_speedup key {key!r} names the unknown backend "
                                 f"{name!r}; known backends: {', '.join(_REGISTRY)}")
        if workload not in workloads:
            raise ValueError(f"{where}: min_speedup key {key!r} names the workload "
                             f"{workload!r}, which 'workloads' does not define (defined: "
                             f"{', '.join(sorted(set(workloads) - {DEFAULT_WORKLOAD})) or 'none'})")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value > 0 or not math.isfinite(value)):
            raise ValueError(f"{where}: min_speedup[{key!r}] must be a positive number or null "
                             f"(measured, not checked), got {value!r}")
        checked[key] = None if value is None else float(value)
    return checked, workloads


@dataclass
class GuardResult:
    """What the guard found: ``ok`` is False when a checked ratio stayed below its minimum."""

    ok: bool
    lines: list
    ratios: dict


def check_ratios(ratios, min_speedup, available=None):
    """Compare measured speed-ups with their minimums: ``(failed keys, lines)``.

    ``ratios``: ``{"a/b[@workload]": measured speed-up}``, absent keys meaning "a backend is
    missing"; ``min_speedup`` as returned by :func:`read_thresholds`; ``available``: the
    backend names present (to say which one is missing).
    """
    failed, lines = [], []
    for key, minimum in min_speedup.items():
        fast, slow, _ = parse_ratio(key)
        if key not in ratios:
            missing = [n for n in (fast, slow) if available is None or n not in available]
            lines.append(f"skip  {key}: backend {' and '.join(missing)} not available here"
                         + (f" (minimum {minimum:g}x not checked)" if minimum else ""))
        elif minimum is None:
            lines.append(f"info  {key}: {ratios[key]:.2f}x (no minimum set yet)")
        elif ratios[key] >= minimum:
            lines.append(f"ok    {key}: {ratios[key]:.2f}x >= {minimum:g}x")
        else:
            failed.append(key)
            lines.append(f"FAIL  {key}: {ratios[key]:.2f}x < {minimum:g}x: {fast} is slower "
                         f"relative to {slow} than the threshold allows")
    return failed, lines


def _guard_workload(settings, source, data_cache):
    key = (settings["examples"], settings["dtype"])
    if key not in data_cache:
        data_cache[key] = load_data(settings["examples"], settings["dtype"], source)
    activation = settings["activation"]
    return Workload(data_cache[key], (LAYERS[0], *settings["hidden"], LAYERS[-1]),
                    tuple(activation) if isinstance(activation, list) else activation,
                    optimizer=settings["optimizer"], batch_size=settings["batch_size"],
                    threads=settings["threads"])


def run_guard(thresholds, backends=None, source="synthetic", log=None):
    """Measure the ratios a thresholds file names and check them (see :func:`read_thresholds`).

    ``backends`` maps names to :class:`fastmlp.Backend` instances (default:
    ``fastmlp.BACKENDS`` through ``get_backend``); tests pass a deliberately slowed one. For
    each workload, its backends are timed together, interleaved, best of its rounds; a ratio
    below its minimum is measured again with twice the rounds (the best of all rounds
    counts) before it fails, so that a busy moment on a shared machine is not taken for a
    regression. Returns a :class:`GuardResult`.
    """
    min_speedup, workloads = read_thresholds(thresholds)
    log = log or (lambda line: None)
    if backends is None:
        backends = {name: get_backend(name) for name in BACKENDS}
    for name, be in backends.items():
        if not isinstance(be, Backend):
            raise TypeError(f"backends[{name!r}] must be a fastmlp Backend, got {be!r}")
    pairs = {}                          # workload -> {key: (fast, slow)} for the runnable keys
    for key in min_speedup:
        fast, slow, workload = parse_ratio(key)
        if fast in backends and slow in backends:
            pairs.setdefault(workload, {})[key] = (fast, slow)
    ratios, seconds, data_cache = {}, [], {}
    for workload, checks in pairs.items():
        settings = workloads[workload]
        work = _guard_workload(settings, source, data_cache)
        rounds, tag = settings["rounds"], "" if workload == DEFAULT_WORKLOAD else f"@{workload}"
        log(f"guard{tag}: one epoch of {work.n_examples} examples, {work.label()}, best of "
            f"{rounds} rounds, threads: {settings['threads'] or 'default'}; "
            f"data: {work.data.source}")
        needed = sorted({name for pair in checks.values() for name in pair})
        cases = []
        for name in needed:
            cases.append(backend_epoch(backends[name], work))
            cases[-1].name = name          # the key in the thresholds, whatever the instance
        with limit_threads(settings["threads"]):
            timings = time_cases(cases, rounds)

        def speedups():
            return {key: timings[b].seconds / timings[a].seconds for key, (a, b) in checks.items()}

        measured = speedups()
        failed, _ = check_ratios(measured, {key: min_speedup[key] for key in checks})
        if failed:
            again = sorted({name for key in failed for name in checks[key]})
            log(f"guard{tag}: {', '.join(failed)} below the minimum; measuring "
                f"{', '.join(again)} again with {2 * rounds} more rounds")
            with limit_threads(settings["threads"]):
                time_cases([timings[name].case for name in again], 2 * rounds, timings)
            measured = speedups()
        ratios.update(measured)
        for name in needed:
            t = timings[name]
            seconds.append(f"      {name}{tag}: {t.seconds:.3f} s per epoch of "
                           f"{t.case.examples} examples"
                           + (f" (measured on {t.case.measured} examples, x{t.case.factor:.1f})"
                              if t.case.factor != 1.0 else ""))
    failed, lines = check_ratios(ratios, min_speedup, backends)
    return GuardResult(not failed, lines + seconds, ratios)


if __name__ == "__main__":
    # the command lives in fastmlp.cli, which imports this module: point there, no cycle
    sys.exit("fastmlp.bench is the library behind the command: run `fastmlp bench ...` "
             "(or `python -m fastmlp bench ...`)")
