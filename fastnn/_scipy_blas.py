"""SciPy's ``cython_blas`` module, loaded without importing ``scipy.linalg``.

The kernels call SciPy's BLAS (the one Numba's ``np.dot`` uses) through the function pointers
that ``scipy.linalg.cython_blas`` exports.  ``import scipy.linalg`` costs ~0.2 s of start-up (it
pulls in ``numpy.f2py`` and more); loading the one extension module directly costs ~0.01 s,
which matters for the cold start of a short script.  The module is registered under its usual
name, so a later ``import scipy.linalg`` reuses it.
"""
from __future__ import annotations

import sys

_NAME = "scipy.linalg.cython_blas"


def cython_blas():
    """The ``scipy.linalg.cython_blas`` extension module (loaded once)."""
    module = sys.modules.get(_NAME)
    if module is not None:
        return module
    try:
        import glob
        import importlib.machinery
        import importlib.util
        import os

        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            for path in glob.glob(os.path.join(folder, "cython_blas" + suffix)):
                loader = importlib.machinery.ExtensionFileLoader(_NAME, path)
                spec = importlib.util.spec_from_file_location(_NAME, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                sys.modules[_NAME] = module
                return module
    except Exception:  # pragma: no cover - unusual packaging: take the ordinary route
        pass
    from scipy.linalg import cython_blas as module

    return module
