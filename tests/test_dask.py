"""Scale-out: fastnn estimators inside scikit-learn searches under joblib's Dask backend.

A LocalCluster on loopback (2 worker processes) runs a GridSearchCV; the results equal the same
search run serially, and the workers load the compiled kernels from numba's cache (no kernel is
compiled in a worker).  Skipped when dask.distributed is not installed (the ``dask`` extra).
"""
import logging

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
joblib = pytest.importorskip("joblib")
pytest.importorskip("sklearn")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastnn  # noqa: E402

PARAMS = {"mlpclassifier__alpha": [1e-4, 1e-1], "mlpclassifier__hidden_layer_sizes": [(8,), (16,)]}


def _kernel_cache_stats():
    """In a worker: (cache hits, cache misses) summed over fastnn's kernels, the cache dir and
    the kernels that were compiled (cache misses) with their argument types."""
    from fastnn.warmup import _cache_counts, _dispatchers, cache_dir

    found = _dispatchers()
    hits, misses = _cache_counts(found)
    compiled = [f"{d.py_func.__qualname__}{sig}" for d in found
                for sig, n in d.stats.cache_misses.items() if n]
    return hits, misses, cache_dir(), compiled


def _first_fit_seconds():
    """In a fresh worker: seconds to import the estimators, then of the first fit (its kernels
    come from the cache); also silences the workers' ConvergenceWarnings."""
    import time
    import warnings

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    from fastnn import MLPClassifier

    t1 = time.perf_counter()
    X = np.random.default_rng(0).normal(size=(40, 4))
    # three classes, as iris: a softmax output, whose kernels the serial search compiled (a
    # call compiles only the loss it trains)
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, (X[:, :2] > 0).sum(axis=1))
    return round(t1 - t0, 3), round(time.perf_counter() - t1, 3)


def _search(X, y, cls=GridSearchCV, **kw):
    pipe = make_pipeline(StandardScaler(), fastnn.MLPClassifier(max_iter=30, random_state=0))
    if cls is RandomizedSearchCV:
        kw = dict(n_iter=3, random_state=0, **kw)
    return cls(pipe, PARAMS, cv=3, **kw).fit(X, y)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_search_under_dask_equals_serial():
    X, y = load_iris(return_X_y=True)
    # serial first: it also leaves every kernel these fits need in the cache
    serial = {cls: _search(X, y, cls) for cls in (GridSearchCV, RandomizedSearchCV)}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        first = client.run(_first_fit_seconds)
        with joblib.parallel_backend("dask"):
            remote = {cls: _search(X, y, cls, n_jobs=-1) for cls in serial}
        stats = client.run(_kernel_cache_stats)

    for cls, ser in serial.items():
        dsk = remote[cls]
        assert dsk.best_params_ == ser.best_params_
        for key in ("mean_test_score", "std_test_score", "rank_test_score"):
            np.testing.assert_array_equal(dsk.cv_results_[key], ser.cv_results_[key])
        assert [p for p in dsk.cv_results_["params"]] == [p for p in ser.cv_results_["params"]]
        np.testing.assert_array_equal(dsk.predict_proba(X), ser.predict_proba(X))
    assert len(stats) == 2
    for worker, (hits, misses, _, compiled) in stats.items():
        assert hits > 0, worker
        assert misses == 0, f"{worker} compiled {compiled} instead of loading them"
    print(f"\nworkers' (import, first fit) seconds: {sorted(first.values())}; "
          f"cache (hits, misses, dir): {list(stats.values())}")
