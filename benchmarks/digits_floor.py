"""The digits fit's floor: its training step against the step's own matrix products, one thread.

A script (not collected by pytest).  For ``MLPClassifier((100,))`` on digits the step is
forward, softmax cross-entropy, backward and Adam with the L2 term on 200 rows of a 64-100-10
network; per dtype (float32: the digits benchmark's 1,437 rows; float64: all 1,797 rows of
``X / 16``, as a new process's first fit trains) it times, interleaved round by round in one
process after other NumPy work:

* ``fastnn``: :func:`fastnn._engine.run_epochs` over fixed shuffled orders (the estimator's
  engine call; the partial last minibatch of each epoch included), per step;
* ``its GEMMs``: the step's five matrix products through NumPy (``out=``) on minibatches of the
  same sizes (the last one of each epoch partial), per step: forward ``X W1`` and ``H W2``,
  backward ``dZ W2ᵀ``, weight gradients ``Hᵀ dZ`` and ``Xᵀ dH``.

It prints both, their ratio, the products' GFLOP/s and, for reference, the one-thread rate of a
1024² product in the same dtype (the core's practical peak).  A step at ~1.0x its products is at
the floor: the fit can then only get faster with fewer or faster products.

Run: python benchmarks/digits_floor.py [--rounds 9]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from _interleave import interleave, load_average, report, timed  # benchmarks/ is on sys.path

BATCH, HIDDEN, EPOCHS = 200, 100, 40


def fastnn_side(dtype, rows):
    from fastnn import Network
    from fastnn._engine import run_epochs
    from fastnn.optim import Adam

    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray((X[:rows] / 16).astype(dtype))
    y = y[:rows].astype(np.int64)
    rng = np.random.RandomState(0)
    orders = np.stack([rng.permutation(rows) for _ in range(EPOCHS)])
    net = Network([64, HIDDEN, 10], activation="relu", dtype=dtype, seed=0)
    init = net.params.copy()
    sw = np.zeros(0, dtype)
    steps = EPOCHS * -(-rows // BATCH)

    def run():
        net.params[...] = init
        t0 = time.perf_counter()
        run_epochs(net, X, y, sw, Adam(1e-3), batch_size=BATCH, orders=orders, alpha=1e-4)
        return time.perf_counter() - t0

    return run, steps


def gemm_side(dtype, rows):
    sizes = [min(BATCH, rows - i) for i in range(0, rows, BATCH)]  # one epoch's minibatches
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 64)).astype(dtype)
    w1, w2 = rng.random((64, HIDDEN)).astype(dtype), rng.random((HIDDEN, 10)).astype(dtype)
    h, dh = np.empty((BATCH, HIDDEN), dtype), np.empty((BATCH, HIDDEN), dtype)
    z = rng.random((BATCH, 10)).astype(dtype)
    g1, g2 = np.empty((64, HIDDEN), dtype), np.empty((HIDDEN, 10), dtype)

    blocks = [(x[:r], h[:r], z[:r], dh[:r]) for r in sizes]

    def run():
        t0 = time.perf_counter()
        for _ in range(EPOCHS):
            for xb, hb, zb, dhb in blocks:
                np.matmul(xb, w1, out=hb)
                np.matmul(hb, w2, out=zb)
                np.matmul(zb, w2.T, out=dhb)
                np.matmul(hb.T, zb, out=g2)
                np.matmul(xb.T, dhb, out=g1)
        return time.perf_counter() - t0

    return run, EPOCHS * len(sizes)


def peak(dtype, n=1024, reps=5):
    """GFLOP/s of one-thread ``n x n @ n x n`` products (best of ``reps``)."""
    a = np.random.default_rng(1).random((n, n)).astype(dtype)
    c = np.empty_like(a)
    np.matmul(a, a, out=c)
    best = min(timed(np.matmul, a, a, out=c) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    flop = 2 * BATCH * (64 * HIDDEN + HIDDEN * 10) * 2 + 2 * BATCH * HIDDEN * 10  # 200 rows
    rng = np.random.default_rng(2)  # other NumPy work first, as a script would do
    a = rng.standard_normal((2000, 256))
    np.linalg.eigh(a.T @ a)
    with threadpool_limits(1):
        print(f"1 thread, load average {load_average():.2f}")
        for dtype, rows in ((np.float32, 1437), (np.float64, 1797)):
            run, steps = fastnn_side(dtype, rows)
            sides = {"fastnn": (run, steps), "its GEMMs": gemm_side(dtype, rows)}
            times = interleave(sides, args.rounds)
            res = report(f"digits step 64-{HIDDEN}-10, batch {BATCH}, Adam + L2, "
                         f"{np.dtype(dtype).name}, {rows} rows, per step", times,
                         [("fastnn / its GEMMs", "fastnn", "its GEMMs", None, "")])
            gemm_us = res["median_us"]["its GEMMs"] * steps / (EPOCHS * rows / BATCH)
            print(f"  its GEMMs: {flop / gemm_us / 1e3:.1f} GFLOP/s; a 1024^2 product: "
                  f"{peak(dtype):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
