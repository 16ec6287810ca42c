"""Sides timed round by round in one process, shared by the interleaved benchmarks.

pytest-benchmark runs the tests of a group one after another, so a group's sides never see each
other's after-effects (a BLAS pool still spinning, caches, frequency) and the machine's load
drifts between them.  :func:`interleave` runs every side once per round instead, rotating which
side goes first, and :func:`report` turns the per-round times into medians and ratios of
medians, the figures the benchmarks record in ``benchmark.extra_info`` and print as a table.
"""
from __future__ import annotations

import os
import statistics
import time

__all__ = ["ENV_VAR", "DEFAULT_THREADS", "bench_threads", "pin_threads", "load_average",
           "interleave", "report", "timed"]

ENV_VAR = "FASTNN_BENCH_THREADS"
DEFAULT_THREADS = 2


def bench_threads():
    """Thread count of a benchmark run: ``FASTNN_BENCH_THREADS`` (default 2), capped at
    numba's pool size.  Raises ValueError for a value that is not an integer >= 1."""
    import numba

    raw = os.environ.get(ENV_VAR, str(DEFAULT_THREADS))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV_VAR} must be an integer >= 1, got {raw!r}")
    return min(n, numba.config.NUMBA_NUM_THREADS)


def pin_threads():
    """For a benchmark run as a script: pin fastnn (numba + the BLAS its kernels call) and every
    BLAS/OpenMP pool loaded so far (NumPy's too) to :func:`bench_threads` threads, as
    benchmarks/conftest.py does for a pytest session.  Returns the thread count; the limits
    hold until the process exits."""
    from threadpoolctl import threadpool_limits

    import fastnn

    n = fastnn.set_num_threads(bench_threads())
    pin_threads.limiter = threadpool_limits(limits=n)  # kept alive: the limits stay in force
    return n


def load_average():
    """The machine's 1-minute load average (the machine may be shared: printed with figures)."""
    return os.getloadavg()[0]


def timed(fn, *args, **kwargs):
    """Seconds that ``fn(*args, **kwargs)`` takes."""
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def interleave(sides, rounds, warmup=1):
    """Run every side once per round, ``rounds`` times, the first side rotating each round.

    Parameters
    ----------
    sides : dict name -> (fn, steps) — ``fn()`` does one side's work and returns the seconds
        of the part to time (so per-round setup stays out of it); ``steps`` divides them (the
        figures are per step).
    rounds : int >= 1; warmup : untimed rounds run first.

    Returns
    -------
    dict name -> list of seconds per step, one entry per round.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name][0]()
    times = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, steps = sides[name]
            times[name].append(fn() / steps)
    return times


def report(title, times, ratios, unit=1e-6, unit_name="us", extra_info=None, note="",
           quiet=False):
    """Medians and ratios of medians; prints a small table and returns the figures.

    Parameters
    ----------
    title : str — printed above the table.
    times : output of :func:`interleave`.
    ratios : list of (label, numerator side, denominator side, target, "<=" or ">="); a
        target of None reports the ratio alone.
    unit, unit_name : seconds per printed unit and its name (keys ``median_<unit_name>``).
    extra_info : dict or None — updated with the figures (``benchmark.extra_info``).
    note : str — printed under the table; quiet : no table (an untimed check run).
    """
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    rounds = len(next(iter(times.values())))
    load = load_average()
    lines = [f"{title}  ({rounds} interleaved rounds, load average {load:.2f})"]
    width = max(len(k) for k in times) + 2
    lines.append(f"  {'side':<{width}}{'median ' + unit_name:>14}{'min ' + unit_name:>14}")
    for k in times:
        lines.append(f"  {k:<{width}}{med[k] / unit:>14.4g}{low[k] / unit:>14.4g}")
    figures = {}
    for label, num, den, target, sense in ratios:
        value = med[num] / med[den]
        if target is None:  # reported, no target
            figures[label] = {"ratio": value}
            lines.append(f"  {label} = {value:.3f}")
            continue
        met = value <= target if sense == "<=" else value >= target
        figures[label] = {"ratio": value, "target": f"{sense} {target}", "met": met}
        lines.append(f"  {label} = {value:.3f}  (target {sense} {target}: "
                     f"{'met' if met else 'NOT met'})")
    if note:
        lines.append(f"  {note}")
    if not quiet:
        print("\n" + "\n".join(lines), flush=True)
    result = {f"median_{unit_name}": {k: v / unit for k, v in med.items()},
              f"min_{unit_name}": {k: v / unit for k, v in low.items()},
              "ratios": figures, "rounds": rounds, "load_average": load}
    if extra_info is not None:
        extra_info.update(result)
    return result
