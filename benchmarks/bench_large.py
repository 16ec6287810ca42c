"""Large nets at the GEMM limit: 784-4096-4096-10, batch 512, relu, softmax, float32.

One step = forward + softmax cross-entropy + backward + SGD(lr=0.01) on one minibatch.  Group
``large step ...`` times, on the same data, ``S`` steps per call:
  * ``fastnn``: :func:`fastnn.train.run_epoch` (one compiled call for the S steps);
  * ``matmuls``: only the step's 8 GEMMs -- forward ``a @ W`` (3), weight gradients ``aᵀ δ`` (3)
    and deltas ``δ Wᵀ`` (2) -- on preallocated arrays through the BLAS fastnn calls
    (:func:`fastnn.kernels._blas.gemm`, NumPy's OpenBLAS), S times in one compiled call;
  * ``reference``: :func:`fastnn.reference.reference_train_epoch` (plain NumPy).
Group ``large step threads ...`` times fastnn with 1 and with 2 threads (numba + BLAS).
Targets, as ratios of medians in one run: fastnn <= 1.05x matmuls, reference / fastnn >= 1.25,
1 thread / 2 threads >= 1.6.  A plain ``pytest`` runs each one step, untimed.

Run: ``pytest benchmarks/bench_large.py --benchmark-only`` (about a minute at 2 threads).
"""
import numpy as np
import pytest

import fastnn
from fastnn import reference as ref
from fastnn._jit import jit
from fastnn.kernels._blas import gemm
from fastnn.network import Network
from fastnn.train import run_epoch

from _orders import shuffled  # benchmarks/ is on sys.path (pytest prepend mode, or as a script)

DTYPE = np.float32
SIZES = [784, 4096, 4096, 10]
BATCH = 512
STEPS = 4  # per timed call
ROUNDS = 5
NAME = "784-4096-4096-10 batch 512 relu float32"


def _steps(benchmark):
    return 1 if getattr(benchmark, "disabled", False) else STEPS


def _problem(steps):
    rng = np.random.default_rng(0)
    X = rng.random((BATCH * steps, SIZES[0]), dtype=DTYPE)  # pixel-like inputs in [0, 1)
    y = rng.integers(0, SIZES[-1], BATCH * steps)
    net = Network(SIZES, activation="relu", output="softmax", dtype=DTYPE, seed=0)
    return net, X, y


def _record(benchmark, steps):
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["ms_per_step"] = stats.stats.median / steps * 1e3
    benchmark.extra_info["steps_per_call"] = steps


def _time_fastnn(benchmark, steps):
    net, X, y = _problem(steps)
    init = net.params.copy()
    opt = fastnn.SGD(lr=0.01)
    order = shuffled(X.shape[0])
    run_epoch(net, X, y, opt, batch_size=BATCH, order=order[:BATCH])  # compile / load

    def reset():
        net.params[...] = init

    benchmark.pedantic(run_epoch, args=(net, X, y, opt),
                       kwargs=dict(batch_size=BATCH, order=order), setup=reset,
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, steps)
    assert np.isfinite(net.params).all()


def test_large_step_fastnn(benchmark):
    benchmark.group = f"large step {NAME}"
    _time_fastnn(benchmark, _steps(benchmark))


@jit
def _gemms(x, w0, w1, w2, a0, a1, a2, d0, d1, d2, g0, g1, g2, steps):
    """The 8 GEMMs of ``steps`` training steps of a 3-layer net, on preallocated arrays."""
    for _ in range(steps):
        gemm(False, False, 1.0, x, w0, 0.0, a0)      # forward
        gemm(False, False, 1.0, a0, w1, 0.0, a1)
        gemm(False, False, 1.0, a1, w2, 0.0, a2)
        gemm(True, False, 1.0, a1, d2, 0.0, g2)      # weight gradients and deltas
        gemm(False, True, 1.0, d2, w2, 0.0, d1)
        gemm(True, False, 1.0, a0, d1, 0.0, g1)
        gemm(False, True, 1.0, d1, w1, 0.0, d0)
        gemm(True, False, 1.0, x, d0, 0.0, g0)


def test_large_step_matmuls(benchmark):
    benchmark.group = f"large step {NAME}"
    steps = _steps(benchmark)
    net, X, _ = _problem(1)
    rng = np.random.default_rng(1)
    x = np.ascontiguousarray(X[:BATCH])
    ws = [np.ascontiguousarray(w) for w in net.weights]
    acts = [np.zeros((BATCH, w.shape[1]), DTYPE) for w in ws]
    deltas = [rng.random((BATCH, w.shape[1]), dtype=DTYPE) for w in ws]
    grads = [np.zeros_like(w) for w in ws]
    args = (x, *ws, *acts, *deltas, *grads)
    _gemms(*args, 1)
    benchmark.pedantic(_gemms, args=(*args, steps), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    _record(benchmark, steps)


def test_large_step_reference(benchmark):
    benchmark.group = f"large step {NAME}"
    steps = _steps(benchmark)
    net, X, y = _problem(steps)
    order = shuffled(X.shape[0])
    state = {}

    def reset():
        state["w"] = [w.copy() for w in net.weights]
        state["b"] = [b.copy() for b in net.biases]

    def run():
        ref.reference_train_epoch(state["w"], state["b"], net.activations, "softmax", X, y,
                                  order, BATCH, ref.ReferenceSGD(lr=0.01))

    benchmark.pedantic(run, setup=reset, rounds=max(3, ROUNDS - 2), iterations=1,
                       warmup_rounds=1)
    _record(benchmark, steps)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_step_threads(benchmark, threads):
    """fastnn's step with 1 and with 2 threads (numba's pool and BLAS set together)."""
    benchmark.group = f"large step threads {NAME}"
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        _time_fastnn(benchmark, _steps(benchmark))
    finally:
        fastnn.set_num_threads(previous)
    benchmark.extra_info["threads"] = threads


def _interleaved(rounds=7, steps=STEPS, threads=2):
    """Ratios of medians with the three sides timed in alternation (robust on a busy machine)."""
    import time

    fastnn.set_num_threads(threads)
    net, X, y = _problem(steps)
    init = net.params.copy()
    opt = fastnn.SGD(lr=0.01)
    order = shuffled(X.shape[0])
    rng = np.random.default_rng(1)
    x = np.ascontiguousarray(X[:BATCH])
    ws = [np.ascontiguousarray(w) for w in net.weights]
    gemm_args = (x, *ws, *[np.zeros((BATCH, w.shape[1]), DTYPE) for w in ws],
                 *[rng.random((BATCH, w.shape[1]), dtype=DTYPE) for w in ws],
                 *[np.zeros_like(w) for w in ws])

    def fast():
        net.params[...] = init
        t0 = time.perf_counter()
        run_epoch(net, X, y, opt, batch_size=BATCH, order=order)
        return time.perf_counter() - t0

    def mm():
        t0 = time.perf_counter()
        _gemms(*gemm_args, steps)
        return time.perf_counter() - t0

    def numpy_ref():
        w = [v.copy() for v in net.weights]
        b = [v.copy() for v in net.biases]
        t0 = time.perf_counter()
        ref.reference_train_epoch(w, b, net.activations, "softmax", X, y, order, BATCH,
                                  ref.ReferenceSGD(lr=0.01))
        return time.perf_counter() - t0

    def fast1():
        fastnn.set_num_threads(1)
        try:
            return fast()
        finally:
            fastnn.set_num_threads(threads)

    sides = {"fastnn": fast, "matmuls": mm, "reference": numpy_ref, "fastnn 1 thread": fast1}
    for fn in sides.values():
        fn()  # compile / warm up
    times = {k: [] for k in sides}
    for _ in range(rounds):
        for k, fn in sides.items():
            times[k].append(fn() / steps)
    print(f"{NAME}, {threads} threads, {rounds} interleaved rounds of {steps} steps")
    for label, stat in (("median", np.median), ("min", np.min)):  # min: the least disturbed
        t = {k: float(stat(v)) for k, v in times.items()}
        print(f"{label} ms/step: " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in t.items()))
        print(f"  fastnn / matmuls = {t['fastnn'] / t['matmuls']:.3f} (target <= 1.05); "
              f"reference / fastnn = {t['reference'] / t['fastnn']:.2f} (target >= 1.25); "
              f"1 thread / {threads} threads = {t['fastnn 1 thread'] / t['fastnn']:.2f} "
              f"(target >= 1.6)")


if __name__ == "__main__":
    # python benchmarks/bench_large.py [rounds]: the same comparison, sides interleaved
    import sys

    _interleaved(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 7)
