"""Thread control: the BLAS the kernels call (and numba's pool, for any user code), set together.

By default BLAS uses every core.  The kernels call the OpenBLAS NumPy itself uses
(:func:`fastnn.kernels._blas.backend`), so fastnn and the user's NumPy code share one BLAS thread
pool.  :func:`set_num_threads` sets, through threadpoolctl, every BLAS loaded in the process
(NumPy's, and SciPy's if it is loaded), and numba's pool (fastnn's kernels run no parallel
region of their own).  A training epoch runs on the calling thread, with BLAS threaded inside
large products only (:mod:`fastnn._engine`).  Same seed and same thread count give identical
weights.
"""
from __future__ import annotations

import numbers
import os

__all__ = ["set_num_threads", "get_num_threads"]


def set_num_threads(n):
    """Use ``n`` threads (1 <= n <= cores) in fastnn's kernels and in BLAS.  Returns ``n``."""
    import numba
    from threadpoolctl import threadpool_limits

    from fastnn._hooks import blas_library

    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    n = min(int(n), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    library = blas_library()  # loads SciPy's BLAS when the kernels use it, so threadpoolctl sees it
    threadpool_limits(limits=n, user_api="blas")
    # threadpoolctl lets only the first Python thread that set an OpenBLAS limit (without a
    # `with` block) set it again; the pool the kernels use is set directly, from any thread.
    library.set_num_threads(n)
    return n


def get_num_threads():
    """Number of BLAS threads the kernels' products may use (the pool :func:`set_num_threads`
    sets; numba's pool size where the BLAS is not OpenBLAS and cannot say)."""
    import numba

    from fastnn._hooks import blas_library

    return blas_library().get_num_threads() or numba.get_num_threads()


def cpu_count():
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
