"""Files written atomically: a temporary name in the same folder, flushed, then renamed.

An interruption (Ctrl-C, a killed process, a full disk) never leaves a half-written file
in place of a good one: readers see the old file or the new one, whole. And writing never
replaces what it should not:

* a target that exists and is not a regular file (a folder, a device such as /dev/null, a
  FIFO, a socket) is refused;
* a symbolic link is written through: its final target is replaced, atomically, in the
  target's own folder, and the link stays;
* an existing file keeps its permission bits (a new one gets 0o666 minus the umask, as
  ``open()`` would give it);
* errors name the file asked for, never the temporary one.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import contextmanager


def check_target(path, name="path"):
    """The real file ``path`` designates for writing (a symlink resolved), refusing an
    empty path and anything at it that is not a regular file. Returns ``(target, mode)``:
    the absolute path to replace and the permission bits to give it (None: a new file)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r:.80}")
    path = os.fspath(path)
    if path == "" or path.endswith(os.sep):
        raise ValueError(f"{name}={path!r} names no file")
    target = os.path.realpath(path)          # through every symlink, to the final target
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file")
        via = f" (through the link {path!r})" if target != os.path.abspath(path) else ""
        raise ValueError(f"{name}: {target!r}{via} is {kind}; fastmlp writes regular files "
                         "only and will not replace it")
    return target, stat.S_IMODE(st.st_mode)


def _create_beside(target):
    """Create a new, uniquely named temporary file in ``target``'s folder: ``(fd, name)``,
    with mode 0o666 minus the umask (as ``open()`` would create ``target`` itself)."""
    folder, base = os.path.split(target)
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
    """Open a temporary file beside ``path``'s final target; on success it replaces it.

    If the block raises (or the process dies), ``path`` is left as it was and the
    temporary file is removed (a killed process may leave a ``.tmp-*`` file behind, never
    a damaged ``path``). ``OSError``\\ s name ``path``.
    """
    target, keep_mode = check_target(path)
    shown = os.fspath(path)
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _create_beside(target)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {shown!r}: {exc.strerror}") from None
    try:
        if keep_mode is not None:
            os.chmod(fd, keep_mode)
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError,)):
            raise OSError(exc.errno or errno.EIO,
                          f"cannot write {shown!r}: {exc.strerror or exc}") from None
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
