"""Two threads in step inside one compiled call: atomics, a spin barrier, a start handshake.

:mod:`fastnn.kernels.epoch_parallel` runs one epoch on two cores as two iterations of a
``prange(2)`` that meet twice per minibatch.  numba has no thread primitives, so this module
gives the few it needs, as LLVM atomics on ``int64`` cells:

* :func:`load` (acquire), :func:`store` (release), :func:`cas` (compare-and-swap, returns the old
  value): everything a thread wrote before a release store is visible to a thread that
  acquire-loads the stored value.
* :func:`pause`: the x86 spin-wait hint (nothing elsewhere); :func:`yield_cpu`: ``sched_yield``
  where the C library has it, so a thread that waits long gives its core away (on a busy
  machine the partner may be waiting for that core).
* :func:`arrive_and_wait`: a barrier between the two threads of a ``flags`` array.
* :func:`handshake`: both threads agree that they run at the same time, or both give up.  A
  ``prange(2)`` runs its iterations on two threads under numba's ``omp`` and ``workqueue``
  layers, but nothing guarantees it (``tbb`` may run both on one thread, one after the other):
  a barrier would then wait forever.  The handshake turns that into a clean "not parallel"
  answer after :data:`START_TIMEOUT_SPINS` waits.

``flags`` layout: ``int64[3 * LINE]`` — cell ``t * LINE`` is thread ``t``'s arrival counter, cell
``2 * LINE`` the handshake decision; cells are ``LINE`` = 16 int64 (128 bytes: a cache line and
its prefetched neighbour) apart, so the two threads never write the same line.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn._jit import jit

__all__ = ["LINE", "GO", "ABORT", "load", "store", "cas", "pause", "yield_cpu", "arrive", "wait",
           "arrive_and_wait", "handshake"]

LINE = 16
GO = 1
ABORT = 2
#: spin rounds before a waiting thread starts yielding its core
SPINS_BEFORE_YIELD = 1 << 12
#: yields a thread waits at the start for its partner before deciding that the two iterations
#: do not run at the same time (~0.1-1 s; paid once, then the caller stops trying)
START_TIMEOUT_SPINS = 1 << 18

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _yield_address():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return ctypes.cast(libc.sched_yield, ctypes.c_void_p).value
    except (OSError, AttributeError):  # pragma: no cover - no sched_yield (Windows)
        return None


_YIELD = _yield_address()
if _YIELD is not None:
    llvm.add_symbol("fastnn_sched_yield", _YIELD)


def _cell(context, builder, sig, args):
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, value=args[0])
    return cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)


@intrinsic
def load(typingctx, arr, i):
    """``arr[i]`` read with acquire ordering (``arr`` : int64[:])."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_cell(context, builder, sig, args), "acquire", 8)

    return types.int64(arr, i), codegen


@intrinsic
def store(typingctx, arr, i, value):
    """``arr[i] = value`` with release ordering."""
    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, _cell(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()

    return types.none(arr, i, value), codegen


@intrinsic
def cas(typingctx, arr, i, expected, new):
    """Atomically ``if arr[i] == expected: arr[i] = new``; returns the value found."""
    def codegen(context, builder, sig, args):
        exp = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(_cell(context, builder, sig, args), exp, new, "acq_rel", "acquire")
        return builder.extract_value(pair, 0)

    return types.int64(arr, i, expected, new), codegen


def _emit_pause(builder):
    """The x86 ``pause`` instruction (nothing elsewhere)."""
    if _X86:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse2.pause")
        builder.call(fn, [])


@intrinsic
def pause(typingctx):
    """The x86 ``pause`` spin-wait hint (no-op elsewhere)."""
    def codegen(context, builder, sig, args):
        _emit_pause(builder)
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def yield_cpu(typingctx):
    """``sched_yield()`` (a ``pause`` where the C library has none)."""
    def codegen(context, builder, sig, args):
        if _YIELD is not None:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "fastnn_sched_yield")
            builder.call(fn, [])
        else:  # pragma: no cover
            _emit_pause(builder)
        return context.get_dummy_value()

    return types.none(), codegen


@jit
def arrive(flags, me, k):
    """Thread ``me`` reached barrier number ``k`` (1, 2, ... in order); its writes before are
    visible to the partner once the partner's :func:`wait` for ``k`` returns."""
    store(flags, me * LINE, k)


@jit
def wait(flags, me, k):
    """Until the partner of thread ``me`` has reached barrier ``k`` (work done between
    :func:`arrive` and :func:`wait` overlaps the partner's way to the barrier)."""
    other = (1 - me) * LINE
    spins = 0
    while load(flags, other) < k:
        if spins < SPINS_BEFORE_YIELD:
            pause()
            spins += 1
        else:
            yield_cpu()


@jit
def arrive_and_wait(flags, me, k):
    """Barrier number ``k`` (1, 2, ... in order) between threads ``me`` and ``1 - me``."""
    arrive(flags, me, k)
    wait(flags, me, k)


@jit
def handshake(flags, me):
    """True when both threads are running: then they continue in step (the arrival counters
    are at 0 for the first :func:`arrive_and_wait`).  False for both when one of them did not
    arrive within :data:`START_TIMEOUT_SPINS` waits of the other (run one after the other)."""
    other = (1 - me) * LINE
    decision = 2 * LINE
    store(flags, me * LINE, -1)
    spins = 0
    while load(flags, decision) == 0:
        if load(flags, other) == -1:
            cas(flags, decision, 0, GO)
        elif spins < START_TIMEOUT_SPINS:
            if spins < SPINS_BEFORE_YIELD:
                pause()
            else:
                yield_cpu()
            spins += 1
        else:
            cas(flags, decision, 0, ABORT)
    go = load(flags, decision) == GO
    if go:  # the partner saw -1 from us, or decided; reset our counter for the barriers ...
        store(flags, me * LINE, 0)
        # ... and wait until the partner has left -1 too (0, or already 1 at the first barrier)
        while load(flags, other) == -1:
            pause()
    return go
