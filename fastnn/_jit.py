"""The one place where fastnn's kernels are compiled.

Every kernel in :mod:`fastnn.kernels` is decorated with :func:`jit`, so the whole project shares
one set of compiler options:

* ``cache=True``: the machine code is written next to the source (or to ``NUMBA_CACHE_DIR``) and a
  new process loads it in ~10 ms instead of recompiling (0.3-1 s per kernel).  When no cache
  location is writable (a read-only install) we fall back to in-memory compilation and warn once.
* ``error_model="numpy"``: the default ``"python"`` model inserts division-by-zero checks that
  stop LLVM from vectorising loops.
* :data:`FASTMATH`: every fast-math flag *except* ``nnan`` and ``ninf``: NaN and inf keep their
  IEEE meaning, so finiteness checks are not folded away and NaN in gives NaN out.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from pathlib import Path

import numba
from numba.core import event

from fastnn._hooks import blas_library, stamp_cache

__all__ = ["FASTMATH", "jit", "CacheFallbackWarning", "on_first_compile", "caching"]

#: Fast-math flags used by every kernel: reassociation (vectorised reductions), contraction
#: (FMA), reciprocal and approximate functions, no signed zeros.  Never ``nnan``/``ninf``.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_warned = False  # set when a kernel could not be cached (and the warning was given)


class CacheFallbackWarning(UserWarning):
    """No writable cache location: kernels are compiled in memory in every process."""


def _kernel_sources_stamp():
    """Hash of every file compiled kernel code can come from (this one and fastnn/kernels)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted([root / "_jit.py", *(root / "kernels").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


#: Added to every cached kernel's stamp: the kernel sources, and the BLAS backend, because
#: machine code calls that backend's symbols with its calling convention
#: (:mod:`fastnn.kernels._blas`), so a process that chose another BLAS must not load it.
_SOURCES_STAMP = (_kernel_sources_stamp(), blas_library().name)


def jit(fn=None, *, cache: bool = True, **options):
    """``numba.njit`` with fastnn's options; usable as ``@jit`` or ``@jit(option=value)``.
    No kernel is ``parallel``: fastnn runs no thread pool of its own (docs/architecture.md)."""

    def decorate(f):
        global _warned
        opts = dict(nogil=True, error_model="numpy", fastmath=set(FASTMATH))
        opts.update(options)
        if cache:
            try:
                return stamp_cache(numba.njit(cache=True, **opts)(f), _SOURCES_STAMP)
            except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
                if not _warned:
                    _warned = True
                    warnings.warn(
                        f"fastnn: cannot cache compiled kernels ({exc}); compiling in memory "
                        "instead, so every new process pays the compile cost. Set "
                        "NUMBA_CACHE_DIR to a writable directory to avoid it.",
                        CacheFallbackWarning,
                        stacklevel=2,
                    )
        return numba.njit(cache=False, **opts)(f)

    return decorate if fn is None else decorate(fn)


def caching():
    """Whether the kernels defined so far write their machine code to the disk cache (False
    after a :class:`CacheFallbackWarning`: each process compiles its own)."""
    return not _warned


class _Compiles(event.Listener):
    def __init__(self, started, finished):
        self.started, self.finished = started, finished
        self.fired = False
        self.depth = 0  # nested compiles (a kernel's callees) inside the outermost one
        self.t0 = 0.0

    def on_start(self, ev):
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if self.depth == 0:
            self.t0 = time.perf_counter()
            if not self.fired and getattr(func, "__module__", "").startswith("fastnn."):
                self.fired = True
                self.started()
        self.depth += 1

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0 and self.fired:
            self.finished(time.perf_counter() - self.t0)


@contextlib.contextmanager
def on_first_compile(started, finished=lambda seconds: None):
    """Inside the block, call ``started()`` once, when a fastnn kernel starts compiling, and
    ``finished(seconds)`` at the end of each outermost compilation from then on.

    numba emits its ``numba:compile`` event only for a real compilation, never for a kernel
    loaded from the cache, so ``started`` tells a user why the first run on a machine waits
    and ``finished`` lets a progress bar leave the compile time out of its rate (numba's
    documented event API, :mod:`numba.core.event`)."""
    listener = _Compiles(started, finished)
    with event.install_listener("numba:compile", listener):
        yield listener
