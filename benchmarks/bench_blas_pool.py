"""One BLAS thread pool per process: fastnn's GEMM right after a burst of NumPy matmuls vs alone.

OpenBLAS threads keep spinning for a while after a call.  When fastnn's kernels call a BLAS
other than NumPy's (SciPy's OpenBLAS), a product started right after NumPy work competes with
NumPy's still-spinning threads for the cores; calling the OpenBLAS NumPy itself uses
(:func:`fastnn.kernels._blas.backend` ``"numpy-openblas64"``) keeps one pool, so what ran just
before does not matter.

Each round times one ``128x784 @ 784x256`` float32 product through
:func:`fastnn.kernels._blas.gemm` twice, interleaved: ``alone`` (the previous thing the process
did was fastnn's own product) and ``after numpy`` (right after :data:`BURST` NumPy matmuls of the
same shapes).  Target: ``after numpy / alone`` <= 1.15 (ratio of medians).

* ``pytest benchmarks/bench_blas_pool.py --benchmark-only``: the ``after numpy`` side is the
  benchmark (pytest-benchmark statistics); each round's ``alone`` product is timed in the
  round's setup, just before the burst, and the ratio of medians goes to ``extra_info``.
* ``python benchmarks/bench_blas_pool.py [rounds]``: the same comparison, printed; run it with
  ``FASTNN_BLAS=scipy`` to see SciPy's separate pool.
"""
import time

import numpy as np

from fastnn._jit import jit
from fastnn.kernels._blas import backend, gemm

N, D_IN, D_OUT = 128, 784, 256
DTYPE = np.float32
BURST = 20  # NumPy matmuls before each "after numpy" product
ROUNDS = 60


@jit
def _product(x, w, out):
    gemm(False, False, 1.0, x, w, 0.0, out)


def problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, D_IN), dtype=DTYPE)
    w = (rng.standard_normal((D_IN, D_OUT)) / np.sqrt(D_IN)).astype(DTYPE)
    return x, w, np.empty((N, D_OUT), DTYPE)


def numpy_burst(x, w):
    for _ in range(BURST):
        x @ w


def timed_product(x, w, out):
    t0 = time.perf_counter()
    _product(x, w, out)
    return time.perf_counter() - t0


def test_gemm_after_numpy_burst_vs_alone(benchmark):
    benchmark.group = f"BLAS pool: {N}x{D_IN} @ {D_IN}x{D_OUT} float32 through fastnn's gemm"
    x, w, out = problem()
    alone = []

    def setup():  # interleaved: this round's "alone" product, then the burst
        alone.append(timed_product(x, w, out))
        numpy_burst(x, w)

    _product(x, w, out)  # load the compiled kernel
    benchmark.pedantic(_product, args=(x, w, out), setup=setup, rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    np.testing.assert_allclose(out, x @ w, rtol=1e-4, atol=1e-4 * float(np.abs(x @ w).max()))
    if getattr(benchmark, "disabled", False):  # plain `pytest`: the check above is the test
        return
    after = benchmark.stats.stats.median
    benchmark.extra_info.update(backend=backend(), alone_median_s=float(np.median(alone)),
                                after_over_alone=after / float(np.median(alone)))


def interleaved(rounds=ROUNDS):
    """``{"alone": [...], "after numpy": [...]}`` seconds per product, timed round by round."""
    x, w, out = problem()
    _product(x, w, out)
    numpy_burst(x, w)
    times = {"alone": [], "after numpy": []}
    for _ in range(rounds):
        times["alone"].append(timed_product(x, w, out))
        numpy_burst(x, w)
        times["after numpy"].append(timed_product(x, w, out))
    return times


if __name__ == "__main__":
    # python benchmarks/bench_blas_pool.py [rounds]
    import sys

    import fastnn

    threads = fastnn.set_num_threads(2)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    times = interleaved(rounds)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"fastnn's BLAS: {backend()}, {threads} threads, {rounds} interleaved rounds, "
          f"{N}x{D_IN} @ {D_IN}x{D_OUT} float32, burst of {BURST} NumPy matmuls")
    print(f"median ms: alone {med['alone'] * 1e3:.3f}, after numpy {med['after numpy'] * 1e3:.3f}; "
          f"after / alone = {med['after numpy'] / med['alone']:.2f} (target <= 1.15)")
