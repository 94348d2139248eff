"""Files written atomically: a temporary name in the same folder, flushed, then renamed.

An interruption (Ctrl-C, a killed process, a full disk) never leaves a half-written file
in place of a good one: readers see the old file or the new one, whole.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager


def _create_beside(path):
    """Create a new, uniquely named temporary file in ``path``'s folder: ``(fd, name)``.

    Unlike ``tempfile.mkstemp`` (readable by its owner only), the file is created with mode
    0o666 minus the umask, as ``open()`` would create ``path`` itself.
    """
    folder, base = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(base)[1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


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
    fd, tmp = _create_beside(path)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
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
