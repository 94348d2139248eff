"""Explicit SIMD vectors and atomics for the kernels (numba intrinsics emitting LLVM IR).

Why not leave vectorization to LLVM: its loop vectorizer turns every dot product into a
vector body, a scalar remainder (a third of the work for 784 inputs), runtime alias checks
and a horizontal reduction per element, and compiling all those copies was most of the
kernels' compile time. Here a kernel holds its accumulators in ``Vec`` values -- one
``<lanes x float>`` register each -- so the register blocking is written out, no remainder
loop exists (a row's tail is one masked vector: :func:`vload_part`) and the IR stays small.
Being intrinsics, these cost no compilation of their own, unlike small ``@njit`` helpers.

Memory is addressed as ``a[index]``: an integer for a 1-D array, a tuple ``(row, col)`` for
a 2-D one, contiguous along the last axis -- rows are indexed, never taken as views (a view
costs two atomic reference-count updates, which added up to 9 % of the kernels' time).

``Vec`` values are in the dtype of the array or scalar they come from; :func:`lanes` is
64 bytes' worth (16 float32, 8 float64: one AVX-512 register) where the CPU has AVX-512,
32 bytes' worth otherwise. Arithmetic is IEEE per lane (``vfma`` is a fused multiply-add,
``llvm.fma``; no fast-math flags), so the bits depend only on the lane count and the order
the kernels write -- never on the thread count.

The atomics (:func:`atomic_add`, :func:`atomic_load`) and :func:`spin_pause` are what the
training kernel's workers synchronize with (see :mod:`._train`).
"""

from __future__ import annotations

import sys

import llvmlite.binding as _llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

#: bytes per vector: one AVX-512 register where the CPU has them (also the cache key's CPU)
VECTOR_BYTES = 64 if "+avx512f" in _llvm.get_host_cpu_features().flatten() else 32


class Vec(types.Type):
    """A SIMD vector of ``lanes`` values of ``dtype`` (a numba float type)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec({dtype}x{self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _is_float_array(a):
    return isinstance(a, types.Array) and a.ndim == 1 and isinstance(a.dtype, types.Float)


def _indexes(a, index, dtype=types.Float):
    """Whether ``a[index]`` names an element of a C-contiguous array of ``dtype`` values:
    an integer for a 1-D array, a tuple of integers for a 2-D one. Kernels index rows this
    way instead of taking views (a view costs two atomic reference-count updates)."""
    if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(a.dtype, dtype)):
        return False
    if a.ndim == 1:
        return isinstance(index, types.Integer)
    return (isinstance(index, types.BaseTuple) and len(index) == a.ndim
            and all(isinstance(t, types.Integer) for t in index))


def _pointer(context, builder, array_type, array, index_type, index):
    """Address of ``array[index]`` (see :func:`_indexes`; no bounds check)."""
    arr = context.make_array(array_type)(context, builder, array)
    if isinstance(index_type, types.BaseTuple):
        idx = [context.cast(builder, builder.extract_value(index, p), index_type[p], types.intp)
               for p in range(len(index_type))]
    else:
        idx = [context.cast(builder, index, index_type, types.intp)]
    return cgutils.get_item_pointer(context, builder, array_type, arr, idx, wraparound=False)


def _vector_pointer(builder, ptr, vec_type):
    return builder.bitcast(ptr, vec_type.as_pointer())


@intrinsic
def lanes(typingctx, x):
    """The lane count of the vectors of ``x``'s dtype (an array, a float scalar or a vector)."""
    dtype = x.dtype if isinstance(x, (types.Array, Vec)) else x
    if not isinstance(dtype, types.Float):
        return None
    n = Vec(dtype).lanes

    def codegen(context, builder, signature, args):
        return ir.Constant(ir.IntType(64), n)

    return types.int64(x), codegen


@intrinsic
def vsplat(typingctx, x):
    """A vector with every lane equal to the float ``x``."""
    if not isinstance(x, types.Float):
        return None
    vt = Vec(x)

    def codegen(context, builder, signature, args):
        ll_type = context.get_value_type(vt)
        v = ir.Constant(ll_type, ir.Undefined)
        for lane in range(vt.lanes):
            v = builder.insert_element(v, args[0], ir.Constant(ir.IntType(32), lane))
        return v

    return vt(x), codegen


@intrinsic
def vload(typingctx, a, index):
    """``lanes`` values from ``a[index]`` on along the last axis, as a vector (unaligned;
    the caller keeps them in bounds)."""
    if not _indexes(a, index):
        return None
    vt = Vec(a.dtype)

    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        ll_type = context.get_value_type(vt)
        return builder.load(_vector_pointer(builder, ptr, ll_type), align=a.dtype.bitwidth // 8)

    return vt(a, index), codegen


@intrinsic
def vstore(typingctx, a, index, v):
    """Store the lanes of ``v`` at ``a[index]`` on along the last axis (unaligned; the
    caller keeps them in bounds)."""
    if not (_indexes(a, index) and isinstance(v, Vec) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        builder.store(args[2], _vector_pointer(builder, ptr, args[2].type),
                      align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(a, index, v), codegen


def _lane_mask(builder, count, lanes):
    """The ``<lanes x i1>`` mask of the lanes below ``count`` (an int64)."""
    index = ir.Constant(ir.VectorType(ir.IntType(64), lanes), list(range(lanes)))
    limit = builder.insert_element(ir.Constant(index.type, ir.Undefined), count,
                                   ir.Constant(ir.IntType(32), 0))
    limit = builder.shuffle_vector(limit, limit, _mask([0] * lanes))
    return builder.icmp_signed("<", index, limit)


def _masked_intrinsic(builder, op, vec_type, element):
    """``llvm.masked.load``/``llvm.masked.store`` for ``vec_type``: lanes outside the mask
    are neither read nor written (no fault past the end of an array)."""
    suffix = f"v{vec_type.count}f{element.bitwidth}.p0"
    i1s = ir.VectorType(ir.IntType(1), vec_type.count)
    ptr = vec_type.as_pointer()
    if op == "load":
        fn_type = ir.FunctionType(vec_type, [ptr, ir.IntType(32), i1s, vec_type])
    else:
        fn_type = ir.FunctionType(ir.VoidType(), [vec_type, ptr, ir.IntType(32), i1s])
    return cgutils.get_or_insert_function(builder.module, fn_type, f"llvm.masked.{op}.{suffix}")


@intrinsic
def vload_part(typingctx, a, index, count):
    """The first ``count`` values from ``a[index]`` on (all ``lanes`` of them when ``count``
    is larger), zeros in the other lanes: a masked load, so that nothing past the end of a
    row is touched (AVX-512 masks cost nothing; the mask is loop-invariant in the kernels)."""
    if not (_indexes(a, index) and isinstance(count, types.Integer)):
        return None
    vt = Vec(a.dtype)

    def codegen(context, builder, signature, args):
        ll_type = context.get_value_type(vt)
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        n = context.cast(builder, args[2], signature.args[2], types.int64)
        fn = _masked_intrinsic(builder, "load", ll_type, a.dtype)
        return builder.call(fn, [_vector_pointer(builder, ptr, ll_type),
                                 ir.Constant(ir.IntType(32), a.dtype.bitwidth // 8),
                                 _lane_mask(builder, n, vt.lanes), ir.Constant(ll_type, None)])

    return vt(a, index, count), codegen


@intrinsic
def vstore_part(typingctx, a, index, count, v):
    """Store the first ``count`` lanes of ``v`` (all of them when ``count`` is larger) at
    ``a[index]`` on, by a masked store (nothing past them is touched)."""
    if not (_indexes(a, index) and isinstance(count, types.Integer) and isinstance(v, Vec)
            and v.dtype == a.dtype):
        return None

    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        n = context.cast(builder, args[2], signature.args[2], types.int64)
        ll_type = args[3].type
        fn = _masked_intrinsic(builder, "store", ll_type, a.dtype)
        builder.call(fn, [args[3], _vector_pointer(builder, ptr, ll_type),
                          ir.Constant(ir.IntType(32), a.dtype.bitwidth // 8),
                          _lane_mask(builder, n, v.lanes)])
        return context.get_dummy_value()

    return types.void(a, index, count, v), codegen


def _mask(indices):
    """A shufflevector mask."""
    return ir.Constant(ir.VectorType(ir.IntType(32), len(indices)), list(indices))


@intrinsic
def vfma(typingctx, a, b, c):
    """Lane-wise fused ``a * b + c`` (one rounding: ``llvm.fma``)."""
    if not (isinstance(a, Vec) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ll_type = args[0].type
        suffix = f"v{a.lanes}f{a.dtype.bitwidth}"
        fn = cgutils.get_or_insert_function(builder.module,
                                            ir.FunctionType(ll_type, [ll_type] * 3),
                                            f"llvm.fma.{suffix}")
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def vsums(typingctx, vectors):
    """The lane sums of a tuple of vectors, transposed: a tuple of vectors whose lane ``q``
    (counting across the tuple) is the sum of the lanes of ``vectors[q]``.

    A tree of folds (at each level every block of lanes is halved by adding its upper half
    to its lower half, two vectors merging into one): about 3 instructions per sum instead
    of 2 per lane, and the same tree, hence the same rounding, for every ``q``.
    """
    if not (isinstance(vectors, types.UniTuple) and isinstance(vectors.dtype, Vec)):
        return None
    vt = vectors.dtype
    n = vt.lanes
    out = types.UniTuple(vt, -(-vectors.count // n))

    def fold_masks(b):
        half = b // 2
        lower, upper = [], []
        for source in (0, n):
            for blk in range(n // b):
                for t in range(half):
                    lower.append(source + blk * b + t)
                    upper.append(source + blk * b + half + t)
        return _mask(lower), _mask(upper)

    def codegen(context, builder, signature, args):
        vs = [builder.extract_value(args[0], q) for q in range(vectors.count)]
        zero = ir.Constant(vs[0].type, None)
        b = n
        while b > 1:
            if len(vs) % 2:
                vs.append(zero)
            lower, upper = fold_masks(b)
            vs = [builder.fadd(builder.shuffle_vector(vs[p], vs[p + 1], lower),
                               builder.shuffle_vector(vs[p], vs[p + 1], upper))
                  for p in range(0, len(vs), 2)]
            b //= 2
        return context.make_tuple(builder, out, vs[:out.count])

    return out(vectors), codegen


@intrinsic
def vstore_sums(typingctx, out, index, sums, first, count, bias, bias_index):
    """``out[index + p] = bias[bias_index + p] + lane first + p of sums`` for ``p < count``
    (along the last axes): a span of the lanes of a :func:`vsums` tuple, inside one of its
    vectors (``first`` and ``count`` literal), stored with vector instructions (one shuffle,
    one add, one store)."""
    if not (_indexes(out, index) and _indexes(bias, bias_index) and out.dtype == bias.dtype
            and isinstance(sums, types.UniTuple) and isinstance(sums.dtype, Vec)
            and sums.dtype.dtype == out.dtype and isinstance(first, types.IntegerLiteral)
            and isinstance(count, types.IntegerLiteral)):
        return None
    n = sums.dtype.lanes
    f, c = first.literal_value, count.literal_value
    if not (0 < c <= n and f // n == (f + c - 1) // n and f + c <= sums.count * n):
        return None

    def codegen(context, builder, signature, args):
        sig = signature.args
        v = builder.extract_value(args[2], f // n)
        span = builder.shuffle_vector(v, v, _mask(range(f % n, f % n + c)))
        align = out.dtype.bitwidth // 8
        b_ptr = _pointer(context, builder, sig[5], args[5], sig[6], args[6])
        total = builder.fadd(builder.load(_vector_pointer(builder, b_ptr, span.type),
                                          align=align), span)
        o_ptr = _pointer(context, builder, sig[0], args[0], sig[1], args[1])
        builder.store(total, _vector_pointer(builder, o_ptr, span.type), align=align)
        return context.get_dummy_value()

    return types.void(out, index, sums, first, count, bias, bias_index), codegen


@intrinsic
def vlane(typingctx, v, lane):
    """Lane ``lane`` of ``v`` (a scalar of its dtype)."""
    if not (isinstance(v, Vec) and isinstance(lane, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        index = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.extract_element(args[0], index)

    return v.dtype(v, lane), codegen


def _prefetch_codegen(write):
    """The code of :func:`prefetch` (``write`` False) or :func:`prefetch_for_write`."""
    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        i32 = ir.IntType(32)
        byte_ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr.type, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read (0) or write (1), high locality (keep in all cache levels), data
        builder.call(fn, [byte_ptr, i32(int(write)), i32(3), i32(1)])
        return context.get_dummy_value()
    return codegen


@intrinsic
def prefetch(typingctx, a, index):
    """Ask the CPU to start loading the cache line of ``a[index]`` (``llvm.prefetch``: read,
    keep in all cache levels). A hint only: it changes no value, only when the line
    arrives."""
    if not _indexes(a, index, (types.Float, types.Integer)):
        return None
    return types.void(a, index), _prefetch_codegen(False)


@intrinsic
def prefetch_for_write(typingctx, a, index):
    """As :func:`prefetch`, with the intent to write the line (``prefetchw`` on x86): it
    arrives owned by this core, other cores' copies invalidated, so that the stores that
    follow do not each wait for that."""
    if not _indexes(a, index, (types.Float, types.Integer)):
        return None
    return types.void(a, index), _prefetch_codegen(True)


# -- reference counts ---------------------------------------------------------------------------

@intrinsic
def unmanaged(typingctx, arrays):
    """The arrays of the tuple ``arrays``, as the same views without a reference count (no
    meminfo): nothing derived from them counts references either. numba counts a reference
    for every view it makes and for many an array it passes to a function, two atomic updates
    each, on a cache line that every worker touching the same array shares with the others;
    a worker makes views and calls on every step. Only for arrays that a caller outside the
    kernel keeps alive until it returns, and that the kernel never returns or stores."""
    if not (isinstance(arrays, types.BaseTuple)
            and all(isinstance(t, types.Array) for t in arrays)):
        return None

    def codegen(context, builder, signature, args):
        views = []
        for p, array_type in enumerate(signature.args[0]):
            src = context.make_array(array_type)(context, builder,
                                                 value=builder.extract_value(args[0], p))
            view = context.make_array(array_type)(context, builder)
            context.populate_array(view, data=src.data, shape=src.shape, strides=src.strides,
                                   itemsize=src.itemsize, meminfo=None)
            views.append(view._getvalue())
        return context.make_tuple(builder, signature.return_type, views)

    return arrays(arrays), codegen


# -- synchronization ----------------------------------------------------------------------------

def _int64_index(a, index):
    return _indexes(a, index, types.Integer) and a.dtype == types.int64


@intrinsic
def atomic_add(typingctx, a, i, value):
    """Atomically ``a[i] += value`` (int64, sequentially consistent); returns the old value.
    ``i`` is an index as for :func:`vload`."""
    if not (_int64_index(a, i) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        delta = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, delta, "seq_cst")

    return types.int64(a, i, value), codegen


@intrinsic
def atomic_load(typingctx, a, i):
    """``a[i]`` (int64) read atomically with acquire ordering: what was written before the
    matching :func:`atomic_add` is visible after it."""
    if not _int64_index(a, i):
        return None

    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(a, i), codegen


_X86 = _llvm.get_process_triple().split("-")[0] in ("x86_64", "i386", "i686")
_YIELD = sys.platform != "win32"


@intrinsic
def spin_pause(typingctx, rounds):
    """Wait a little in a spin loop: the CPU's pause hint, and after ``rounds`` > 1000 spins
    a ``sched_yield`` so that a waiting worker gives its core to the one it waits for when
    the machine is busy."""
    if not isinstance(rounds, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module,
                                                ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        if _YIELD:
            n = context.cast(builder, args[0], signature.args[0], types.int64)
            with builder.if_then(builder.icmp_signed(">", n, ir.Constant(ir.IntType(64), 1000))):
                fn = cgutils.get_or_insert_function(builder.module,
                                                    ir.FunctionType(ir.IntType(32), []),
                                                    "sched_yield")
                builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(rounds), codegen


__all__ = ["VECTOR_BYTES", "Vec", "lanes", "vsplat", "vload", "vstore", "vload_part",
           "vstore_part", "vfma", "vsums", "vstore_sums", "vlane", "prefetch",
           "prefetch_for_write", "unmanaged", "atomic_add", "atomic_load", "spin_pause"]
