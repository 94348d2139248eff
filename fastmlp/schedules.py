"""Learning-rate schedules: the rate of each epoch, from the base rate and the run so far.

At epoch ``e`` (counted from 0) of ``E``:

    seed       lr / (1 + 4 e / E)                 the seed's schedule (the default)
    constant   lr
    cosine     lr (1 + cos(pi e / E)) / 2         (past E epochs: its last value)
    plateau    lr divided by 5 each time the monitored value has gone ``patience`` epochs
               without improving by more than ``tol`` (scikit-learn's "adaptive",
               PyTorch's ReduceLROnPlateau); monitored: the valid loss when there is a
               valid split, else the train loss

A schedule's rate depends on the epochs already trained only through their monitored
values, which the history holds, so a resumed run gets the rates of an uninterrupted one.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validation import check_named


class Schedule:
    """A learning-rate schedule (the base class)."""

    name = ""
    #: whether :meth:`rate` reads the monitored values of the epochs before
    monitors = False

    def rate(self, lr, epoch, epochs, monitored=()):
        """The rate of epoch ``epoch`` of ``epochs``; ``monitored``: the monitored value of
        each epoch before it."""
        raise NotImplementedError

    def to_dict(self):
        return {"name": self.name}

    def __eq__(self, other):
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self):
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self):
        args = ", ".join(f"{k}={val!r}" for k, val in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SeedSchedule(Schedule):
    """``lr / (1 + 4 e / E)``: the seed's."""

    name = "seed"

    def rate(self, lr, epoch, epochs, monitored=()):
        return lr / (1.0 + 4.0 * epoch / epochs)


class Constant(Schedule):
    name = "constant"

    def rate(self, lr, epoch, epochs, monitored=()):
        return lr


class Cosine(Schedule):
    """``lr (1 + cos(pi e / E)) / 2``; past the E-th epoch it keeps its last value."""

    name = "cosine"

    def rate(self, lr, epoch, epochs, monitored=()):
        return lr * (1.0 + math.cos(math.pi * min(epoch, epochs - 1) / epochs)) / 2.0


class Plateau(Schedule):
    """Divide the rate by ``1 / factor`` (5) each time the monitored value has not improved
    by more than ``tol`` for ``patience`` epochs in a row (then count again)."""

    name = "plateau"
    monitors = True

    def __init__(self, patience=5, factor=0.2, tol=1e-4):
        if isinstance(patience, (bool, np.bool_)) or not isinstance(patience, numbers.Integral):
            raise TypeError(f"patience must be an int >= 1, got {patience!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        for name, value, ok in (("factor", factor, lambda x: 0 < x < 1),
                                ("tol", tol, lambda x: x >= 0 and math.isfinite(x))):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {value!r}")
            if not ok(float(value)):
                raise ValueError(f"{name}={value} is not allowed: factor must be in (0, 1), "
                                 "tol finite and >= 0")
        self.patience, self.factor, self.tol = int(patience), float(factor), float(tol)

    def rate(self, lr, epoch, epochs, monitored=()):
        best, waited, rate = math.inf, 0, lr
        for value in monitored[:epoch]:
            if value < best - self.tol:
                best, waited = value, 0
            else:
                waited += 1
                if waited >= self.patience:
                    rate *= self.factor
                    waited = 0
        return rate

    def to_dict(self):
        return {"name": self.name, "patience": self.patience, "factor": self.factor,
                "tol": self.tol}


#: name -> class
SCHEDULES = {cls.name: cls for cls in (SeedSchedule, Constant, Cosine, Plateau)}


def get_schedule(schedule, name="schedule"):
    """A :class:`Schedule` from a name of :data:`SCHEDULES` or an instance (returned as is)."""
    return check_named(schedule, name, SCHEDULES, Schedule, "a schedule", "fastmlp.schedules")


def schedule_from_dict(d):
    """The inverse of :meth:`Schedule.to_dict`."""
    if not isinstance(d, dict) or d.get("name") not in SCHEDULES:
        raise ValueError(f"not a schedule description: {d!r:.100}")
    return SCHEDULES[d["name"]](**{k: val for k, val in d.items() if k != "name"})


__all__ = ["Schedule", "SeedSchedule", "Constant", "Cosine", "Plateau", "SCHEDULES",
           "get_schedule", "schedule_from_dict"]
