"""Checkpoints: everything a run needs to continue, in one model file written atomically.

A checkpoint is a model file (:mod:`fastmlp.model_file`) whose metadata says
``"kind": "fastmlp-checkpoint"`` and holds the history so far and the run's settings, and
whose extra arrays hold the optimizer's state (``opt.<buffer>``, its step count in the
metadata) and, while early stopping waits, the best epoch's weights and state (``best.*``).
Resumed from it, a run ends with the same bits as a run never stopped.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _aligned
from .model import MLP, ModelFileError
from .optim import OptimizerState, optimizer_from_dict
from .training import History

KIND = "fastmlp-checkpoint"


def _state_arrays(prefix, state):
    return {f"{prefix}{name}": buf for name, buf in state.buffers.items()}


def save_checkpoint(path, model, history, settings=None):
    """Write ``model``, ``history`` (with its optimizer state and best snapshot) and the run's
    ``settings`` (a dict of JSON values) to ``path``, atomically."""
    state = history.optimizer_state
    extra = {"kind": KIND, "epoch": len(history), "history": history.to_dict(),
             "settings": settings, "optimizer_step": state.step if state is not None else 0}
    arrays = _state_arrays("opt.", state) if state is not None else {}
    if history.best_snapshot is not None:
        best_theta, best_state = history.best_snapshot
        arrays["best.theta"] = best_theta
        arrays.update(_state_arrays("best.opt.", best_state))
        extra["best_optimizer_step"] = best_state.step
    model.save(path, extra=extra, extra_arrays=arrays)


def load_checkpoint(path):
    """``(model, history, settings)`` from a checkpoint, ``history.optimizer_state`` (and the
    best snapshot) restored; raises :class:`ModelFileError` naming what is wrong in a
    damaged or hand-edited file."""
    model, extra, arrays = MLP.load(path, return_extra=True)
    where = f"{str(path)!r} is not a valid fastmlp checkpoint"
    try:
        if not isinstance(extra, dict) or extra.get("kind") != KIND:
            raise ValueError("it is a model file, not a checkpoint")
        history = History.from_dict(extra["history"])
        epoch = extra["epoch"]
        if type(epoch) is not int or epoch != len(history):
            raise ValueError(f"epoch {epoch!r} disagrees with its history of {len(history)} "
                             "epochs")
        optimizer = optimizer_from_dict(history.settings.get("optimizer", {"name": "sgd"}))
        state = _state(arrays, "opt.", optimizer, model, extra.get("optimizer_step"))
        history.optimizer_state = state
        if "best.theta" in arrays:
            best = arrays["best.theta"]
            if best.shape != (model.n_params,) or best.dtype != model.dtype:
                raise ValueError("its best weights do not fit its model")
            history.best_snapshot = (best, _state(arrays, "best.opt.", optimizer, model,
                                                  extra.get("best_optimizer_step")))
        known = {f"opt.{b}" for b in optimizer.buffers} | {
            f"best.opt.{b}" for b in optimizer.buffers} | {"best.theta"}
        if set(arrays) - known:
            raise ValueError(f"unexpected arrays {sorted(set(arrays) - known)}")
        history.interrupted = False
        settings = extra.get("settings")
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    return model, history, settings


def _state(arrays, prefix, optimizer, model, step):
    if type(step) is not int or step < 0:
        raise ValueError(f"its optimizer step count {step!r} is not an int >= 0")
    buffers = {}
    for name in optimizer.buffers:
        a = arrays.get(prefix + name)
        if a is None or a.shape != (model.n_params,) or a.dtype != model.dtype:
            raise ValueError(f"its optimizer state {prefix + name} is missing or does not fit "
                             "the model")
        if not np.isfinite(a).all():
            raise ValueError(f"its optimizer state {prefix + name} holds NaN or infinity")
        buffers[name] = _aligned.copy(a)
    return OptimizerState(optimizer, step, buffers)


class CheckpointWriter:
    """``on_epoch_end`` for :func:`fastmlp.train`: write a checkpoint every ``every`` epochs
    and after the last one. A write that fails (a full disk, a folder in the way) is reported
    on stderr and training goes on: the run is worth more than its checkpoint."""

    def __init__(self, path, model, settings, every, epochs):
        self.path, self.model, self.settings = path, model, settings
        self.every, self.epochs = every, epochs
        self.failures = 0

    def __call__(self, epoch, history):
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs or history.stopped_early:
            self.write(history)

    def write(self, history):
        try:
            save_checkpoint(self.path, self.model, history, self.settings)
            return True
        except OSError as exc:
            self.failures += 1
            print(f"fastmlp: warning: could not write the checkpoint {self.path} after epoch "
                  f"{len(history)} ({exc}); training goes on", file=sys.stderr)
            return False


__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointWriter", "KIND"]
