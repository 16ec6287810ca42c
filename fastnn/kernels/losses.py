"""The output losses other than the softmax's: sigmoid + cross-entropy, squared error, the
half Poisson deviance and sigmoid + squared error, as compiled row functions and 2-D kernels
(the conventions of :mod:`fastnn.kernels.softmax`: C-contiguous arrays of one float dtype,
``sw`` a weight vector or ``float[0]``, weighted means accumulated in float64).

The row functions are shared: the 2-D kernels below and the training engine's fused loss
(:mod:`fastnn.kernels.rules`) call the same ones.
"""
from __future__ import annotations

import math

import numpy as np

from fastnn._jit import jit
from fastnn.kernels._math import exp, like
from fastnn.kernels.softmax import _flush, _weights

__all__ = ["sigmoid_cross_entropy", "squared_error", "sigmoid_squared_error", "poisson_deviance"]


# --------------------------------------------------------------------------- other output losses
# Row functions: ``l`` of one row (summed over its outputs) and ``dz = c dL/dz``, ``c = w_i / sum w``;
# the 2-D kernels below and the training engine (fastnn.kernels.engine) both call them.
@jit
def _sigmoid_ce_row(z, y, c, dz):
    """Binary cross-entropy of one row from logits: ``sum_j max(z_j, 0) - z_j y_j +
    log1p(exp(-|z_j|))``; ``dz = c (sigmoid(z) - y)``."""
    one, zero = like(1.0, z), like(0.0, z)
    cc = like(c, z)
    row = 0.0
    for j in range(z.shape[0]):
        zj, yj = z[j], y[j]
        e = exp(-abs(zj))
        row += np.float64((zj if zj > zero else zero) - zj * yj + np.log1p(e))
        sig = one / (one + e) if zj >= zero else e / (one + e)
        dz[j] = cc * (sig - yj)
    return row


@jit
def _squared_row(p, y, c, dp):
    """``||p - y||² / 2`` of one row; ``dp = c (p - y)``."""
    cc = like(c, p)
    row = 0.0
    for j in range(p.shape[0]):
        r = p[j] - y[j]
        d = np.float64(p[j]) - np.float64(y[j])  # float32 r * r overflows from |r| = 1.8e19
        row += d * d
        dp[j] = cc * r
    return 0.5 * row


@jit
def _poisson_row(z, y, c, dz):
    """Half Poisson deviance of one row from log-predictions (see :func:`poisson_deviance`);
    ``dz = c (exp(z) - y)``."""
    zero = like(0.0, z)
    cc = like(c, z)
    row = 0.0
    for j in range(z.shape[0]):
        zj, yj = z[j], y[j]
        mu = exp(zj)
        dz[j] = cc * (mu - yj)
        y64 = np.float64(yj)
        row += np.float64(mu) - y64
        if yj > zero:
            row += y64 * (math.log(y64) - np.float64(zj))
    return row


@jit
def _sigmoid_se_row(z, y, c, dz):
    """``||sigmoid(z) - y||² / 2`` of one row (the non-canonical pair, see
    :func:`sigmoid_squared_error`); ``dz = c (p - y) p (1 - p)``."""
    one, zero = like(1.0, z), like(0.0, z)
    cc = like(c, z)
    row = 0.0
    for j in range(z.shape[0]):
        zj = z[j]
        e = exp(-abs(zj))
        q = one / (one + e)
        p = q if zj >= zero else e * q
        r = p - y[j]
        row += np.float64(r * r)
        dz[j] = _flush(cc * r * (e * q * q))
    return 0.5 * row


@jit
def _rows_loss(kind, z, y, sw, dz):
    """``sum_i w_i l_i / sum w`` of row function ``kind`` (0 sigmoid-CE, 1 squared, 2 Poisson,
    3 sigmoid + squared error)."""
    n = z.shape[0]
    wsum, weighted = _weights(sw, n)
    total = 0.0
    for i in range(n):
        w = np.float64(sw[i]) if weighted else 1.0
        if kind == 0:
            row = _sigmoid_ce_row(z[i], y[i], w / wsum, dz[i])
        elif kind == 1:
            row = _squared_row(z[i], y[i], w / wsum, dz[i])
        elif kind == 2:
            row = _poisson_row(z[i], y[i], w / wsum, dz[i])
        else:
            row = _sigmoid_se_row(z[i], y[i], w / wsum, dz[i])
        total += w * row
    return total / wsum


@jit
def sigmoid_cross_entropy(z, y, sw, dz):
    """Fused sigmoid + binary cross-entropy from logits, stable for large ``|z|``.

    ``l_i = sum_j max(z_ij, 0) - z_ij y_ij + log1p(exp(-|z_ij|))``, ``loss = sum w_i l_i / sum w``
    and ``dz_i = w_i (sigmoid(z_i) - y_i) / sum w``.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Logits.
    y : same dtype and shape as ``z``, C-contiguous
        Targets in ``[0, 1]``.
    sw : float[n] or float[0], same dtype as ``z``
        Sample weights; empty means unweighted.
    dz : same dtype and shape as ``z``, C-contiguous
        Gradient with respect to ``z``, written in place; may be ``z``.

    Returns
    -------
    float
        The weighted mean loss.
    """
    return _rows_loss(0, z, y, sw, dz)


@jit
def squared_error(pred, y, sw, dpred):
    """Squared error ``sum_i w_i ||pred_i - y_i||^2 / (2 sum w)`` and its gradient.

    Parameters
    ----------
    pred : float32[n, k] or float64[n, k], C-contiguous
        Predictions.
    y : same dtype and shape as ``pred``, C-contiguous
        Targets.
    sw : float[n] or float[0], same dtype as ``pred``
        Sample weights; empty means unweighted.
    dpred : same dtype and shape as ``pred``, C-contiguous
        ``w_i (pred_i - y_i) / sum w``, written in place; may be ``pred``.

    Returns
    -------
    float
        The weighted mean loss.
    """
    return _rows_loss(1, pred, y, sw, dpred)


@jit
def sigmoid_squared_error(z, y, sw, dz):
    """Sigmoid outputs with squared error (not a canonical pair): loss and gradient from logits.

    ``p = sigmoid(z)``, ``loss = sum_i w_i ||p_i - y_i||^2 / (2 sum w)`` and
    ``dz_i = w_i (p_i - y_i) p_i (1 - p_i) / sum w``: the factor ``p (1 - p)`` stays, so an
    output saturated at the wrong end (``p ~ 0`` where ``y = 1``) gets almost no gradient.
    ``p (1 - p)`` is taken as ``e / (1 + e)^2`` with ``e = exp(-|z|)``, exact for large ``|z|``.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Logits.
    y : same dtype and shape as ``z``, C-contiguous
        Targets in ``[0, 1]``.
    sw : float[n] or float[0], same dtype as ``z``
        Sample weights; empty means unweighted.
    dz : same dtype and shape as ``z``, C-contiguous
        Gradient with respect to ``z``, written in place; may be ``z`` (not ``y``).

    Returns
    -------
    float
        The weighted mean loss.
    """
    return _rows_loss(3, z, y, sw, dz)


@jit
def poisson_deviance(z, y, sw, dz):
    """Fused ``exp`` output + half Poisson deviance from log-predictions, and its gradient.

    ``mu = exp(z)``; ``l_i = sum_j mu_ij - y_ij + y_ij (log y_ij - z_ij)`` (the last term is 0
    where ``y_ij = 0``), scikit-learn's ``poisson_loss`` including its constant
    ``xlogy(y, y) - y``; ``loss = sum_i w_i l_i / sum w`` and, the log link being canonical,
    ``dz_i = w_i (mu_i - y_i) / sum w``.  ``log(y / mu)`` is taken as ``log y - z``, so an
    underflowing ``mu`` gives no ``0/0``; an overflowing one (``z`` above ~88.7 in float32,
    ~709.8 in float64) gives an infinite loss, and NaN in ``z`` or ``y`` a NaN loss.

    Parameters
    ----------
    z : float32[n, k] or float64[n, k], C-contiguous
        Log-predictions (the output layer before ``exp``).
    y : same dtype and shape as ``z``, C-contiguous
        Targets ``>= 0`` (not checked).
    sw : float[n] or float[0], same dtype as ``z``
        Sample weights; empty means unweighted.
    dz : same dtype and shape as ``z``, C-contiguous
        Gradient with respect to ``z``, written in place; may be ``z`` (not ``y``).

    Returns
    -------
    float
        The weighted mean loss (summed over the ``k`` outputs).
    """
    return _rows_loss(2, z, y, sw, dz)
