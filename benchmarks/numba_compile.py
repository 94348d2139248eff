"""The numba backend's compile times: cold, from the on-disk cache, and for a new network.

    python benchmarks/numba_compile.py [--dtype float32]

Each measurement runs in a fresh interpreter with its own ``NUMBA_CACHE_DIR``:

* cold: an empty cache, then what the first ``fastmlp.train(...)`` with evaluation needs
  (the minibatch training kernel and the logits), each timed, wall and CPU seconds, with
  the per-function inclusive compile times numba's event recorder reports;
* cached: the same in a second process on the filled cache;
* new network: after a first training call, the first epoch of networks of other depths
  and activations (nothing may compile: the kernels' signatures do not depend on them).

Compilation is single-threaded: compare wall and CPU seconds, and rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

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


def child(dtype, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", _CHILD, dtype], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
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
