"""Bad input gets a clear ValueError or TypeError at the boundary of every public entry point.

Each case names the argument in the message and is refused before any backend arithmetic
runs: the ``tripwire`` fixture makes every backend's methods fail the test if called.
A hypothesis test then throws random malformed arguments at the API.
"""

import importlib.util
import math
import re

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastmlp
from fastmlp import MLP, datasets, evaluate, gradients, train
from fastmlp.cli import main

#: what a backend computes; none of it may run on bad input
KERNELS = ("logits", "loss_and_grads", "train_steps", "predict_proba", "evaluate")

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def tripwire(monkeypatch):
    def kernel_ran(*args, **kwargs):
        raise AssertionError("a backend kernel ran before the bad input was refused")

    for name in fastmlp.BACKENDS:
        cls = type(fastmlp.get_backend(name))
        for method in KERNELS:
            monkeypatch.setattr(cls, method, kernel_ran)


def data(n=10, d=3, m=2):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), np.arange(n) % m


def model(**kwargs):
    return MLP((3, 4, 2), **kwargs)


def with_nan(X, value=NAN):
    X = X.copy()
    X[2, 1] = value
    return X


X, Y = data()


def fit(X=X, y=Y, **kwargs):
    """``train`` with small valid defaults, one argument replaced."""
    kwargs = {"progress": False, "epochs": 1, **kwargs}
    return train(kwargs.pop("model", model()), kwargs.pop("data", (X, y)), **kwargs)


# -- one case at a time: (call, exception, the message must match) ------------------------
CASES = {
    # the model
    "MLP layers of length 1": (lambda: MLP((2,)), ValueError,
                               r"layers must have at least 2 entries, \(inputs, \[hidden widths "
                               r"\.\.\.,\] classes\)"),
    "MLP hidden width 0": (lambda: MLP((2, 0, 2)), ValueError, r"layers\[1\] must be at least 1"),
    "MLP deep hidden width 0": (lambda: MLP((2, 3, 4, 0, 2)), ValueError,
                                r"layers\[3\] must be at least 1"),
    "MLP negative width": (lambda: MLP((-2, 3, 2)), ValueError, r"layers\[0\] must be at least 1"),
    "MLP one class": (lambda: MLP((2, 3, 1)), ValueError, r"layers\[-1\] \(number of classes\)"),
    "MLP unknown activation": (lambda: model(activation="gelu"), ValueError,
                               "activation='gelu' is not an activation; use one of relu, tanh, "
                               "logistic, identity"),
    "MLP activation list too long": (lambda: MLP((2, 3, 4, 2), activation=["relu"] * 3),
                                     ValueError, "lists 3 activation.*has 2 hidden layer"),
    "MLP activation not a name": (lambda: model(activation=None), TypeError,
                                  "activation must be an activation name"),
    "MLP init unknown": (lambda: model(init="orthogonal"), ValueError,
                         "init='orthogonal' is not allowed; use one of uniform, glorot"),
    "MLP float width": (lambda: MLP((2.5, 3, 2)), TypeError, r"layers\[0\] must be an int"),
    "MLP layers a string": (lambda: MLP("abc"), TypeError, "layers must be a sequence"),
    "MLP layers None": (lambda: MLP(None), TypeError, "layers must be a sequence"),
    "MLP negative l1": (lambda: model(l1=(-1.0, 0.0)), ValueError, r"l1\[0\] must be >= 0"),
    "MLP NaN l2": (lambda: model(l2=(0.0, NAN)), ValueError, r"l2\[1\] must be finite"),
    "MLP infinite l1": (lambda: model(l1=(INF, 0.0)), ValueError, r"l1\[0\] must be finite"),
    "MLP l2 of 3": (lambda: model(l2=(0, 0, 0)), ValueError,
                    r"l2 lists 3 value\(s\) but the network has 2 weight matrices"),
    "MLP l1 a string": (lambda: model(l1="0.1"), TypeError, "l1 must be a number >= 0"),
    "MLP dtype float16": (lambda: model(dtype="float16"), ValueError,
                          r"dtype='float16' is not supported; use one of \('float32', 'float64'\)"),
    "MLP dtype int": (lambda: model(dtype=int), ValueError, "dtype=.* is not supported"),
    "MLP dtype None": (lambda: model(dtype=None), ValueError, "dtype=None is not supported"),
    "MLP dtype nonsense": (lambda: model(dtype="floaty"), ValueError, "dtype='floaty'"),
    "MLP negative seed": (lambda: model(seed=-1), ValueError, "seed must be >= 0, got -1"),
    "MLP float seed": (lambda: model(seed=1.5), TypeError, "seed must be an int"),
    # train: the model and the data
    "train model not an MLP": (lambda: fit(model="mlp"), TypeError, "model must be a fastmlp.MLP"),
    "train data not a pair": (lambda: fit(data=X), TypeError, r"data must be \(X, y\) or a"),
    "train X NaN": (lambda: fit(with_nan(X)), ValueError,
                    r"train X contains NaN or infinite values \(first at row 2, column 1\)"),
    "train X inf": (lambda: fit(with_nan(X, -INF)), ValueError, "train X contains NaN or infinite"),
    "train X too large for float32": (lambda: fit(X * 1e39), ValueError,
                                      "train X holds values too large for float32"),
    "train X masked": (lambda: fit(np.ma.masked_array(X, mask=X > 1)), TypeError,
                       "train X is a masked array; fastmlp would ignore its mask"),
    "train lr too large for float32": (lambda: fit(lr=1e39), ValueError,
                                       "lr=1e\\+39 is too large for a float32 model"),
    "train optimizer unknown": (lambda: fit(optimizer="adagrad"), ValueError,
                                "optimizer='adagrad' is not an optimizer"),
    "train schedule unknown": (lambda: fit(schedule="step"), ValueError,
                               "schedule='step' is not a schedule"),
    "train patience 0": (lambda: fit(patience=0), ValueError, "patience must be >= 1"),
    "train early stopping without validation data": (
        lambda: fit(data=datasets.split(X, Y, fractions=(1.0, 0.0, 0.0)), early_stopping=True),
        ValueError, "early_stopping=True needs validation data"),
    "train beta1 of 1": (lambda: fit(optimizer=fastmlp.optim.Adam(beta1=1.0)), ValueError,
                         r"beta1 must be in \[0, 1\)"),
    "train X wrong width": (lambda: fit(X[:, :2]), ValueError,
                            r"train X has 2 features \(columns\) but the model expects 3"),
    "train X 1-D": (lambda: fit(X[:, 0]), ValueError, "train X must be 2-D"),
    "train X 3-D": (lambda: fit(X[:, :, None]), ValueError, "train X must be 2-D"),
    "train X empty": (lambda: fit(X[:0], Y[:0]), ValueError, "train X is empty: it has 0 examples"),
    "train X no columns": (lambda: fit(X[:, :0]), ValueError, r"train X has 0 features"),
    "train X strings": (lambda: fit(X.astype(str)), TypeError, "train X must hold real numbers"),
    "train X complex": (lambda: fit(X + 1j), TypeError, "train X must hold real numbers"),
    "train X objects": (lambda: fit(X.astype(object)), TypeError, "train X must hold real numbers"),
    "train X ragged": (lambda: fit([[1.0, 2.0, 3.0], [1.0]], [0, 1]), ValueError,
                       "train X could not be read"),
    "train X sparse": (lambda: fit(scipy.sparse.csr_matrix(X)), TypeError,
                       r"train X is a sparse matrix.*toarray"),
    "train X a string": (lambda: fit("X"), TypeError, "train X must be a 2-D array"),
    "train y not integers": (lambda: fit(y=Y + 0.5), ValueError,
                             "train y must hold integer class labels; got non-integer values"),
    "train y NaN": (lambda: fit(y=np.where(Y == 0, NAN, 1.0)), ValueError,
                    "train y must hold integer class labels"),
    "train y too large": (lambda: fit(y=Y + 5), ValueError,
                          r"train y has labels out of range \(5\.\.6\); allowed: 0\.\.1"),
    "train y negative": (lambda: fit(y=Y - 1), ValueError, r"out of range \(-1\.\.0\)"),
    "train y shorter than X": (lambda: fit(y=Y[:3]), ValueError,
                               "train y has 3 labels but X has 10 examples"),
    "train y 2-D": (lambda: fit(y=Y[:, None]), ValueError, r"train y must be 1-D"),
    "train y strings": (lambda: fit(y=Y.astype(str)), TypeError,
                        "train y must hold integer class labels, got dtype <U"),
    "train y bool": (lambda: fit(y=Y.astype(bool)), TypeError, "got dtype bool"),
    "train valid X NaN": (lambda: fit(data=datasets.Split((X, Y), (with_nan(X), Y))), ValueError,
                          "valid X contains NaN"),
    "train test y out of range": (lambda: fit(data=datasets.Split((X, Y), None, (X, Y + 2))),
                                  ValueError, "test y has labels out of range"),
    # train: the settings
    "train batch_size 0": (lambda: fit(batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
    "train batch_size -4": (lambda: fit(batch_size=-4), ValueError, "batch_size must be >= 1"),
    "train batch_size float": (lambda: fit(batch_size=2.5), TypeError, "batch_size must be an int"),
    "train lr negative": (lambda: fit(lr=-0.1), ValueError, "lr must be >= 0, got -0.1"),
    "train lr inf": (lambda: fit(lr=INF), ValueError, "lr must be finite, got inf"),
    "train lr NaN": (lambda: fit(lr=NAN), ValueError, "lr must be finite, got nan"),
    "train lr a string": (lambda: fit(lr="0.1"), TypeError, "lr must be a real number"),
    "train epochs negative": (lambda: fit(epochs=-1), ValueError, "epochs must be >= 0, got -1"),
    "train epochs float": (lambda: fit(epochs=1.5), TypeError, "epochs must be an int"),
    "train seed negative": (lambda: fit(seed=-3), ValueError, "seed must be >= 0"),
    "train backend unknown": (lambda: fit(backend="cuda"), ValueError,
                              r"unknown backend 'cuda'; available backends: .*numpy"),
    "train backend a number": (lambda: fit(backend=3), TypeError, "backend must be a name"),
    "train start_epoch past epochs": (lambda: fit(epochs=2, start_epoch=3), ValueError,
                                      "start_epoch=3 is past the last epoch"),
    "train stop_epoch negative": (lambda: fit(stop_epoch=-1), ValueError,
                                  "stop_epoch must be >= 0"),
    "train history wrong type": (lambda: fit(history=[]), TypeError,
                                 "history must be a fastmlp.History"),
    "train history too short": (lambda: fit(epochs=3, start_epoch=2, history=fastmlp.History()),
                                ValueError, "history holds 0 epoch.* but start_epoch is 2"),
    "train on_epoch_end not callable": (lambda: fit(on_epoch_end=1), TypeError,
                                        "on_epoch_end must be a callable"),
    # gradients and evaluate
    "gradients model not an MLP": (lambda: gradients(None, X, Y), TypeError,
                                   "model must be a fastmlp.MLP"),
    "gradients X NaN": (lambda: gradients(model(), with_nan(X), Y), ValueError, "X contains NaN"),
    "gradients X wrong width": (lambda: gradients(model(), X[:, 1:], Y), ValueError,
                                "X has 2 features"),
    "gradients y out of range": (lambda: gradients(model(), X, Y + 2), ValueError,
                                 "y has labels out of range"),
    "gradients y length": (lambda: gradients(model(), X, Y[:-1]), ValueError,
                           "y has 9 labels but X has 10"),
    "gradients backend unknown": (lambda: gradients(model(), X, Y, backend="gpu"), ValueError,
                                  "unknown backend 'gpu'"),
    "evaluate model not an MLP": (lambda: evaluate({}, X, Y), TypeError, "model must be"),
    "evaluate X inf": (lambda: evaluate(model(), with_nan(X, INF), Y), ValueError,
                       "X contains NaN or infinite"),
    "evaluate y not integers": (lambda: evaluate(model(), X, Y * 0.3), ValueError,
                                "y must hold integer class labels"),
    "evaluate X empty": (lambda: evaluate(model(), X[:0], Y[:0]), ValueError, "X is empty"),
    # predict and predict_proba
    "predict X NaN": (lambda: model().predict(with_nan(X)), ValueError, "X contains NaN"),
    "predict X wrong width": (lambda: model().predict(X[:, :1]), ValueError,
                              "X has 1 features .* expects 3"),
    "predict X 1-D": (lambda: model().predict(X[0]), ValueError,
                      r"X must be 2-D.*X.reshape\(1, -1\)"),
    "predict X empty": (lambda: model().predict(X[:0]), ValueError, "X is empty"),
    "predict backend unknown": (lambda: model().predict(X, backend="fast"), ValueError,
                                "unknown backend 'fast'"),
    "predict_proba X inf": (lambda: model().predict_proba(with_nan(X, INF)), ValueError,
                            "X contains NaN or infinite"),
    "predict_proba X too large": (lambda: model().predict_proba(X * 1e39), ValueError,
                                  "too large for float32"),
    "predict_proba X strings": (lambda: model().predict_proba([["a", "b", "c"]]), TypeError,
                                "X must hold real numbers"),
    # datasets.split
    "split X NaN": (lambda: datasets.split(with_nan(X), Y), ValueError, "X contains NaN"),
    "split y length": (lambda: datasets.split(X, Y[:4]), ValueError, "y has 4 labels but X has 10"),
    "split y negative": (lambda: datasets.split(X, Y - 1), ValueError, "y has labels out of range"),
    "split y huge": (lambda: datasets.split(X, Y * 1e12), ValueError,
                     r"y has labels out of range .* allowed: 0\.\.2147483647"),
    "split X no columns": (lambda: datasets.split(X[:, :0], Y), ValueError, "X has 0 features"),
    "split fractions of 2": (lambda: datasets.split(X, Y, fractions=(0.5, 0.5)), TypeError,
                             r"fractions must be \(train, valid, test\)"),
    "split fractions sum": (lambda: datasets.split(X, Y, fractions=(0.5, 0.2, 0.2)), ValueError,
                            "fractions must add up to 1"),
    "split fraction negative": (lambda: datasets.split(X, Y, fractions=(1.2, -0.2, 0.0)),
                                ValueError, r"fractions\[1\] must be >= 0"),
    "split fraction NaN": (lambda: datasets.split(X, Y, fractions=(NAN, 0.5, 0.5)), ValueError,
                           r"fractions\[0\] must be finite"),
    "split no training example": (lambda: datasets.split(X[:3], Y[:3], fractions=(0.1, 0.9, 0.0)),
                                  ValueError, r"fractions\[0\]=0.1 leaves no training example"),
    "split seed negative": (lambda: datasets.split(X, Y, seed=-1), ValueError,
                            "seed must be >= 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_at_the_boundary(case, tripwire):
    call, error, match = CASES[case]
    with pytest.raises(error, match=match):
        call()


# -- the estimator ----------------------------------------------------------------------------
def estimator(**kwargs):
    pytest.importorskip("sklearn")
    return fastmlp.MLPClassifier(**{"hidden": 4, "epochs": 1, **kwargs})


ESTIMATOR_CASES = {
    "hidden 0": (dict(hidden=0), ValueError, r"hidden\[0\] must be >= 1, got 0"),
    "hidden float": (dict(hidden=2.5), TypeError, "hidden must be an int or a sequence"),
    "hidden list with 0": (dict(hidden=(4, 0)), ValueError, r"hidden\[1\] must be >= 1"),
    "activation unknown": (dict(activation="selu"), ValueError, "'selu' is not an activation"),
    "init unknown": (dict(init="zeros"), ValueError, "init='zeros' is not allowed"),
    "optimizer unknown": (dict(optimizer="lbfgs"), ValueError, "'lbfgs' is not an optimizer"),
    "beta_1 of 1": (dict(optimizer="adam", beta_1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    "epsilon 0": (dict(optimizer="adam", epsilon=0.0), ValueError, "eps must be a finite"),
    "momentum negative": (dict(optimizer="momentum", momentum=-1.0), ValueError, "momentum"),
    "n_iter_no_change 0": (dict(early_stopping=True, n_iter_no_change=0), ValueError,
                           "n_iter_no_change must be >= 1"),
    "validation_fraction 1": (dict(early_stopping=True, validation_fraction=1.0), ValueError,
                              "validation_fraction must be in"),
    "l1 negative": (dict(l1=-1.0), ValueError, "l1 must be >= 0, got -1.0"),
    "l2 NaN": (dict(l2=NAN), ValueError, "l2 must be finite"),
    "l2 of 3": (dict(l2=(1e-4, 1e-4, 1e-4)), ValueError,
                r"l2 lists 3 value\(s\) but the network has 2 weight matrices"),
    "l1 pair negative": (dict(l1=(0.0, -1e-3)), ValueError, r"l1\[1\] must be >= 0"),
    "batch_size 0": (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    "lr negative": (dict(lr=-1.0), ValueError, "lr must be >= 0"),
    "lr NaN": (dict(lr=NAN), ValueError, "lr must be finite"),
    "epochs 0": (dict(epochs=0), ValueError, "epochs must be >= 1, got 0"),
    "epochs negative": (dict(epochs=-2), ValueError, "epochs must be >= 1"),
    "backend unknown": (dict(backend="cuda"), ValueError,
                        r"unknown backend 'cuda'; available backends: .*, or 'auto'"),
    "dtype float16": (dict(dtype="float16"), ValueError, "dtype='float16' is not supported"),
    "random_state negative": (dict(random_state=-1), ValueError, "random_state must be >= 0"),
    "random_state a string": (dict(random_state="x"), TypeError,
                              "random_state must be an int >= 0, a numpy RandomState or None"),
    "progress a string": (dict(progress="yes"), TypeError, "progress must be True or False"),
}


@pytest.mark.parametrize("case", list(ESTIMATOR_CASES))
def test_estimator_refuses_bad_parameters_in_fit(case, tripwire):
    params, error, match = ESTIMATOR_CASES[case]
    clf = estimator(**params)  # scikit-learn's convention: __init__ stores, fit checks
    with pytest.raises(error, match=match):
        clf.fit(X, Y)
    with pytest.raises(error, match=match):
        clf.partial_fit(X, Y, classes=[0, 1])


ESTIMATOR_DATA_CASES = {
    "X NaN": (lambda c: c.fit(with_nan(X), Y), ValueError, "Input X contains NaN"),
    "X inf": (lambda c: c.fit(with_nan(X, INF), Y), ValueError, "Input X contains infinity"),
    "X too large for float32": (lambda c: c.fit(X * 1e39, Y), ValueError,
                                "Input X contains infinity or a value too large for.*float32"),
    "X 1-D": (lambda c: c.fit(X[:, 0], Y), ValueError, "Expected 2D array, got 1D array"),
    "X empty": (lambda c: c.fit(X[:0], Y[:0]), ValueError, "0 sample"),
    "y length": (lambda c: c.fit(X, Y[:5]), ValueError, "inconsistent numbers of samples"),
    "y missing": (lambda c: c.fit(X, None), ValueError, "requires y to be passed"),
    "y continuous": (lambda c: c.fit(X, Y + 0.5), ValueError, "Unknown label type: continuous"),
    "y NaN": (lambda c: c.fit(X, np.where(Y == 0, NAN, 1.0)), ValueError, "Input y contains NaN"),
    "y one class": (lambda c: c.fit(X, np.zeros(10)), ValueError,
                    r"y holds 1 class .*at least 2 classes"),
    "classes one class": (lambda c: c.partial_fit(X, np.zeros(10), classes=[0]), ValueError,
                          "classes holds 1 class"),
    "predict unfitted": (lambda c: c.predict(X), ValueError, "not fitted yet"),
}


@pytest.mark.parametrize("case", list(ESTIMATOR_DATA_CASES))
def test_estimator_refuses_bad_data(case, tripwire):
    call, error, match = ESTIMATOR_DATA_CASES[case]
    with pytest.raises(error, match=match):
        call(estimator())


def test_estimator_refuses_bad_data_after_fit():
    clf = estimator().fit(X, Y)
    for method in (clf.predict, clf.predict_proba, clf.score):
        args = (X[:, :2], Y) if method == clf.score else (X[:, :2],)
        with pytest.raises(ValueError, match="X has 2 features, but MLPClassifier is expecting 3"):
            method(*args)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(with_nan(X))


# -- the command line ---------------------------------------------------------------------------
def cli(capsys, *args):
    """Run ``fastmlp train`` in-process: ``(exit status, stderr)``."""
    argv = ["train", "--data", "circles", "--epochs", "1", "--no-progress", *map(str, args)]
    try:
        status = main(argv)
    except SystemExit as exc:  # the argument parser's own refusals
        status = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


CLI_CASES = {
    "--hidden 0": (["--hidden", 0], "argument --hidden: must be an integer >= 1, got 0"),
    "--hidden x": (["--hidden", "x"], "argument --hidden: must be an integer >= 1, got 'x'"),
    "--epochs -1": (["--epochs", -1], "argument --epochs: must be an integer >= 1, got -1"),
    "--batch-size 0": (["--batch-size", 0], "argument --batch-size: must be an integer >= 1"),
    "--lr -1": (["--lr", -1], "argument --lr: must be a finite number >= 0, got '-1'"),
    "--lr nan": (["--lr", "nan"], "argument --lr: must be a finite number >= 0, got 'nan'"),
    "--lr inf": (["--lr", "inf"], "argument --lr: must be a finite number >= 0"),
    "--l1 -1": (["--l1", -1], "argument --l1: must be a finite number >= 0"),
    "--l2 three values": (["--l2", 0, 0, 0], "l2 lists 3 value.* has 2 weight matrices"),
    "--activation unknown": (["--activation", "elu"], "'elu' is not an activation"),
    "--activation too many": (["--activation", "relu", "tanh"], "lists 2 activation"),
    "--optimizer unknown": (["--optimizer", "sgdw"], "argument --optimizer: invalid choice"),
    "--beta1 1": (["--beta1", 1], r"argument --beta1: must be in \[0, 1\)"),
    "--eps 0": (["--eps", 0], "argument --eps: must be a finite number > 0"),
    "--patience 0": (["--patience", 0], "argument --patience: must be an integer >= 1"),
    "--resume and --overwrite": (["--resume", "--overwrite", "--out", "runs/never"],
                                 "give one of them"),
    "--seed -1": (["--seed", -1], "argument --seed: must be an integer >= 0"),
    "--backend cuda": (["--backend", "cuda"], "argument --backend: invalid choice: 'cuda'"),
    "--dtype float16": (["--dtype", "float16"], "argument --dtype: invalid choice"),
    "--checkpoint-every 0": (["--checkpoint-every", 0], "argument --checkpoint-every: must be"),
    "--resume without --out": (["--resume"], "--resume and --checkpoint-every need --out DIR"),
    "--checkpoint-every without --out": (["--checkpoint-every", 2], "need --out DIR"),
    "--out a file": (["--out", __file__], "--out .* exists and is not a folder"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses_bad_arguments(case, capsys, tripwire):
    args, match = CLI_CASES[case]
    status, err = cli(capsys, *args)
    assert status == 2
    assert re.search(match, err), err


@pytest.mark.parametrize("rows, match", [
    ("0.1 0.2 0\n0.3 nan 1\n", r"contains NaN or infinite values \(first at row 1, column 1\)"),
    ("0.1 0.2 1\n0.3 0.4 2\n0.5 0.6 1\n", r"labels must be 0, 1, \.\.\., m-1 .*missing: \[0\]"),
    ("0.1 0.2 0\n0.3 0.4 0\n0.5 0.6 0\n", r"labels must be 0, 1, \.\.\., m-1 with m >= 2"),
    ("0.1 0.2 0\n0.3 0.4 0.5\n", "must hold integer class labels"),
    ("0.1 0.2 0\n0.3 0.4\n", "expected rows of numbers"),
    ("0.1 0.2 0\n0.3 0.4 1e12\n", "labels out of range"),
], ids=["NaN", "labels from 1", "one class", "label 0.5", "short row", "label 1e12"])
def test_cli_refuses_bad_text_files(rows, match, tmp_path, capsys, tripwire):
    path = tmp_path / "points.txt"
    path.write_text(rows)
    status, err = cli(capsys, "--data", path)
    assert status == 2 and err.startswith("fastmlp: error:")
    assert re.search(match, err), err


# -- outputs that overflow are refused, never returned as NaN -----------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_overflowing_outputs_are_an_error_not_nan(backend, dtype):
    net = MLP((3, 4, 2), dtype=dtype)
    net.params["W1"][...] = 1.0
    net.params["W2"][...] = [[1.0] * 4, [-1.0] * 4]
    huge = np.full((2, 3), np.finfo(dtype).max / 2)  # finite, but W1 x overflows
    for call in (lambda: net.predict_proba(huge, backend=backend),
                 lambda: net.predict(huge, backend=backend),
                 lambda: evaluate(net, huge, [0, 1], backend=backend),
                 lambda: gradients(net, huge, [0, 1], backend=backend)):
        with pytest.raises(ValueError, match="the model.s (outputs|loss) overflowed"):
            call()


# -- random malformed input -----------------------------------------------------------------------
JUNK_SCALARS = [None, True, "x", "", b"x", -1, 0, 1, 3, -0.5, 0.5, 2.5, NAN, INF, -INF, 1e39,
                1j, [], [1], (1, 2), (1, 2, 3), {"a": 1}, np.float32(NAN), np.int64(-2),
                object(), "float16", "loop"]

#: array elements: ordinary values mixed with the special ones (huge finite values are out:
#: training on inputs of 1e300 diverges, a documented DivergenceError rather than bad input)
ELEMENTS = {
    "float64": st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.5, NAN, INF, -INF, 1e39]),
    "float32": st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.5, NAN, INF, -INF]),
    "int64": st.integers(-3, 3),
    "bool": st.booleans(),
    "complex128": st.sampled_from([0j, 1 + 1j, -1j]),
    "<U3": st.sampled_from(["", "a", "1", "nan"]),
}
junk_arrays = st.sampled_from(sorted(ELEMENTS)).flatmap(lambda dtype: hnp.arrays(
    dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    elements=ELEMENTS[dtype]))

junk = st.one_of(st.sampled_from(JUNK_SCALARS), junk_arrays,
                 st.lists(st.sampled_from([0.0, 1.0, NAN, "a", None]), max_size=4))

VALID = {
    "layers": (3, 4, 2), "l1": (0.0, 1e-3), "l2": (1e-3, 0.0), "dtype": "float32", "seed": 0,
    "X": X, "y": Y, "backend": "numpy", "epochs": 2, "batch_size": 4, "lr": 0.1,
    "fractions": (0.6, 0.2, 0.2),
}

CALLS = {
    "MLP": (("layers", "l1", "l2", "dtype", "seed"),
            lambda a: MLP(a["layers"], l1=a["l1"], l2=a["l2"], dtype=a["dtype"], seed=a["seed"])),
    "train": (("X", "y", "backend", "epochs", "batch_size", "lr", "seed"),
              lambda a: train(model(), (a["X"], a["y"]), backend=a["backend"], epochs=a["epochs"],
                              batch_size=a["batch_size"], lr=a["lr"], seed=a["seed"],
                              progress=False)),
    "gradients": (("X", "y", "backend"),
                  lambda a: gradients(model(), a["X"], a["y"], a["backend"])),
    "evaluate": (("X", "y", "backend"), lambda a: evaluate(model(), a["X"], a["y"], a["backend"])),
    "predict": (("X", "backend"), lambda a: model().predict(a["X"], backend=a["backend"])),
    "predict_proba": (("X", "backend"),
                      lambda a: model().predict_proba(a["X"], backend=a["backend"])),
    "split": (("X", "y", "fractions", "seed"),
              lambda a: datasets.split(a["X"], a["y"], fractions=a["fractions"], seed=a["seed"])),
}

if importlib.util.find_spec("sklearn") is not None:
    CALLS["MLPClassifier"] = (
        ("X", "y", "layers", "l1", "l2", "dtype", "seed", "batch_size", "lr", "epochs", "backend"),
        lambda a: fastmlp.MLPClassifier(
            hidden=a["layers"] if a["layers"] is not VALID["layers"] else 4, l1=a["l1"],
            l2=a["l2"], dtype=a["dtype"], random_state=a["seed"], batch_size=a["batch_size"],
            lr=a["lr"], epochs=a["epochs"], backend=a["backend"],
        ).fit(a["X"], a["y"]).predict_proba(a["X"]))


def all_finite(result):
    """Every number in a result (arrays, floats, dicts, tuples, History, Split) is finite."""
    if isinstance(result, fastmlp.History):
        return all(all_finite(list(row.values())) for row in result.rows)
    if isinstance(result, datasets.Split):
        return all(all_finite(part) for _, part in result.parts())
    if isinstance(result, MLP):
        return all_finite(result.params)
    if isinstance(result, dict):
        return all(all_finite(v) for v in result.values())
    if isinstance(result, (list, tuple)):
        return all(all_finite(v) for v in result)
    if result is None:
        return True
    if isinstance(result, float):
        return math.isfinite(result)
    return bool(np.isfinite(np.asarray(result)).all())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(sorted(CALLS)), data=st.data())
def test_random_malformed_input_gives_only_value_or_type_errors(call, data):
    names, run = CALLS[call]
    bad = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="replaced")
    args = dict(VALID)
    for name in bad:
        args[name] = data.draw(junk, label=name)
    try:
        result = run(args)
    except (ValueError, TypeError) as exc:
        assert str(exc), "an error without a message"
        return
    # the junk happened to be valid: the result must then be sound
    assert all_finite(result), result
