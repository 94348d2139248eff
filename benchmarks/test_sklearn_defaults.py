"""scikit-learn's own default network, trained for 10 epochs on Fashion-MNIST by
``sklearn.neural_network.MLPClassifier`` and by ``fastmlp.MLPClassifier`` with the same
settings: one hidden layer of 100 ReLU units, Adam at 1e-3, minibatches of 200, L2
``alpha=1e-4``, Glorot initialization, a constant rate.

scikit-learn's L2 gradient is ``alpha W / K``; fastmlp's ``2 l2 W``: ``l2 = alpha / (2 K)``
gives the same. Each side fits on the standardized train split (49,000 examples, float32)
and is scored on the test split; the times (best of the rounds) and both test accuracies
are in ``extra_info``. Skipped with a reason when Fashion-MNIST, scikit-learn or the
estimator's parameters are missing.
"""

import inspect
import time
import warnings

import numpy as np
import pytest
from conftest import require_backend

import fastmlp
from fastmlp import datasets, timing

EPOCHS, BATCH, ALPHA, LR, HIDDEN = 10, 200, 1e-4, 1e-3, (100,)
ROUNDS = 2

#: the fastmlp.MLPClassifier parameters these settings need
ESTIMATOR_PARAMETERS = ("hidden", "activation", "optimizer", "lr", "batch_size", "epochs", "l2",
                        "init", "schedule", "backend")

#: what each case has measured, for the cases after it: name -> (seconds, test accuracy)
_MEASURED = {}


@pytest.fixture(scope="module")
def fashion():
    if datasets.fashion_mnist_dir() is None:
        pytest.skip("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` "
                    "or set FASHION_MNIST_DIR")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    split = datasets.split(*datasets.fashion_mnist(), seed=0)
    return tuple(np.ascontiguousarray(a, dtype=np.float32) if a.dtype.kind == "f" else a
                 for a in (*split.train, *split.test))


def sklearn_estimator():
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam",
                         batch_size=BATCH, learning_rate_init=LR, alpha=ALPHA,
                         max_iter=EPOCHS, random_state=0)


def fastmlp_estimator(backend):
    accepted = inspect.signature(fastmlp.MLPClassifier).parameters
    absent = [p for p in ESTIMATOR_PARAMETERS if p not in accepted]
    if absent:
        pytest.skip(f"fastmlp.MLPClassifier does not take {', '.join(absent)} yet (the "
                    "estimator for networks of any depth, activations and optimizers is "
                    "still to come)")
    require_backend(backend)
    return fastmlp.MLPClassifier(hidden=HIDDEN, activation="relu", optimizer="adam", lr=LR,
                                 batch_size=BATCH, epochs=EPOCHS, l2=ALPHA / (2 * BATCH),
                                 init="glorot", schedule="constant", backend=backend)


@pytest.mark.parametrize("name", ["sklearn", "fastmlp-numba", "fastmlp-numpy"])
def test_sklearn_defaults_for_10_epochs(benchmark, fashion, name):
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    X, y, X_test, y_test = fashion
    estimator = (sklearn_estimator() if name == "sklearn"
                 else fastmlp_estimator(name.split("-")[1]))
    if name != "sklearn":               # compilation (numba) outside the timing
        clone(estimator).set_params(epochs=1).fit(X[:2 * BATCH], y[:2 * BATCH])
    benchmark.group = ("scikit-learn's defaults: (784, 100, 10) relu, Adam 1e-3, K=200, "
                       "alpha=1e-4, 10 epochs, Fashion-MNIST float32")
    fitted = []

    def fit(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted.append(model.fit(X, y))

    t0 = time.perf_counter()
    benchmark.pedantic(fit, setup=timing.settled(lambda: ((clone(estimator),), {})),
                       rounds=ROUNDS, iterations=1)
    seconds = (benchmark.stats.stats.min if benchmark.stats is not None
               else time.perf_counter() - t0)
    accuracy = float(fitted[-1].score(X_test, y_test))
    _MEASURED[name] = (seconds, accuracy)
    extra = benchmark.extra_info
    extra.update({"seconds": seconds, "test_accuracy": accuracy, "epochs": EPOCHS,
                  "examples": len(y), "test_examples": len(y_test)})
    for other, (other_seconds, other_accuracy) in _MEASURED.items():
        extra[f"{other}_seconds"] = other_seconds
        extra[f"{other}_test_accuracy"] = other_accuracy
    if name != "sklearn":
        extra["backend"] = getattr(fitted[-1], "backend_", name.split("-")[1])
