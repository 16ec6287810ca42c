"""Every private hook fastnn takes into numba, NumPy and SciPy, each with the reason for it.

* :func:`stamp_cache` -- numba's private cache-file ``_source_stamp``.
* :func:`cache_path` -- numba's private ``_cache_path`` of a cached kernel.
* :func:`blas_library` -- the BLAS the compiled kernels call: the OpenBLAS NumPy itself links
  (found through the private extension module ``numpy._core._multiarray_umath``), or SciPy's
  (through ``scipy.linalg.cython_blas.__pyx_capi__``, whose layout is a Cython detail).
* :func:`cython_blas` -- SciPy's ``cython_blas`` extension loaded without ``scipy.linalg``.

Nothing here imports numba, and NumPy and SciPy are imported only by the functions that need
them, so :mod:`fastnn._threads` can use this module cheaply.
"""
from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

__all__ = ["stamp_cache", "cache_path", "BlasLibrary", "blas_library", "cython_blas", "ENV_BLAS"]


def stamp_cache(dispatcher, stamp):
    """Make ``stamp`` part of the source stamp a cached kernel is validated against.

    Why: numba checks a cached kernel against the stamp of its *own* file only, but a kernel
    inlines code from other files (the exp of ``_math.py``, the BLAS calls of ``_blas.py``) and
    calls the BLAS chosen at import: without this an edit or upgrade of such a file, or another
    BLAS backend, would load stale machine code.  numba has no public hook for it.
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, stamp)
    return dispatcher


def cache_path(dispatcher):
    """The directory numba reads and writes ``dispatcher``'s cache files in, or None.

    Why: numba chooses it when the kernel is defined -- ``NUMBA_CACHE_DIR``, else
    ``__pycache__`` next to the source, else (not writable: a read-only install) a user-wide
    cache directory -- and says which only on this private attribute.
    """
    path = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    return path if isinstance(path, str) else None


# --------------------------------------------------------------------------- BLAS
#: environment variable choosing the BLAS the kernels call: ``numpy``, ``scipy`` or unset
#: (NumPy's when it can be found, else SciPy's); read once, at import
ENV_BLAS = "FASTNN_BLAS"


@dataclass(frozen=True)
class BlasLibrary:
    """Addresses of the BLAS entry points the compiled kernels call.

    ``name`` is ``"numpy-openblas64"`` (CBLAS ``sgemm``/``dgemm`` with 64-bit integers passed by
    value, row-major available) or ``"scipy"`` (Fortran ``sgemm``/``dgemm``, 32-bit integers
    passed by reference, column-major).  ``set_threads(int)`` / ``get_threads() -> int`` are
    OpenBLAS's ``set/get_num_threads`` of the same library; for a BLAS that is not OpenBLAS they
    are stubs (``get`` returns 0, which the kernels read as "leave BLAS alone").
    """

    name: str
    sgemm: int
    dgemm: int
    set_threads: int
    get_threads: int

    def set_num_threads(self, n):
        """Set the library's thread count from Python (the function the kernels call)."""
        ctypes.CFUNCTYPE(None, ctypes.c_int)(self.set_threads)(int(n))

    def get_num_threads(self):
        """The library's thread count (0 when it is not OpenBLAS)."""
        return int(ctypes.CFUNCTYPE(ctypes.c_int)(self.get_threads)())


_library = None
_stubs = []  # keeps the ctypes stubs of a non-OpenBLAS library alive


def blas_library():
    """The :class:`BlasLibrary` of this process, chosen once (see :data:`ENV_BLAS`).

    Raises
    ------
    ValueError
        ``FASTNN_BLAS`` is set to something other than ``numpy`` or ``scipy``.
    RuntimeError
        ``FASTNN_BLAS=numpy`` but NumPy's BLAS does not export the ILP64 CBLAS symbols.
    """
    global _library
    if _library is None:
        choice = os.environ.get(ENV_BLAS, "").strip().lower()
        if choice not in ("", "numpy", "scipy"):
            raise ValueError(f"{ENV_BLAS} must be 'numpy', 'scipy' or unset, got {choice!r}")
        library = None if choice == "scipy" else _numpy_openblas64()
        if library is None and choice == "numpy":
            raise RuntimeError(
                f"{ENV_BLAS}=numpy, but NumPy's BLAS exports no scipy_cblas_sgemm64_/"
                "cblas_sgemm64_ (NumPy is linked to another BLAS); unset it to use SciPy's")
        _library = library if library is not None else _scipy_blas()
    return _library


def _address(lib, name):
    fn = getattr(lib, name, None)
    return None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value


def _numpy_openblas64():
    """NumPy's own OpenBLAS (ILP64 CBLAS), or None.

    Why a private module: ``numpy._core._multiarray_umath`` is the extension that links NumPy's
    BLAS; ``dlsym`` on its handle searches the libraries it depends on, so this finds exactly
    the BLAS NumPy calls -- whatever its file name, wherever it was installed -- and never
    another OpenBLAS loaded in the process.  NumPy >= 2 wheels prefix the symbols with
    ``scipy_``, NumPy 1.x wheels do not; both suffix ILP64 names with ``64_``.
    """
    try:
        import numpy

        umath = getattr(numpy, "_core", None) or numpy.core
        lib = ctypes.CDLL(umath._multiarray_umath.__file__)
    except (AttributeError, ImportError, OSError):  # pragma: no cover - unusual packaging
        return None
    for prefix in ("scipy_", ""):
        names = (f"{prefix}cblas_sgemm64_", f"{prefix}cblas_dgemm64_",
                 f"{prefix}openblas_set_num_threads64_", f"{prefix}openblas_get_num_threads64_")
        found = [_address(lib, name) for name in names]
        if all(found):
            return BlasLibrary("numpy-openblas64", *found)
    return None


def _scipy_blas():
    """SciPy's Fortran BLAS (LP64), from ``cython_blas``'s exported function pointers.

    Why ``__pyx_capi__``: it is how Cython publishes ``cdef`` functions to other Cython modules;
    SciPy documents the functions, and their pointers are the only way to call them without a
    compiler.  The OpenBLAS thread functions come from the library ``cython_blas`` links.
    """
    module = cython_blas()
    capi = module.__pyx_capi__
    sgemm, dgemm = (_capsule_address(capi[name]) for name in ("sgemm", "dgemm"))
    try:
        lib = ctypes.CDLL(module.__file__)
    except OSError:  # pragma: no cover - unusual packaging
        lib = None
    set_threads = get_threads = None
    for affix in (("scipy_", ""), ("", ""), ("scipy_", "64_"), ("", "64_")):
        if lib is not None and not (set_threads and get_threads):
            set_threads = _address(lib, "{}openblas_set_num_threads{}".format(*affix))
            get_threads = _address(lib, "{}openblas_get_num_threads{}".format(*affix))
    if not (set_threads and get_threads):  # pragma: no cover - SciPy linked to another BLAS
        set_stub = ctypes.CFUNCTYPE(None, ctypes.c_int)(lambda n: None)
        get_stub = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 0)
        _stubs.extend([set_stub, get_stub])
        set_threads = ctypes.cast(set_stub, ctypes.c_void_p).value
        get_threads = ctypes.cast(get_stub, ctypes.c_void_p).value
    return BlasLibrary("scipy", sgemm, dgemm, set_threads, get_threads)


def _capsule_address(capsule):
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


_CYTHON_BLAS = "scipy.linalg.cython_blas"


def cython_blas():
    """The ``scipy.linalg.cython_blas`` extension module (loaded once).

    Why not ``import scipy.linalg``: it costs ~0.2 s of start-up (it pulls in ``numpy.f2py`` and
    more); loading the one extension module directly costs ~0.01 s, which matters for the cold
    start of a short script.  The module is registered under its usual name, so a later
    ``import scipy.linalg`` reuses it.
    """
    module = sys.modules.get(_CYTHON_BLAS)
    if module is not None:
        return module
    try:
        import glob
        import importlib.machinery
        import importlib.util

        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            for path in glob.glob(os.path.join(folder, "cython_blas" + suffix)):
                loader = importlib.machinery.ExtensionFileLoader(_CYTHON_BLAS, path)
                spec = importlib.util.spec_from_file_location(_CYTHON_BLAS, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                sys.modules[_CYTHON_BLAS] = module
                return module
    except Exception:  # pragma: no cover - unusual packaging: take the ordinary route
        pass
    from scipy.linalg import cython_blas as module

    return module
