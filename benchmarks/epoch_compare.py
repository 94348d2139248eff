"""Epoch times of the numba backend in this checkout and in another one, and whether they
compute the same bits.

    python benchmarks/epoch_compare.py --compare-with CHECKOUT [--threads 2 1] [--rounds 6]
                                       [--epochs 3] [--hidden 256 128] [--batch-size 32]
                                       [--dtype float32] [--optimizer sgd] [--activation relu]

For judging a kernel change (``git worktree add /tmp/before HEAD`` before making it): each
round runs a fresh interpreter per checkout, the two in alternating order, each importing
``fastmlp`` from its own checkout (asserted) and timing ``--epochs`` whole epochs per thread
count after a warm-up call (compilation, or loading the checkout's numba cache, is not
timed). Prints, per checkout and thread count, the best, quartiles and median epoch, the
ratios of this checkout's best and median to the other's, and the digests of the trained
parameters: one digest on both sides means the change left every bit as it was, on every
thread count.

Why fresh interpreters and not two copies of the package imported under other names in one
process: such a copy is not the code it seems to be -- the backend registry imports
``fastmlp.backends.numba`` by its absolute name, so every copy trains with the installed
package's kernels (and reports the same digest). And on a shared 2-core machine an epoch
moves by 10-20 % from round to round and by up to 2x within an hour, so only many
alternating rounds separate a few per cent from the drift: compare the medians. Both
checkouts need :mod:`fastmlp.timing`'s ``Workload`` (fastmlp 0.2 and later).
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap

from _checkouts import THIS_CHECKOUT, run_on_checkout

_CHILD = textwrap.dedent("""
    import hashlib, json, os, sys, time
    import numba
    import fastmlp
    from fastmlp import timing
    a = json.loads(sys.argv[1])
    root = os.path.realpath(a["checkout"])
    if not os.path.realpath(fastmlp.__file__).startswith(root + os.sep):
        raise SystemExit(f"imported {fastmlp.__file__}, not the fastmlp of {root}")
    data = timing.load_data(dtype=a["dtype"])
    work = timing.Workload(data, layers=tuple(a["layers"]), batch_size=a["batch_size"],
                           optimizer=a["optimizer"], activation=a["activation"])
    backend = fastmlp.get_backend("numba")

    def epoch(threads):
        numba.set_num_threads(threads)
        model = work.model()
        state = work.optimizer.init_state(model.n_params, model.dtype)
        order = work.order(work.n_examples)
        t0 = time.perf_counter()
        backend.train_steps(model, data.X, data.y, order, work.batch_size, work.lr, state)
        seconds = time.perf_counter() - t0
        return seconds, hashlib.sha256(model.theta.tobytes()).hexdigest()[:12]

    for threads in a["threads"]:
        epoch(threads)
    out = {str(t): [] for t in a["threads"]}
    for _ in range(a["epochs"]):
        for threads in a["threads"]:
            out[str(threads)].append(epoch(threads))
    print(json.dumps(out))
""")


def quartiles(values):
    """``(best, first quartile, median, third quartile)`` of ``values``."""
    v = sorted(values)
    n = len(v)
    return v[0], v[n // 4], v[n // 2], v[(3 * n) // 4]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare-with", metavar="CHECKOUT", required=True,
                    help="another checkout of fastmlp (a git worktree)")
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--rounds", type=int, default=6, help="fresh interpreters per checkout")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per thread count and "
                    "interpreter")
    ap.add_argument("--hidden", type=int, nargs="*", default=[256, 128])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--activation", default="relu")
    a = ap.parse_args()
    checkouts = {"this": THIS_CHECKOUT, "other": os.path.abspath(a.compare_with)}
    args = {"threads": a.threads, "epochs": a.epochs, "layers": [784, *a.hidden, 10],
            "batch_size": a.batch_size, "dtype": a.dtype, "optimizer": a.optimizer,
            "activation": a.activation}
    print(f"layers {tuple(args['layers'])} {a.activation}, K={a.batch_size}, {a.dtype}, "
          f"{a.optimizer}; {a.rounds} rounds x {a.epochs} epochs per checkout and thread count; "
          f"this = {THIS_CHECKOUT}, other = {checkouts['other']}", flush=True)
    results = {(label, t): [] for label in checkouts for t in a.threads}
    for r in range(a.rounds):
        order = list(checkouts) if r % 2 == 0 else list(checkouts)[::-1]
        for label in order:
            checkout = checkouts[label]
            for t, runs in run_on_checkout(checkout, _CHILD,
                                           json.dumps(dict(args, checkout=checkout))).items():
                results[(label, int(t))].extend(runs)
        print(f"round {r + 1} of {a.rounds} done (load {os.getloadavg()[0]:.2f})", flush=True)
    for t in a.threads:
        stats = {}
        for label in checkouts:
            runs = results[(label, t)]
            stats[label] = quartiles([s for s, _ in runs])
            digests = sorted({d for _, d in runs})
            best, q1, med, q3 = stats[label]
            print(f"{t} thread(s) {label:5s}: best {best:.3f} s, quartiles {q1:.3f} / {med:.3f} "
                  f"/ {q3:.3f} s over {len(runs)} epochs; parameters {', '.join(digests)}")
        print(f"{t} thread(s) this / other: best {stats['this'][0] / stats['other'][0]:.3f}, "
              f"median {stats['this'][2] / stats['other'][2]:.3f}")


if __name__ == "__main__":
    main()
