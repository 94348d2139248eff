"""Model files: the format, writing them atomically, and reading them without trusting them.

A model file is a plain ``.npz`` archive (what ``np.savez`` writes): one ``.npy`` entry per
parameter (``W1``, ``b1``, ..., ``WL``, ``bL``), optional extra arrays (a checkpoint's
optimizer state) and ``__meta__``, a JSON string::

    {"format": "fastmlp-model", "version": 2, "layers": [784, 256, 128, 10],
     "activations": ["relu", "relu"], "l1": [...], "l2": [...], "dtype": "float32",
     "seed": 0, "init": "uniform", "extra_arrays": {"name": [shape, dtype]}, "extra": {...}}

Version 1 (fastmlp 0.1.0) had one hidden ReLU layer, ``layers`` of length 3, penalty pairs
and no ``activations``/``init``; it is read unchanged.

Reading trusts nothing in the file: it is opened once (a file being replaced meanwhile cannot
pair one file's metadata with another's arrays), pickles are refused unread, the entry names
must be exactly those the metadata implies (no duplicates), and every array's ``.npy`` header
-- shape, dtype, size -- is checked against the metadata before a byte of its data is read, so
a small file declaring a huge array costs nothing. Every failure is a :class:`ModelFileError`.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import zipfile

import numpy as np

from . import _validation as v
from .io import check_target, write_npz_atomic

FORMAT = "fastmlp-model"
#: the version written; the versions read
FORMAT_VERSION = 2
READS = (1, 2)
META = "__meta__"
#: the metadata is a JSON string; a checkpoint's history is its largest part
MAX_META_BYTES = 256 * 2**20
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class ModelFileError(ValueError):
    """A model file that is truncated, foreign, corrupt or from an unknown version."""


def _param_shapes(layers):
    shapes = {}
    for l, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        shapes[f"W{l}"] = (n_out, n_in)
        shapes[f"b{l}"] = (n_out,)
    return shapes


# -- writing --------------------------------------------------------------------------------
def write_model_file(path, description, params, extra=None, extra_arrays=None):
    """Write a model (``description``: what :meth:`fastmlp.MLP.describe` returns, and its
    ``params``) to ``path``, atomically, in the current format version."""
    check_target(path)                       # a bad path is refused before any work
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **description}
    arrays = {k: np.ascontiguousarray(p) for k, p in params.items()}
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
        meta["extra"] = extra
    if extra_arrays:
        if not isinstance(extra_arrays, dict):
            raise TypeError(f"extra_arrays must be a dict or None, got "
                            f"{type(extra_arrays).__name__}")
        declared = {}
        for name, a in extra_arrays.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name) or name in arrays:
                raise ValueError(f"extra_arrays: {name!r} cannot name an array in a model file "
                                 "(letters, digits, _.-; not a parameter's name)")
            a = np.ascontiguousarray(a)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"extra_arrays[{name!r}] must hold numbers, got {a.dtype}")
            declared[name] = [list(a.shape), a.dtype.name]
            arrays[name] = a
        meta["extra_arrays"] = declared
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra must hold only JSON values (finite numbers, strings, lists, "
                        f"dicts, None): {exc}") from None
    arrays[META] = np.array(text)
    write_npz_atomic(path, arrays)


# -- reading --------------------------------------------------------------------------------
def _open_regular(path):
    """Open ``path`` for reading, refusing anything but a regular file (a folder, a FIFO
    that would block, a device)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {path!r:.80}")
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path!r} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file")
        raise ModelFileError(f"{path!r} is {kind}, not a model file")
    f = open(path, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between the two looks
        f.close()
        raise ModelFileError(f"{path!r} is not a regular file")
    return path, f


def _read_header(fp, path, name):
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at ``fp``; pickles refused."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except ValueError as exc:
        raise ModelFileError(f"{path!r}: entry {name!r} is not a valid .npy array: "
                             f"{exc}") from None
    if dtype.hasobject:
        raise ModelFileError(f"{path!r} holds pickled objects (entry {name!r}); fastmlp "
                             "model files never do, so it was refused without loading them")
    return tuple(shape), fortran, dtype


def _read_entry(zf, path, name, shape, dtype):
    """The array stored as ``name``.npy, after its header proved to be ``shape`` ``dtype``."""
    info = zf.getinfo(name + ".npy")
    with zf.open(info) as fp:
        got_shape, fortran, got_dtype = _read_header(fp, path, name)
        if got_dtype != np.dtype(dtype) or got_shape != tuple(shape) or fortran:
            raise ModelFileError(
                f"{path!r}: array {name} is declared as shape {got_shape} {got_dtype}"
                f"{' (Fortran order)' if fortran else ''}; the metadata implies "
                f"{tuple(shape)} {np.dtype(dtype).name}")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if info.file_size != fp.tell() + nbytes:
            raise ModelFileError(f"{path!r}: entry {name!r} holds {info.file_size - fp.tell()} "
                                 f"bytes of data where its header announces {nbytes}")
        data = fp.read(nbytes)
    if len(data) != nbytes:
        raise ModelFileError(f"{path!r}: entry {name!r} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _read_meta(zf, path):
    info = zf.getinfo(META + ".npy")
    if info.file_size > MAX_META_BYTES:
        raise ModelFileError(f"{path!r}: its metadata entry is {info.file_size} bytes, more "
                             f"than a model file's ({MAX_META_BYTES})")
    with zf.open(info) as fp:
        shape, _, dtype = _read_header(fp, path, META)
        if shape != () or dtype.kind != "U":
            raise ModelFileError(f"{path!r}: its '__meta__' entry is not a string")
    raw = _read_entry(zf, path, META, (), dtype)
    try:
        meta = json.loads(str(raw))
    except ValueError as exc:
        raise ModelFileError(f"{path!r}: its metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a fastmlp model file (format {meta!r:.80})")
    version = meta.get("version")
    if type(version) is not int or version not in READS:
        raise ModelFileError(
            f"{path!r} is a fastmlp model file of version {version!r}; this fastmlp reads "
            f"versions {', '.join(map(str, READS))}")
    return meta


def _checked_meta(meta, path):
    """The metadata in the current version's terms, validated."""
    try:
        layers = v.check_layers(meta["layers"])
        n_weights = len(layers) - 1
        if meta["version"] == 1:
            if len(layers) != 3:
                raise ValueError(f"a version-1 file has 3 layers, not {len(layers)}")
            activations, init = ("relu",), "uniform"
        else:
            activations = v.check_activations(meta["activations"], n_weights - 1)
            init = meta["init"]
            if init not in ("uniform", "glorot"):
                raise ValueError(f"unknown init {init!r}")
        out = {
            "layers": layers, "activations": activations,
            "l1": v.check_penalties(meta["l1"], "l1", n_weights),
            "l2": v.check_penalties(meta["l2"], "l2", n_weights),
            "dtype": v.check_dtype(meta["dtype"]), "seed": v.check_seed(meta["seed"]),
            "init": init, "version": meta["version"],
        }
        extra = meta.get("extra", {})
        if not isinstance(extra, dict):
            raise TypeError(f"'extra' must be a dict, got {type(extra).__name__}")
        out["extra"] = meta.get("extra")
        declared = meta.get("extra_arrays", {})
        if not isinstance(declared, dict):
            raise TypeError("'extra_arrays' must be a dict")
        extras = {}
        for name, spec in declared.items():
            if (not isinstance(name, str) or not _NAME.fullmatch(name)
                    or not isinstance(spec, list) or len(spec) != 2
                    or not isinstance(spec[0], list)
                    or not all(type(n) is int and 0 <= n < 2**40 for n in spec[0])
                    or spec[1] not in ("float32", "float64", "int64")):
                raise ValueError(f"extra array {name!r}: bad declaration {spec!r:.80}")
            extras[name] = (tuple(spec[0]), spec[1])
        out["extra_arrays"] = extras
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r}: invalid model metadata: {exc}") from None
    return out


def read_model_file(path):
    """``(arrays, meta, extra_arrays)`` from a model file of any version read, or raise
    :class:`ModelFileError`. ``meta`` holds ``layers, activations, l1, l2, dtype, seed, init,
    version`` and ``extra`` (None when absent), all validated."""
    path, f = _open_regular(path)
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except Exception as exc:  # BadZipFile, NotImplementedError (a flipped version), ...
            # np.load would also read a bare .npy; a model file is always an .npz archive
            raise ModelFileError(f"{path!r} is not a fastmlp model file: not an .npz archive "
                                 f"(truncated, corrupt, or another kind of file: {exc})") from None
        with zf:
            try:
                return _read_archive(zf, path)
            except ModelFileError:
                raise
            except MemoryError:
                raise ModelFileError(f"{path!r}: an entry is too large to read") from None
            except Exception as exc:  # zipfile and zlib fail in many ways on a damaged file
                raise ModelFileError(f"{path!r} is not a valid fastmlp model file (truncated "
                                     f"or corrupt?): {type(exc).__name__}: {exc}") from None


def _read_archive(zf, path):
    names = zf.namelist()
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ModelFileError(f"{path!r} holds the entries {twice} more than once; a model "
                             "file holds each array once")
    if any(not n.endswith(".npy") for n in names):
        raise ModelFileError(f"{path!r} is not a fastmlp model file: it holds entries other "
                             f"than .npy arrays ({[n for n in names if not n.endswith('.npy')][:5]})")
    found = {n[:-len(".npy")] for n in names}
    if META not in found:
        raise ModelFileError(f"{path!r} is not a fastmlp model file: it has no '__meta__' entry")
    meta = _checked_meta(_read_meta(zf, path), path)
    shapes = _param_shapes(meta["layers"])
    expected = set(shapes) | set(meta["extra_arrays"]) | {META}
    if found != expected:
        raise ModelFileError(f"{path!r}: expected the arrays {sorted(expected - {META})}, "
                             f"found {sorted(found - {META})}")
    arrays = {key: _read_entry(zf, path, key, shape, meta["dtype"])
              for key, shape in shapes.items()}
    for key, a in arrays.items():
        if not np.isfinite(a).all():
            raise ModelFileError(f"{path!r}: array {key} holds NaN or infinite values")
    extras = {name: _read_entry(zf, path, name, shape, dtype)
              for name, (shape, dtype) in meta["extra_arrays"].items()}
    return arrays, meta, extras


__all__ = ["ModelFileError", "FORMAT", "FORMAT_VERSION", "READS", "read_model_file",
           "write_model_file"]
