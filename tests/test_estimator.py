"""The scikit-learn estimator: scikit-learn's own checks, pipelines, grid search, and the
promise that it trains exactly the model fastmlp.train does."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from conftest import make_data

sklearn = pytest.importorskip("sklearn", reason="the estimator needs scikit-learn: "
                                                "pip install 'fastmlp[sklearn]'")
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

MLPClassifier = fastmlp.MLPClassifier


def small(backend, **kwargs):
    """An estimator small enough for the loop backend to pass every check in seconds."""
    return MLPClassifier(**{"hidden": 8, "epochs": 10, "lr": 0.1, "backend": backend, **kwargs})


@parametrize_with_checks([small(b) for b in fastmlp.BACKENDS]
                         + [small("numpy", dtype="float64", l1=1e-4, l2=(1e-4, 2e-4)),
                            small("numba" if "numba" in fastmlp.BACKENDS else "numpy",
                                  hidden=(6, 5), activation=("tanh", "relu"), optimizer="adam",
                                  lr=0.01, init="glorot", early_stopping=True,
                                  n_iter_no_change=3)])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def circles(n=300, seed=0):
    return fastmlp.datasets.circles(n=n, seed=seed)


def test_import_fastmlp_imports_no_heavy_dependency():
    code = ("import sys, fastmlp\n"
            "heavy = [m for m in ('sklearn', 'numba', 'matplotlib', 'torch', 'jax') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fastmlp_works_without_scikit_learn():
    # sys.modules[name] = None makes `import name` fail as if it were not installed
    code = ("import sys\n"
            "sys.modules['sklearn'] = None\n"
            "import fastmlp\n"
            "X, y = fastmlp.datasets.circles(n=50)\n"
            "fastmlp.train(fastmlp.MLP((2, 4, 2)), (X, y), epochs=1, progress=False)\n"
            "assert 'MLPClassifier' not in dir(fastmlp)\n"
            "import pydoc; pydoc.render_doc(fastmlp)\n"
            "try:\n"
            "    fastmlp.MLPClassifier\n"
            "except ImportError as exc:\n"
            "    assert 'fastmlp[sklearn]' in str(exc), exc\n"
            "else:\n"
            "    raise AssertionError('MLPClassifier imported without scikit-learn')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_weights_as_fastmlp_train(backend):
    X, y = circles()
    clf = MLPClassifier(hidden=6, l1=1e-4, l2=(2e-4, 3e-4), batch_size=16, lr=0.5, epochs=3,
                        backend=backend, dtype="float64", random_state=5).fit(X, y)
    model = fastmlp.MLP((2, 6, 2), l1=(1e-4, 1e-4), l2=(2e-4, 3e-4), dtype="float64", seed=5)
    history = fastmlp.train(model, (X, y), backend=backend, epochs=3, batch_size=16, lr=0.5,
                            seed=5, progress=False)
    assert clf.model_.theta.tobytes() == model.theta.tobytes()
    assert clf.loss_curve_ == history["train_loss"] and clf.n_iter_ == 3
    assert clf.history_["epoch"] == [0, 1, 2] and clf.seed_ == 5 and clf.backend_ == backend
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None


def test_a_deep_network_with_adam_is_fastmlp_train(backend):
    X, y = circles()
    clf = MLPClassifier(hidden=(8, 6), activation=("tanh", "logistic"), init="glorot",
                        optimizer="adam", lr=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7,
                        schedule="cosine", l2=1e-4, batch_size=16, epochs=3, backend=backend,
                        dtype="float64", random_state=3).fit(X, y)
    model = fastmlp.MLP((2, 8, 6, 2), activation=("tanh", "logistic"), init="glorot", l2=1e-4,
                        dtype="float64", seed=3)
    fastmlp.train(model, (X, y), backend=backend, epochs=3, batch_size=16, lr=0.01,
                  optimizer=fastmlp.optim.Adam(0.8, 0.99, 1e-7), schedule="cosine", seed=3,
                  progress=False)
    assert clf.model_.theta.tobytes() == model.theta.tobytes()
    assert clf.model_.layers == (2, 8, 6, 2)


def test_softmax_regression_and_an_int_hidden():
    X, y = circles(n=100)
    assert MLPClassifier(hidden=(), epochs=1).fit(X, y).model_.layers == (2, 2)
    assert MLPClassifier(hidden=7, epochs=1).fit(X, y).model_.layers == (2, 7, 2)


def test_early_stopping_on_a_validation_set_of_your_own():
    X, y = fastmlp.datasets.circles(n=400, noise=0.3, seed=3)
    X_val, y_val = fastmlp.datasets.circles(n=200, noise=0.3, seed=4)
    clf = MLPClassifier(hidden=(64, 64), optimizer="adam", lr=0.01, batch_size=8, epochs=200,
                        early_stopping=True, n_iter_no_change=3, tol=0.0, schedule="constant",
                        dtype="float64").fit(X, y, X_val=X_val, y_val=y_val)
    h = clf.history_
    assert h.stopped_early and clf.n_iter_ == h.best_epoch + 1 + 3
    assert h.validation == {"source": "the valid part of the data", "n_valid": 200}
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == clf.validation_scores_[h.best_epoch]
    # the model holds the best epoch: its accuracy on the validation set is that epoch's
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)
    assert clf.best_loss_ is None                                  # as scikit-learn
    with pytest.raises(ValueError, match="X_val and y_val go together"):
        clf.fit(X, y, X_val=X_val)
    with pytest.raises(ValueError, match="y_val holds labels"):
        clf.fit(X, y, X_val=X_val, y_val=y_val + 5)


def test_early_stopping_sets_validation_fraction_aside():
    X, y = circles(n=300)
    clf = MLPClassifier(hidden=8, epochs=30, early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=2).fit(X, y)
    assert clf.history_.validation["n_valid"] == 60
    assert len(clf.validation_scores_) == clf.n_iter_


def test_any_label_type_and_probabilities(backend):
    X, y = circles()
    names = np.array(["inside", "outside"])
    clf = MLPClassifier(hidden=16, batch_size=16, lr=0.5, epochs=5 if backend == "loop" else 20,
                        backend=backend).fit(X, names[y])
    assert list(clf.classes_) == ["inside", "outside"] and clf.n_features_in_ == 2
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 2) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(clf.predict(X), names[proba.argmax(axis=1)])
    assert clf.score(X, names[y]) > 0.9
    # unsorted, non-contiguous integer labels map to the same model as 0..m-1
    other = MLPClassifier(hidden=16, batch_size=16, lr=0.5, epochs=2, backend=backend)
    ref = MLPClassifier(hidden=16, batch_size=16, lr=0.5, epochs=2, backend=backend)
    other.fit(X, np.where(y == 0, 7, -3))
    ref.fit(X, 1 - y)
    assert list(other.classes_) == [-3, 7]
    assert np.array_equal(other.predict_proba(X), ref.predict_proba(X))


def test_partial_fit_epochs_times_equals_fit(backend):
    X, y = circles(n=200)
    kwargs = dict(hidden=5, batch_size=16, lr=0.5, epochs=3, backend=backend, random_state=2)
    fitted = MLPClassifier(**kwargs).fit(X, y + 1)
    stepped = MLPClassifier(**kwargs)
    for _ in range(3):
        stepped.partial_fit(X, y + 1, classes=[1, 2])
    assert stepped.model_.theta.tobytes() == fitted.model_.theta.tobytes()
    assert stepped.loss_curve_ == fitted.loss_curve_ and stepped.n_iter_ == 3
    # past `epochs`, the schedule keeps decaying and training goes on
    stepped.partial_fit(X[:50], y[:50] + 1)
    assert stepped.n_iter_ == 4
    assert stepped.history_["lr"][-1] == pytest.approx(0.5 / (1 + 4 * 3 / 3))


def test_partial_fit_carries_the_optimizers_state(backend):
    X, y = circles(n=200)
    kwargs = dict(hidden=(5, 4), batch_size=16, lr=0.01, epochs=3, optimizer="adam",
                  backend=backend, random_state=2)
    fitted = MLPClassifier(**kwargs).fit(X, y)
    stepped = MLPClassifier(**kwargs)
    for _ in range(3):
        stepped.partial_fit(X, y, classes=[0, 1])
    assert stepped.model_.theta.tobytes() == fitted.model_.theta.tobytes()
    assert stepped.history_.optimizer_state.step == 3 * 13        # ceil(200 / 16)


def test_partial_fit_refuses_what_it_cannot_continue():
    X, y = circles(n=60)
    clf = MLPClassifier(hidden=4, epochs=2)
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \[5\] that are not in classes"):
        clf.partial_fit(X, np.where(y == 0, 5, 1))
    with pytest.raises(ValueError, match="differs from the classes"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.set_params(hidden=9)
    with pytest.raises(ValueError, match=r"hidden=\(9,\) differs from the fitted model's \(4,\)"):
        clf.partial_fit(X, y)
    clf.set_params(hidden=4, optimizer="adam")
    with pytest.raises(ValueError, match="optimizer=Adam.* differs from the fitted model's SGD"):
        clf.partial_fit(X, y)


def test_pipeline(backend):
    X, y = circles()
    X = X * 50 + 100  # far from standardized: the scaler matters
    pipe = make_pipeline(StandardScaler(), small(backend, hidden=16, batch_size=16, lr=0.5,
                                                  epochs=5 if backend == "loop" else 20))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    scaled = StandardScaler().fit(X).transform(X)
    assert np.array_equal(pipe.predict_proba(X), pipe[-1].predict_proba(scaled))


def test_grid_search(backend):
    X, y = circles(n=240)
    # lr=0 cannot learn anything: the search must prefer the candidate that trains
    grid = GridSearchCV(small(backend, hidden=16, batch_size=16, epochs=4),
                        {"lr": [0.0, 0.5], "l2": [0.0, 1e-4]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["lr"] == 0.5
    scores = grid.cv_results_["mean_test_score"]
    lr0 = grid.cv_results_["param_lr"] == 0.0
    assert scores[~lr0].min() > scores[lr0].max()
    assert grid.best_estimator_.n_iter_ == 4 and grid.score(X, y) > 0.8


def test_pickle_round_trip():
    X, y = circles(n=100)
    clf = MLPClassifier(hidden=4, epochs=2).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_random_state_none_draws_a_seed_and_records_it():
    X, y = circles(n=100)
    a = MLPClassifier(hidden=4, epochs=1, random_state=None).fit(X, y)
    b = MLPClassifier(hidden=4, epochs=1, random_state=a.seed_).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    rs = np.random.RandomState(0)
    c = MLPClassifier(hidden=4, epochs=1, random_state=rs).fit(X, y)
    assert c.seed_ == np.random.RandomState(0).randint(np.iinfo(np.int32).max)


def test_divergence_keeps_the_last_good_epoch(backend):
    X, y = make_data(64, 4, 3, seed=4)
    clf = MLPClassifier(hidden=8, batch_size=4, lr=1e6, epochs=3, backend=backend)
    with pytest.raises(fastmlp.DivergenceError, match="step .* of epoch 1"):
        clf.fit(X * 1e3, y)
    init = fastmlp.MLP((4, 8, 3), seed=0)
    assert np.array_equal(clf.model_.theta, init.theta)
    assert clf.n_iter_ == 0 and clf.loss_curve_ == []


def test_ctrl_c_keeps_the_last_completed_epoch_and_stops_the_caller(backend, monkeypatch):
    X, y = make_data(50, 3, 2)
    cls = type(fastmlp.get_backend(backend))
    original, calls = cls.train_steps, []

    def interrupted(self, model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            model.params["W1"][...] = 123.0  # a half-done epoch that must not survive
            raise KeyboardInterrupt
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(cls, "train_steps", interrupted)
    clf = MLPClassifier(hidden=4, epochs=5, backend=backend, dtype="float64")
    with pytest.raises(KeyboardInterrupt):  # so that it also stops a GridSearchCV
        clf.fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.history_.interrupted
    monkeypatch.setattr(cls, "train_steps", original)
    ref = fastmlp.MLP((3, 4, 2), dtype="float64", seed=0)
    fastmlp.train(ref, (X, y), backend=backend, epochs=5, stop_epoch=2, progress=False)
    assert clf.model_.theta.tobytes() == ref.theta.tobytes()
