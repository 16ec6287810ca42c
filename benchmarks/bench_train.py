"""Per-step training cost: fastnn's compiled epoch vs the NumPy reference trainer, float32.

One step = forward + softmax cross-entropy (mean) + backward + SGD(lr=0.1) on one minibatch.
Each group times, on the same data and the same number of steps ``S`` per call:
  * ``fastnn``: :func:`fastnn.train.run_epoch` (ONE compiled call for the S steps);
  * ``reference``: :func:`fastnn.reference.reference_train_epoch` (plain NumPy);
  * ``matmuls`` (large configs): the step's GEMMs only -- forward ``a @ W``, weight gradients
    ``aᵀ δ`` and deltas ``δ Wᵀ`` -- on preallocated arrays through the BLAS fastnn uses
    (:func:`fastnn.kernels._blas.gemm`, NumPy's OpenBLAS), S times in one compiled call.
Per-step time = call time / S (in ``extra_info["us_per_step"]``); ratios within a group are
per-step ratios.  Targets (2 threads): 2-3-2 >= 50x faster than the reference,
64-64-10 >= 5x, the two large nets <= 1.10x their own matmuls and never slower than the
reference.  Parameters are reset before every round, so every round trains the same steps.
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
# (layer sizes, batch, hidden activation, steps per timed call, rounds)
CONFIGS = {
    "2-3-2": ([2, 3, 2], 4, "logistic", 2000, 20),
    "64-64-10": ([64, 64, 10], 32, "logistic", 400, 20),
    "784-256-10": ([784, 256, 10], 128, "relu", 20, 10),
    "784-1024-1024-10": ([784, 1024, 1024, 10], 256, "relu", 4, 8),
}
LARGE = ["784-256-10", "784-1024-1024-10"]


def _problem(name, benchmark):
    sizes, batch, act, steps, rounds = CONFIGS[name]
    if getattr(benchmark, "disabled", False):  # plain `pytest`: one untimed step as a check
        steps = 1
    rng = np.random.default_rng(0)
    X = rng.random((batch * steps, sizes[0]), dtype=DTYPE)  # pixel-like inputs in [0, 1)
    y = rng.integers(0, sizes[-1], batch * steps)
    net = Network(sizes, activation=act, output="softmax", dtype=DTYPE, seed=0)
    return net, X, y, batch, steps, rounds


def _record(benchmark, steps):
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["us_per_step"] = stats.stats.median / steps * 1e6
    benchmark.extra_info["steps_per_call"] = steps


@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_fastnn(benchmark, name):
    net, X, y, batch, steps, rounds = _problem(name, benchmark)
    benchmark.group = f"train step {name} batch {batch} float32"
    init = net.params.copy()
    opt = fastnn.SGD(lr=0.1)
    order = shuffled(X.shape[0])
    # compile / load the kernel the timed calls use
    run_epoch(net, X, y, opt, batch_size=batch, order=order)

    def reset():
        net.params[...] = init

    benchmark.pedantic(run_epoch, args=(net, X, y, opt),
                       kwargs=dict(batch_size=batch, order=order), setup=reset,
                       rounds=rounds, iterations=1, warmup_rounds=1)
    _record(benchmark, steps)
    assert np.isfinite(net.params).all()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_reference(benchmark, name):
    net, X, y, batch, steps, rounds = _problem(name, benchmark)
    benchmark.group = f"train step {name} batch {batch} float32"
    order = shuffled(X.shape[0])
    state = {}

    def reset():
        state["w"] = [w.copy() for w in net.weights]
        state["b"] = [b.copy() for b in net.biases]

    def run():
        ref.reference_train_epoch(state["w"], state["b"], net.activations, "softmax", X, y,
                                  order, batch, ref.ReferenceSGD(lr=0.1))

    benchmark.pedantic(run, setup=reset, rounds=max(3, rounds // 2), iterations=1,
                       warmup_rounds=1)
    _record(benchmark, steps)


@jit
def _matmuls(x, ws, acts, dws, deltas, steps):
    """The GEMMs of ``steps`` training steps (tuples of C-contiguous float arrays), through
    :func:`fastnn.kernels._blas.gemm` -- the BLAS entry point the dense kernels use."""
    n_layers = len(ws)
    for _ in range(steps):
        gemm(False, False, 1.0, x, ws[0], 0.0, acts[0])
        for l in range(1, n_layers):
            gemm(False, False, 1.0, acts[l - 1], ws[l], 0.0, acts[l])
        gemm(True, False, 1.0, x, deltas[0], 0.0, dws[0])
        for l in range(1, n_layers):
            gemm(True, False, 1.0, acts[l - 1], deltas[l], 0.0, dws[l])
            gemm(False, True, 1.0, deltas[l], ws[l], 0.0, deltas[l - 1])


@pytest.mark.parametrize("name", LARGE)
def test_step_matmuls(benchmark, name):
    net, X, y, batch, steps, rounds = _problem(name, benchmark)
    benchmark.group = f"train step {name} batch {batch} float32"
    x = np.ascontiguousarray(X[:batch])
    ws = tuple(np.ascontiguousarray(w) for w in net.weights)
    acts = tuple(np.zeros((batch, w.shape[1]), DTYPE) for w in ws)
    dws = tuple(np.zeros_like(w) for w in ws)
    deltas = tuple(np.random.default_rng(1).random((batch, w.shape[1]), dtype=DTYPE) for w in ws)
    _matmuls(x, ws, acts, dws, deltas, 1)
    benchmark.pedantic(_matmuls, args=(x, ws, acts, dws, deltas, steps), rounds=rounds,
                       iterations=1, warmup_rounds=1)
    _record(benchmark, steps)
