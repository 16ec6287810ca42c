"""``fastnn bench``: fastnn vs the NumPy reference (:mod:`fastnn.reference`) on this machine.

A quick table (well under a minute) of the standard configurations -- softmax, the fused
softmax + cross-entropy, a dense layer forward + backward and one SGD training step of three
networks -- both sides pinned to the same thread count, median of repeated
``time.perf_counter`` samples, with the ratio per row.  Imported by :mod:`fastnn.cli` only when
the command runs.  The full suite is ``pytest benchmarks --benchmark-only``.
"""
from __future__ import annotations

import time

__all__ = ["run_bench"]


def _median_time(fn, budget):
    """Median seconds per call of ``fn()`` over ~``budget`` seconds (after one warm-up call)."""
    import statistics

    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(0.005 / once))  # calls per sample: samples of >= 5 ms
    repeats = max(5, min(1000, int(budget / (once * number))))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def _bench_cases(dtype):
    """(name, reference fn, fastnn fn, calls per fn) for each standard configuration."""
    import numpy as np

    from fastnn import reference as ref
    from fastnn.kernels import softmax

    rng = np.random.default_rng(0)
    z = rng.standard_normal((4096, 1000)).astype(dtype) * 3
    labels = rng.integers(0, 1000, 4096)
    out, sw = np.empty_like(z), np.zeros(0, dtype=dtype)
    yield ("softmax 4096x1000", lambda: ref.softmax(z), lambda: softmax.softmax(z, out), 1)
    yield ("softmax + cross-entropy fwd+bwd 4096x1000",
           lambda: ref.softmax_cross_entropy(z, labels),
           lambda: softmax.softmax_cross_entropy_labels(z, labels, sw, out), 1)
    for sizes, batch, act in (((2, 3, 2), 4, "logistic"), ((64, 64, 10), 32, "logistic"),
                              ((784, 256, 10), 128, "relu")):
        steps = max(8, 8192 // (batch * max(1, sizes[0] // 64)))
        yield (f"train step {'-'.join(map(str, sizes))} batch {batch} {act}",
               *_train_step_pair(sizes, batch, act, steps, dtype, rng), steps)


def _train_step_pair(sizes, batch, act, steps, dtype, rng):
    """Reference and fastnn functions running ``steps`` SGD minibatch steps (lr 0.1, softmax CE),
    as in benchmarks/bench_train.py: the baseline is ``reference.reference_train_epoch``."""
    import fastnn
    from fastnn import reference as ref
    from fastnn.train import run_epoch

    n = steps * batch
    X = rng.random((n, sizes[0]), dtype=dtype)  # pixel-like inputs in [0, 1)
    y = rng.integers(0, sizes[-1], n)
    net = fastnn.Network(list(sizes), activation=act, dtype=dtype, seed=0)
    opt, order = fastnn.SGD(0.1), rng.permutation(n)  # shuffled, as in training
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]

    def reference_epoch():
        ref.reference_train_epoch(weights, biases, net.activations, "softmax", X, y, order,
                                  batch, ref.ReferenceSGD(lr=0.1))

    def fastnn_epoch():
        run_epoch(net, X, y, opt, batch_size=batch, order=order)

    return reference_epoch, fastnn_epoch


def run_bench(threads=None, dtype="float32", budget=0.4):
    """Print the table; ``threads=None`` uses every core.  Returns the exit status 0."""
    import numpy as np

    import fastnn
    from fastnn._threads import cpu_count
    from fastnn.kernels._blas import backend

    threads = fastnn.set_num_threads(threads or cpu_count())
    name = np.dtype(dtype).name
    print(f"fastnn bench: {name}, {threads} thread(s) for numba and BLAS on both sides, "
          f"median of repeats (~{budget:g} s per side and row); fastnn's BLAS: {backend()}")
    print(f"{'benchmark':<44}{'NumPy ref':>11}{'fastnn':>11}{'speed-up':>10}")
    for row, ref_fn, fast_fn, calls in _bench_cases(np.dtype(dtype).type):
        t_ref = _median_time(ref_fn, budget) / calls
        t_fast = _median_time(fast_fn, budget) / calls
        print(f"{row:<44}{_fmt_time(t_ref):>11}{_fmt_time(t_fast):>11}{t_ref / t_fast:>9.2f}x",
              flush=True)
    print("train step: one compiled epoch / steps (fastnn) vs reference.reference_train_epoch;"
          " full suite: pytest benchmarks --benchmark-only")
    return 0


def _fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"
