"""Cold start, as a new user meets it: a script (not collected by pytest).

Each row runs in new Python processes:
  1. the first-ever ``fastnn train`` (the README's main job) with an empty ``NUMBA_CACHE_DIR``,
     the whole command;
  2. the first-ever digits ``MLPClassifier((100,)).fit`` in a new process, empty cache
     (the fit alone, timed inside the process, and the whole process);
  3. ``fastnn warmup`` (every kernel, float32 and float64; one worker process per dtype where
     there are two cores), empty cache, and the same with ``--jobs 1`` (one process);
  4. a new process with a warm cache: its first digits fit, loading included, against
     scikit-learn's first fit in a new process (the same estimator parameters).

Run: python benchmarks/coldstart.py [--repeats 5]
Wall times depend on the machine's load (printed with each row); the child's CPU time (user +
sys) is what the wall time would be on an idle machine.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

FIT = """
import time, warnings
t0 = time.perf_counter()
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
from {module} import MLPClassifier
t1 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    MLPClassifier((100,), random_state=0).fit(X / 16, y)
print(time.perf_counter() - t1)
"""


def run(args, env):
    """(wall seconds, child CPU seconds, stdout) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise RuntimeError(f"{args} failed:\n{res.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res.stdout


def fresh_env():
    tmp = tempfile.mkdtemp(prefix="fastnn-cache-")
    return dict(os.environ, NUMBA_CACHE_DIR=tmp)


def load():
    return f"load {os.getloadavg()[0]:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    exe = sys.executable
    fastnn_cli = [exe, "-m", "fastnn"]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")

    rows = []
    for _ in range(args.repeats):
        rows.append(run(fastnn_cli + ["train", "--quiet"], fresh_env())[:2])
    walls, cpus = zip(*rows)
    print(f"first-ever fastnn train (empty cache), whole command: median wall "
          f"{statistics.median(walls):.2f} s (min {min(walls):.2f}), CPU "
          f"{statistics.median(cpus):.2f} s  [{load()}]")

    fits, walls, cpus = [], [], []
    for _ in range(args.repeats):
        wall, cpu, out = run([exe, "-c", FIT.format(module="fastnn")], fresh_env())
        fits.append(float(out.split()[-1]))
        walls.append(wall)
        cpus.append(cpu)
    print(f"first-ever digits MLPClassifier((100,)).fit, new process, empty cache: fit median "
          f"{statistics.median(fits):.2f} s, whole process {statistics.median(walls):.2f} s, "
          f"CPU {statistics.median(cpus):.2f} s  [{load()}]")

    for extra, how in (([], "default jobs"), (["--jobs", "1"], "--jobs 1")):
        wall, cpu, out = run(fastnn_cli + ["warmup"] + extra, fresh_env())
        print(f"fastnn warmup ({how}, both dtypes, empty cache): wall {wall:.1f} s, CPU "
              f"{cpu:.1f} s  [{load()}]\n  {out.splitlines()[0]}")

    env = fresh_env()
    run([exe, "-c", FIT.format(module="fastnn")], env)  # fills the cache
    ours, theirs = [], []
    for _ in range(args.repeats):  # interleaved, one new process each
        ours.append(float(run([exe, "-c", FIT.format(module="fastnn")], env)[2].split()[-1]))
        theirs.append(float(run([exe, "-c", FIT.format(module="sklearn.neural_network")],
                                env)[2].split()[-1]))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"new process, warm cache, first digits fit incl. loading: fastnn {a:.3f} s, "
          f"scikit-learn {b:.3f} s: {b / a:.1f}x  [{load()}]")


if __name__ == "__main__":
    main()
