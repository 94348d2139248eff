"""Same seed, same bits: across runs, processes and thread counts, on every backend."""

import os
import subprocess
import sys

import pytest

import fastmlp

SCRIPT = """
import hashlib, sys
import numpy as np
import fastmlp
rng = np.random.default_rng(0)
X = rng.random((600, 784), dtype=np.float32)
y = rng.integers(0, 10, 600)
model = fastmlp.MLP((784, 64, 10), l1=(1e-4, 1e-4), l2=(1e-4, 1e-4), seed=1)
fastmlp.train(model, (X, y), backend=sys.argv[1], epochs=1, batch_size=int(sys.argv[2]),
              progress=False)
digest = hashlib.sha256(b"".join(model.params[k].tobytes() for k in sorted(model.params)))
print(digest.hexdigest())
"""


def run(backend, threads, batch_size):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(batch_size)], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("backend", [b for b in fastmlp.BACKENDS if b != "loop"])
def test_thread_count_does_not_change_the_bits(backend):
    # 256 rows by 784 by 64: large enough for a multi-threaded BLAS to split the work
    one, two = run(backend, 1, 256), run(backend, 2, 256)
    assert len(one) == 64 and one == two
