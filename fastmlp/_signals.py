"""Signals: SIGTERM and SIGHUP handled as Ctrl-C, and interrupts held while kernels compile.

``fastmlp train`` stops on SIGTERM (``timeout``, ``docker stop``, Slurm) and SIGHUP (a closed
terminal) exactly as on Ctrl-C: after the last completed epoch, writing what it has. Signals
only reach Python's main thread, so both helpers do nothing in other threads.
"""

from __future__ import annotations

import contextlib
import signal
import threading

#: the signals that stop a run, besides SIGINT (Ctrl-C)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised as a ``KeyboardInterrupt`` so that every path that stops
    cleanly on Ctrl-C stops cleanly on them too; ``signum`` says which."""

    def __init__(self, signum):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_signals_as_interrupts():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (unless ignored)."""
    if not _in_main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    # an ignored signal stays ignored: `nohup fastmlp train ...` must survive a closed terminal
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def interrupts_held():
    """Hold Ctrl-C (and SIGTERM/SIGHUP when Python handles them) until the block ends, then
    deliver the first one received. numba's compiler does not survive an interrupt in its
    middle (llvmlite may swallow it and leave a half-built library behind), so compilation
    runs in such a block; a second Ctrl-C is delivered at once, for a user who insists."""
    if not _in_main_thread():
        yield
        return
    held = []
    # only what Python handles: an ignored Ctrl-C (a job started with `&`) stays ignored
    handled = [s for s in (signal.SIGINT, *STOP_SIGNALS) if callable(signal.getsignal(s))]
    previous = {s: signal.getsignal(s) for s in handled}

    def hold(signum, frame):
        if held:                                   # the second one: deliver now
            _deliver(signum, previous[signum])
        held.append(signum)

    for s in handled:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if held:
            _deliver(held[0], previous[held[0]])


def _deliver(signum, handler):
    if callable(handler):
        handler(signum, None)
    elif signum == signal.SIGINT and handler != signal.SIG_IGN:
        raise KeyboardInterrupt
