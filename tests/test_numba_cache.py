"""The numba backend's on-disk cache: keyed to every source file of the backend, and where no
cache folder is writable, compiled in each process with one warning (not one per kernel)."""

import subprocess
import sys

import pytest

import fastmlp

pytestmark = pytest.mark.skipif("numba" not in fastmlp.BACKENDS, reason="numba is not installed")


def test_every_kernel_is_stamped_with_the_digest_of_all_the_backends_sources():
    from fastmlp.backends import numba as backend
    from fastmlp.backends.numba import _compile

    stamps = set()
    for dispatchers in backend.KERNELS.values():
        for d in dispatchers:
            stamps.add(d._cache._cache_file._source_stamp)
    assert stamps == {("fastmlp", _compile.SOURCE_DIGEST)}
    assert _compile.SOURCE_DIGEST == _compile._source_digest()     # a pure function of them


def test_without_a_writable_cache_it_warns_once_and_still_works():
    code = (
        "import warnings, numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []      # no cache folder can be used\n"
        "import numpy as np, fastmlp\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from fastmlp.backends import numba as backend\n"
        "X = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)\n"
        "h = fastmlp.train(fastmlp.MLP((3, 4, 2)), (X, np.arange(16) % 2), backend='numba',\n"
        "                  epochs=1, batch_size=1, progress=False)   # the cheapest kernel\n"
        "assert len(h) == 1\n"
        "texts = [str(w.message) for w in caught if 'cannot be cached' in str(w.message)]\n"
        "assert len(texts) == 1, texts\n"
        "assert 'NUMBA_CACHE_DIR' in texts[0]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


_COMPILE_AT_ONCE = """\
import hashlib, json, os, sys, time
import numpy as np
import fastmlp
from fastmlp.backends import numba as backend

print("ready", flush=True)
while not os.path.exists(sys.argv[1]):     # the go signal: both processes compile at once
    time.sleep(0.005)
model = fastmlp.MLP((5, 7, 3), activation="tanh", seed=1)
X = np.random.default_rng(2).normal(size=(300, 5)).astype(np.float32)
logits = model.predict_proba(X, backend="numba")
stats = backend._inference.logits_worker.stats
print(json.dumps({"bits": hashlib.sha256(logits.tobytes()).hexdigest(),
                  "compiled": sum(stats.cache_misses.values()),
                  "loaded": sum(stats.cache_hits.values())}))
"""


def test_two_fresh_processes_compiling_into_one_cold_cache_at_once(tmp_path):
    """Two Dask workers starting on an empty shared cache: two fresh processes compile the
    same kernel at the same moment into one empty NUMBA_CACHE_DIR. Neither crashes, both
    give the bits of this process; a third process then loads the kernel from that cache,
    compiling nothing, and gives the same bits."""
    import hashlib
    import json
    import os

    import numpy as np

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    go = tmp_path / "go"
    X = np.random.default_rng(2).normal(size=(300, 5)).astype(np.float32)
    expected = hashlib.sha256(fastmlp.MLP((5, 7, 3), activation="tanh", seed=1)
                              .predict_proba(X, backend="numba").tobytes()).hexdigest()

    def start():
        p = subprocess.Popen([sys.executable, "-c", _COMPILE_AT_ONCE, str(go)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ready\n", p.stderr.read()[-3000:]
        return p

    def outcome(p):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        return json.loads(out)

    first, second = start(), start()
    go.touch()
    both = [outcome(first), outcome(second)]
    assert [r["bits"] for r in both] == [expected] * 2
    assert all(r["compiled"] >= 1 and r["loaded"] == 0 for r in both), both   # at once, cold
    third = outcome(start())
    assert third == {"bits": expected, "compiled": 0, "loaded": third["loaded"]}
    assert third["loaded"] >= 1
    left = [p.name for p in (tmp_path / "cache").rglob("*") if ".tmp." in p.name]
    assert left == []                       # numba writes a temporary file, then renames it
