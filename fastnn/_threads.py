"""Thread control: numba's pool and the BLAS the kernels call, set together.

By default both use every core.  :func:`set_num_threads` sets numba's pool (``prange`` loops)
and, through threadpoolctl, every BLAS loaded in the process (scipy's OpenBLAS, which numba's
``np.dot`` calls, and NumPy's).  The kernels never call BLAS inside ``prange``, so the two pools
never run at the same time and ``n`` threads are never oversubscribed.  Same seed and same
thread count give identical weights.
"""
from __future__ import annotations

import numbers
import os

__all__ = ["set_num_threads", "get_num_threads"]

_limiter = None


def _ensure_blas_loaded():
    # numba's np.dot resolves scipy's BLAS lazily; import it so threadpoolctl sees it.
    import scipy.linalg.cython_blas  # noqa: F401


def set_num_threads(n):
    """Use ``n`` threads (1 <= n <= cores) in fastnn's kernels and in BLAS.  Returns ``n``."""
    import numba
    from threadpoolctl import threadpool_limits

    global _limiter
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    n = min(int(n), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    _ensure_blas_loaded()
    _limiter = threadpool_limits(limits=n, user_api="blas")
    return n


def get_num_threads():
    """Number of threads fastnn's kernels use (numba's pool; BLAS is set to the same)."""
    import numba

    return numba.get_num_threads()


def cpu_count():
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
