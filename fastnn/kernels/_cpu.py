"""Per-thread CPU state the epoch kernel sets for its duration, callable from compiled code.

* :func:`blas_threads` / :func:`set_blas_threads`: the BLAS thread count, re-exported from
  :mod:`fastnn.kernels._blas`, which binds them to the same library as its GEMMs.
* :func:`fp_mode` / :func:`set_fp_mode`: the x86 MXCSR register (no-ops elsewhere); with
  :data:`FTZ_DAZ` set, subnormal floats are flushed to zero on the calling thread.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn.kernels._blas import blas_threads, set_blas_threads

__all__ = ["FTZ_DAZ", "blas_threads", "set_blas_threads", "fp_mode", "set_fp_mode"]

#: MXCSR bits "flush to zero" and "denormals are zero" (x86)
FTZ_DAZ = 0x8040
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@intrinsic
def fp_mode(typingctx):
    """The x86 MXCSR register (0 elsewhere)."""
    def codegen(context, builder, sig, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        if not _X86:
            return ir.Constant(i64, 0)
        slot = cgutils.alloca_once(builder, i32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()]),
            "llvm.x86.sse.stmxcsr")
        builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return builder.zext(builder.load(slot), i64)

    return types.int64(), codegen


@intrinsic
def set_fp_mode(typingctx, value):
    """Load the x86 MXCSR register (no-op elsewhere)."""
    def codegen(context, builder, sig, args):
        if _X86:
            i32 = ir.IntType(32)
            slot = cgutils.alloca_once_value(builder, builder.trunc(args[0], i32))
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()]),
                "llvm.x86.sse.ldmxcsr")
            builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return context.get_dummy_value()

    return types.none(types.int64), codegen
