"""The ``numba`` backend: fused, compiled kernels for networks of any depth; whole epochs per call.

Rows are examples, as in the ``numpy`` backend; the same equations, written as
register-blocked SIMD tiles over blocks of units and rows (:mod:`._layers`, on the vectors
of :mod:`._simd`), composed into whole training steps (:mod:`._train`) and inference
(:mod:`._inference`); the optimizers' updates are in :mod:`._update`, the compilation
policy and the knobs in :mod:`._compile`. The kernels are serial ``nogil`` functions run by
``numba.get_num_threads()`` worker threads (:mod:`._workers`) that share fixed work items:
the bits do not depend on how many run (one is the serial path).

This module is the public wrapper: it checks every array a kernel will touch (a wrong array
never reaches a kernel: numba does no bounds checks; read-only arrays are copied rather than
compiled for), converts scalars to the model's dtype, allocates the workspaces, starts the
workers and reports what ran.

Compilation: nothing is compiled at import; kernels compile on first use for each dtype and
are cached on disk (``cache=True``). Their signatures do not depend on the network (the
parameters are one flat buffer, layers and activations integer arrays), so after the first
call another depth or activation runs at once. Set ``NUMBA_CACHE_DIR`` to a writable folder
when the package directory is read-only. :func:`warmup` compiles or loads every kernel for a
dtype and returns the seconds it took; :meth:`NumbaBackend.info` reports the numba version,
the worker count and the kernels' knobs.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from ...optim import Adam, adam_scalars
from ..base import Backend, StepStats
from . import _inference, _train, _workers
from ._compile import (FASTMATH, HEAD_CHUNK, ITEM_UNITS, ROW_CHUNK, ROW_TILE, TILE_DEPTH,
                       UNIT_BLOCK)
from ._simd import VECTOR_BYTES

_EMPTY = {}


def _empty(dtype):
    if dtype not in _EMPTY:
        _EMPTY[dtype] = np.empty(0, dtype)
    return _EMPTY[dtype]


def _writable(a):
    """``a``, or a copy of it when it is read-only: numba types read-only arrays apart, so
    passing one would compile every kernel again for it."""
    return a if a.flags.writeable else a.copy()


def _network_arrays(model):
    """The arrays that describe ``model`` to a kernel (checked: the model is the public
    wrapper's contract, but a wrong array here would corrupt memory). A read-only parameter
    buffer is copied (inference reads it only; training refuses it first)."""
    theta = model.theta
    if not (isinstance(theta, np.ndarray) and theta.ndim == 1 and theta.flags.c_contiguous
            and theta.dtype == model.dtype and theta.shape[0] == model.n_params):
        raise ValueError("the model's parameter buffer is not its own (model.theta was "
                         "replaced)")
    return (_writable(theta), model.layout.offsets(), np.array(model.layers, np.int64),
            model.activation_codes)


def _penalties(model):
    t = model.dtype.type
    return (np.array([t(x) for x in model.l1], model.dtype),
            np.array([t(2.0 * x) for x in model.l2], model.dtype))


def _inputs(model, X, name="X"):
    """X as the kernels need it: C-contiguous, writable (numba types read-only arrays
    apart), the model's dtype and width."""
    if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == model.n_features
            and X.dtype == model.dtype):
        raise ValueError(f"{name} must be a 2-D {model.dtype.name} array with "
                         f"{model.n_features} columns")
    if not (X.flags.c_contiguous and X.flags.writeable):
        X = np.array(X, order="C")
    return X


def _labels(model, y, n):
    y = _writable(np.ascontiguousarray(y, dtype=np.int64))
    if y.shape != (n,) or (n and (y.min() < 0 or y.max() >= model.n_classes)):
        raise ValueError(f"y must hold {n} labels in 0..{model.n_classes - 1}")
    return y


def _rule(state, dtype, lr, n_steps):
    """The optimizer's scalars ``h``, its per-step Adam scalars ``sc`` (for the steps
    ``state.step + 1 ..``) and its state buffers, as the kernels take them."""
    opt = state.optimizer
    t = np.dtype(dtype).type
    mu, beta1, beta2, eps = opt.hyper()
    h = np.array([t(lr), t(mu), t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(eps),
                  np.finfo(dtype).tiny], dtype)
    sc = np.zeros((max(n_steps, 1), 2), dtype)
    if isinstance(opt, Adam):
        for s in range(n_steps):
            step_size, bc2_sqrt = adam_scalars(lr, opt.beta1, opt.beta2, state.step + s + 1)
            sc[s] = t(step_size), t(bc2_sqrt)
    names = opt.buffers
    s1 = state.buffers[names[0]] if len(names) > 0 else _empty(np.dtype(dtype))
    s2 = state.buffers[names[1]] if len(names) > 1 else _empty(np.dtype(dtype))
    return h, opt.code, sc, s1, s2


class NumbaBackend(Backend):
    """Compiled, fused kernels on worker threads; whole epochs per call."""

    name = "numba"

    def logits(self, model, X):
        X = _inputs(model, X)
        _make_ready(model.dtype, ["logits"])
        return _logits(_network_arrays(model), X, _workers.worker_count())

    def predict_proba(self, model, X):
        from ... import ops

        return ops.softmax(self.logits(model, X), axis=1)

    def loss_and_grads(self, model, X, y, wrt_input=False):
        from ... import ops

        X = _inputs(model, X)
        _make_ready(model.dtype, ["gradients"])
        loss_sum, grad, dX = _inference.loss_and_grads(
            *_network_arrays(model), *_penalties(model), X, _labels(model, y, X.shape[0]),
            bool(wrt_input))
        J = float(loss_sum) / X.shape[0] + ops.total_penalty(model)
        return J, grad, (dX if wrt_input else None)

    def train_steps(self, model, X, y, order, batch_size, lr, state):
        if not model.theta.flags.writeable:
            raise ValueError("the model's parameters are read-only; training writes them")
        if not state.matches(model.n_params, model.dtype):
            raise ValueError("the optimizer state does not match the model (its buffers must "
                             f"be {model.n_params} writable {model.dtype.name} values each)")
        X = _inputs(model, X)
        order = _writable(np.ascontiguousarray(order, dtype=np.int64))
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if order.ndim != 1:
            raise ValueError("order must be a 1-D array of row indices")
        n = order.shape[0]
        if n == 0:
            return StepStats(0.0, 0, 0)
        if order.min() < 0 or order.max() >= X.shape[0]:
            raise ValueError(f"order must index the {X.shape[0]} rows of X")
        y = _labels(model, y, X.shape[0])
        n_steps = -(-n // batch_size)
        _make_ready(model.dtype, [_training_kernel(batch_size)])
        h, code, sc, s1, s2 = _rule(state, model.dtype, lr, n_steps)
        network = _network_arrays(model)
        l1, l2x2 = _penalties(model)
        loss_sum, n_errors, done, failed = _train_on_workers(
            network, l1, l2x2, X, y, order, batch_size, (h, code, sc, s1, s2),
            _workers.worker_count())
        state.step += int(done)
        return StepStats(float(loss_sum), int(n_errors), int(done), int(failed))

    def prepare(self, dtype, batch_size, with_evaluation=True, announce=None):
        dtype = np.dtype(dtype).name
        names = [_training_kernel(batch_size)] + (["logits"] if with_evaluation else [])
        todo = [name for name in names if (name, dtype) not in _READY]
        if not todo:
            return 0.0
        if announce is not None and not all(_on_disk(name) for name in todo):
            announce("compiling numba kernels (first run only, cached afterwards)")
        t0 = time.perf_counter()
        _make_ready(dtype, todo)
        return time.perf_counter() - t0

    @staticmethod
    def info():
        """Numba version, thread counts, cache folder and the kernels' knobs.

        ``threading_layer`` is None: the kernels run on fastmlp's own worker threads
        (:mod:`._workers`), ``workers`` of them per call, not through a numba threading
        layer."""
        return {"numba": numba.__version__, "threading_layer": None,
                "workers": _workers.worker_count(), "num_threads": numba.get_num_threads(),
                "max_threads": numba.config.NUMBA_NUM_THREADS,
                "cache_dir": numba.config.CACHE_DIR or None,
                "unit_block": UNIT_BLOCK, "tile_depth": TILE_DEPTH, "item_units": ITEM_UNITS,
                "row_tile": ROW_TILE, "head_chunk": HEAD_CHUNK, "row_chunk": ROW_CHUNK,
                "vector_bytes": VECTOR_BYTES, "fastmath": sorted(FASTMATH)}


def _train_on_workers(network, l1, l2x2, X, y, order, batch_size, rule, n_workers):
    """Training on ``n_workers`` workers, by :func:`._train.single_example_worker` at batch
    size 1 and :func:`._train.minibatch_worker` otherwise: ``(loss_sum, n_errors, n_steps,
    failed)``."""
    ws = _train.workspace(network[0], tuple(int(v) for v in network[2]), order.shape[0],
                          batch_size, n_workers)
    if batch_size == 1:
        _workers.run(_train.single_example_worker, n_workers, *network, l1, l2x2, X, y, order,
                     *rule, ws)
    else:
        _workers.run(_train.minibatch_worker, n_workers, *network, l1, l2x2, X, y, order,
                     batch_size, *rule, ws)
    return _train.outcome(ws)


def _logits(network, X, n_workers):
    """The logits of X, ``(n, m)``, computed by ``n_workers`` workers."""
    n_workers = max(1, min(n_workers, -(-X.shape[0] // ROW_CHUNK)))
    rows, out, A, B, sync = _inference.logits_buffers(network[2], X.shape[0], n_workers,
                                                      X.dtype)
    _workers.run(_inference.logits_worker, n_workers, *network, X, rows, out, A, B, sync)
    return out


#: the kernels a call may need: name -> the dispatchers it runs (compiled per dtype)
KERNELS = {
    "minibatches": (_train.minibatch_worker,),
    "single-examples": (_train.single_example_worker,),
    "logits": (_inference.logits_worker,),
    "gradients": (_inference.loss_and_grads,),
}

#: (kernel name, dtype name) compiled or loaded in this process
_READY = set()


def _on_disk(name):
    """Whether every dispatcher of kernel ``name`` has an index in numba's on-disk cache
    (then a first call loads it in a fraction of a second rather than compiling)."""
    import os

    for dispatcher in KERNELS[name]:
        path = getattr(getattr(getattr(dispatcher, "_cache", None), "_cache_file", None),
                       "_index_path", None)
        if path is None or not os.path.exists(path):
            return False
    return True


def _make_ready(dtype, names):
    """Run each kernel of ``names`` once on a tiny network of ``dtype``, with the argument
    types of real calls: numba compiles it, or loads it from its cache. Ctrl-C is held
    meanwhile (and delivered after): an interrupted compilation breaks numba's state."""
    from ..._signals import interrupts_held

    dtype = np.dtype(dtype)
    names = [name for name in names if (name, dtype.name) not in _READY]
    if names:
        with interrupts_held():
            _compile_kernels(dtype, names)


def _compile_kernels(dtype, names):
    from ...layout import Layout
    from ...optim import SGD

    # a tiny (5, 3, 2) relu network: every kernel signature is the same for any network
    layout = Layout((5, 3, 2))
    rng = np.random.default_rng(0)
    network = (rng.standard_normal(layout.n_params).astype(dtype) / 4, layout.offsets(),
               np.array(layout.layers, np.int64), np.zeros(1, np.int64))
    l1, l2x2 = np.zeros(2, dtype), np.zeros(2, dtype)
    X = rng.standard_normal((8, 5)).astype(dtype)
    y = np.arange(8) % 2
    order = np.arange(len(y))
    rule = _rule(SGD().init_state(layout.n_params, dtype), dtype, 0.01, len(y))
    for name in names:
        if name == "minibatches":
            _train_on_workers(network, l1, l2x2, X, y, order, 4, rule, 1)
        elif name == "single-examples":
            _train_on_workers(network, l1, l2x2, X, y, order, 1, rule, 1)
        elif name == "logits":
            _logits(network, X, 1)
        elif name == "gradients":
            _inference.loss_and_grads(*network, l1, l2x2, X, y, True)
        _READY.add((name, dtype.name))


def _training_kernel(batch_size):
    return "single-examples" if batch_size == 1 else "minibatches"


def warmup(dtype="float32", what="all"):
    """Compile (or load from the on-disk cache) the kernels for ``dtype``; return seconds.

    ``what``: "all", "training" (what a minibatch ``train`` call needs: its training kernel
    and the logits that evaluation uses) or "inference" (the logits). The first call in a fresh
    environment measures compilation; later processes load the cache.
    """
    names = {"all": list(KERNELS), "training": [_training_kernel(32), "logits"],
             "inference": ["logits"]}[what]
    t0 = time.perf_counter()
    _make_ready(dtype, names)
    return time.perf_counter() - t0


__all__ = ["NumbaBackend", "warmup", "KERNELS", "FASTMATH", "UNIT_BLOCK", "TILE_DEPTH",
           "ITEM_UNITS", "ROW_TILE", "HEAD_CHUNK", "ROW_CHUNK", "VECTOR_BYTES"]
