"""The numba backend's compile times: cold, from the on-disk cache, and for a new network.

    python benchmarks/numba_compile.py [--dtype float32] [--compare-with CHECKOUT [--rounds N]]

Each measurement runs in a fresh interpreter with its own ``NUMBA_CACHE_DIR``:

* cold: an empty cache, then what the first ``fastmlp.train(...)`` with evaluation needs
  (the minibatch training kernel and the logits), each timed, wall and CPU seconds, with
  the per-function inclusive compile times numba's event recorder reports;
* cached: the same in a second process on the filled cache;
* new network: after a first training call, the first epoch of networks of other depths
  and activations (nothing may compile: the kernels' signatures do not depend on them).

Compilation is single-threaded: compare wall and CPU seconds, and rerun on a quiet machine.

``--compare-with CHECKOUT`` (a checkout of another version, such as fastmlp 0.1.0:
``git worktree add /tmp/fastmlp-0.1.0 fe49628``) times instead what a user meets: the first
``fastmlp.train(..., backend="numba")`` of (784, 64, 10) and the first ``predict_proba`` in a
fresh interpreter with an empty cache, for this checkout and for CHECKOUT in turn, ``--rounds``
times (compile times drift with the machine by half within an hour: only the alternating
pairs compare).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap

from _checkouts import THIS_CHECKOUT, run_on_checkout

_CHILD = textwrap.dedent("""
    import json, sys, time
    from numba.core import event
    t0, c0 = time.perf_counter(), time.process_time()
    import fastmlp
    from fastmlp.backends import numba as nb
    out = {"import": time.perf_counter() - t0}
    dtype = sys.argv[1]
    with event.install_recorder("numba:compile") as rec:
        for name in ("minibatches", "logits"):
            t, c = time.perf_counter(), time.process_time()
            nb._make_ready(dtype, [name])
            out[name] = [time.perf_counter() - t, time.process_time() - c]
    starts, functions = {}, {}
    for ts, e in rec.buffer:
        key = e.data["dispatcher"].py_func.__qualname__
        if e.is_start:
            starts.setdefault(key, []).append(ts)
        else:
            functions[key] = functions.get(key, 0.0) + ts - starts[key].pop()
    out["functions"] = dict(sorted(functions.items(), key=lambda kv: -kv[1])[:8])
    rng = __import__("numpy").random.default_rng(0)
    X = rng.random((640, 784)).astype(dtype)
    y = rng.integers(0, 10, 640)
    first = []
    for layers, act in (((784, 64, 10), "relu"), ((784, 256, 128, 10), "tanh"),
                        ((784, 10), "relu"), ((784, 32, 32, 32, 10), "logistic")):
        model = fastmlp.MLP(layers, activation=act, dtype=dtype)
        t = time.perf_counter()
        fastmlp.train(model, (X, y), backend="numba", epochs=1, batch_size=32, progress=False)
        first.append([str(layers), act, time.perf_counter() - t])
    out["first_epochs"] = first
    print(json.dumps(out))
""")


# the first training call and prediction as a user meets them (the API of every version)
_FIRST_CALL = textwrap.dedent("""
    import json, time
    import numpy as np
    import fastmlp
    rng = np.random.default_rng(0)
    X = rng.random((640, 784)).astype(np.float32)
    y = rng.integers(0, 10, 640)
    model = fastmlp.MLP((784, 64, 10), seed=0)
    t0 = time.perf_counter()
    fastmlp.train(model, (X, y), backend="numba", epochs=1, batch_size=32, progress=False)
    t1 = time.perf_counter()
    model.predict_proba(X, backend="numba")
    t2 = time.perf_counter()
    print(json.dumps({"file": fastmlp.__file__, "train": t1 - t0, "predict": t2 - t1}))
""")


def first_call(checkout):
    """The first train and predict of a fresh interpreter importing fastmlp from ``checkout``,
    with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        return run_on_checkout(checkout, _FIRST_CALL, env={"NUMBA_CACHE_DIR": cache})


def compare(other, rounds):
    """Cold first calls of this checkout and of ``other``, alternating."""
    totals = {"this": [], "other": []}
    for r in range(rounds):
        for label, checkout in (("this", THIS_CHECKOUT), ("other", other)):
            res = first_call(checkout)
            total = res["train"] + res["predict"]
            totals[label].append(total)
            print(f"round {r + 1} {label:5s} load {os.getloadavg()[0]:.2f}: first train "
                  f"{res['train']:.2f} s + first predict {res['predict']:.2f} s = {total:.2f} s"
                  f"  ({os.path.dirname(os.path.dirname(res['file']))})", flush=True)
    ratios = [a / b for a, b in zip(totals["this"], totals["other"])]
    print("this / other per round: " + ", ".join(f"{x:.2f}" for x in ratios))


def child(dtype, cache):
    return run_on_checkout(THIS_CHECKOUT, _CHILD, dtype, env={"NUMBA_CACHE_DIR": cache})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--compare-with", metavar="CHECKOUT",
                    help="another version's checkout: time both versions' cold first call")
    ap.add_argument("--rounds", type=int, default=2, help="alternating pairs (--compare-with)")
    a = ap.parse_args()
    if a.compare_with:
        compare(os.path.abspath(a.compare_with), a.rounds)
        return
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "cached"):
            r = child(a.dtype, cache)
            total = r["minibatches"][0] + r["logits"][0]
            print(f"{label:6s} load {os.getloadavg()[0]:.2f}: training kernel "
                  f"{r['minibatches'][0]:.2f} s ({r['minibatches'][1]:.2f} s CPU) + logits "
                  f"{r['logits'][0]:.2f} s ({r['logits'][1]:.2f} s CPU) = {total:.2f} s "
                  f"(import {r['import']:.2f} s)")
            if label == "cold":
                print("       inclusive per function: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in r["functions"].items()))
            print("       then the first epoch of 640 examples: " + ", ".join(
                f"{layers} {act} {t:.3f} s" for layers, act, t in r["first_epochs"]))


if __name__ == "__main__":
    main()
