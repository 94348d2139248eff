"""What float64 costs against float32: one epoch of the deep network in both dtypes, per
backend, with the rounds of all cases interleaved (one run, so that the machine's drift hits
both dtypes alike; the pytest-benchmark group ``deep epoch by dtype`` times them one after
the other).

    python benchmarks/dtype_cost.py [--backends numba numpy] [--rounds 5] [--hidden 256 128]
                                    [--batch-size 32] [--threads N]

Prints each case's best round and, per backend, float64's time over float32's.
"""

from __future__ import annotations

import argparse
import dataclasses

from fastmlp import timing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", nargs="+", default=["numba", "numpy"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, nargs="*", default=list(timing.DEEP_LAYERS[1:-1]))
    ap.add_argument("--batch-size", type=int, default=timing.BATCH_SIZE)
    ap.add_argument("--threads", type=int, default=None,
                    help="at most this many threads per library (default: all cores)")
    a = ap.parse_args()
    layers = (timing.LAYERS[0], *a.hidden, timing.LAYERS[-1])
    cases = []
    for dtype in ("float32", "float64"):
        work = timing.Workload(timing.load_data(dtype=dtype), layers=layers,
                               batch_size=a.batch_size, threads=a.threads)
        for name in a.backends:
            cases.append(dataclasses.replace(timing.backend_epoch(name, work),
                                             name=f"{name} {dtype}"))
    print(f"one epoch of {work.n_examples} examples, layers {layers}, K={a.batch_size}, "
          f"best of {a.rounds} interleaved rounds; data: {work.data.source}")
    with timing.limit_threads(a.threads):
        timings = timing.time_cases(cases, rounds=a.rounds)
    best = {name: t.seconds for name, t in timings.items()}
    for name, seconds in best.items():
        print(f"  {name:16s} {seconds:8.3f} s")
    for name in a.backends:
        ratio = best[f"{name} float64"] / best[f"{name} float32"]
        print(f"{name}: float64 / float32 = {ratio:.2f}")


if __name__ == "__main__":
    main()
