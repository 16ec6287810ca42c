"""fastnn.MLPClassifier / MLPRegressor on scipy.sparse input: the same fit as on the densified
matrix (every solver, L2, sample weights, early stopping, partial_fit), the same as
scikit-learn's own sparse fit, predictions on sparse input, errors, and accuracy on real and
text-like data."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from test_sparse import NON_FINITE, sparse_problem  # (tests/ is on sys.path)

from fastnn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _target(X, kind, y):
    if kind == "binary":
        return (y == 1).astype(int)
    if kind == "reg":
        return np.asarray(X @ np.linspace(-1, 1, X.shape[1])).ravel()
    return y


def _fit_pair(kind, X, y, fit_kw=None, **params):
    est = MLPRegressor if kind == "reg" else MLPClassifier
    params = dict(hidden_layer_sizes=(16,), max_iter=15, random_state=0) | params
    t = _target(X, kind, y)
    a = est(**params).fit(X, t, **(fit_kw or {}))
    b = est(**params).fit(X.toarray(), t, **(fit_kw or {}))
    return a, b


def assert_same_estimator(a, b, rtol=1e-10, atol=1e-12):
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    if getattr(b, "loss_curve_", None) is not None:
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    assert a.loss_ == pytest.approx(b.loss_, rel=rtol)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert ca.dtype == cb.dtype
        np.testing.assert_allclose(ca, cb, rtol=rtol, atol=atol)


CASES = {
    "clf-sgd-nesterov": ("clf", dict(solver="sgd", learning_rate_init=0.1)),
    "clf-sgd-plain-alpha0": ("clf", dict(solver="sgd", momentum=0.0, alpha=0.0,
                                         learning_rate_init=0.2)),
    "clf-sgd-momentum-invscaling": ("clf", dict(solver="sgd", nesterovs_momentum=False,
                                                learning_rate="invscaling",
                                                learning_rate_init=0.5, alpha=1e-2)),
    "clf-adam-alpha": ("clf", dict(solver="adam", alpha=1e-2, learning_rate_init=0.01)),
    "clf-lbfgs": ("clf", dict(solver="lbfgs", alpha=1e-3)),
    "binary-adam": ("binary", dict(solver="adam", learning_rate_init=0.01)),
    "binary-lbfgs": ("binary", dict(solver="lbfgs")),
    "reg-sgd": ("reg", dict(solver="sgd", learning_rate_init=0.01)),
    "reg-adam": ("reg", dict(solver="adam", learning_rate_init=0.01, alpha=1e-2)),
    "reg-lbfgs": ("reg", dict(solver="lbfgs")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_estimator_on_csr_equals_estimator_on_the_dense_matrix(name):
    kind, params = CASES[name]
    X, y = sparse_problem()
    a, b = _fit_pair(kind, X, y, **params)
    assert_same_estimator(a, b)
    out = "predict" if kind == "reg" else "predict_proba"
    np.testing.assert_allclose(getattr(a, out)(X), getattr(b, out)(X.toarray()), rtol=1e-10,
                               atol=1e-13)


@pytest.mark.parametrize("kind,solver", [("clf", "adam"), ("clf", "lbfgs"), ("reg", "sgd")])
def test_sample_weights_on_csr(kind, solver):
    X, y = sparse_problem()
    sw = np.random.default_rng(3).uniform(0.1, 3.0, X.shape[0])
    a, b = _fit_pair(kind, X, y, {"sample_weight": sw}, solver=solver, alpha=1e-3,
                     learning_rate_init=0.01)
    assert_same_estimator(a, b)
    unweighted, _ = _fit_pair(kind, X, y, solver=solver, alpha=1e-3, learning_rate_init=0.01)
    assert abs(unweighted.loss_ - a.loss_) > 1e-3 * abs(a.loss_)


@pytest.mark.parametrize("kind,solver", [("clf", "adam"), ("clf", "sgd"), ("reg", "adam")])
def test_early_stopping_on_csr(kind, solver):
    """The validation split of a sparse X holds the same rows as the dense one's: the same
    validation scores, stopping epoch and best weights."""
    X, y = sparse_problem(n=300)
    a, b = _fit_pair(kind, X, y, solver=solver, early_stopping=True, max_iter=60,
                     n_iter_no_change=4, learning_rate_init=0.02, validation_fraction=0.2)
    assert_same_estimator(a, b)
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-10)
    assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-10)
    assert a.n_iter_ < 60  # early stopping did stop


def test_float32_csr():
    X, y = sparse_problem(dtype=np.float32)
    a, b = _fit_pair("clf", X, y, solver="adam", learning_rate_init=0.01)
    assert a.coefs_[0].dtype == np.float32
    assert_same_estimator(a, b, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X.toarray()), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_partial_fit_on_csr(kind):
    X, y = sparse_problem()
    t = _target(X, kind, y)
    est = MLPRegressor if kind == "reg" else MLPClassifier
    a, b = (est(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.05,
                random_state=0) for _ in range(2))
    kw = {} if kind == "reg" else {"classes": [0, 1, 2]}
    for i in range(4):
        rows = slice(30 * i, 30 * (i + 1))  # batches of rows, as a stream would give them
        a.partial_fit(X[rows], t[rows], **kw)
        b.partial_fit(X[rows].toarray(), t[rows], **kw)
    assert_same_estimator(a, b)


@pytest.mark.parametrize("form", ["csr", "csc", "coo"])
def test_predictions_and_score_on_sparse_input(form):
    X, y = sparse_problem()
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0,
                        learning_rate_init=0.01).fit(X, y)
    Xf, D = X.asformat(form), X.toarray()
    np.testing.assert_allclose(clf.predict_proba(Xf), clf.predict_proba(D), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(clf.predict_log_proba(Xf), clf.predict_log_proba(D), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_array_equal(clf.predict(Xf), clf.predict(D))
    assert clf.score(Xf, y) == clf.score(D, y) > 0.9
    t = _target(X, "reg", y)
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(Xf, t)
    np.testing.assert_allclose(reg.predict(Xf), reg.predict(D), rtol=1e-10, atol=1e-12)
    assert reg.score(Xf, t) == pytest.approx(reg.score(D, t), rel=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sparse_fit_matches_scikit_learns_sparse_fit(solver):
    """scikit-learn keeps X sparse too (safe_sparse_dot): the same loss curve and weights."""
    X, y = sparse_problem()
    params = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0, solver=solver,
                  alpha=1e-3, learning_rate_init=0.05)
    a = MLPClassifier(**params).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = SkMLPClassifier(**params).fit(X, y)
    assert_same_estimator(a, b, rtol=1e-6 if solver == "lbfgs" else 1e-7, atol=1e-9)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_sparse_data_raises_naming_x(value):
    X, y = sparse_problem()
    bad = X.copy()
    bad.data[11] = value
    for est in (MLPClassifier(max_iter=2, random_state=0),
                MLPClassifier(solver="lbfgs", max_iter=2, random_state=0),
                MLPRegressor(max_iter=2, random_state=0)):
        with pytest.raises(ValueError, match=NON_FINITE):
            est.fit(bad, y)
        est.fit(X, y)
        for method in ("predict", "score"):
            with pytest.raises(ValueError, match=NON_FINITE):
                getattr(est, method)(bad, y) if method == "score" else est.predict(bad)
    clf = MLPClassifier(max_iter=2, random_state=0)
    with pytest.raises(ValueError, match=NON_FINITE):
        clf.partial_fit(bad, y, classes=[0, 1, 2])
    clf.fit(X, y)
    with pytest.raises(ValueError, match=NON_FINITE):
        clf.predict_proba(bad.tocsc())


def test_wrong_number_of_features_on_sparse_input():
    X, y = sparse_problem()
    clf = MLPClassifier(max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :-1])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :-1], y)


# --------------------------------------------------------------------------- accuracy
def test_digits_as_csr():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = sp.csr_matrix(X / 16.0)  # about half the pixels are zero
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0).fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) > 0.96  # measured 0.976


def text_like(n_docs=3000, vocab=4000, n_classes=10, topic_words=30, topic_share=0.08, seed=0):
    """Bag-of-words documents with a Zipf background vocabulary: each token is a word of the
    document's class topic with probability ``topic_share``, else a background word with
    probability ~ 1 / rank**1.1.  Returned as TF-IDF (sublinear tf, l2 rows), CSR float64."""
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, vocab + 1) ** 1.1
    zipf /= zipf.sum()
    topics = [rng.choice(np.arange(200, vocab), topic_words, replace=False)
              for _ in range(n_classes)]
    y = rng.integers(n_classes, size=n_docs)
    lengths = rng.integers(30, 90, size=n_docs)
    rows = np.repeat(np.arange(n_docs), lengths)
    words = rng.choice(vocab, size=rows.size, p=zipf)
    topical = rng.random(rows.size) < topic_share
    pick = rng.integers(topic_words, size=rows.size)
    words[topical] = np.array(topics)[y[rows[topical]], pick[topical]]
    counts = sp.coo_matrix((np.ones(rows.size), (rows, words)), shape=(n_docs, vocab)).tocsr()
    X = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    return X.tocsr(), y


def test_text_like_tfidf_problem():
    X, y = text_like()
    assert sp.isspmatrix_csr(X) and X.nnz / X.shape[0] < 80
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=15, random_state=0)
    clf.fit(X[:2000], y[:2000])
    assert clf.score(X[2000:], y[2000:]) > 0.9  # measured 0.943 (scikit-learn: the same)
