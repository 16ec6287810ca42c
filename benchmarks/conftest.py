"""Session setup shared by every ``benchmarks/bench_*.py``.

* Pins fastnn's kernels (numba's pool) and every BLAS/OpenMP pool (threadpoolctl) to the same
  number of threads for the whole session, so fastnn and its baseline run on equal terms:
  2 by default, ``FASTNN_BENCH_THREADS=n`` to change it (capped at numba's pool size).
* Records what the timings depend on in the benchmark ``machine_info`` (``--benchmark-json``,
  ``--benchmark-save``): numba's threading layer, the thread count, numba/NumPy versions and
  ``threadpoolctl.threadpool_info()`` as it was inside the pinned session.

Compare fastnn and its baseline within one run (same group), as ratios of medians: the machine
may be shared and absolute timings drift.
"""
from __future__ import annotations

import os

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from _interleave import ENV_VAR, bench_threads as _bench_threads  # benchmarks/ is on sys.path

_session = {}  # filled by the pinned_threads fixture, read by the machine-info hook


def bench_threads():
    """Thread count for this benchmark session (``FASTNN_BENCH_THREADS``, default 2)."""
    try:
        return _bench_threads()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    """Every benchmark runs with numba and all native thread pools limited to ``n`` threads."""
    from fastnn import set_num_threads  # numba's pool + the BLAS fastnn's kernels call

    n = bench_threads()
    previous = numba.get_num_threads()
    set_num_threads(n)
    with threadpool_limits(limits=n):  # every BLAS/OpenMP pool loaded so far (NumPy's too)
        _session.update(threads=n, threadpool_info=threadpool_info())
        yield n
    numba.set_num_threads(previous)


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        return f"not initialised (configured: {numba.config.THREADING_LAYER})"


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastnn"] = {
        "threads": _session.get("threads", bench_threads()),
        "threads_env": os.environ.get(ENV_VAR),
        "numba_threading_layer": _threading_layer(),
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_version": numba.__version__,
        "numpy_version": np.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "threadpool_info": _session.get("threadpool_info", threadpool_info()),
    }
