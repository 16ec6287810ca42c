"""Softmax and its cross-entropy: compiled row kernels (see docs/architecture.md); the other
output losses are in :mod:`fastnn.kernels.losses`.

All arrays are C-contiguous, one float dtype per call (float32 or float64); ``n`` rows are
samples and ``k`` columns are classes/outputs.  ``sw`` is a per-sample weight vector ``float[n]``
or an empty ``float[0]`` for "unweighted".  Losses are weighted means accumulated in float64:
``loss = sum_i w_i l_i / sum_i w_i``; gradients are ``w_i (p_i - y_i) / sum_i w_i``.

Numerics
--------
* Every row has its maximum ``m`` subtracted before ``exp``; the loss comes from log-sum-exp,
  ``l_i = (m - z_iy) + log(sum_j exp(z_ij - m))``, never from the log of a clipped
  probability.  So float32 logits of magnitude 1e4 and float64 logits of 1e300 stay finite
  and exact.
* ``exp`` is :func:`fastnn.kernels._math.exp` (vectorisable; results below ~e^-86 in float32,
  e^-707 in float64, are 0).  Probabilities and gradients below the smallest normal float are
  flushed to 0: subnormals would slow the GEMMs of the backward pass that consume them.  The row max uses LLVM's NaN-propagating ``maximum`` so it
  vectorises without the ``nnan`` flag.
* Special rows: a row whose entries are all ``-inf`` (fully masked) gives the uniform
  distribution ``1/k`` (``log_softmax = -log k``), the limit of equal logits.  A row containing
  NaN (or ``+inf``) gives a NaN row, and a NaN loss; nothing raises.
* Where exactness matters (``(z - m) - log s``), both subtractions go through
  :func:`_exact_sub`, compiled without ``reassoc``: LLVM's instruction combiner rewrites
  ``(z - m) - c`` into ``z - (m + c)`` when the *outer* operation may re-associate, which hoists
  ``m + log s`` out of the loop and loses ``log s`` against a large ``m``.

Every kernel runs on the calling thread: multi-core work belongs to BLAS inside large products
and to parallel fits, never to a second thread pool competing with them.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from fastnn._jit import jit
from fastnn.kernels._math import exp, like

__all__ = [
    "softmax",
    "log_softmax",
    "softmax_cross_entropy_labels",
    "softmax_cross_entropy_probs",
    "softmax_backward",
]

# --------------------------------------------------------------------------- scalar helpers
@intrinsic
def _fmax(typingctx, a, b):
    """``max(a, b)`` through ``llvm.maximum``: NaN-propagating and vectorisable."""
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        lt = context.get_value_type(a)
        name = "llvm.maximum.f32" if a == types.float32 else "llvm.maximum.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lt, [lt, lt]), name)
        return builder.call(fn, args)

    return a(a, b), codegen


def _exact_sub(a, b):
    """``a - b`` compiled without fast-math, so it is never re-associated with its users."""
    return a - b


@overload(_exact_sub, jit_options=dict(fastmath=False, error_model="numpy"))
def _exact_sub_ov(a, b):
    return lambda a, b: a - b


def _flush(v):
    """``v``, or 0 where ``|v|`` is below the smallest normal float (NaN is kept)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_flush, inline="always")
def _flush_ov(v):
    dtype = as_dtype(v)
    tiny, zero = dtype.type(np.finfo(dtype).tiny), dtype.type(0)
    return lambda v: zero if abs(v) < tiny else v


@jit
def _row_max(z):
    m = like(-np.inf, z)
    for j in range(z.shape[0]):
        m = _fmax(m, z[j])
    return m


@jit
def _exp_sum(z, m, out):
    """``out = exp(z - m)``; returns the sum (in the dtype of ``z``)."""
    s = like(0.0, z)
    for j in range(z.shape[0]):
        e = exp(z[j] - m)
        out[j] = e
        s += e
    return s


@jit
def _sum_exp(z, m):
    """``sum_j exp(z_j - m)`` (in the dtype of ``z``), storing nothing."""
    s = like(0.0, z)
    for j in range(z.shape[0]):
        s += exp(z[j] - m)
    return s


@jit
def _weights(sw, n):
    """``(sum of weights, weighted?)``; an empty ``sw`` means every weight is 1."""
    if sw.shape[0] == 0:
        return float(n), False
    total = 0.0
    for i in range(n):
        total += sw[i]
    return total, True


# --------------------------------------------------------------------------- softmax
@jit
def _softmax_row(z, out):
    k = z.shape[0]
    m = _row_max(z)
    if m == -np.inf:  # fully masked row: uniform
        out[:] = like(1.0 / k, z)
        return
    scale = like(1.0, z) / _exp_sum(z, m, out)
    for j in range(k):
        out[j] = _flush(out[j] * scale)


@jit
def softmax(z, out):
    """Row-wise softmax, ``out_ij = exp(z_ij - m_i) / sum_j exp(z_ij - m_i)``.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Logits.
    out : same dtype and shape as ``z``, C-contiguous
        Written in place; may be ``z`` itself.
    """
    n = z.shape[0]
    for i in range(n):
        _softmax_row(z[i], out[i])


@jit
def _log_softmax_row(z, out):
    k = z.shape[0]
    m = _row_max(z)
    if m == -np.inf:
        out[:] = like(-math.log(k), z)
        return
    log_s = np.log(_sum_exp(z, m))  # out may be z: nothing is stored before the last loop
    for j in range(k):
        out[j] = _exact_sub(_exact_sub(z[j], m), log_s)


@jit
def log_softmax(z, out):
    """Row-wise log-softmax, ``out_ij = (z_ij - m_i) - log sum_j exp(z_ij - m_i)``.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Logits.
    out : same dtype and shape as ``z``, C-contiguous
        Written in place; may be ``z`` itself.
    """
    n = z.shape[0]
    for i in range(n):
        _log_softmax_row(z[i], out[i])


# --------------------------------------------------------------------------- cross-entropy
@jit
def ce_labels_block(z, zo, dz, do, rows, k, labels, sw, order, i0, wsum):
    """Fused softmax + cross-entropy with integer labels on a ``rows x k`` row-major block.

    Rows ``i`` of the block are samples ``order[i0 + i]`` (their label and weight); logits at
    ``z[zo:]``, ``dL/dz = w_i (p_i - onehot(y_i)) / wsum`` written at ``dz[do:]`` (may be the
    same memory).  Returns ``sum_i w_i l_i / wsum``.  In passes over the whole block — row max
    and shift, ONE ``exp`` over all ``rows * k`` values, then row sums and scaling — so the
    ``exp`` vectorises even where a row (10 classes) is shorter than a SIMD vector.  A row of
    all ``-inf`` is uniform (loss ``log k``); a row with NaN or ``+inf`` gives NaN."""
    weighted = sw.shape[0] > 0
    total = 0.0
    for i in range(rows):
        zr = z[zo + i * k:zo + (i + 1) * k]
        dr = dz[do + i * k:do + (i + 1) * k]
        src = order[i0 + i]
        w = np.float64(sw[src]) if weighted else 1.0
        m = _row_max(zr)
        if m == -np.inf:  # fully masked row: exp(0) everywhere below, i.e. uniform
            for j in range(k):
                dr[j] = like(0.0, zr)
            continue
        if w != 0.0:  # (read before dz, which may be z, is written)
            total += w * _exact_sub(np.float64(m), np.float64(zr[labels[src]]))
        for j in range(k):
            dr[j] = zr[j] - m
    block = dz[do:do + rows * k]
    for j in range(rows * k):
        block[j] = exp(block[j])
    for i in range(rows):
        dr = dz[do + i * k:do + (i + 1) * k]
        src = order[i0 + i]
        w = np.float64(sw[src]) if weighted else 1.0
        s = like(0.0, dr)
        for j in range(k):
            s += dr[j]
        if w != 0.0:
            total += w * math.log(np.float64(s))
        c = w / wsum
        scale = like(c / s, dr)
        for j in range(k):
            dr[j] = _flush(dr[j] * scale)
        dr[labels[src]] -= like(c, dr)
    return total / wsum


@jit
def softmax_cross_entropy_labels(z, labels, sw, dz):
    """Fused softmax + cross-entropy with integer labels: mean loss and its gradient.

    ``loss = sum_i w_i (logsumexp(z_i) - z_i,y_i) / sum_i w_i`` and
    ``dz_i = w_i (softmax(z_i) - onehot(y_i)) / sum_i w_i``, in one pass per row.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Logits.
    labels : int64[n]
        Class indices in ``[0, k)`` (not checked).
    sw : float[n] or float[0], same dtype as ``z``
        Sample weights; empty means unweighted.
    dz : same dtype and shape as ``z``, C-contiguous
        Gradient with respect to ``z``, written in place; may be ``z`` itself.

    Returns
    -------
    float
        The weighted mean loss.
    """
    n, k = z.shape
    wsum, _ = _weights(sw, n)
    zero = np.int64(0)  # (values, not literals: the engine's compiled block kernel is reused)
    return ce_labels_block(z.ravel(), zero, dz.ravel(), zero, n, k, labels, sw, np.arange(n),
                           zero, wsum)


@jit
def _ce_probs_row(z, y, c, dz):
    """Loss of one row with probability targets ``y``; ``dz = c (p - y)``."""
    k = z.shape[0]
    m = _row_max(z)
    if m == -np.inf:
        loss = 0.0
        for j in range(k):
            loss += np.float64(y[j])
            dz[j] = like(c, z) * (like(1.0 / k, z) - y[j])
        return loss * math.log(k)
    s = like(0.0, z)
    dot = 0.0  # sum_j y_j (m - z_j), with 0 * inf = 0 (xlogy convention)
    mass = 0.0  # sum_j y_j
    for j in range(k):
        d = _exact_sub(m, z[j])
        dot += np.float64(y[j] * d) if y[j] != 0 else 0.0
        mass += np.float64(y[j])
        e = exp(-d)
        dz[j] = e
        s += e
    scale, cc = like(c / s, z), like(c, z)
    for j in range(k):
        dz[j] = _flush(scale * dz[j] - cc * y[j])
    return dot + mass * math.log(np.float64(s))


@jit
def softmax_cross_entropy_probs(z, y, sw, dz):
    """Fused softmax + cross-entropy with probability rows (soft labels).

    ``loss = sum_i w_i sum_j -y_ij log softmax(z_i)_j / sum_i w_i`` (a zero target contributes
    0 even where the log-probability is ``-inf``) and ``dz_i = w_i (softmax(z_i) - y_i) / sum w``;
    exact when every row of ``y`` sums to 1.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Logits.
    y : same dtype and shape as ``z``, C-contiguous
        Target probabilities (rows sum to 1; not checked).
    sw : float[n] or float[0], same dtype as ``z``
        Sample weights; empty means unweighted.
    dz : same dtype and shape as ``z``, C-contiguous
        Gradient with respect to ``z``, written in place; may be ``z`` (not ``y``).

    Returns
    -------
    float
        The weighted mean loss.
    """
    n = z.shape[0]
    wsum, weighted = _weights(sw, n)
    total = 0.0
    for i in range(n):
        w = np.float64(sw[i]) if weighted else 1.0
        total += w * _ce_probs_row(z[i], y[i], w / wsum, dz[i])
    return total / wsum


# --------------------------------------------------------------------------- softmax Jacobian
@jit
def _softmax_backward_row(p, g, out):
    dot = like(0.0, p)
    for j in range(p.shape[0]):
        dot += p[j] * g[j]
    for j in range(p.shape[0]):
        out[j] = p[j] * (g[j] - dot)


@jit
def softmax_backward(p, g, out):
    """Softmax Jacobian-vector product ``out = p * (g - sum_j g_j p_j)`` by rows.

    With ``p = softmax(z)`` and ``g = dL/dp`` this is ``dL/dz`` for any loss ``L``.

    Parameters
    ----------
    p : float32[n, k] or float64[n, k], C-contiguous
        Softmax output.
    g : same dtype and shape as ``p``, C-contiguous
        Gradient with respect to ``p``.
    out : same dtype and shape as ``p``, C-contiguous
        Written in place; may be ``p`` or ``g``.
    """
    n = p.shape[0]
    for i in range(n):
        _softmax_backward_row(p[i], g[i], out[i])
