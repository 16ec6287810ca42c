"""Training steps in a process that does other NumPy work, sides interleaved round by round.

One step = forward + softmax cross-entropy (mean) + backward + plain SGD on one minibatch,
float32, shuffled rows gathered per minibatch.  Sides:

* ``fastnn``: :func:`fastnn.train.run_epoch` over ``S`` steps (one compiled call), per step;
* ``numpy step``: the lean NumPy step a competent user writes (``_lean_numpy.LeanMLP``);
* ``its GEMMs``: the step's matrix products alone through NumPy (``_lean_numpy.GemmFloor``).

Every side runs once per round, the first side rotating (``_interleave.interleave``), after the
module has done ordinary NumPy work, so what one library leaves behind (a BLAS pool still
spinning) shows in the other's time.  Rows and targets, as ratios of medians:

(a) 2-3-2, batch 4, logistic: numpy step / fastnn >= 40;
(b) 784-256-10, batch 128, relu: fastnn / its GEMMs <= 1.10 (numpy step / fastnn reported);
(c) the same 784-256-10 fastnn step timed right after a burst of NumPy matmuls
    (20 x 512x512 @ 512x512) vs timed alone (after a pause with nothing running) <= 1.15;
(d) 784-1024-1024-10 batch 256 and 784-4096-4096-10 batch 512 (relu): fastnn / its GEMMs
    <= 1.05.  The 4096 row is slow (a step takes 0.1-0.3 s; few rounds): deselect it with
    ``-k "not 4096"`` (``--skip-4096`` as a script);
(e) 64-100-10, batch 200, relu (the digits network of ``MLPClassifier((100,))``, on 1,437 rows
    as in the digits benchmark, visited in the same shuffled order again and again): fastnn / its
    GEMMs, reported: how far the small network's step is above its products.

Before timing, each row checks that fastnn and the NumPy step train the same: from the same
initial parameters and minibatches, their parameter updates after a few steps agree.  A plain
``pytest`` runs only that check and one short untimed round of each side.

Threads: benchmarks/conftest.py pins numba and every BLAS pool to ``FASTNN_BENCH_THREADS``
(default 2).  Timed: ``pytest benchmarks/bench_interleaved.py --benchmark-only -s`` (about a
minute; the figures are in ``extra_info`` and printed as tables), or
``python benchmarks/bench_interleaved.py [--skip-4096]``.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import fastnn
from fastnn.network import Network
from fastnn.train import run_epoch

# benchmarks/ is on sys.path (pytest's prepend import mode, or run as a script)
from _interleave import interleave, report
from _lean_numpy import GemmFloor, LeanMLP
from _orders import shuffled

DTYPE = np.float32

# name -> (layer sizes, batch, hidden activation, SGD learning rate)
NETS = {
    "2-3-2": ([2, 3, 2], 4, "logistic", 0.1),
    "784-256-10": ([784, 256, 10], 128, "relu", 0.1),
    "784-1024-1024-10": ([784, 1024, 1024, 10], 256, "relu", 0.01),
    "784-4096-4096-10": ([784, 4096, 4096, 10], 512, "relu", 0.01),
    "64-100-10": ([64, 100, 10], 200, "relu", 0.1),
}
#: timed mode: (fastnn steps, numpy steps, GEMM-floor steps) per round, and rounds
TIMED = {
    "2-3-2": ((4000, 400, 0), 30),
    "784-256-10": ((20, 20, 20), 30),
    "784-1024-1024-10": ((4, 4, 4), 10),
    "784-4096-4096-10": ((2, 1, 2), 4),
    "64-100-10": ((200, 50, 200), 30),
}
#: rows of the data set (default: one row per minibatch entry, each visited once)
ROWS = {"64-100-10": 1437}
BURST = (20, 512)  # matmuls in a burst, their size
BURST_STEPS, BURST_ROUNDS = 8, 20  # fastnn steps timed after each burst / pause
PAUSE = 0.2  # seconds with nothing running before an "alone" measurement
CHECK_STEPS = 3  # steps of the fastnn-vs-NumPy agreement check


def numpy_work():
    """What a script does before it trains: build data, standardise, some linear algebra."""
    rng = np.random.default_rng(42)
    a = rng.standard_normal((2000, 256)).astype(DTYPE)
    a -= a.mean(axis=0)
    a /= a.std(axis=0)
    cov = a.T @ a / a.shape[0]
    np.linalg.eigh(cov)
    for _ in range(5):
        a @ cov
    np.sort(a, axis=0)


def problem(name, steps):
    """Network (seed 0), float32 pixel-like inputs in [0, 1), labels and a shuffled order for
    ``steps`` minibatches (over :data:`ROWS` rows, repeated, where given)."""
    sizes, batch, act, lr = NETS[name]
    rng = np.random.default_rng(0)
    length = batch * max(steps, 1)
    n = ROWS.get(name, length)
    X = rng.random((n, sizes[0]), dtype=DTYPE)
    y = rng.integers(0, sizes[-1], n)
    net = Network(sizes, activation=act, output="softmax", dtype=DTYPE, seed=0)
    return net, X, y, np.resize(shuffled(n), length)


def check_same_training(net, X, y, order, steps):
    """fastnn and the lean NumPy step, from the same parameters over the same minibatches,
    make the same parameter updates (float32 rounding apart).  Leaves ``net`` unchanged."""
    sizes, batch, act, lr = NETS[_name(net)]
    part = order[:steps * batch]
    init = net.params.copy()
    lean = LeanMLP(net.weights, net.biases, act, lr)
    lean.epoch(X, y, part, batch)
    run_epoch(net, X, y, fastnn.SGD(lr=lr), batch_size=batch, order=part)
    try:
        for l in range(net.n_layers):
            for ours, theirs, start in ((net.weights[l], lean.W[l], lean.init[0][l]),
                                        (net.biases[l], lean.b[l], lean.init[1][l])):
                want = theirs - start
                np.testing.assert_allclose(ours - start, want, rtol=2e-3,
                                           atol=2e-3 * float(np.abs(want).max()) + 1e-7)
    finally:
        net.params[...] = init


def _name(net):
    return "-".join(map(str, net.layer_sizes))


# --------------------------------------------------------------------------- sides
def fastnn_side(net, X, y, order, steps):
    """One round of the fastnn side: ``steps`` SGD steps from the initial parameters."""
    sizes, batch, act, lr = NETS[_name(net)]
    init = net.params.copy()
    opt = fastnn.SGD(lr=lr)
    part = order[:steps * batch]

    def run():
        net.params[...] = init
        t0 = time.perf_counter()
        run_epoch(net, X, y, opt, batch_size=batch, order=part)
        return time.perf_counter() - t0

    return run, steps


def numpy_side(net, X, y, order, steps):
    sizes, batch, act, lr = NETS[_name(net)]
    lean = LeanMLP(net.weights, net.biases, act, lr)
    part = order[:steps * batch]

    def run():
        lean.reset()
        t0 = time.perf_counter()
        lean.epoch(X, y, part, batch)
        return time.perf_counter() - t0

    return run, steps


def gemm_side(net, X, steps):
    batch = NETS[_name(net)][1]
    floor = GemmFloor(X[:batch], net.weights)
    floor.step()
    # the floor computes what it claims: the first layer's weight-gradient product
    np.testing.assert_allclose(floor.grads[0], floor.x.T @ floor.deltas[0], rtol=1e-4,
                               atol=1e-4 * float(np.abs(floor.grads[0]).max()))

    def run():
        t0 = time.perf_counter()
        floor.run(steps)
        return time.perf_counter() - t0

    return run, steps


# --------------------------------------------------------------------------- rows
def _counts(name, quick):
    (fast, nump, gemm), rounds = TIMED[name]
    if quick:  # plain pytest: one short untimed round of each side
        return 2, min(nump, 2), min(gemm, 1), 1
    return fast, nump, gemm, rounds


def step_row(name, quick, extra_info=None):
    """Rows (a), (b), (d): fastnn vs the lean NumPy step (vs its GEMMs for the large nets)."""
    fast, nump, gemm, rounds = _counts(name, quick)
    net, X, y, order = problem(name, max(fast, nump, CHECK_STEPS))
    check_same_training(net, X, y, order, CHECK_STEPS)
    sides = {"fastnn": fastnn_side(net, X, y, order, fast),
             "numpy step": numpy_side(net, X, y, order, nump)}
    if gemm:
        sides["its GEMMs"] = gemm_side(net, X, gemm)
    times = interleave(sides, rounds, warmup=0 if quick else 1)
    if gemm:
        target = {"784-256-10": 1.10, "64-100-10": None}.get(name, 1.05)
        ratios = [("fastnn / its GEMMs", "fastnn", "its GEMMs", target, "<="),
                  ("numpy step / fastnn", "numpy step", "fastnn", None, "")]
    else:
        ratios = [("numpy step / fastnn", "numpy step", "fastnn", 40, ">=")]
    sizes, batch, act, _ = NETS[name]
    big = sizes[1] >= 1024
    return report(f"step {name} batch {batch} {act} float32, per step", times, ratios,
                  unit=1e-3 if big else 1e-6, unit_name="ms" if big else "us",
                  extra_info=extra_info, quiet=quick)


def burst_row(quick, extra_info=None):
    """Row (c): the 784-256-10 fastnn step right after a burst of NumPy matmuls vs alone."""
    name = "784-256-10"
    steps, rounds = (2, 1) if quick else (BURST_STEPS, BURST_ROUNDS)
    count, size = (2, 64) if quick else BURST
    pause = 0.0 if quick else PAUSE
    net, X, y, order = problem(name, steps)
    run, _ = fastnn_side(net, X, y, order, steps)
    rng = np.random.default_rng(3)
    a = rng.random((size, size), dtype=DTYPE)
    b = rng.random((size, size), dtype=DTYPE)
    c = np.empty_like(a)

    def after_burst():
        for _ in range(count):
            np.matmul(a, b, out=c)
        return run()

    def alone():
        time.sleep(pause)  # any BLAS pool's spinning threads go back to sleep
        return run()

    times = interleave({"after NumPy burst": (after_burst, steps), "alone": (alone, steps)},
                       rounds, warmup=0 if quick else 1)
    assert np.isfinite(net.params).all()
    return report(f"step {name} batch 128 relu float32, the first {steps} steps after "
                  f"{count} x ({size}x{size} @ {size}x{size}) NumPy matmuls vs after a "
                  f"{pause:g} s pause, per step", times,
                  [("after burst / alone", "after NumPy burst", "alone", 1.15, "<=")],
                  extra_info=extra_info, quiet=quick)


# --------------------------------------------------------------------------- pytest
@pytest.fixture(scope="module", autouse=True)
def _numpy_first():
    numpy_work()


def _run(benchmark, group, fn, *args):
    benchmark.group = f"interleaved {group}"
    quick = benchmark.disabled
    benchmark.pedantic(fn, args=(*args, quick, benchmark.extra_info), rounds=1, iterations=1)
    benchmark.extra_info["threads"] = fastnn.get_num_threads()


def test_step_2_3_2(benchmark):
    _run(benchmark, "(a) step 2-3-2", step_row, "2-3-2")


def test_step_784_256_10(benchmark):
    _run(benchmark, "(b) step 784-256-10", step_row, "784-256-10")


def test_step_after_numpy_burst(benchmark):
    _run(benchmark, "(c) step after a NumPy burst", burst_row)


def test_step_digits_network(benchmark):
    _run(benchmark, "(e) step 64-100-10", step_row, "64-100-10")


@pytest.mark.parametrize("name", ["784-1024-1024-10", "784-4096-4096-10"])
def test_step_wide(benchmark, name):
    if benchmark.disabled and name == "784-4096-4096-10":
        pytest.skip("timed only (a step takes 0.1-0.3 s): the 784-1024-1024-10 row checks "
                    "the same code untimed")
    _run(benchmark, f"(d) step {name}", step_row, name)


def main():
    import argparse

    from _interleave import load_average, pin_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-4096", action="store_true", help="leave out the slow row")
    parser.add_argument("--quick", action="store_true", help="one short round (a check)")
    args = parser.parse_args()
    threads = pin_threads()
    print(f"{threads} thread(s), float32, load average {load_average():.2f}")
    numpy_work()
    step_row("2-3-2", args.quick)
    step_row("784-256-10", args.quick)
    burst_row(args.quick)
    step_row("784-1024-1024-10", args.quick)
    step_row("64-100-10", args.quick)
    if not (args.skip_4096 or args.quick):
        step_row("784-4096-4096-10", args.quick)
    if args.quick:
        print("checks passed (untimed)")


if __name__ == "__main__":
    main()
