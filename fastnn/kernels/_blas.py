"""Direct BLAS ``?gemm`` from compiled code: transpose flags, ``alpha`` and ``beta`` exposed.

``np.dot(a, b, out)`` inside njit covers ``out = a @ b`` only.  :func:`gemm` calls the same
BLAS (SciPy's OpenBLAS, the one Numba's ``np.dot`` uses) through ``scipy.linalg.cython_blas``'s
``sgemm``/``dgemm`` and exposes the full operation

    c = alpha * op(a) @ op(b) + beta * c,   op(x) = x or xᵀ,

so a caller can accumulate into ``c`` (``beta=1``) or fold a scale into the product -- e.g. an
SGD step ``w -= lr * a_prevᵀ δ`` done by the weight-gradient GEMM itself, without writing and
re-reading a gradient buffer.

How: the function pointers in ``cython_blas.__pyx_capi__`` are registered with LLVM under the
names ``fastnn_sgemm``/``fastnn_dgemm`` at import, and the compiled code calls those *names*
(as Numba's own BLAS bindings do), so kernels using :func:`gemm` are cacheable: the address is
resolved again in every process.  Fortran BLAS is column-major: a C-contiguous ``x`` is seen as
``xᵀ``, so ``C = op(A) op(B)`` is computed as ``Cᵀ = op(B)ᵀ op(A)ᵀ`` with the operands swapped.
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn._jit import jit

__all__ = ["gemm"]


def _capsule_address(capsule):
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _register():
    from fastnn._scipy_blas import cython_blas

    capi = cython_blas().__pyx_capi__
    for prefix in "sd":
        llvm.add_symbol(f"fastnn_{prefix}gemm", _capsule_address(capi[f"{prefix}gemm"]))


_register()


@intrinsic
def _xgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Fortran ``?gemm`` with every argument passed by reference (column-major view)."""
    if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
            and b.dtype == a.dtype and c.dtype == a.dtype):
        return None
    dtype = a.dtype
    symbol = "fastnn_sgemm" if dtype == types.float32 else "fastnn_dgemm"

    def codegen(context, builder, sig, args):
        (ta, tb, m_, n_, k_, al, av, lda_, bv, ldb_, be, cv, ldc_) = args
        i8, i32 = ir.IntType(8), ir.IntType(32)
        fl = context.get_value_type(dtype)

        def as_int(value, ty):
            return cgutils.alloca_once_value(builder, context.cast(builder, value, ty, types.int32))

        def as_char(value, ty):
            return cgutils.alloca_once_value(
                builder, builder.trunc(context.cast(builder, value, ty, types.int64), i8))

        def as_float(value, ty):
            return cgutils.alloca_once_value(builder, context.cast(builder, value, ty, dtype))

        def data(value, ty):
            return context.make_array(ty)(context, builder, value).data

        fnty = ir.FunctionType(ir.VoidType(), [
            i8.as_pointer(), i8.as_pointer(), i32.as_pointer(), i32.as_pointer(),
            i32.as_pointer(), fl.as_pointer(), fl.as_pointer(), i32.as_pointer(), fl.as_pointer(),
            i32.as_pointer(), fl.as_pointer(), fl.as_pointer(), i32.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
        st = sig.args
        builder.call(fn, [
            as_char(ta, st[0]), as_char(tb, st[1]), as_int(m_, st[2]), as_int(n_, st[3]),
            as_int(k_, st[4]), as_float(al, st[5]), data(av, st[6]), as_int(lda_, st[7]),
            data(bv, st[8]), as_int(ldb_, st[9]), as_float(be, st[10]), data(cv, st[11]),
            as_int(ldc_, st[12])])
        return context.get_dummy_value()

    sig = types.none(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    return sig, codegen


_N, _T = ord("N"), ord("T")
#: products of more than SPLIT_MIN and at most SPLIT_MAX multiply-adds are computed in row chunks
#: of <= SPLIT_MIN: OpenBLAS (SkylakeX) runs products up to ~100^3 with its small-matrix kernel,
#: without packing the operands.  Measured (float32, one thread): 200x64 @ 64x100 24 -> 18 us in
#: two chunks; the weight gradient 64x200 @ 200x100 27 -> 17 us.  Above SPLIT_MAX packing (and a
#: second thread) pay off.  Chunking the reduction dimension changes float rounding, not results
#: beyond it.
SPLIT_MIN = 1_000_000
SPLIT_MAX = 1 << 22


@jit
def gemm(transa, transb, alpha, a, b, beta, c):
    """``c = alpha * op(a) @ op(b) + beta * c`` in place, through BLAS ``sgemm``/``dgemm``.

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
    if m == 0 or n == 0:
        return
    mnk = m * n * k
    if mnk <= SPLIT_MIN or mnk > SPLIT_MAX or (transa and transb):
        _gemm_call(transa, transb, alpha, a, b, beta, c)
        return
    parts = (mnk + SPLIT_MIN - 1) // SPLIT_MIN
    if not transa:  # rows of c come from rows of a: independent products
        step = (m + parts - 1) // parts
        for i in range(0, m, step):
            _gemm_call(False, transb, alpha, a[i:i + step], b, beta, c[i:i + step])
    else:  # c = alpha aᵀ b + beta c sums over the rows of a and b: accumulate chunk by chunk
        step = (k + parts - 1) // parts
        for i in range(0, k, step):
            _gemm_call(True, False, alpha, a[i:i + step], b[i:i + step], beta if i == 0 else 1.0, c)


@jit
def _gemm_call(transa, transb, alpha, a, b, beta, c):
    """One BLAS call for :func:`gemm` (same arguments)."""
    m, n = c.shape
    k = a.shape[0] if transa else a.shape[1]
    # Column-major view: C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m); ld = row length.
    _xgemm(_T if transb else _N, _T if transa else _N, n, m, k, alpha,
           b, max(b.shape[1], 1), a, max(a.shape[1], 1), beta, c, max(n, 1))


@jit
def gemm_flat(transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc):
    """``C = alpha op(A) op(B) + beta C`` on flat row-major buffers: ``C`` (``m x n``) at
    ``c[co:]`` with row stride ``ldc``; ``op(A)`` is ``m x k``, ``A`` stored at ``a[ao:]`` with
    row stride ``lda`` (``A`` is ``k x m`` when ``transa``); the same for ``B``.  Products of
    ``SPLIT_MIN`` to ``SPLIT_MAX`` multiply-adds run in chunks (see :data:`SPLIT_MIN`)."""
    if m == 0 or n == 0:
        return
    mnk = m * n * k
    if mnk <= SPLIT_MIN or mnk > SPLIT_MAX or (transa and transb):
        _gemm_flat_call(transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc)
        return
    parts = (mnk + SPLIT_MIN - 1) // SPLIT_MIN
    if not transa:  # rows of C come from rows of A: independent products
        step = (m + parts - 1) // parts
        for i in range(0, m, step):
            _gemm_flat_call(False, transb, min(step, m - i), n, k, alpha, a, ao + i * lda, lda,
                            b, bo, ldb, beta, c, co + i * ldc, ldc)
    else:  # C = alpha Aᵀ B + beta C sums over the rows of A and B: accumulate chunk by chunk
        step = (k + parts - 1) // parts
        for i in range(0, k, step):
            _gemm_flat_call(True, transb, m, n, min(step, k - i), alpha, a, ao + i * lda, lda,
                            b, bo + (i if transb else i * ldb), ldb, beta if i == 0 else 1.0,
                            c, co, ldc)


@jit
def _gemm_flat_call(transa, transb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc):
    """One BLAS call for :func:`gemm_flat` (same arguments)."""
    # Column-major view: C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m)
    _xgemm(_T if transb else _N, _T if transa else _N, n, m, k, alpha,
           b[bo:], max(ldb, 1), a[ao:], max(lda, 1), beta, c[co:], max(ldc, 1))
