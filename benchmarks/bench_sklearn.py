"""Whole ``fit`` of fastnn.MLPClassifier vs scikit-learn's MLPClassifier, identical parameters,
float32 data, 2 threads on both sides (benchmarks/conftest.py pins numba and every BLAS).

Cases and targets (ratios of medians, the same run):
  * digits, ``hidden_layer_sizes=(100,)``, adam, ``max_iter=200``, ``tol=0`` (a steady fit: the
    kernels already loaded): fastnn >= 5x faster;
  * 20,000 x 784 ``make_classification``, ``(256,)``, adam, ``batch_size=128``, ``max_iter=5``,
    ``tol=0``: fastnn >= 2x faster;
  * lbfgs on digits (``(100,)``, ``max_iter=200``): the ratio is reported.
Both sides start from the same weights and see the same batches (same ``random_state``), so the
work compared is identical: each run asserts that both loss curves agree.  Held-out accuracy
(digits: stratified 80/20 split, the timed fit uses the 1,437 training rows; the 20,000 x 784
set: 5,000 more rows held out) is stored in ``extra_info`` beside every time.  Measured figures
and their commands: docs/sklearn.md.

``pytest --benchmark-only benchmarks/bench_sklearn.py`` times them (3 to 15 rounds each; slow:
a few minutes, most of it scikit-learn).  A plain ``pytest`` runs each case once, untimed,
with few epochs and rows.  ``python benchmarks/bench_sklearn.py [rounds]`` times the digits adam
case with the two sides interleaved round by round (robust on a shared machine).
"""
import functools
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from fastnn.sklearn import MLPClassifier

pytestmark = pytest.mark.slow

IMPLS = {"fastnn": MLPClassifier, "sklearn": SkMLPClassifier}
# rounds per case: the machine is shared and single runs swing by several x; the medians of a
# few rounds, fastnn and scikit-learn in the same session, are what to compare
ROUNDS = {"digits-adam": 15, "20000x784-adam": 3, "digits-lbfgs": 7}


@functools.lru_cache(maxsize=None)
def _digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16.0).astype(np.float32), y, test_size=0.2, stratify=y, random_state=0)


@functools.lru_cache(maxsize=None)
def _wide():
    X, y = make_classification(n_samples=25_000, n_features=784, n_informative=100, n_classes=10,
                               random_state=0)
    return train_test_split(X.astype(np.float32), y, test_size=5_000, stratify=y, random_state=0)


# name -> (data, params, shrunken params for the untimed run, rows used untimed)
CASES = {
    "digits-adam": (_digits, dict(hidden_layer_sizes=(100,), solver="adam", max_iter=200, tol=0.0),
                    dict(max_iter=3), None),
    "20000x784-adam": (_wide, dict(hidden_layer_sizes=(256,), solver="adam", batch_size=128, max_iter=5,
                                   tol=0.0), dict(max_iter=1), 2_000),
    "digits-lbfgs": (_digits, dict(hidden_layer_sizes=(100,), solver="lbfgs", max_iter=200),
                     dict(max_iter=5), None),
}


def _fit(cls, params, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 / max_iter: expected
        return cls(random_state=0, **params).fit(X, y)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_fit(benchmark, case, impl):
    data, params, small, rows = CASES[case]
    X_tr, X_te, y_tr, y_te = data()
    if benchmark.disabled:  # plain pytest: the same code path, cheaply
        params = params | small
        if rows:
            X_tr, y_tr = X_tr[:rows], y_tr[:rows]
    benchmark.group = f"sklearn fit {case} float32"
    if not benchmark.disabled:  # a steady fit: load the kernels the timed fits run first
        _fit(IMPLS[impl], params | {"max_iter": 2}, X_tr, y_tr)
    est = benchmark.pedantic(_fit, args=(IMPLS[impl], params, X_tr, y_tr), rounds=ROUNDS[case], iterations=1)
    accuracy = float(est.score(X_te, y_te))
    benchmark.extra_info.update(
        accuracy=accuracy, n_train=int(X_tr.shape[0]), n_test=int(X_te.shape[0]),
        n_iter=int(est.n_iter_), loss=float(est.loss_), dtype="float32", params=repr(params),
    )
    if impl == "fastnn":  # (scikit-learn's lbfgs returns float64 coefs_ for float32 data)
        assert est.coefs_[0].dtype == np.float32
    # the same computation on both sides: fastnn's fit reproduces scikit-learn's
    ref = _reference_fit(case, impl, params, X_tr, y_tr, est)
    assert est.n_iter_ == ref.n_iter_
    if params["solver"] != "lbfgs":
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=2e-3)
    else:  # float32 L-BFGS runs amplify rounding differences; the optimum is what must agree
        assert abs(accuracy - ref.score(X_te, y_te)) <= 0.02
    # well above chance (0.1) even for the shrunken untimed runs
    assert accuracy > (0.15 if benchmark.disabled else 0.9 if "digits" in case else 0.5)


_fits = {}


def _reference_fit(case, impl, params, X, y, est):
    """The other implementation's fit of the same case (cached: each side runs it once)."""
    key = (case, repr(params), X.shape[0])
    _fits.setdefault(key, {})[impl] = est
    other = "sklearn" if impl == "fastnn" else "fastnn"
    if other not in _fits[key]:
        _fits[key][other] = _fit(IMPLS[other], params, X, y)
    return _fits[key][other]


def _interleaved(rounds):
    """The digits adam case, fastnn and scikit-learn fits alternating, as a script."""
    from _interleave import interleave, load_average, pin_threads, report, timed

    threads = pin_threads()
    data, params, _, _ = CASES["digits-adam"]
    X_tr, _, y_tr, _ = data()
    print(f"{threads} thread(s), float32, load average {load_average():.2f}")
    sides = {name: (functools.partial(timed, _fit, cls, params, X_tr, y_tr), 1)
             for name, cls in IMPLS.items()}
    times = interleave(sides, rounds, warmup=1)
    report(f"digits MLPClassifier{params}, whole fit (1,437 rows)", times,
           [("sklearn / fastnn", "sklearn", "fastnn", 5, ">=")], unit=1e-3, unit_name="ms")


if __name__ == "__main__":
    import sys

    _interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
