"""fastmlp: small multilayer perceptrons on the CPU, from first principles and fast.

    >>> import fastmlp
    >>> X, y = fastmlp.datasets.circles(n=400)
    >>> model = fastmlp.MLP(layers=(2, 32, 2), l2=(1e-4, 1e-4))
    >>> history = fastmlp.train(model, (X, y), epochs=5, progress=False)

``import fastmlp`` is cheap: it compiles nothing and imports neither numba, matplotlib,
scikit-learn nor torch; each is imported where it is used.
"""

from . import datasets, ops
from .backends import BACKENDS, Backend, fastest_backend, get_backend
from .datasets import Split
from .gradcheck import check_gradients
from .model import MLP, ModelFileError
from .training import DivergenceError, History, evaluate, gradients, train

__version__ = "0.1.0"

__all__ = [
    "MLP", "Backend", "BACKENDS", "get_backend", "fastest_backend", "gradients", "train",
    "evaluate", "History", "Split", "DivergenceError", "ModelFileError", "datasets", "ops",
    "check_gradients",
]
