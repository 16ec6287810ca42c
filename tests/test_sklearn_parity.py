"""fastnn's estimators against scikit-learn's on the same data and parameters.

1. Step for step (float64): fastnn draws the same initial weights, shuffles and validation
   splits from ``random_state`` as scikit-learn and applies the same updates, so the whole
   ``loss_curve_``, the stopping epoch and the final weights equal scikit-learn's to rounding.
2. Held-out quality (float32, where the arithmetic differs): accuracy / R^2 on a test split
   within 0.02 of scikit-learn's, or better, for every solver on iris, digits, a
   ``make_classification`` set, a multilabel set and a ``make_regression`` set.
"""
import warnings

import numpy as np
import pytest
from sklearn.datasets import (
    load_digits,
    load_iris,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.preprocessing import StandardScaler

from fastnn.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _classification():
    return make_classification(n_samples=1000, n_features=20, n_informative=10, n_classes=3, random_state=0)


def _multilabel():
    return make_multilabel_classification(n_samples=600, n_features=20, n_classes=5, random_state=0)


def _regression():
    X, y = make_regression(n_samples=600, n_features=20, n_informative=10, noise=10.0, random_state=0)
    return X, (y - y.mean()) / y.std()


def _pair(kind, **params):
    ours, theirs = (MLPClassifier, SkMLPClassifier) if kind == "clf" else (MLPRegressor, SkMLPRegressor)
    return ours(**params), theirs(**params)


def _fit_both(kind, X, y, fit_kw=None, **params):
    a, b = _pair(kind, **params)
    with warnings.catch_warnings(record=True) as wa:
        warnings.simplefilter("always", ConvergenceWarning)
        a.fit(X, y, **(fit_kw or {}))
    with warnings.catch_warnings(record=True) as wb:
        warnings.simplefilter("always", ConvergenceWarning)
        b.fit(X, y, **(fit_kw or {}))
    conv = lambda ws: [str(w.message) for w in ws if issubclass(w.category, ConvergenceWarning)]
    assert conv(wa) == conv(wb)  # the same ConvergenceWarning, or none, as scikit-learn
    return a, b


def _assert_same_fit(a, b, rtol=1e-7):
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    if hasattr(b, "loss_curve_"):
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(a.loss_, b.loss_, rtol=rtol)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- step for step
STOCHASTIC_CASES = [
    ("adam", dict(solver="adam")),
    ("sgd-nesterov", dict(solver="sgd", learning_rate_init=0.05)),
    ("sgd-momentum", dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False)),
    ("sgd-plain-invscaling",
     dict(solver="sgd", momentum=0.0, learning_rate="invscaling", learning_rate_init=0.5)),
    ("sgd-adaptive",
     dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05, tol=1e-2, n_iter_no_change=2)),
    ("adam-tol-stops", dict(solver="adam", tol=1e-2, n_iter_no_change=3, learning_rate_init=0.01)),
    ("adam-early-stopping", dict(solver="adam", early_stopping=True, learning_rate_init=0.01)),
    ("adam-batch7-noshuffle", dict(solver="adam", batch_size=7, shuffle=False)),
    ("tanh-logistic-2layers", dict(solver="adam", hidden_layer_sizes=(12, 8), activation="tanh")),
]


@pytest.mark.parametrize("name, params", STOCHASTIC_CASES, ids=[c[0] for c in STOCHASTIC_CASES])
def test_classifier_matches_scikit_learn_step_for_step(name, params):
    X, y = _iris()
    kw = dict(hidden_layer_sizes=(10,), max_iter=60, random_state=0) | params
    a, b = _fit_both("clf", X, y, **kw)
    _assert_same_fit(a, b)
    if kw.get("early_stopping"):
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
        assert a.best_validation_score_ == b.best_validation_score_


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize(
    "kind, data",
    [("clf", _iris), ("binary", None), ("multilabel", _multilabel), ("reg", _regression),
     ("multioutput", None), ("poisson", None)],
)
def test_targets_and_losses_match_scikit_learn(kind, data, solver):
    rng = np.random.RandomState(0)
    sw = None
    if kind == "binary":
        X, y = _iris()
        y = np.where(y == 2, "virginica", "other")
        sw = rng.uniform(0.5, 2.0, size=len(y))  # sample weights on the way
    elif kind == "multioutput":
        X, y = _regression()
        y = np.c_[y, 0.5 * y + rng.normal(size=len(y)), -y]
    elif kind == "poisson":
        X = rng.uniform(size=(300, 4))
        y = rng.poisson(np.exp(X @ [0.5, -0.3, 0.2, 0.1] + 0.5)).astype(float)
    else:
        X, y = data()
    est_kind = "clf" if kind in ("clf", "binary", "multilabel") else "reg"
    kw = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=1, solver=solver)
    if kind == "poisson":
        kw["loss"] = "poisson"
    if solver == "sgd":
        kw["learning_rate_init"] = 0.01
    a, b = _fit_both(est_kind, X, y, fit_kw={"sample_weight": sw}, **kw)
    _assert_same_fit(a, b, rtol=1e-6 if solver == "lbfgs" else 1e-7)
    assert a.out_activation_ == b.out_activation_ and a.n_outputs_ == b.n_outputs_
    out = (lambda est: est.predict(X)) if est_kind == "reg" else (lambda est: est.predict_proba(X))
    np.testing.assert_allclose(out(a), out(b), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", ["reg", "binary-weighted", "multilabel"])
def test_early_stopping_scores_match_scikit_learn(kind):
    rng = np.random.RandomState(0)
    X, y = _regression() if kind == "reg" else _multilabel() if kind == "multilabel" else _iris()
    sw = None
    if kind == "binary-weighted":
        y, sw = (y == 1).astype(int), rng.uniform(0.5, 2.0, size=len(y))
    kw = dict(hidden_layer_sizes=(8,), max_iter=40, early_stopping=True, random_state=0,
              learning_rate_init=0.01)
    a, b = _fit_both("reg" if kind == "reg" else "clf", X, y, fit_kw={"sample_weight": sw}, **kw)
    _assert_same_fit(a, b)
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-12)
    assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-12)


def test_partial_fit_and_warm_start_match_scikit_learn():
    X, y = _iris()
    a, b = _pair("clf", hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.05, random_state=0)
    for _ in range(5):
        a.partial_fit(X, y, classes=[0, 1, 2])
        b.partial_fit(X, y, classes=[0, 1, 2])
    _assert_same_fit(a, b)
    a, b = _pair("reg", hidden_layer_sizes=(10,), max_iter=5, warm_start=True, random_state=0,
                 learning_rate="invscaling", solver="sgd")
    for est in (a, b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y.astype(float)).fit(X, y.astype(float))
    _assert_same_fit(a, b)
    assert len(a.loss_curve_) == 10 and a._optimizer.learning_rate == b._optimizer.learning_rate


# --------------------------------------------------------------------------- held-out quality
DATASETS = {
    "iris": _iris,
    "digits": _digits,
    "classification": _classification,
    "multilabel": _multilabel,
    "regression": _regression,
}
SOLVER_PARAMS = {
    "sgd": dict(solver="sgd", learning_rate_init=0.05),
    "adam": dict(solver="adam", learning_rate_init=0.005),
    "lbfgs": dict(solver="lbfgs"),
}


@pytest.mark.slow
@pytest.mark.parametrize("solver", list(SOLVER_PARAMS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_held_out_score_float32_within_002_of_scikit_learn(dataset, solver):
    X, y = DATASETS[dataset]()
    X = X.astype(np.float32)
    stratify = y if dataset in ("iris", "digits", "classification") else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=stratify)
    kind = "reg" if dataset == "regression" else "clf"
    kw = dict(hidden_layer_sizes=(32,), max_iter=80, random_state=0) | SOLVER_PARAMS[solver]
    a, b = _pair(kind, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X_tr, y_tr)
        b.fit(X_tr, y_tr)
    assert a.coefs_[0].dtype == np.float32
    ours, theirs = a.score(X_te, y_te), b.score(X_te, y_te)
    assert ours >= theirs - 0.02, (ours, theirs)
    assert ours > (0.3 if dataset == "multilabel" else 0.7)  # multilabel: exact-match accuracy


# --------------------------------------------------------------------------- validation loss
@pytest.mark.parametrize("case", ["multiclass", "multilabel", "regression", "regression2", "poisson"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_validation_loss_from_one_forward_pass_equals_loss_and_grad(case, dtype, weighted):
    # _validation_loss (logits + fused loss + L2) == the objective of _loss_and_grad (full pass)
    rng = np.random.default_rng(0)
    if case == "multilabel":
        X, y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=0)
    else:
        X, y = _iris()
    if case.startswith("regression") or case == "poisson":
        y = X[:, :2] + 3.0 if case == "regression2" else np.abs(X[:, 0]) + 0.1
        est = MLPRegressor(hidden_layer_sizes=(7,), max_iter=5, alpha=0.3, random_state=0,
                           loss="poisson" if case == "poisson" else "squared_error")
    else:
        est = MLPClassifier(hidden_layer_sizes=(7,), max_iter=5, alpha=0.3, random_state=0)
    X = X.astype(dtype)
    sw = rng.uniform(0.2, 2.0, size=X.shape[0]).astype(dtype) if weighted else None
    est.fit(X, y, sample_weight=sw)
    y_enc = est._label_binarizer.transform(y) if hasattr(est, "_label_binarizer") else y
    targets = est._engine_targets(np.asarray(y_enc, dtype=float).reshape(X.shape[0], -1))
    new = est._validation_loss(X, targets, sw)
    old, _ = est._loss_and_grad(X, targets, sw, encoded=True)
    assert np.isfinite(new)
    assert new == pytest.approx(float(old), rel=1e-5 if dtype == np.float32 else 1e-10)


VERBOSE_CASES = [
    ("sgd-adaptive", dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05,
                          tol=1e-2, n_iter_no_change=2)),
    ("sgd-invscaling", dict(solver="sgd", momentum=0.0, learning_rate="invscaling",
                            learning_rate_init=0.5, tol=2e-2, n_iter_no_change=3)),
    ("adam-early-stopping", dict(solver="adam", early_stopping=True, learning_rate_init=0.01,
                                 n_iter_no_change=3)),
]


@pytest.mark.parametrize("name, params", VERBOSE_CASES, ids=[c[0] for c in VERBOSE_CASES])
def test_verbose_fit_prints_scikit_learns_trace(name, params, capsys):
    """With ``verbose=True`` the epochs run one per call and the end-of-epoch rule runs in
    Python (the engine's ``epoch_end``): every line scikit-learn prints — the losses, the
    validation scores, the learning-rate changes and the stopping message — is the same, and
    so is the fit."""
    X, y = _iris()
    kw = dict(hidden_layer_sizes=(10,), max_iter=80, random_state=0, verbose=True) | params
    ours, theirs = _pair("clf", **kw)
    ours.fit(X, y)
    mine = capsys.readouterr().out.splitlines()
    theirs.fit(X, y)
    want = capsys.readouterr().out.splitlines()
    assert any("consecutive epochs" in line for line in want)  # the rule fired
    assert len(mine) == len(want)
    for a, b in zip(mine, want):
        if a.startswith("Iteration") or a.startswith("Validation score:"):
            # the printed numbers agree to rounding (the step-for-step tolerance)
            label_a, value_a = a.rsplit(" ", 1)
            label_b, value_b = b.rsplit(" ", 1)
            assert label_a == label_b
            np.testing.assert_allclose(float(value_a), float(value_b), rtol=1e-6, atol=1e-9)
        else:
            assert a == b
    _assert_same_fit(ours, theirs)
