"""How the numba kernels are compiled, and the knobs that shape their work (one place).

* ``FASTMATH``: "contract" lets LLVM fuse a*b+c into one FMA; "reassoc" lets it vectorize
  the scalar loops that remain (updates, activations, the head's sums) -- the products are
  explicit vectors (:mod:`._simd`), unaffected. Both are fixed at compile time and applied
  to loops whose length depends on the data only, so results stay deterministic and
  independent of the thread count on a given machine (another vector width may round
  differently, as BLAS would). No "nnan"/"ninf": the NaN/inf checks of divergence
  detection must keep working.
* ``cache=True``: kernels are cached on disk beside the package, or in ``NUMBA_CACHE_DIR``.
  Where no cache folder is writable numba refuses the flag; the kernels are then compiled in
  every process, with one warning. numba checks a cached kernel against its own source
  file only, so a kernel would keep the old code of a helper edited in another file; every
  kernel's cache entry is therefore stamped with a digest of all the backend's source files
  (:data:`SOURCE_DIGEST`) instead.
* Every kernel signature is independent of the network's depth and activations (parameters
  in one flat buffer, layers and activations as integer arrays), so one compilation per
  dtype serves every network.
* No ``parallel=True``: each parallel region cost about 4 s of parfor lowering, and LLVM
  optimized the region's callees again in every module linking them; the kernels are
  serial functions run on threads instead (:mod:`._workers`).
"""

from __future__ import annotations

import hashlib
import pathlib
import warnings

import numba
from numba import njit as _numba_njit

from ._simd import VECTOR_BYTES

FASTMATH = frozenset({"contract", "reassoc"})
_OPTIONS = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)

#: units per block: the tile height of every layer's products (a block is that many rows of
#: W), on every CPU
UNIT_BLOCK = 4
#: the tiles' other side: examples of the forward product, input vectors of the weight
#: gradient. 4 where the CPU has AVX-512's 32 vector registers, 2 with AVX2's 16 (see
#: :mod:`._layers`)
TILE_DEPTH = 4 if VECTOR_BYTES == 64 else 2
#: units per work item of a hidden layer in training (whole blocks: a worker owns whole rows
#: of W, so no sum crosses workers; small enough that the items of a 64-unit layer keep two
#: workers busy, large enough that claiming one costs nothing); larger minibatches take
#: larger items, up to MAX_ITEM_UNITS (see :func:`._train.item_units`)
ITEM_UNITS = 16
MAX_ITEM_UNITS = 64
#: minibatch rows per pass of a hidden-layer item (a multiple of 4: the tiles' depth): the
#: tile's inputs stay in the core's cache while all the item's units use them
ROW_TILE = 32
#: minibatch rows per work item of the output layer and the backward pass (a minibatch is
#: split into chunks of this size, their sums added in chunk order)
HEAD_CHUNK = 16
#: cache lines of the next minibatch's rows that a waiting worker asks for per turn of its
#: spin (see :func:`._train._wait`)
PREFETCH_PER_SPIN = 16
#: rows per parallel work item in logits/evaluate
ROW_CHUNK = 256

_cache_warned = False


def _source_digest():
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


#: what a cached kernel is valid for: this numba and these exact sources
SOURCE_DIGEST = _source_digest()


def _stamp(dispatcher):
    """Key the dispatcher's cache to :data:`SOURCE_DIGEST` (see the module docstring)."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = ("fastmlp", SOURCE_DIGEST)
    return dispatcher


def njit(func=None, *, inline=False):
    """``numba.njit`` with fastmlp's options and ``cache=True``, tolerating installs where no
    cache folder is writable (the kernel is then compiled in each process; one warning).

    ``inline=True`` (numba's ``inline="always"``) is for a kernel's pieces that it calls
    once: numba then types them inside the kernel instead of compiling each as a function of
    its own, whose library LLVM would optimize and compile to machine code once alone and
    once more inside every caller (about 20 % of the training kernel's first compilation).
    Functions called from several places stay separate (inlining them costs more than it
    saves). There is no ``parallel=True`` function to inline into (see :mod:`._workers`).
    """
    def decorate(f):
        global _cache_warned
        options = dict(_OPTIONS, inline="always" if inline else "never")
        try:
            return _stamp(_numba_njit(cache=True, **options)(f))
        except RuntimeError as exc:                 # "cannot cache function ...: no locator"
            if not _cache_warned:
                _cache_warned = True
                warnings.warn(f"fastmlp's numba kernels cannot be cached ({exc}); they will "
                              "be compiled in every process. Set NUMBA_CACHE_DIR to a "
                              "writable folder to cache them.", RuntimeWarning, stacklevel=3)
            return _numba_njit(**options)(f)
    return decorate(func) if func is not None else decorate


__all__ = ["FASTMATH", "UNIT_BLOCK", "TILE_DEPTH", "ITEM_UNITS", "MAX_ITEM_UNITS", "ROW_TILE",
           "HEAD_CHUNK", "PREFETCH_PER_SPIN", "ROW_CHUNK", "njit"]
