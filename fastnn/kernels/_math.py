"""Scalar math for the kernels: a vectorisable ``exp``/``expm1`` and dtype-exact constants.

Numba lowers ``np.exp`` to a scalar libm call (no SVML here), which blocks loop vectorisation
and is slower than NumPy's SIMD exp on large arrays.  The functions below use only ``+ - * /``,
``floor``, compares and a bit cast, so LLVM vectorises any loop that calls them.

Method (Cody-Waite): ``x = k ln2 + r`` with ``k = round(x / ln2)``, ``|r| <= ln2 / 2``;
``expm1(r)`` is a Taylor polynomial of degree 12 (float64, relative error < 1e-15) or 7
(float32, < 1e-7); ``exp(x) = 2^k (1 + expm1(r))`` and ``expm1(x) = 2^k expm1(r) + (2^k - 1)``,
which has no cancellation for ``k != 0`` (and is ``expm1(r)`` itself for ``k == 0``).

Edge cases: ``exp(x) = inf`` above ``log(max float)``; results below the smallest *normal*
float (``x < -707`` in float64, ``x < -86`` in float32) are flushed to ``0`` (``expm1`` to
``-1``), which also keeps subnormals out of later GEMMs; ``exp(-inf) = 0``; NaN gives NaN.

Every function is generic over float32/float64 and computes in the dtype of its argument
(``like(v, x)`` casts a Python constant to it; a bare ``0.5`` would promote float32 to float64).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import literal_unroll, types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from fastnn._jit import FASTMATH

__all__ = ["like", "exp", "expm1"]

# Without "reassoc": LLVM could otherwise re-associate the two-step Cody-Waite reduction
# (x - k ln2_hi) - k ln2_lo into x - k (ln2_hi + ln2_lo) and lose the split's precision.
_EXACT_MATH = frozenset(FASTMATH - {"reassoc"})
_JIT_OPTIONS = dict(fastmath=set(_EXACT_MATH), error_model="numpy", nogil=True)


def _float_type(x):
    return x.dtype if isinstance(x, types.Array) else x


def like(v, x):
    """``v`` cast to the float type of ``x`` (a scalar or an array); compile-time constant."""
    raise NotImplementedError("like() is only callable from compiled code")


@overload(like, inline="always")
def _like(v, x):
    cast = as_dtype(_float_type(x)).type

    def impl(v, x):
        return cast(v)

    return impl


@intrinsic
def _pow2(typingctx, k, x):
    """``2.0**k`` in the float type of ``x`` for an integer ``k`` in the normal exponent range."""
    single = x == types.float32
    width, mant_bits, bias = (32, 23, 127) if single else (64, 52, 1023)
    float_ir = ir.FloatType() if single else ir.DoubleType()

    def codegen(context, builder, sig, args):
        int_ir = ir.IntType(width)
        kk = args[0]
        if kk.type.width > width:
            kk = builder.trunc(kk, int_ir)
        elif kk.type.width < width:
            kk = builder.sext(kk, int_ir)
        biased = builder.add(kk, ir.Constant(int_ir, bias))
        return builder.bitcast(builder.shl(biased, ir.Constant(int_ir, mant_bits)), float_ir)

    return x(k, x), codegen


# Per dtype: ln2 split in two (Cody-Waite), lowest x whose exp is a normal float, the overflow
# threshold log(max float), the Taylor degree of expm1(r) and the integer type of k.
_PARAMS = {
    types.float64: (6.93147180369123816490e-01, 1.90821492927058770002e-10,
                    -707.0, 709.782712893384, 12, np.int64),
    types.float32: (0.693359375, -2.12194440e-4, -86.0, 88.72283, 7, np.int32),
}


def _expm1_parts(x):
    """``(s, q)`` with ``s = 2^(k-1)`` and ``q = expm1(r)``, ``x = k ln2 + r``."""
    raise NotImplementedError("only callable from compiled code")


@overload(_expm1_parts, jit_options=_JIT_OPTIONS)
def _expm1_parts_ov(x):
    ln2_hi, ln2_lo, _, _, degree, int_type = _PARAMS[x]
    cast = as_dtype(x).type
    hi_c, lo_c, inv_ln2, half = cast(ln2_hi), cast(ln2_lo), cast(1.0 / math.log(2.0)), cast(0.5)
    # Horner form of q(r) = r (1 + r (1/2! + r (1/3! + ... + r / degree!)))
    coefs = tuple(cast(1.0 / math.factorial(m)) for m in range(degree, 0, -1))

    def impl(x):
        kf = np.floor(x * inv_ln2 + half)
        r = (x - kf * hi_c) - kf * lo_c
        p = coefs[0]
        for c in literal_unroll(coefs[1:]):
            p = p * r + c
        # 2^(k-1), doubled by the caller: k = 1024 (x just below the overflow) stays representable
        return _pow2(int_type(kf) - 1, x), p * r

    return impl


def exp(x):
    """``e**x`` for a float32/float64 scalar, vectorisable; see the module docstring."""
    raise NotImplementedError("only callable from compiled code")


def expm1(x):
    """``e**x - 1`` for a float32/float64 scalar, accurate near 0, vectorisable."""
    raise NotImplementedError("only callable from compiled code")


@overload(exp, jit_options=_JIT_OPTIONS)
def _exp_ov(x):
    if x not in _PARAMS:
        return None
    cast = as_dtype(x).type
    lo, hi = cast(_PARAMS[x][2]), cast(_PARAMS[x][3])
    two, zero, inf = cast(2.0), cast(0.0), cast(np.inf)

    def impl(x):
        s, q = _expm1_parts(x)
        y = (s + s * q) * two
        y = inf if x > hi else y
        return zero if x < lo else y

    return impl


@overload(expm1, jit_options=_JIT_OPTIONS)
def _expm1_ov(x):
    if x not in _PARAMS:
        return None
    cast = as_dtype(x).type
    lo, hi = cast(_PARAMS[x][2]), cast(_PARAMS[x][3])
    one, two, half, inf = cast(1.0), cast(2.0), cast(0.5), cast(np.inf)
    half_ln2 = cast(0.5 * math.log(2.0))

    def impl(x):
        s, q = _expm1_parts(x)
        y = (s * q + (s - half)) * two  # 2^k (1 + q) - 1 without forming 2^k (may overflow)
        y = q if abs(x) < half_ln2 else y  # k == 0: no rounding in s2 - 1 at all
        y = inf if x > hi else y
        return -one if x < lo else y

    return impl
