"""Files written atomically: a temporary name in the same folder, flushed, then renamed.

An interruption (Ctrl-C, a killed process, a full disk) never leaves a half-written file
in place of a good one: readers see the old file or the new one, whole.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager


def _default_mode():
    """``0o666`` minus the umask: the mode ``open()`` would give a new file.

    ``mkstemp`` creates its file readable by its owner only; a model file should be as
    readable as any other file the user writes.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; on success it replaces ``path``.

    If the block raises (or the process dies), ``path`` is left as it was and the
    temporary file is removed (a killed process may leave a ``.tmp-*`` file behind, never
    a damaged ``path``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def write_npz_atomic(path, arrays):
    """``np.savez`` of ``arrays`` (a dict) to ``path``, atomically."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
