"""The seed's experiments, regenerated as figures and numbers: ``fastmlp reproduce --out DIR``.

Four experiments, each writing into ``DIR``:

``gradcheck``        gradcheck.txt: finite-difference and loop-vs-matrix gradient checks
``boundaries``       boundaries-hidden.png, boundaries-epochs.png, boundaries-weight-decay.png
``learning-curves``  learning-curves.png: Fashion-MNIST error and loss per epoch
``speed``            speed.png: seconds per epoch of every backend on the seed's workload

and ``results.json`` with every number behind them, the settings, the seeds and the machine.
An experiment that cannot run (Fashion-MNIST missing) is skipped with the reason; one that
fails is reported without losing the others. ``quick=True`` is a short version for CI: the
same code on less data and fewer epochs, said so in every title and in results.json.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import __version__, datasets
from .backends import BACKENDS, fastest_backend, get_backend
from .io import write_text_atomic
from .model import MLP
from .training import train

EXPERIMENTS = ("gradcheck", "boundaries", "learning-curves", "speed")

#: the seed's published one-epoch times (seconds), measured on the authors' machine
SEED_SECONDS = {"loop": 147.7, "matrix": 13.0}

#: the seed's timing epoch: the 70% train split of Fashion-MNIST's 70,000 images
EPOCH_EXAMPLES = 49_000

#: the two-circles settings shared by every panel unless the grid varies them
#: (lam is every penalty: L1 and L2 on W1 and on W2)
CIRCLES_BASE = {"hidden": 128, "epochs": 30, "lam": 1e-4, "batch_size": 16, "lr": 0.5}
CIRCLES_POINTS = 1100
#: noise of the rings: enough overlap that the classes touch, so that the boundary's
#: placement matters and the test errors are not all zero (0.08, the default, separates them)
CIRCLES_NOISE = 0.12

#: file stem -> (the setting varied, its values, what the suptitle says)
BOUNDARY_GRIDS = {
    "hidden": ("hidden", (128, 20, 3), "the number of hidden units"),
    "epochs": ("epochs", (2, 10, 30), "the number of epochs"),
    "weight-decay": ("lam", (1e-4, 1e-3, 3e-3), "the weight decay λ"),
}

#: the seed's Fashion-MNIST network and learning-curve run
FASHION_LAYERS = (784, 64, 10)
CURVES = {"batch_size": 32, "lr": 0.1, "lam": 1e-4, "epochs": 30}
#: the seed's timing run (the learning rate does not change the work done; 0.01 was the
#: seed's default)
TIMING = {"batch_size": 20, "lr": 0.01, "lam": 1e-3, "epochs": 1}


@dataclass(frozen=True)
class Plan:
    """How much of each experiment to run: the full reproduction or the quick one."""

    #: Fashion-MNIST examples used for the learning curves (None: all 70,000)
    curve_examples: int | None
    curve_epochs: int
    #: examples timed per backend (None: the whole 49,000-example epoch); the loop backend
    #: is always timed on ``loop_examples`` and extrapolated
    timed_examples: int | None
    loop_examples: int
    #: timing rounds for the fast backends (the best is kept); the loop backend gets one
    rounds: int
    #: grid points per axis of the decision-boundary panels
    resolution: int


FULL = Plan(curve_examples=None, curve_epochs=CURVES["epochs"], timed_examples=None,
            loop_examples=4_900, rounds=3, resolution=250)
QUICK = Plan(curve_examples=6_000, curve_epochs=3, timed_examples=2_000,
             loop_examples=200, rounds=2, resolution=120)


def machine_info():
    """The CPU, cores, load and library versions, for results.json."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "fastmlp": __version__,
        "backends": list(BACKENDS),
    }
    for package in ("numba", "scipy", "matplotlib"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    try:  # optional (comes with scikit-learn): how many threads BLAS uses
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: pool.get(k) for k in ("internal_api", "version", "num_threads")}
                        for pool in threadpool_info() if pool.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = None
    return info


def _lam_text(lam):
    """1e-4 -> "1e-4" (exponent without padding)."""
    mantissa, exponent = f"{lam:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _blas_text(machine):
    """", BLAS threads 1" when threadpoolctl could tell, else ""."""
    threads = sorted({pool["num_threads"] for pool in machine.get("blas") or []})
    return f", BLAS threads {'/'.join(map(str, threads))}" if threads else ""


class _Run:
    """One reproduction: its folder, settings, progress bar and results."""

    def __init__(self, out, plan, quick, backend, seed, data_dir, progress):
        self.out, self.plan, self.quick = Path(out), plan, quick
        self.backend, self.seed, self.data_dir, self.progress = backend, seed, data_dir, progress
        self.bar = None
        self._fashion = None
        self.results = {
            "fastmlp": __version__,
            "quick": quick,
            "plan": asdict(plan),
            "backend": backend,
            "seed": seed,
            "seeds": {"circles data": seed, "splits": seed, "initialization": seed,
                      "shuffles": seed, "subsets": seed},
            "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "experiments": {},
            "skipped": {},
            "failed": {},
        }

    # -- messages and progress ---------------------------------------------------------
    def say(self, message):
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def step(self, what):
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(1)

    # -- data --------------------------------------------------------------------------
    def fashion(self):
        """Fashion-MNIST for this run, split and standardized (once): raises
        DataNotFoundError when it is not installed."""
        if self._fashion is None:
            X, y = datasets.fashion_mnist(self.data_dir)
            n_total = len(y)
            if self.plan.curve_examples is not None and self.plan.curve_examples < n_total:
                keep = np.random.default_rng(self.seed).permutation(n_total)[:self.plan.curve_examples]
                X, y = X[np.sort(keep)], y[np.sort(keep)]
            self._fashion = (datasets.split(X, y, seed=self.seed), n_total)
        return self._fashion

    # -- experiments -------------------------------------------------------------------
    def gradcheck(self):
        from .gradcheck import seed_report

        t0 = time.perf_counter()
        text = seed_report(backend="numpy")
        write_text_atomic(self.out / "gradcheck.txt", text if text.endswith("\n") else text + "\n")
        self.step("gradient checks")
        return {"file": "gradcheck.txt", "backend": "numpy", "layers": [2, 2, 2], "lam": 1e-3,
                "seconds": time.perf_counter() - t0}

    def boundaries(self):
        from .plots import decision_boundaries

        X, y = datasets.circles(n=CIRCLES_POINTS, noise=CIRCLES_NOISE, seed=self.seed)
        split = datasets.split(X, y, seed=self.seed)
        trained = {}  # a setting shared by several grids is trained once

        def fit(settings):
            key = tuple(sorted(settings.items()))
            if key not in trained:
                s = settings
                model = MLP((2, s["hidden"], 2), l1=(s["lam"], s["lam"]), l2=(s["lam"], s["lam"]),
                            seed=self.seed)
                history = train(model, split, backend=self.backend, epochs=s["epochs"],
                                batch_size=s["batch_size"], lr=s["lr"], seed=self.seed,
                                progress=False)
                trained[key] = (model, history)
                self.step(f"circles: {s['hidden']} hidden, {s['epochs']} epochs, "
                          f"λ={_lam_text(s['lam'])}")
            return trained[key]

        grids = {}
        for stem, (varied, values, what) in BOUNDARY_GRIDS.items():
            panels, rows = [], []
            for value in values:
                s = dict(CIRCLES_BASE, **{varied: value})
                model, history = fit(s)
                last = history.last
                title = (f"{s['hidden']} hidden, {s['epochs']} epochs, λ={_lam_text(s['lam'])}\n"
                         f"K={s['batch_size']}, lr={s['lr']:g}: test error {last['test_error']:.1f}%")
                panels.append((model, split.train[0], split.train[1], title))
                rows.append(dict(s, train_error=last["train_error"],
                                 valid_error=last["valid_error"], test_error=last["test_error"],
                                 test_loss=last["test_loss"]))
            file = f"boundaries-{stem}.png"
            decision_boundaries(
                panels, self.out / file, backend=self.backend, resolution=self.plan.resolution,
                class_names=("class 0 (inner ring)", "class 1 (outer ring)"),
                suptitle=f"Two circles: decision boundary as {what} varies "
                         f"({len(split.train[1])} training points, noise {CIRCLES_NOISE:g}; λ is every "
                         "L1 and L2 penalty)")
            grids[stem] = {"file": file, "varied": varied, "panels": rows}
        return {
            "data": {"name": "two circles", "points": CIRCLES_POINTS, "noise": CIRCLES_NOISE,
                     "seed": self.seed,
                     "split": [len(part[1]) for _, part in split.parts()],
                     "standardized": True},
            "settings": dict(CIRCLES_BASE, backend=self.backend, dtype="float32",
                             penalties="lam is l1 and l2 on W1 and W2"),
            "grids": grids,
        }

    def learning_curves(self):
        from .plots import learning_curves

        split, n_total = self.fashion()
        n_used = sum(len(part[1]) for _, part in split.parts())
        epochs, lam = self.plan.curve_epochs, CURVES["lam"]
        model = MLP(FASHION_LAYERS, l1=(lam, lam), l2=(lam, lam), seed=self.seed)
        history = train(model, split, backend=self.backend, epochs=epochs,
                        batch_size=CURVES["batch_size"], lr=CURVES["lr"], seed=self.seed,
                        progress=self.progress, eval_train=True)
        last = history.last
        scope = []
        if n_used != n_total:
            scope.append(f"{n_used:,} of {n_total:,} images")
        if epochs != CURVES["epochs"]:
            scope.append(f"{epochs} of {CURVES['epochs']} epochs")
        title = ("Fashion-MNIST learning curves" + (f" (QUICK: {', '.join(scope)})" if scope else "")
                 + f"\nlayers {FASHION_LAYERS}, K={CURVES['batch_size']}, lr={CURVES['lr']:g}, "
                 f"every λ={_lam_text(lam)}, {epochs} epochs, backend {self.backend}; "
                 f"final test error {last['test_error']:.2f}% "
                 f"(accuracy {100 - last['test_error']:.2f}%)")
        learning_curves(history, self.out / "learning-curves.png", title=title)
        self.step("learning curves")
        return {
            "file": "learning-curves.png",
            "data": {"name": "fashion-mnist", "examples_used": n_used, "examples_total": n_total,
                     "split": [len(part[1]) for _, part in split.parts()]},
            "settings": dict(CURVES, epochs=epochs, layers=list(FASHION_LAYERS),
                             backend=self.backend, dtype="float32", eval_train=True),
            "final": {"train_error": last["train_eval_error"], "valid_error": last["valid_error"],
                      "test_error": last["test_error"], "test_accuracy": 100 - last["test_error"],
                      "train_seconds": sum(history["seconds"])},
            "history": history.to_dict(),
        }

    def speed(self):
        from .plots import speed_bars

        try:
            split, n_total = self.fashion()
            X, y = split.train
            data = {"name": "fashion-mnist", "train_examples": len(y)}
        except datasets.DataNotFoundError:
            # Time does not depend on the pixel values: random inputs of the same shape
            # give the same work. Said in the figure and in results.json.
            n = self.plan.timed_examples or EPOCH_EXAMPLES
            rng = np.random.default_rng(self.seed)
            X = rng.standard_normal((n, FASHION_LAYERS[0]), dtype=np.float32)
            y = rng.integers(0, FASHION_LAYERS[-1], size=n)
            data = {"name": "random stand-in of Fashion-MNIST's shape (not installed)",
                    "train_examples": n}
        K, lam = TIMING["batch_size"], TIMING["lam"]
        load_before = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        timings = {}
        for name in BACKENDS:
            limit = self.plan.loop_examples if name == "loop" else self.plan.timed_examples
            n = min(len(y), limit or EPOCH_EXAMPLES, EPOCH_EXAMPLES)
            rounds = 1 if name == "loop" else self.plan.rounds

            def epoch(n_examples):
                model = MLP(FASHION_LAYERS, l1=(lam, lam), l2=(lam, lam), seed=self.seed)
                history = train(model, (X[:n_examples], y[:n_examples]), backend=name, epochs=1,
                                batch_size=K, lr=TIMING["lr"], seed=self.seed, progress=False)
                return history["seconds"][0]

            epoch(2 * K)  # warm-up, not timed: compiles numba's kernels, fills caches
            measured = [epoch(n) for _ in range(rounds)]
            best = min(measured)
            timings[name] = {
                "seconds_per_epoch": best * EPOCH_EXAMPLES / n,
                "measured_seconds": measured, "examples_timed": n, "rounds": rounds,
                "extrapolated": n < EPOCH_EXAMPLES,
            }
            self.step(f"speed: {name}")
        loop = timings.get("loop", {}).get("seconds_per_epoch")
        rows = []
        for name, t in timings.items():
            note = (f"from {t['examples_timed']:,} examples" if t["extrapolated"]
                    else f"best of {t['rounds']}")
            if loop is not None and name != "loop":
                note += f"; {loop / t['seconds_per_epoch']:.1f}× the loop's speed"
            rows.append({"label": f"{name} (here)", "seconds": t["seconds_per_epoch"],
                         "kind": "extrapolated" if t["extrapolated"] else "measured",
                         "note": f"({note})"})
        for name, seconds in SEED_SECONDS.items():
            note = "published, other hardware"
            if name != "loop":
                note += f"; {SEED_SECONDS['loop'] / seconds:.1f}× its loop's speed"
            rows.append({"label": f"seed's {name}", "seconds": seconds, "kind": "reference",
                         "note": f"({note})"})
        what = "Fashion-MNIST" if data["name"] == "fashion-mnist" else \
            "RANDOM INPUTS of Fashion-MNIST's shape (the data is not installed)"
        quick = "; QUICK: timed on subsets, scaled to the epoch" if self.quick else ""
        machine = self.results["machine"]
        speed_bars(rows, self.out / "speed.png", title=(
            f"Seconds per epoch: {what}, {EPOCH_EXAMPLES:,} examples{quick}\n"
            f"layers {FASHION_LAYERS}, K={K}, every λ={_lam_text(lam)}, float32; measured on "
            f"{machine['cpu']}, {machine['usable_cores']} cores{_blas_text(machine)}"
            + (f", load average {load_before[0]:.1f}" if load_before else "") + "\n"
            "training time only, after an untimed warm-up (so compile time is not counted)"))
        speedups = {}
        if "loop" in timings:
            speedups = {name: timings["loop"]["seconds_per_epoch"] / t["seconds_per_epoch"]
                        for name, t in timings.items() if name != "loop"}
        return {
            "file": "speed.png",
            "data": data,
            "settings": dict(TIMING, layers=list(FASHION_LAYERS), dtype="float32",
                             epoch_examples=EPOCH_EXAMPLES),
            "method": ("fastmlp.train(..., progress=False), History 'seconds' (training time "
                       "only); one untimed warm-up epoch of 2 minibatches per backend first "
                       "(compiles numba); best of 'rounds'; runs on fewer than epoch_examples "
                       "examples are scaled linearly to the epoch"),
            "load_average_before": load_before,
            "backends": timings,
            "speedup_over_loop": speedups,
            "seed_published_seconds": dict(SEED_SECONDS, note="measured on the seed authors' "
                                           "machine, not this one", speedup=SEED_SECONDS["loop"]
                                           / SEED_SECONDS["matrix"]),
        }

    # -- the whole run -------------------------------------------------------------------
    def units(self, name):
        """Progress-bar steps of an experiment."""
        if name == "boundaries":
            return len({tuple(sorted(dict(CIRCLES_BASE, **{v: x}).items()))
                        for v, values, _ in BOUNDARY_GRIDS.values() for x in values})
        return len(BACKENDS) if name == "speed" else 1

    def execute(self, only):
        runners = {"gradcheck": self.gradcheck, "boundaries": self.boundaries,
                   "learning-curves": self.learning_curves, "speed": self.speed}
        self.out.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=sum(self.units(n) for n in only), unit="step",
                            desc="fastmlp reproduce", dynamic_ncols=True)
        try:
            for name in only:
                t0 = time.perf_counter()
                try:
                    result = runners[name]()
                except datasets.DataNotFoundError as exc:
                    self.results["skipped"][name] = str(exc)
                    self.say(f"fastmlp reproduce: skipped {name}: {exc}")
                    if self.bar is not None:
                        self.bar.update(self.units(name))
                    continue
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # one broken experiment must not lose the others
                    self.results["failed"][name] = f"{type(exc).__name__}: {exc}"
                    self.say(f"fastmlp reproduce: {name} FAILED:\n{traceback.format_exc()}")
                    if self.bar is not None:
                        self.bar.update(self.units(name))
                    continue
                result["wall_seconds"] = time.perf_counter() - t0
                self.results["experiments"][name] = result
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        self.results["wall_seconds"] = time.perf_counter() - t_start
        write_text_atomic(self.out / "results.json", json.dumps(self.results, indent=2) + "\n")
        return self.results


def reproduce(out, *, quick=False, backend=None, only=None, seed=0, data_dir=None, progress=True):
    """Run the seed's experiments and write their figures and numbers into ``out``.

    Parameters
    ----------
    out : path of the folder to write (created if needed).
    quick : bool
        a short version (a subset of Fashion-MNIST, 3 epochs, short timings) for CI;
        every title and results.json say so.
    backend : str or None
        backend for the trainings (the decision boundaries and the learning curves);
        default the fastest available. The speed experiment times every backend.
    only : sequence of names from ``EXPERIMENTS`` or None (all of them)
    seed : int
        seeds the data, splits, initializations and shuffles (recorded in results.json).
    data_dir : folder of the Fashion-MNIST files (default: where fastmlp looks).
    progress : bool
        show progress bars (tqdm).

    Returns
    -------
    dict
        what results.json holds; ``results["skipped"]`` and ``results["failed"]`` map the
        experiments that did not run to the reason.
    """
    from . import _validation as v

    backend = get_backend(backend if backend is not None else fastest_backend()).name
    seed = v.check_seed(seed)
    if only is None:
        only = EXPERIMENTS
    if isinstance(only, str) or not all(name in EXPERIMENTS for name in only):
        raise ValueError(f"only must be a list of experiments among {', '.join(EXPERIMENTS)}, "
                         f"got {only!r}")
    only = [name for name in EXPERIMENTS if name in only]  # always in the same order
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out={os.fspath(out)!r} exists and is not a folder")
    run = _Run(out, QUICK if quick else FULL, bool(quick), backend, seed, data_dir, progress)
    return run.execute(only)


__all__ = ["reproduce", "EXPERIMENTS", "SEED_SECONDS", "machine_info"]
