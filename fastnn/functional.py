"""Public softmax and loss functions: validate once, then call the compiled kernels.

Every function accepts array-likes.  float32 input stays float32 and float64 stays float64;
any other real dtype (integers, bool, float16, ...) is computed in float64.  Complex, string and
object data raise ``TypeError``.  Errors name the offending argument, e.g.
``ValueError("targets: label 7 out of range [0, 5)")``.

Shapes: ``softmax``, ``log_softmax`` and ``softmax_backward`` take a 2-D array ``(n, k)``
(softmax over each row) or a 1-D array ``(k,)``, treated as a single row and returned 1-D.
The losses take 2-D ``(n_samples, n_outputs)`` logits/predictions and return
``(loss, gradient)``: the weighted mean loss as a Python float and its gradient with respect to
the first argument, same shape and dtype.

Special values (see :mod:`fastnn.kernels.softmax`): a row of all ``-inf`` logits gives the
uniform distribution (``log_softmax = -log k``); NaN (or ``+inf``) in a row gives a NaN row and
a NaN loss; probabilities below the smallest normal float are flushed to 0.
"""
from __future__ import annotations

import numpy as np

from fastnn.kernels import losses as _losses
from fastnn.kernels import softmax as _k

__all__ = [
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "softmax_backward",
    "sigmoid_cross_entropy",
    "squared_error",
]


# --------------------------------------------------------------------------- validation
def _float_dtype(dtype, name):
    """float32/float64 kept; other real dtypes -> float64; anything else -> TypeError."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected real numbers, got dtype {dtype}")


def _float_array(x, name, dtype=None):
    """``x`` as a C-contiguous float32/float64 array (``dtype`` forces one)."""
    a = np.asarray(x)
    real = _float_dtype(a.dtype, name)
    return np.asarray(a, dtype=real if dtype is None else dtype, order="C")


def _rows(x, name, allow_1d=False):
    """A 2-D float array with at least one column (1-D -> one row if allowed); is-1-D flag."""
    a = _float_array(x, name)
    if allow_1d and a.ndim == 1:
        a = a.reshape(1, -1)
        flat = True
    elif a.ndim == 2:
        flat = False
    else:
        want = "a 1-D or 2-D array" if allow_1d else "a 2-D array (n_samples, n_outputs)"
        raise ValueError(f"{name}: expected {want}, got {a.ndim}-D with shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: needs at least one column, got shape {a.shape}")
    return a, flat


def _samples(x, name):
    """2-D logits/predictions of a loss: at least one row and one column."""
    a, _ = _rows(x, name)
    if a.shape[0] == 0:
        raise ValueError(f"{name}: needs at least one sample, got shape {a.shape}")
    return a


def _sample_weight(sample_weight, n, dtype):
    """Validated weights ``dtype[n]``, or the empty ``dtype[0]`` that means unweighted."""
    if sample_weight is None:
        return np.empty(0, dtype=dtype)
    w = _float_array(sample_weight, "sample_weight", dtype)
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), one weight per sample, "
                         f"got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight: weights must be finite")
    if np.any(w < 0):
        raise ValueError("sample_weight: weights must be non-negative")
    if not np.sum(w, dtype=np.float64) > 0:
        raise ValueError("sample_weight: weights must have a positive sum")
    return w


def _dense_targets(targets, z, name="targets"):
    """Targets of the same shape as ``z`` (``(n,)`` is accepted when ``z`` has one column)."""
    y = _float_array(targets, name, z.dtype)
    if y.ndim == 1 and z.shape[1] == 1 and y.shape[0] == z.shape[0]:
        y = y.reshape(z.shape)
    if y.shape != z.shape:
        raise ValueError(f"{name}: shape {y.shape} does not match the shape {z.shape} of the "
                         "predictions")
    return y


def _labels(t, n, k):
    """Integer class labels ``int64[n]`` in ``[0, k)``."""
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets: class labels must be integers, got dtype {t.dtype} "
                        "(pass probability targets as a 2-D array of shape (n, k))")
    if t.shape[0] != n:
        raise ValueError(f"targets: got {t.shape[0]} labels for {n} rows of logits")
    lo, hi = t.min(), t.max()
    if lo < 0 or hi >= k:
        raise ValueError(f"targets: label {lo if lo < 0 else hi} out of range [0, {k})")
    return np.ascontiguousarray(t, dtype=np.int64)


def _probabilities(t, z, name="targets"):
    """Probability rows of the shape of ``z``: finite, non-negative, each summing to 1."""
    y = _dense_targets(t, z, name)
    bad = ~np.all(np.isfinite(y) & (y >= 0), axis=1)
    if bad.any():
        raise ValueError(f"{name}: probabilities must be finite and non-negative "
                         f"(row {np.flatnonzero(bad)[0]})")
    sums = y.sum(axis=1, dtype=np.float64)
    tol = 1e-3 if y.dtype == np.float32 else 1e-6
    off = np.abs(sums - 1) > tol
    if off.any():
        i = np.flatnonzero(off)[0]
        raise ValueError(f"{name}: probability rows must sum to 1 (row {i} sums to {sums[i]:.6g})")
    return y


# --------------------------------------------------------------------------- public functions
def softmax(z):
    """Softmax over the last axis, ``exp(z_j - max z) / sum_j exp(z_j - max z)``.

    Parameters
    ----------
    z : array-like, shape (n, k) or (k,)
        Logits; a 1-D array is one row.

    Returns
    -------
    ndarray, same shape as ``z``; float32 if ``z`` is float32, else float64.
    """
    a, flat = _rows(z, "z", allow_1d=True)
    out = np.empty_like(a)
    _k.softmax(a, out)
    return out.reshape(-1) if flat else out


def log_softmax(z):
    """``z - logsumexp(z)`` over the last axis; shapes and dtypes as :func:`softmax`."""
    a, flat = _rows(z, "z", allow_1d=True)
    out = np.empty_like(a)
    _k.log_softmax(a, out)
    return out.reshape(-1) if flat else out


def softmax_backward(p, grad_p):
    """Softmax Jacobian-vector product ``p * (grad_p - sum(grad_p * p, axis=-1))``.

    With ``p = softmax(z)`` and ``grad_p = dL/dp`` this is ``dL/dz`` for any loss.

    Parameters
    ----------
    p : array-like, shape (n, k) or (k,)
        Softmax output.
    grad_p : array-like, same shape as ``p``
        Gradient with respect to ``p``.

    Returns
    -------
    ndarray, same shape as ``p``; float32 if both inputs are float32, else float64.
    """
    p, grad_p = np.asarray(p), np.asarray(grad_p)
    single = _float_dtype(p.dtype, "p") == _float_dtype(grad_p.dtype, "grad_p") == np.float32
    dtype = np.dtype(np.float32 if single else np.float64)
    pp, flat = _rows(_float_array(p, "p", dtype), "p", allow_1d=True)
    g = _float_array(grad_p, "grad_p", dtype)
    if g.shape != p.shape:
        raise ValueError(f"grad_p: shape {g.shape} does not match the shape {p.shape} of p")
    out = np.empty_like(pp)
    _k.softmax_backward(pp, g.reshape(pp.shape), out)
    return out.reshape(-1) if flat else out


def softmax_cross_entropy(logits, targets, sample_weight=None):
    """Mean cross-entropy of ``softmax(logits)`` and its gradient, fused in one pass per row.

    Parameters
    ----------
    logits : array-like, shape (n, k)
    targets : int array-like, shape (n,), or float array-like, shape (n, k)
        Class labels in ``[0, k)``, or probability rows (non-negative, each summing to 1).
    sample_weight : array-like, shape (n,), optional
        Non-negative finite weights with a positive sum.

    Returns
    -------
    loss : float
        ``sum_i w_i (-sum_j y_ij log softmax(logits_i)_j) / sum_i w_i``.
    dlogits : ndarray, shape (n, k), dtype of logits
        ``w_i (softmax(logits_i) - y_i) / sum_i w_i``.

    Raises
    ------
    TypeError
        Non-integer labels, non-numeric input.
    ValueError
        Wrong ndim or shape, label out of range, invalid probability rows or weights.
    """
    z = _samples(logits, "logits")
    n, k = z.shape
    t = np.asarray(targets)
    sw = _sample_weight(sample_weight, n, z.dtype)
    dz = np.empty_like(z)
    if t.ndim == 1:
        loss = _k.softmax_cross_entropy_labels(z, _labels(t, n, k), sw, dz)
    elif t.ndim == 2:
        loss = _k.softmax_cross_entropy_probs(z, _probabilities(t, z), sw, dz)
    else:
        raise ValueError(f"targets: expected class labels of shape ({n},) or probability rows "
                         f"of shape ({n}, {k}), got {t.ndim}-D with shape {t.shape}")
    return loss, dz


def sigmoid_cross_entropy(logits, targets, sample_weight=None):
    """Binary cross-entropy of ``sigmoid(logits)`` computed from the logits (stable).

    Parameters
    ----------
    logits : array-like, shape (n, k)
    targets : array-like, shape (n, k) (or (n,) when k == 1), values in [0, 1]
    sample_weight : array-like, shape (n,), optional

    Returns
    -------
    loss : float
        ``sum_i w_i sum_j [max(z, 0) - z y + log1p(exp(-|z|))]_ij / sum_i w_i``.
    dlogits : ndarray, shape (n, k), dtype of logits
        ``w_i (sigmoid(logits_i) - y_i) / sum_i w_i``.
    """
    z = _samples(logits, "logits")
    y = _dense_targets(targets, z)
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("targets: values must lie in [0, 1]")
    sw = _sample_weight(sample_weight, z.shape[0], z.dtype)
    dz = np.empty_like(z)
    return _losses.sigmoid_cross_entropy(z, y, sw, dz), dz


def squared_error(pred, targets, sample_weight=None):
    """Half mean squared error ``sum_i w_i ||pred_i - y_i||^2 / (2 sum_i w_i)`` and its gradient.

    Parameters
    ----------
    pred : array-like, shape (n, k)
    targets : array-like, shape (n, k) (or (n,) when k == 1)
        Finite values (in the dtype of ``pred``).
    sample_weight : array-like, shape (n,), optional

    Returns
    -------
    loss : float
    dpred : ndarray, shape (n, k), dtype of pred
        ``w_i (pred_i - y_i) / sum_i w_i``.
    """
    p = _samples(pred, "pred")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond pred's dtype -> inf, refused
        y = _dense_targets(targets, p)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"targets: values must be finite in {p.dtype} (the dtype of pred)")
    sw = _sample_weight(sample_weight, p.shape[0], p.dtype)
    dp = np.empty_like(p)
    return _losses.squared_error(p, y, sw, dp), dp
