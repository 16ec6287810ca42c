"""A wide MLP on synthetic data: training steps per second, float32, all cores (or --threads N).

784 -> 1024 -> 1024 -> 10 with ReLU and a softmax output, Adam, batch 256 — a step is dominated
by its six matrix products, so the script also prints the arithmetic rate fastnn sustains
(about 6 x batch x weights floating-point operations per step).  For the same step in plain
NumPy see `fastnn bench` or `pytest benchmarks --benchmark-only`.

Run: python examples/large_mlp.py [--threads 2] [--epochs 3]  (well under a minute)
"""
import argparse
import time

import numpy as np

import fastnn


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--hidden", default="1024,1024")
    args = parser.parse_args()
    if args.threads:
        fastnn.set_num_threads(args.threads)

    sizes = [784, *map(int, args.hidden.split(",")), 10]
    rng = np.random.default_rng(0)
    # 10 Gaussian classes in 784 dimensions: learnable, so the loss visibly falls
    centers = 0.08 * rng.standard_normal((10, sizes[0]), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    X = centers[y] + 2.0 * rng.standard_normal((args.samples, sizes[0]), dtype=np.float32)
    X_val, y_val = X[:1024], y[:1024]

    net = fastnn.Network(sizes, activation="relu", output="softmax", dtype="float32", seed=0)
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    steps_per_epoch = -(-args.samples // args.batch_size)
    print(f"network {'-'.join(map(str, sizes))} relu/softmax float32: {net.n_params:,} parameters;"
          f" {args.samples} samples, batch {args.batch_size} ({steps_per_epoch} steps/epoch), "
          f"{fastnn.get_num_threads()} threads")

    t0 = time.perf_counter()
    history = fastnn.fit(net, X, y, epochs=args.epochs, batch_size=args.batch_size,
                         optimizer=fastnn.Adam(1e-3), seed=0, validation_data=(X_val, y_val))
    wall = time.perf_counter() - t0
    for i, (loss, acc, sec) in enumerate(zip(history.train_loss, history.val_accuracy,
                                             history.seconds), start=1):
        rate = steps_per_epoch / sec
        gflops = 6 * args.batch_size * n_weights * rate / 1e9
        print(f"epoch {i}: loss {loss:.4f}  val_accuracy {acc:.4f}  {sec:.2f} s  "
              f"{rate:.1f} steps/s  {rate * args.batch_size:,.0f} samples/s  {gflops:.0f} GFLOP/s")
    best = min(history.seconds[1:] or history.seconds)
    print(f"best epoch: {steps_per_epoch / best:.1f} steps/s ({best / steps_per_epoch * 1e3:.2f} "
          f"ms per step); total wall time {wall:.2f} s (first epoch includes compilation if the "
          "kernel cache is cold)")


if __name__ == "__main__":
    main()
