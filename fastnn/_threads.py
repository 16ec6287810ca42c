"""Thread control: numba's pool and the BLAS the kernels call, set together.

By default BLAS uses every core.  :func:`set_num_threads` sets, through threadpoolctl, every
BLAS loaded in the process (scipy's OpenBLAS, which numba's
``np.dot`` calls, and NumPy's).  A training epoch runs on the calling thread, with BLAS threaded
inside large products only (:mod:`fastnn._engine`); a threaded BLAS is never called inside
``prange``.  Same seed and same thread count give identical weights.
"""
from __future__ import annotations

import numbers
import os

__all__ = ["set_num_threads", "get_num_threads"]

_limiter = None


def _ensure_blas_loaded():
    # numba's np.dot resolves scipy's BLAS lazily; load it so threadpoolctl sees it.
    from fastnn._scipy_blas import cython_blas

    cython_blas()


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


# --------------------------------------------------------------------------- BLAS threads from kernels
_BLAS_SET_NAMES = ("scipy_openblas_set_num_threads", "openblas_set_num_threads",
                   "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_BLAS_GET_NAMES = ("scipy_openblas_get_num_threads", "openblas_get_num_threads",
                   "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")
_stubs = []  # keeps the fallback ctypes callbacks alive


def blas_thread_functions():
    """Addresses ``(set_num_threads(int), get_num_threads() -> int)`` of the BLAS the kernels
    call (SciPy's OpenBLAS, found through ``scipy.linalg.cython_blas``'s dependencies).

    Setting the count is a store of one global int in OpenBLAS when it does not exceed the
    threads already created, so the epoch kernel can cap BLAS at one thread around a small
    product and restore it (:mod:`fastnn.kernels.engine`).  Without OpenBLAS (another BLAS
    vendor) the fallbacks make ``get`` return 0, which the kernels read as "leave BLAS alone".
    """
    import ctypes

    from fastnn._scipy_blas import cython_blas

    found = {}
    try:
        lib = ctypes.CDLL(cython_blas().__file__)
    except OSError:  # pragma: no cover - unusual packaging
        lib = None
    for key, names in (("set", _BLAS_SET_NAMES), ("get", _BLAS_GET_NAMES)):
        for name in names:
            fn = getattr(lib, name, None) if lib is not None else None
            if fn is not None:
                found[key] = ctypes.cast(fn, ctypes.c_void_p).value
                break
    if len(found) < 2:  # pragma: no cover - not OpenBLAS
        set_stub = ctypes.CFUNCTYPE(None, ctypes.c_int)(lambda n: None)
        get_stub = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 0)
        _stubs.extend([set_stub, get_stub])
        found = {"set": ctypes.cast(set_stub, ctypes.c_void_p).value,
                 "get": ctypes.cast(get_stub, ctypes.c_void_p).value}
    return found["set"], found["get"]
