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
