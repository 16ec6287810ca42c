"""A hyper-parameter search on digits: ``GridSearchCV`` over fastnn.MLPClassifier with
``n_jobs=2`` vs ``n_jobs=1``, and vs scikit-learn's own MLPClassifier search with ``n_jobs=2``.

The search: 8 configurations (``hidden_layer_sizes`` x ``alpha`` x ``learning_rate_init``,
adam, ``max_iter=100``, ``tol=0``: every fit runs its 100 epochs, so both libraries do the same
work) x 3 folds on digits scaled to [0, 1], float32, ``refit=False`` (the 24 fits and their
scoring only).  Parallel searches use joblib's default backend (loky: worker processes, each
limited by joblib to ``cores // n_jobs`` BLAS threads).  One fastnn fit in this process fills
the kernel cache first, so the workers load the kernels rather than compile them.

Sides, interleaved round by round (``_interleave.interleave``): ``fastnn n_jobs=1``,
``fastnn n_jobs=2``, ``sklearn n_jobs=2``.  Targets, as ratios of medians:
fastnn n_jobs=1 / fastnn n_jobs=2 >= 1.8; sklearn n_jobs=2 / fastnn n_jobs=2 >= 8.
The first parallel search, which starts the worker processes (imports, kernel loading), runs
before the timed rounds; its time is reported apart.

Checks (also in the plain ``pytest`` run, on 2 configurations x 2 folds and 5 epochs): the
parallel search's scores equal the serial one's, and fastnn's scores match scikit-learn's.

Timed: ``pytest benchmarks/bench_search.py --benchmark-only -s`` (a minute or so, most of it
scikit-learn), or ``python benchmarks/bench_search.py [--rounds 5]``.
"""
from __future__ import annotations

import functools
import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from fastnn.sklearn import MLPClassifier

from _interleave import interleave, report  # benchmarks/ is on sys.path

pytestmark = pytest.mark.slow

GRID = {"hidden_layer_sizes": [(50,), (100,)], "alpha": [1e-4, 1e-2],
        "learning_rate_init": [1e-3, 2e-3]}
PARAMS = dict(solver="adam", max_iter=100, tol=0.0, random_state=0)
FOLDS = 3
ROUNDS = 5
#: plain pytest: a tiny search through the same code
QUICK_GRID = {"hidden_layer_sizes": [(50,)], "alpha": [1e-4, 1e-2]}
QUICK = dict(max_iter=5, folds=2)


@functools.lru_cache(maxsize=None)
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def search(cls, grid, params, folds, n_jobs):
    """(seconds, mean test score per configuration) of one grid search."""
    X, y = digits()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    gs = GridSearchCV(cls(**params), grid, cv=cv, n_jobs=n_jobs, refit=False)
    with warnings.catch_warnings():  # propagated to the workers by scikit-learn's joblib use
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: expected
        t0 = time.perf_counter()
        gs.fit(X, y)
        seconds = time.perf_counter() - t0
    return seconds, np.asarray(gs.cv_results_["mean_test_score"])


def search_row(quick, rounds=ROUNDS, extra_info=None):
    grid = QUICK_GRID if quick else GRID
    params = PARAMS | ({"max_iter": QUICK["max_iter"]} if quick else {})
    folds = QUICK["folds"] if quick else FOLDS
    X, y = digits()
    with warnings.catch_warnings():  # fill the kernel cache: workers load, not compile
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**params).fit(X, y).score(X, y)
    scores = {}

    def side(cls, name, n_jobs):
        def run():
            seconds, scores[name] = search(cls, grid, params, folds, n_jobs)
            return seconds
        return run, 1

    sides = {"fastnn n_jobs=1": side(MLPClassifier, "fastnn 1", 1),
             "fastnn n_jobs=2": side(MLPClassifier, "fastnn 2", 2),
             "sklearn n_jobs=2": side(SkMLPClassifier, "sklearn 2", 2)}
    first = sides["fastnn n_jobs=2"][0]()  # starts the loky workers
    times = interleave(sides, 1 if quick else rounds, warmup=0)
    # a parallel search gives the serial search's results, and fastnn scikit-learn's
    np.testing.assert_array_equal(scores["fastnn 2"], scores["fastnn 1"])
    np.testing.assert_allclose(scores["fastnn 2"], scores["sklearn 2"], atol=0.02)
    assert scores["fastnn 1"].min() > (0.3 if quick else 0.9)  # chance is 0.1
    n_fits = folds * int(np.prod([len(v) for v in grid.values()]))
    if extra_info is not None:
        extra_info.update(first_parallel_search_s=first, fits=n_fits)
    if quick:
        return None
    return report(
        f"GridSearchCV digits, {n_fits // folds} configs x {folds} folds, max_iter="
        f"{params['max_iter']}, float32, seconds per search", times,
        [("fastnn n_jobs=1 / n_jobs=2", "fastnn n_jobs=1", "fastnn n_jobs=2", 1.8, ">="),
         ("sklearn n_jobs=2 / fastnn n_jobs=2", "sklearn n_jobs=2", "fastnn n_jobs=2", 8, ">=")],
        unit=1.0, unit_name="s", extra_info=extra_info,
        note=f"first fastnn n_jobs=2 search (starts the workers): {first:.2f} s")


def test_grid_search(benchmark):
    benchmark.group = "grid search digits"
    benchmark.pedantic(search_row, args=(benchmark.disabled, ROUNDS, benchmark.extra_info),
                       rounds=1, iterations=1)


def main():
    import argparse

    from _interleave import load_average, pin_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="the tiny search (a check)")
    args = parser.parse_args()
    threads = pin_threads()
    print(f"{threads} thread(s) in this process, load average {load_average():.2f}")
    search_row(args.quick, args.rounds)
    if args.quick:
        print("checks passed (untimed)")


if __name__ == "__main__":
    main()
