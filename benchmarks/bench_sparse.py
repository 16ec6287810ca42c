"""Sparse text input: fastnn.MLPClassifier vs scikit-learn's on a TF-IDF-like CSR matrix.

The problem, generated here (seeded): ``docs`` training and ``test_docs`` held-out documents
over ``terms`` terms (default 20,000 + 5,000 x 100,000).  A document draws its tokens from a
Zipf law over the vocabulary (exponent 1.07; the frequent terms scattered over the columns),
except a share of them from the preferred terms of its class (each of the 20 classes prefers a
few hundred mid-frequency terms, overlapping between classes): the signal.  Token counts become
TF-IDF rows as ``TfidfVectorizer`` makes them (smooth idf from the training documents, l2-
normalised rows, float64), with about ``nnz`` (80) non-zeros per row.

Configs: ``(100,)`` and ``(256, 128)``, adam, ``max_iter=10, tol=0, n_iter_no_change=11``
(both sides run exactly 10 epochs; checked), ``random_state=0``, the rest scikit-learn's
defaults.  Each fit runs in a new child process (``_sparse_child.py``: the corpus loaded from
a file, then ``fit`` timed) that reports the fit's seconds, its peak memory (``ru_maxrss``,
the whole process) and that peak minus the process's resident memory just before ``fit``, and
the held-out accuracy.  Children run with the same thread count on both sides
(``FASTNN_BENCH_THREADS``, default 2: ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/
``MKL_NUM_THREADS`` in their environment, threadpoolctl limits and ``fastnn.set_num_threads``
inside).  A fastnn child runs first, untimed, so that the timed children load the compiled
kernels from numba's cache as a user's second script does.  Sides alternate round by round.

Targets (medians, the same run): ``(100,)``: scikit-learn / fastnn fit time >= 5, fastnn /
scikit-learn peak memory <= 1.2, accuracies within 0.5 points; ``(256, 128)``: fit time >= 3.

Run: ``python benchmarks/bench_sparse.py [--config 100] [--rounds 1] [--docs N --terms N]``
(the full size takes several minutes, most of it scikit-learn; ``--docs 2000 --terms 10000``
checks the script in a minute), or ``pytest benchmarks/bench_sparse.py --benchmark-only -s``.
A plain ``pytest`` runs both configs once on a tiny problem (1,000 documents x 3,000 terms),
untimed, checking that both sides run 10 epochs and reach the same accuracy, well above chance.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CONFIGS = {"100": (100,), "256,128": (256, 128)}
TARGETS = {"100": dict(speed=5, memory=1.2, accuracy_points=0.5), "256,128": dict(speed=3)}
FULL = dict(docs=20_000, test_docs=5_000, terms=100_000, nnz=80, classes=20)
QUICK = dict(docs=1_000, test_docs=300, terms=3_000, nnz=30, classes=5)
EPOCHS = 10


# --------------------------------------------------------------------------- the problem
def _expected_distinct(p, tokens):
    """Expected number of distinct terms among ``tokens`` draws from the distribution ``p``."""
    return float(np.sum(-np.expm1(tokens * np.log1p(-p))))


def make_corpus(docs, test_docs, terms, nnz, classes, seed=0, own_share=0.06, zipf=1.07):
    """``(X, y, X_test, y_test)``: TF-IDF-like CSR float64 rows (see the module docstring)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n = docs + test_docs
    p = np.arange(1, terms + 1, dtype=np.float64) ** -zipf
    p /= p.sum()
    term_of_rank = rng.permutation(terms)
    # each class prefers `own` terms drawn from a pool of mid-frequency ranks shared by all
    own = max(10, terms // 400)
    pool = np.arange(terms // 100, terms // 100 + 8 * own * classes // 10)
    pool = pool[pool < terms]
    prefer = np.stack([rng.choice(pool, own, replace=False) for _ in range(classes)])
    # tokens per document so that the expected distinct terms is `nnz` (for class 0's mixture)
    mix = (1 - own_share) * p
    mix[prefer[0]] += own_share / own
    lo, hi = float(nnz), 50.0 * nnz
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _expected_distinct(mix, mid) < nnz else (lo, mid)
    lengths = np.maximum(1, rng.poisson(lo, n))
    y = rng.integers(0, classes, n)
    doc = np.repeat(np.arange(n), lengths)
    ranks = rng.choice(terms, doc.size, p=p)
    mine = rng.random(doc.size) < own_share
    ranks[mine] = prefer[y[doc[mine]], rng.integers(0, own, int(mine.sum()))]
    counts = sp.csr_matrix((np.ones(doc.size), (doc, term_of_rank[ranks])), shape=(n, terms))
    counts.sum_duplicates()
    df = np.bincount(counts[:docs].indices, minlength=terms)
    idf = np.log((1 + docs) / (1 + df)) + 1  # TfidfVectorizer's smooth idf
    counts.data *= idf[counts.indices]
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    counts.data /= np.repeat(norms, np.diff(counts.indptr))
    return counts[:docs], y[:docs], counts[docs:], y[docs:]


def save_corpus(path, X, y, X_test, y_test):
    """The four arrays of each matrix, plain .npz (read back without pickle)."""
    arrays = {}
    for name, m in (("train", X), ("test", X_test)):
        arrays.update({f"{name}_data": m.data, f"{name}_indices": m.indices,
                       f"{name}_indptr": m.indptr, f"{name}_shape": np.array(m.shape)})
    np.savez(path, y_train=y, y_test=y_test, **arrays)


# --------------------------------------------------------------------------- one fit (child)
def run_fit(impl, hidden, data, threads, epochs, rows=None):
    """One fit in a new process (``_sparse_child.py``); returns its report (a dict)."""
    import fastnn

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    spec = dict(impl=impl, hidden=list(hidden), data=str(data), threads=threads, epochs=epochs,
                rows=rows)
    child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sparse_child.py")
    proc = subprocess.run([sys.executable, child, json.dumps(spec)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{impl} {hidden} fit failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the comparison
def sparse_row(config, size, epochs, rounds, threads, data, quick=False, extra_info=None):
    """Fits of one config, sides alternating over ``rounds``; prints the table (unless
    ``quick``) and returns the medians and ratios."""
    hidden = CONFIGS[config]
    reports = {"sklearn": [], "fastnn": []}
    for r in range(rounds):
        for impl in (("sklearn", "fastnn") if r % 2 else ("fastnn", "sklearn")):
            reports[impl].append(run_fit(impl, hidden, data, threads, epochs))
    for impl, reps in reports.items():  # both sides did the same number of epochs
        assert all(rep["n_iter"] == epochs for rep in reps), (impl, reps)
        assert all(rep["dtype"] == "float64" for rep in reps), (impl, reps)
    med = {impl: {k: statistics.median(rep[k] for rep in reps)
                  for k in ("seconds", "peak_mib", "fit_mib", "accuracy", "compile_s")}
           for impl, reps in reports.items()}
    # the same fit on both sides (same initial weights and batches): the same accuracy, and
    # well above chance even on the tiny problem
    accuracies = [med[impl]["accuracy"] for impl in med]
    assert abs(accuracies[0] - accuracies[1]) <= 0.02, med
    assert min(accuracies) > 2.0 / size["classes"], med
    ratios = {"sklearn / fastnn fit time": med["sklearn"]["seconds"] / med["fastnn"]["seconds"],
              "fastnn / sklearn peak": med["fastnn"]["peak_mib"] / med["sklearn"]["peak_mib"],
              "fastnn / sklearn fit memory":
                  med["fastnn"]["fit_mib"] / max(med["sklearn"]["fit_mib"], 1e-9),
              "accuracy fastnn - sklearn (points)":
                  100 * (med["fastnn"]["accuracy"] - med["sklearn"]["accuracy"])}
    result = dict(config=config, hidden=list(hidden), size=size, epochs=epochs, rounds=rounds,
                  threads=threads, medians=med, ratios=ratios, load_average=os.getloadavg()[0])
    if extra_info is not None:
        extra_info.update(result)
    if not quick:
        print(_table(result), flush=True)
    return result


def _table(result):
    size, med, ratios = result["size"], result["medians"], result["ratios"]
    target = TARGETS[result["config"]]
    lines = [f"{size['docs']:,} x {size['terms']:,} TF-IDF-like CSR float64, {size['classes']} "
             f"classes, MLPClassifier{tuple(result['hidden'])} adam {result['epochs']} epochs, "
             f"{result['threads']} threads ({result['rounds']} round(s), median; load average "
             f"{result['load_average']:.2f})",
             f"  {'side':<9}{'fit s':>10}{'peak MiB':>11}{'fit +MiB':>11}{'accuracy':>10}"]
    for impl in ("sklearn", "fastnn"):
        m = med[impl]
        lines.append(f"  {impl:<9}{m['seconds']:>10.2f}{m['peak_mib']:>11.0f}"
                     f"{m['fit_mib']:>11.0f}{m['accuracy']:>10.4f}")
    checks = {"sklearn / fastnn fit time": (target.get("speed"), ">="),
              "fastnn / sklearn peak": (target.get("memory"), "<="),
              "fastnn / sklearn fit memory": (None, ""),
              "accuracy fastnn - sklearn (points)": (target.get("accuracy_points"), "within")}
    for label, value in ratios.items():
        goal, sense = checks[label]
        line = f"  {label} = {value:.3g}"
        if goal is not None:
            met = (value >= goal if sense == ">=" else value <= goal if sense == "<="
                   else abs(value) <= goal)
            line += f"  (target {sense} {goal}: {'met' if met else 'NOT met'})"
        lines.append(line)
    if med["fastnn"]["compile_s"] > 0:  # the warm-up child should have filled the cache
        lines.append(f"  note: fastnn's fit compiled kernels for "
                     f"{med['fastnn']['compile_s']:.2f} s (numba's cache was not used)")
    return "\n".join(lines)


def prepare(size, folder):
    """Generate and save the corpus; returns (path, mean non-zeros per training row)."""
    X, y, X_test, y_test = make_corpus(**size)
    path = os.path.join(folder, "corpus.npz")
    save_corpus(path, X, y, X_test, y_test)
    return path, X.nnz / X.shape[0]


def warm_kernels(path, threads):
    """An untimed fastnn fit on a few rows: fills numba's cache for the timed children."""
    return run_fit("fastnn", (8,), path, threads, 1, rows=64)["seconds"]


# --------------------------------------------------------------------------- pytest entry
@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory):
    """The saved corpus: tiny under a plain ``pytest`` (benchmarks disabled), else full size."""
    size = QUICK if getattr(request.config.option, "benchmark_disable", False) else FULL
    path, _ = prepare(size, str(tmp_path_factory.mktemp("sparse")))
    return path, size


@pytest.mark.parametrize("config", list(CONFIGS))
def test_sparse_fit(benchmark, corpus, config):
    from _interleave import bench_threads  # benchmarks/ is on sys.path

    path, size = corpus
    quick = benchmark.disabled
    benchmark.group = f"sparse TF-IDF fit {config}"
    threads = bench_threads()
    warm_kernels(path, threads)
    benchmark.pedantic(sparse_row, args=(config, size, EPOCHS, 1, threads, path, quick,
                                         benchmark.extra_info), rounds=1, iterations=1)


# --------------------------------------------------------------------------- script
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=list(CONFIGS), action="append",
                        help="run only this config (repeatable; default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="fits per side and config")
    parser.add_argument("--docs", type=int, default=FULL["docs"], help="training documents")
    parser.add_argument("--test-docs", type=int, default=None,
                        help="held-out documents (default: a quarter of --docs)")
    parser.add_argument("--terms", type=int, default=FULL["terms"], help="vocabulary size")
    parser.add_argument("--nnz", type=int, default=FULL["nnz"], help="non-zeros per row")
    parser.add_argument("--classes", type=int, default=FULL["classes"])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)
    from _interleave import bench_threads

    threads = bench_threads()
    size = dict(docs=args.docs, test_docs=args.test_docs or max(1, args.docs // 4),
                terms=args.terms, nnz=args.nnz, classes=args.classes)
    with tempfile.TemporaryDirectory(prefix="bench_sparse-") as folder:
        path, per_row = prepare(size, folder)
        print(f"corpus: {size['docs']:,} + {size['test_docs']:,} documents x {size['terms']:,} "
              f"terms, {per_row:.1f} non-zeros per training row; {threads} threads")
        warm = warm_kernels(path, threads)
        print(f"untimed fastnn fit (loads or compiles the kernels): {warm:.2f} s")
        for config in args.config or list(CONFIGS):
            sparse_row(config, size, args.epochs, args.rounds, threads, path)


if __name__ == "__main__":
    main()
