"""What it costs on this machine to hand a buffer from one core to the other.

    python benchmarks/core_handoff.py [--sizes 8 64 128 256] [--turns 2000] [--rounds 5]

The numba kernels split each training step among workers that exchange activations, deltas
and updated weights through shared memory, so every step moves some of them from one core's
caches to the other's. This measures that move alone: in each turn a thread reads a buffer
whole and then rewrites it whole, and two threads take turns (each waiting, spinning, for the
other's turn to end), against one thread taking every turn. The difference per turn is what
the handoff costs -- the buffer's lines fetched from the other core and taken back from it
for writing -- printed with the rate it amounts to. Best of ``--rounds`` rounds per size.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from fastmlp import _aligned
from fastmlp.backends.numba._compile import njit
from fastmlp.backends.numba._simd import atomic_add, atomic_load


@njit
def _turns(first, n_turns, step, buf, turn):
    """Turns ``first, first + step, ...`` below ``n_turns``: wait until ``turn[0]`` reaches
    the turn, read ``buf`` whole, rewrite it whole, pass the turn on. Returns the sum read
    (so that the reads are not optimized away)."""
    total = 0.0
    one = buf.dtype.type(1)
    for t in range(first, n_turns, step):
        while atomic_load(turn, 0) < t:
            pass
        for i in range(buf.shape[0]):
            total += buf[i]
        for i in range(buf.shape[0]):
            buf[i] = buf[i] + one
        atomic_add(turn, 0, 1)
    return total


def seconds_per_turn(n_bytes, n_turns, threads):
    """Seconds per turn of reading and rewriting ``n_bytes`` (float32), the turns taken by
    ``threads`` (1 or 2) threads in alternation."""
    buf = _aligned.empty(n_bytes // 4, np.float32)
    buf[:] = 0
    turn = _aligned.empty(8, np.int64)                # a cache line of its own
    turn[:] = 0
    start = time.perf_counter()
    if threads == 1:
        _turns(0, n_turns, 1, buf, turn)
    else:
        other = threading.Thread(target=_turns, args=(1, n_turns, 2, buf, turn))
        other.start()
        _turns(0, n_turns, 2, buf, turn)
        other.join()
    return (time.perf_counter() - start) / n_turns


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 128, 256],
                    help="buffer sizes in KB (default: 8 64 128 256)")
    ap.add_argument("--turns", type=int, default=2000, help="turns per round (default 2000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per size (default 5)")
    args = ap.parse_args()
    seconds_per_turn(4096, 4, 2)                        # compile before timing
    print("KB   one core (us/turn)   two cores (us/turn)   handoff (us)   rate (GB/s)")
    for kb in args.sizes:
        one = min(seconds_per_turn(kb * 1024, args.turns, 1) for _ in range(args.rounds))
        two = min(seconds_per_turn(kb * 1024, args.turns, 2) for _ in range(args.rounds))
        extra = two - one
        rate = f"{kb * 1024 / extra / 1e9:11.1f}" if extra > 0 else "          -"
        print(f"{kb:<4d} {one * 1e6:19.2f} {two * 1e6:21.2f} {extra * 1e6:14.2f}   {rate}")


if __name__ == "__main__":
    main()
