"""Cold start of a fresh Python process (issue 6): a script, not collected by pytest.

Measures, each in new subprocesses:
  1. the first-ever compile: ``fastnn.warmup()`` (every kernel, float32 and float64) with an
     empty ``NUMBA_CACHE_DIR`` (``--skip-compile`` to skip it: it takes a minute or two);
  2. the warm-cache start-up: ``python -c "import fastnn; <fit a 2-3-2 net for one epoch>"``
     repeated ``--repeats`` times; prints the median wall time (target <= 1.5 s) and the median
     CPU time (user + sys of the child), which is what the wall time would be on an idle machine;
  3. for comparison, the same for ``python -c pass``, ``import numpy`` and ``import numba``.

Run: python benchmarks/coldstart.py [--repeats 7] [--skip-compile] [--cache-dir DIR]
The wall times depend on the machine's load (printed): compare CPU times when it is busy.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

FIT_232 = (
    "import fastnn, numpy as np; "
    "X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32); y = np.array([0, 1, 1, 0]); "
    "net = fastnn.Network([2, 3, 2], activation='logistic', seed=0); "
    "fastnn.fit(net, X, y, epochs=1, batch_size=4, optimizer=fastnn.SGD(0.1))"
)
BASELINES = {"python -c pass": "pass", "import numpy": "import numpy",
             "import numba": "import numba"}


def run(code, env):
    """(wall seconds, child CPU seconds) of ``python -c code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise RuntimeError(f"python -c {code!r} failed:\n{res.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res.stdout


def repeat(name, code, env, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu, _ = run(code, env)
        walls.append(wall)
        cpus.append(cpu)
    w, c = statistics.median(walls), statistics.median(cpus)
    print(f"{name:<34} median wall {w:6.3f} s   median CPU {c:6.3f} s   "
          f"(min wall {min(walls):.3f}, {repeats} runs)")
    return w, c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-compile", action="store_true",
                        help="do not measure the first-ever compile (use the existing cache)")
    parser.add_argument("--cache-dir", default=None,
                        help="NUMBA_CACHE_DIR to use (default: a fresh temporary directory, "
                             "or numba's default with --skip-compile)")
    args = parser.parse_args()
    env = dict(os.environ)
    tmp = None
    if args.cache_dir:
        env["NUMBA_CACHE_DIR"] = args.cache_dir
    elif not args.skip_compile:
        tmp = tempfile.TemporaryDirectory(prefix="fastnn-cache-")
        env["NUMBA_CACHE_DIR"] = tmp.name
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores, NUMBA_CACHE_DIR={env.get('NUMBA_CACHE_DIR', '(default)')}")
    try:
        if not args.skip_compile:
            wall, cpu, out = run("import fastnn; print(fastnn.warmup().summary())", env)
            print(f"first-ever compile (fastnn.warmup, both dtypes): wall {wall:.1f} s, "
                  f"CPU {cpu:.1f} s\n  {out.strip()}")
        else:
            run("import fastnn; fastnn.warmup()", env)  # make sure the cache is warm
        wall, cpu, out = run("import fastnn; print(fastnn.warmup().summary())", env)
        print(f"fastnn.warmup() with a warm cache: wall {wall:.2f} s, CPU {cpu:.2f} s\n"
              f"  {out.strip()}")
        for name, code in BASELINES.items():
            repeat(name, code, env, args.repeats)
        w, c = repeat("import fastnn + fit 2-3-2 one epoch", FIT_232, env, args.repeats)
        print(f"warm-cache start-up: median wall {w:.3f} s (target <= 1.5 s), "
              f"median CPU {c:.3f} s")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
