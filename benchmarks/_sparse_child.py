"""One fit of ``bench_sparse.py`` in its own process: ``python _sparse_child.py SPEC_JSON``.

Kept apart from the benchmark module so that the child imports only what the fit needs (its
resident memory before ``fit`` is part of what is measured).  Loads the corpus saved by
``bench_sparse.save_corpus``, fits scikit-learn's or fastnn's MLPClassifier with the thread
limits of the spec, and prints one JSON line: the fit's seconds, the process's peak memory
(``ru_maxrss``) and that peak minus the resident memory just before ``fit``, the held-out
accuracy, the epochs run, the dtype of the weights and the seconds fastnn spent compiling
kernels inside ``fit`` (numba's ``numba:compile`` events; 0 when they load from the cache).
"""
import contextlib
import gc
import json
import os
import resource
import sys
import time
import warnings

import numpy as np


def load_corpus(path):
    """``(X, y, X_test, y_test)``, CSR float64 matrices built from the saved arrays."""
    import scipy.sparse as sp

    with np.load(path, allow_pickle=False) as f:
        mats = [sp.csr_matrix((f[f"{s}_data"], f[f"{s}_indices"], f[f"{s}_indptr"]),
                              shape=tuple(f[f"{s}_shape"])) for s in ("train", "test")]
        return mats[0], f["y_train"], mats[1], f["y_test"]


def rss_bytes():
    """Resident memory now (Linux: /proc/self/statm), or None."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_bytes():
    """The process's peak resident memory so far (``ru_maxrss``: KiB, bytes on macOS)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
        1 if sys.platform == "darwin" else 1024)


def fit(spec):
    from threadpoolctl import threadpool_limits

    threads = spec["threads"]
    compiles = contextlib.nullcontext(None)
    if spec["impl"] == "fastnn":
        import fastnn
        from fastnn._jit import on_first_compile
        from fastnn.sklearn import MLPClassifier

        fastnn.set_num_threads(threads)
        compiled = []  # seconds of each compilation inside fit (none when the cache is warm)
        compiles = on_first_compile(lambda: None, compiled.append)
    else:
        from sklearn.neural_network import MLPClassifier
    X, y, X_test, y_test = load_corpus(spec["data"])
    if spec.get("rows"):
        X, y = X[:spec["rows"]], y[:spec["rows"]]
    est = MLPClassifier(hidden_layer_sizes=tuple(spec["hidden"]), solver="adam",
                        max_iter=spec["epochs"], tol=0.0, n_iter_no_change=spec["epochs"] + 1,
                        random_state=0)
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached, as intended
        gc.collect()
        before = rss_bytes() or peak_bytes()
        t0 = time.perf_counter()
        with compiles:
            est.fit(X, y)
        seconds = time.perf_counter() - t0
        peak = peak_bytes()
        accuracy = float(est.score(X_test, y_test))
    return dict(seconds=seconds, peak_mib=peak / 2 ** 20, fit_mib=(peak - before) / 2 ** 20,
                accuracy=accuracy, n_iter=int(est.n_iter_), dtype=str(est.coefs_[0].dtype),
                compile_s=sum(compiled) if spec["impl"] == "fastnn" else 0.0)


if __name__ == "__main__":
    print(json.dumps(fit(json.loads(sys.argv[1]))))
