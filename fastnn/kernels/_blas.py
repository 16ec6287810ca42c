"""Direct BLAS ``?gemm`` and BLAS thread count from compiled code, through NumPy's own BLAS.

:func:`gemm_flat` (1-D buffers, element offsets, row strides) and :func:`gemm` (2-D arrays)
compute

    C = alpha * op(A) @ op(B) + beta * C,   op(X) = X or Xᵀ,

in place with the transpose flags, ``alpha`` and ``beta`` of BLAS, so a caller can accumulate
into ``C`` (``beta=1``) or fold a scale into the product -- e.g. an SGD step
``w -= lr * a_prevᵀ δ`` done by the weight-gradient GEMM itself.

Which BLAS (:func:`backend`): the OpenBLAS NumPy itself links (``"numpy-openblas64"``: NumPy's
wheels bundle ``libscipy_openblas64_``, whose ``scipy_cblas_sgemm64_``/``dgemm64_`` take
row-major operands and 64-bit integers by value), so fastnn and the user's NumPy share one
OpenBLAS thread pool: two pools, each spinning for a while after a call, would fight over the
same cores.  Where NumPy's CBLAS cannot be found (NumPy linked to MKL or Accelerate) or
``FASTNN_BLAS=scipy`` is set, SciPy's Fortran ``sgemm``/``dgemm`` (``"scipy"``: column-major,
32-bit integers by reference) are called with the operands swapped, ``Cᵀ = op(B)ᵀ op(A)ᵀ``.
The choice is made once, at import (:func:`fastnn._hooks.blas_library`).

How: the functions' addresses are registered with LLVM under the fixed names ``fastnn_sgemm``,
``fastnn_dgemm``, ``fastnn_blas_set_threads`` and ``fastnn_blas_get_threads``, and compiled code
calls those *names* (as Numba's own BLAS bindings do), so kernels stay cacheable: the address
is resolved again in every process.  The calling convention is fixed at compile time, so the
backend's name is part of every cached kernel's stamp (:data:`fastnn._jit._SOURCES_STAMP`).
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn._hooks import blas_library
from fastnn._jit import jit

__all__ = ["backend", "gemm", "gemm_flat", "blas_threads", "set_blas_threads"]

_LIBRARY = blas_library()
_CBLAS = _LIBRARY.name == "numpy-openblas64"
llvm.add_symbol("fastnn_sgemm", _LIBRARY.sgemm)
llvm.add_symbol("fastnn_dgemm", _LIBRARY.dgemm)
llvm.add_symbol("fastnn_blas_set_threads", _LIBRARY.set_threads)
llvm.add_symbol("fastnn_blas_get_threads", _LIBRARY.get_threads)

# CBLAS enum values (cblas.h)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def backend():
    """Name of the BLAS the kernels call: ``"numpy-openblas64"`` or ``"scipy"``.

    ``"numpy-openblas64"``: the OpenBLAS bundled with NumPy (one thread pool for fastnn and
    NumPy).  ``"scipy"``: SciPy's BLAS, used when NumPy's exports no ILP64 CBLAS or when the
    environment variable ``FASTNN_BLAS=scipy`` was set at import.
    """
    return _LIBRARY.name


@intrinsic
def _xgemm(typingctx, transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc):
    """One row-major ``?gemm`` call on ``a[ao:]``, ``b[bo:]``, ``c[co:]`` (see :func:`gemm_flat`)."""
    if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
            and isinstance(b, types.Array) and isinstance(c, types.Array)
            and b.dtype == a.dtype and c.dtype == a.dtype):
        return None
    dtype = a.dtype
    symbol = "fastnn_sgemm" if dtype == types.float32 else "fastnn_dgemm"

    def codegen(context, builder, sig, args):
        st = sig.args
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        fl = context.get_value_type(dtype)
        ta, tb = (context.cast(builder, args[i], st[i], types.boolean) for i in (0, 1))
        m_, n_, k_, lda_, ldb_, ldc_ = (context.cast(builder, args[i], st[i], types.int64)
                                        for i in (2, 3, 4, 8, 11, 15))
        alpha_, beta_ = (context.cast(builder, args[i], st[i], dtype) for i in (5, 12))

        def pointer(i):  # data pointer of array argument i, advanced by the offset after it
            data = context.make_array(st[i])(context, builder, args[i]).data
            return builder.gep(data, [context.cast(builder, args[i + 1], st[i + 1], types.int64)])

        a_, b_, c_ = pointer(6), pointer(9), pointer(13)
        if _CBLAS:  # cblas_?gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            def trans(flag):
                return builder.select(flag, ir.Constant(i32, _TRANS), ir.Constant(i32, _NO_TRANS))

            pf = fl.as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, fl, pf, i64, pf,
                                                   i64, fl, pf, i64])
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
            builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), trans(ta), trans(tb), m_, n_, k_,
                              alpha_, a_, lda_, b_, ldb_, beta_, c_, ldc_])
        else:  # Fortran ?gemm, all by reference; column-major, so Cᵀ = op(B)ᵀ op(A)ᵀ is computed
            def ref(value):
                return cgutils.alloca_once_value(builder, value)

            def int32(value):
                return ref(builder.trunc(value, i32))

            def trans(flag):
                return ref(builder.select(flag, ir.Constant(i8, ord("T")), ir.Constant(i8, ord("N"))))

            p8, p32, pf = i8.as_pointer(), i32.as_pointer(), fl.as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [p8, p8, p32, p32, p32, pf, pf, p32, pf, p32,
                                                   pf, pf, p32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
            builder.call(fn, [trans(tb), trans(ta), int32(n_), int32(m_), int32(k_), ref(alpha_),
                              b_, int32(ldb_), a_, int32(lda_), ref(beta_), c_, int32(ldc_)])
        return context.get_dummy_value()

    sig = types.none(transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc)
    return sig, codegen


#: ``op(A) = Aᵀ`` and ``op(B) = Bᵀ`` together are computed one column of C at a time with NumPy's
#: OpenBLAS: its ``sgemm`` with both operands transposed returned wrong results (elements of C
#: left unwritten) now and then when two threads called it at the same time -- NumPy 2.4's
#: OpenBLAS 0.3.31, small products, reproduced from plain C with two pthreads, never with
#: SciPy's 0.3.30 nor for the other three transpose cases.  A column costs one more BLAS call.
_TT_BY_COLUMNS = _CBLAS

#: products of more than SPLIT_MIN and at most SPLIT_MAX multiply-adds are computed in row chunks
#: of <= SPLIT_MIN: OpenBLAS (SkylakeX) runs products up to ~100^3 with its small-matrix kernel,
#: without packing the operands.  Measured (float32, one thread): 200x64 @ 64x100 24 -> 18 us in
#: two chunks; the weight gradient 64x200 @ 200x100 27 -> 17 us.  Above SPLIT_MAX packing (and a
#: second thread) pay off.  Chunking the reduction dimension changes float rounding, not results
#: beyond it.
SPLIT_MIN = 1_000_000
SPLIT_MAX = 1 << 22


@jit
def gemm_flat(transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc):
    """``C = alpha * op(A) @ op(B) + beta * C`` in place, on flat row-major buffers.

    Parameters
    ----------
    transa, transb : bool
        ``op(A) = Aᵀ`` if ``transa`` else ``A`` (same for ``B``); no copy is made.
    m, n, k : int
        ``op(A)`` is ``m x k``, ``op(B)`` is ``k x n``, ``C`` is ``m x n``; any may be 0.
    alpha, beta : float
        Scales; ``beta = 0`` ignores the old ``C`` (even NaN), ``beta = 1`` accumulates.
    a : float32[:] or float64[:], contiguous
        ``A`` (``m x k``, or ``k x m`` when ``transa``) stored row-major from ``a[ao]``, row
        ``i`` at ``a[ao + i * lda]``.
    ao, lda : int
        Element offset of ``A`` in ``a`` and its row stride (``lda >=`` its row length).
    b, bo, ldb : float[:], int, int
        ``B`` (``k x n``, or ``n x k`` when ``transb``), the same way; same dtype.
    c, co, ldc : float[:], int, int
        ``C`` (``m x n``) the same way; updated in place, nothing else of ``c`` is written.  Must
        not overlap ``A`` or ``B``.

    Nothing is checked (a kernel trusts its caller): the blocks must lie inside the buffers.
    A stride of 0 is read as 1 (BLAS requires ``ld >= 1``; it only occurs for empty rows).
    """
    if m == 0 or n == 0:
        return
    lda, ldb, ldc = max(lda, 1), max(ldb, 1), max(ldc, 1)
    if transa and transb and _TT_BY_COLUMNS:
        # column j of C is Aᵀ (row j of B)ᵀ: a product with op(B) = k x 1, stride 1
        for j in range(n):
            _xgemm(True, False, m, 1, k, alpha, a, ao, lda, b, bo + j * ldb, 1, beta, c, co + j, ldc)
        return
    mnk = m * n * k
    if mnk <= SPLIT_MIN or mnk > SPLIT_MAX or (transa and transb):
        _xgemm(transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc)
        return
    parts = (mnk + SPLIT_MIN - 1) // SPLIT_MIN
    if not transa:  # rows of C come from rows of A: independent products
        step = (m + parts - 1) // parts
        for i in range(0, m, step):
            _xgemm(False, transb, min(step, m - i), n, k, alpha, a, ao + i * lda, lda,
                   b, bo, ldb, beta, c, co + i * ldc, ldc)
    else:  # C = alpha Aᵀ B + beta C sums over the rows of A and B: accumulate chunk by chunk
        step = (k + parts - 1) // parts
        for i in range(0, k, step):
            _xgemm(True, False, m, n, min(step, k - i), alpha, a, ao + i * lda, lda,
                   b, bo + i * ldb, ldb, beta if i == 0 else 1.0, c, co, ldc)


@jit
def gemm(transa, transb, alpha, a, b, beta, c):
    """``c = alpha * op(a) @ op(b) + beta * c`` in place (:func:`gemm_flat` on 2-D arrays).

    Parameters
    ----------
    transa, transb : bool
        ``op(a) = aᵀ`` if ``transa`` else ``a`` (same for ``b``); no copy is made.
    alpha, beta : float
        Scales; ``beta = 0`` ignores the old ``c`` (even NaN), ``beta = 1`` accumulates.
    a : float32[p, q] or float64[p, q], C-contiguous
        ``op(a)`` is ``m x k``.
    b : float[r, s], C-contiguous, same dtype
        ``op(b)`` is ``k x n``.
    c : float[m, n], C-contiguous, same dtype
        Updated in place; must not overlap ``a`` or ``b``.

    Shapes are not checked (a kernel trusts its caller); ``m``, ``n`` or ``k`` may be 0.
    """
    m, n = c.shape
    k = a.shape[0] if transa else a.shape[1]
    # the arrays go in as they are: gemm_flat only takes their data pointers (no reshape)
    gemm_flat(transa, transb, m, n, k, alpha, a, 0, a.shape[1], b, 0, b.shape[1], beta, c, 0, n)


# --------------------------------------------------------------------------- thread count
@intrinsic
def blas_threads(typingctx):
    """BLAS thread count (OpenBLAS ``get_num_threads``; 0 when the BLAS is not OpenBLAS)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "fastnn_blas_get_threads")
        return builder.sext(builder.call(fn, []), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def set_blas_threads(typingctx, n):
    """OpenBLAS ``set_num_threads(n)``: a store of one int when ``n`` <= threads created."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i32]),
                                            "fastnn_blas_set_threads")
        builder.call(fn, [context.cast(builder, args[0], sig.args[0], types.int32)])
        return context.get_dummy_value()

    return types.none(types.int64), codegen
