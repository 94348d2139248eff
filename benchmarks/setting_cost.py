"""What a setting costs: one epoch per backend for each value of one setting -- the dtype
(float32, float64) or the optimizer (sgd, momentum, adam) -- with the rounds of all cases
interleaved in one run, so that the machine's drift hits every value alike (the
pytest-benchmark groups time their cases one after the other).

    python benchmarks/setting_cost.py {dtype,optimizer} [--backends numba numpy] [--rounds 5]
                                      [--hidden 256 128] [--batch-size 32] [--threads N]

Prints each case's best round and, per backend, each value's time over the first value's.
"""

from __future__ import annotations

import argparse
import dataclasses

from fastmlp import timing

#: the values compared, the first one the reference
SETTINGS = {"dtype": ("float32", "float64"), "optimizer": ("sgd", "momentum", "adam")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("setting", choices=sorted(SETTINGS))
    ap.add_argument("--backends", nargs="+", default=["numba", "numpy"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, nargs="*", default=list(timing.DEEP_LAYERS[1:-1]))
    ap.add_argument("--batch-size", type=int, default=timing.BATCH_SIZE)
    ap.add_argument("--threads", type=int, default=None,
                    help="at most this many threads per library (default: all cores)")
    a = ap.parse_args()
    layers = (timing.LAYERS[0], *a.hidden, timing.LAYERS[-1])
    values = SETTINGS[a.setting]
    data = {}
    cases = []
    for value in values:
        dtype = value if a.setting == "dtype" else timing.DTYPE
        if dtype not in data:
            data[dtype] = timing.load_data(dtype=dtype)
        work = timing.Workload(data[dtype], layers=layers, batch_size=a.batch_size,
                               threads=a.threads,
                               **({"optimizer": value} if a.setting == "optimizer" else {}))
        for name in a.backends:
            cases.append(dataclasses.replace(timing.backend_epoch(name, work),
                                             name=f"{name} {value}"))
    print(f"one epoch of {work.n_examples} examples, layers {layers}, K={a.batch_size}, "
          f"best of {a.rounds} interleaved rounds; data: {work.data.source}")
    with timing.limit_threads(a.threads):
        timings = timing.time_cases(cases, rounds=a.rounds)
    best = {name: t.seconds for name, t in timings.items()}
    for name, seconds in best.items():
        print(f"  {name:18s} {seconds:8.3f} s")
    for name in a.backends:
        ratios = ", ".join(f"{value} {best[f'{name} {value}'] / best[f'{name} {values[0]}']:.2f}"
                           for value in values[1:])
        print(f"{name}: time over {values[0]}'s: {ratios}")


if __name__ == "__main__":
    main()
