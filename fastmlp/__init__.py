"""fastmlp: small multilayer perceptrons on the CPU, from first principles and fast.

    >>> import fastmlp
    >>> X, y = fastmlp.datasets.circles(n=400)
    >>> model = fastmlp.MLP(layers=(2, 32, 16, 2), activation="tanh", l2=1e-4)
    >>> history = fastmlp.train(model, (X, y), epochs=5, optimizer="adam", lr=1e-2,
    ...                         progress=False)

``import fastmlp`` is cheap: it compiles nothing and imports neither numba, matplotlib,
scikit-learn nor torch; each is imported where it is used. ``fastmlp.MLPClassifier`` (the
scikit-learn estimator, ``pip install fastmlp[sklearn]``) is imported on first use.
"""

from . import activations, datasets, ops, optim, schedules, threads
from .backends import BACKENDS, Backend, fastest_backend, get_backend
from .datasets import Split
from .gradcheck import check_gradients
from .model import MLP, ModelFileError
from .training import DivergenceError, History, evaluate, gradients, train

__version__ = "0.1.0"

#: names resolved on first use because they import optional dependencies:
#: name -> (module of fastmlp, the dependency it needs)
_LAZY = {"MLPClassifier": ("estimator", "sklearn")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name][0]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


def __dir__():
    # only what can be imported here, so that help(fastmlp) works without scikit-learn
    import importlib.util

    return sorted(list(globals()) + [name for name, (_, needs) in _LAZY.items()
                                     if importlib.util.find_spec(needs) is not None])


# MLPClassifier is not in __all__: ``from fastmlp import *`` must not need scikit-learn.
__all__ = [
    "MLP", "Backend", "BACKENDS", "get_backend", "fastest_backend", "gradients", "train",
    "evaluate", "History", "Split", "DivergenceError", "ModelFileError", "datasets", "ops",
    "optim", "schedules", "activations", "threads", "check_gradients",
]
