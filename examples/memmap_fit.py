"""Train on a float32 file larger than you want in memory: np.load(mmap_mode="r") + fastnn.fit.

The script writes a synthetic classification set of ``--gigabytes`` GB (float32, written in 64 MB
chunks, never held in memory) to ``--dir``, then in a fresh process trains on the memory-mapped
file with ``fastnn.fit`` -- which reads shuffled blocks of rows into one bounded buffer
(``block_bytes``, 64 MiB by default; see fastnn.stream) -- while a thread samples the process's
anonymous memory (``RssAnon`` in /proc/self/status).  With ``--compare`` a second process loads
the whole file into memory and runs the same fit on the in-memory array, to compare accuracy.
The files are deleted at the end (``--keep`` keeps them).

Run: python examples/memmap_fit.py                      (0.25 GB, well under a minute)
     python examples/memmap_fit.py --gigabytes 2 --compare   (the issue-6 figures, ~10 min)
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

CLASSES = 10
CHUNK_BYTES = 64 << 20


def rss_anon():
    """Anonymous resident memory of this process, in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def teacher(d, seed=1234):
    """A fixed random 2-layer teacher: labels = argmax of its outputs (learnable, not linear)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(d, 64)).astype(np.float32) / np.sqrt(d),
            rng.normal(size=(64, CLASSES)).astype(np.float32))


def labels_for(X, t):
    return np.argmax(np.tanh(X @ t[0]) @ t[1], axis=1).astype(np.int8)


def generate(path_x, path_y, n, d, seed=0):
    """Write X (float32 [n, d]) and y (int8 [n]) to .npy files chunk by chunk."""
    X = np.lib.format.open_memmap(path_x, mode="w+", dtype=np.float32, shape=(n, d))
    y = np.lib.format.open_memmap(path_y, mode="w+", dtype=np.int8, shape=(n,))
    t = teacher(d)
    rows = max(1, CHUNK_BYTES // (4 * d))
    for i, s in enumerate(range(0, n, rows)):
        e = min(n, s + rows)
        chunk = np.random.default_rng([seed, i]).standard_normal((e - s, d), dtype=np.float32)
        X[s:e] = chunk
        y[s:e] = labels_for(chunk, t)
    X.flush()
    y.flush()
    del X, y


def test_set(d, n=20000):
    X = np.random.default_rng(99).standard_normal((n, d), dtype=np.float32)
    return X, labels_for(X, teacher(d)).astype(np.int64)


def train(args, in_memory):
    """Child process: fit on the file (memory-mapped, or loaded whole), report figures as JSON."""
    import fastnn
    from fastnn import stream

    fastnn.set_num_threads(args.threads) if args.threads else None
    X = np.load(args.x, mmap_mode=None if in_memory else "r")
    y = np.load(args.y, mmap_mode=None if in_memory else "r")
    d = X.shape[1]
    Xt, yt = test_set(d)
    sizes = [d, args.hidden, CLASSES]
    # compile (or load) the kernels first: the baseline excludes numba's compiler
    warm = fastnn.Network(sizes, seed=0)
    fastnn.fit(warm, Xt[:512], yt[:512], epochs=1, batch_size=args.batch_size,
               optimizer=fastnn.Adam(1e-3), block_bytes=1 << 20)
    fastnn.fit(warm, Xt[:512], yt[:512], epochs=1, batch_size=args.batch_size,
               optimizer=fastnn.Adam(1e-3))
    base = rss_anon()
    peak = [base]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    net = fastnn.Network(sizes, activation="relu", seed=0)
    t0 = time.perf_counter()
    hist = fastnn.fit(net, X, y, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=fastnn.Adam(1e-3), seed=0, verbose=args.verbose)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # predictions for the whole training file: block by block when X is memory-mapped
    proba = stream.forward(net, X) if stream.is_out_of_core(X) else net.forward(X)
    train_acc = float(np.mean(np.argmax(proba, axis=1) == y))
    predict_s = time.perf_counter() - t0
    done.set()
    poller.join()
    peak[0] = max(peak[0], rss_anon())
    print(json.dumps({
        "mode": "in-memory" if in_memory else "memmap",
        "rows": int(X.shape[0]), "features": int(d), "file_gb": X.nbytes / 1e9,
        "baseline_rss_anon_mb": base / 2**20, "peak_rss_anon_above_baseline_mb":
            (peak[0] - base) / 2**20,
        "fit_seconds": fit_s, "predict_seconds": predict_s,
        "train_loss": hist.train_loss, "train_accuracy": train_acc,
        "test_accuracy": float(np.mean(net.predict(Xt) == yt)),
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gigabytes", type=float, default=0.25)
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dir", default="/tmp")
    p.add_argument("--compare", action="store_true", help="also fit with the file in memory")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--verbose", action="store_true", help="progress bars (advance per block)")
    p.add_argument("--role", choices=["memmap", "in-memory"], help=argparse.SUPPRESS)
    p.add_argument("--x", help=argparse.SUPPRESS)
    p.add_argument("--y", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role:
        return train(args, in_memory=args.role == "in-memory")

    n = int(args.gigabytes * 1e9) // (4 * args.features)
    path_x = os.path.join(args.dir, f"fastnn_memmap_X_{os.getpid()}.npy")
    path_y = os.path.join(args.dir, f"fastnn_memmap_y_{os.getpid()}.npy")
    try:
        t0 = time.perf_counter()
        generate(path_x, path_y, n, args.features)
        print(f"wrote {n:,} x {args.features} float32 = {os.path.getsize(path_x) / 1e9:.2f} GB to "
              f"{path_x} in {time.perf_counter() - t0:.1f} s")
        results = []
        for role in ["memmap"] + (["in-memory"] if args.compare else []):
            cmd = [sys.executable, __file__, "--role", role, "--x", path_x, "--y", path_y,
                   "--hidden", str(args.hidden), "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size)]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            cmd += ["--verbose"] if args.verbose else []
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            results.append(res)
            print(f"{res['mode']:>9}: fit {res['fit_seconds']:.1f} s, predict "
                  f"{res['predict_seconds']:.1f} s, peak RssAnon +"
                  f"{res['peak_rss_anon_above_baseline_mb']:.0f} MB above a baseline of "
                  f"{res['baseline_rss_anon_mb']:.0f} MB, train accuracy "
                  f"{res['train_accuracy']:.4f}, test accuracy {res['test_accuracy']:.4f}, "
                  f"loss per epoch {[round(v, 4) for v in res['train_loss']]}")
    finally:
        if not args.keep:
            for path in (path_x, path_y):
                if os.path.exists(path):
                    os.remove(path)


if __name__ == "__main__":
    main()
