"""The same math as :mod:`fastnn.kernels`, in plain vectorised NumPy.

This module is the *oracle* for the tests and the *baseline* for the benchmarks: each function
here has a compiled twin in ``fastnn.kernels`` and must stay the obvious, readable version of it.
Functions return new arrays (the kernels write in place); no Python loop runs over samples.

Conventions shared with the kernels
-----------------------------------
* Activations are applied by name: ``identity``, ``logistic``, ``tanh``, ``relu``,
  ``leaky_relu`` (slope :data:`LEAKY_SLOPE` for negative inputs).  Their derivatives are written
  in terms of the activation's *output* ``a``: backprop never keeps the pre-activation ``z``.
* Losses are weighted means over samples: with per-sample weights ``w`` (all ones by default)
  ``loss = sum_i w_i * l_i / sum_i w_i``, where ``l_i`` sums over the outputs of sample ``i``;
  the gradient with respect to the logits of sample ``i`` is ``w_i * (p_i - y_i) / sum_j w_j``.
* Softmax of a row whose entries are all ``-inf`` is the uniform distribution ``1/k`` (the limit
  of equal logits), so ``log_softmax`` of it is ``-log k``.
"""
from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01

__all__ = [
    "LEAKY_SLOPE",
    "activation",
    "activation_derivative",
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "softmax_backward",
    "sigmoid",
    "sigmoid_cross_entropy",
    "squared_error",
    "dense_forward",
    "dense_backward",
]


# --------------------------------------------------------------------------- activations
def activation(z, name):
    """``act(z)`` for one of the activation names."""
    if name == "identity":
        return z.copy()
    if name in ("logistic", "sigmoid"):
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * z.dtype.type(LEAKY_SLOPE))
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(a, name):
    """``act'(z)`` written in terms of the output ``a = act(z)``."""
    one = a.dtype.type(1)
    if name == "identity":
        return np.ones_like(a)
    if name in ("logistic", "sigmoid"):
        return a * (one - a)
    if name == "tanh":
        return one - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "leaky_relu":
        return np.where(a > 0, one, a.dtype.type(LEAKY_SLOPE))
    raise ValueError(f"unknown activation {name!r}")


def sigmoid(z):
    """Logistic function, stable for large ``|z|`` (never ``exp`` of a large positive number)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


# --------------------------------------------------------------------------- softmax
def _row_max(z):
    m = z.max(axis=1, keepdims=True)
    # An all -inf row: shift by 0 instead (its exps are then all 0 and it is special-cased).
    return np.where(np.isneginf(m), 0, m).astype(z.dtype, copy=False)


def log_softmax(z):
    """``z - logsumexp(z)`` by rows, with the row max subtracted first."""
    z = np.asarray(z)
    all_masked = np.all(np.isneginf(z), axis=1, keepdims=True)
    shifted = z - _row_max(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    k = z.shape[1]
    return np.where(all_masked, -np.log(z.dtype.type(k)), out).astype(z.dtype, copy=False)


def softmax(z):
    """``exp(z_i - max z) / sum_j exp(z_j - max z)`` by rows."""
    z = np.asarray(z)
    all_masked = np.all(np.isneginf(z), axis=1, keepdims=True)
    e = np.exp(z - _row_max(z))
    with np.errstate(invalid="ignore"):
        p = e / e.sum(axis=1, keepdims=True)
    k = z.shape[1]
    return np.where(all_masked, z.dtype.type(1.0 / k), p).astype(z.dtype, copy=False)


def _weights(n, sample_weight, dtype):
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
    return np.asarray(sample_weight, dtype=dtype)


def _one_hot(labels, k, dtype):
    y = np.zeros((labels.shape[0], k), dtype=dtype)
    y[np.arange(labels.shape[0]), labels] = 1
    return y


def softmax_cross_entropy(logits, targets, sample_weight=None):
    """Mean cross-entropy of ``softmax(logits)`` and its gradient with respect to the logits.

    ``targets`` are integer labels ``int[n]`` or probability rows ``float[n, k]``.
    Returns ``(loss, dlogits)`` with ``dlogits = w_i (p_i - y_i) / sum(w)``.
    """
    z = np.asarray(logits)
    n, k = z.shape
    t = np.asarray(targets)
    y = _one_hot(t, k, z.dtype) if t.ndim == 1 else t.astype(z.dtype, copy=False)
    w = _weights(n, sample_weight, z.dtype)
    logp = log_softmax(z)
    # xlogy convention: a zero target contributes 0 even where log p = -inf.
    with np.errstate(invalid="ignore"):
        per_sample = -np.where(y != 0, y * logp, 0).sum(axis=1)
    wsum = w.sum()
    loss = float((w * per_sample).sum() / wsum)
    dlogits = (w / wsum)[:, None] * (np.exp(logp) - y)
    return loss, dlogits.astype(z.dtype, copy=False)


def softmax_backward(p, grad_p):
    """Softmax Jacobian-vector product: ``p * (g - sum(g * p, axis=1))``.

    With ``p = softmax(z)`` and ``g = dL/dp`` this is ``dL/dz`` for *any* loss ``L``;
    ``dp_i/dz_j = p_i (delta_ij - p_j)``.
    """
    p = np.asarray(p)
    g = np.asarray(grad_p)
    return p * (g - (g * p).sum(axis=1, keepdims=True))


def sigmoid_cross_entropy(logits, targets, sample_weight=None):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``targets`` in [0, 1], from logits.

    ``l_i = sum_k max(z, 0) - z y + log1p(exp(-|z|))``; returns ``(loss, dlogits)`` with
    ``dlogits = w_i (sigmoid(z_i) - y_i) / sum(w)``.
    """
    z = np.asarray(logits)
    y = np.asarray(targets).astype(z.dtype, copy=False).reshape(z.shape)
    w = _weights(z.shape[0], sample_weight, z.dtype)
    per_sample = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    wsum = w.sum()
    loss = float((w * per_sample).sum() / wsum)
    dlogits = (w / wsum)[:, None] * (sigmoid(z) - y)
    return loss, dlogits.astype(z.dtype, copy=False)


def squared_error(pred, targets, sample_weight=None):
    """``sum_i w_i ||pred_i - y_i||^2 / (2 sum(w))`` and its gradient ``w_i (pred_i - y_i) / sum(w)``."""
    p = np.asarray(pred)
    y = np.asarray(targets).astype(p.dtype, copy=False).reshape(p.shape)
    w = _weights(p.shape[0], sample_weight, p.dtype)
    r = p - y
    wsum = w.sum()
    loss = float((w * (r * r).sum(axis=1)).sum() / (2 * wsum))
    return loss, ((w / wsum)[:, None] * r).astype(p.dtype, copy=False)


# --------------------------------------------------------------------------- dense layer
def dense_forward(x, w, b, act):
    """``act(x @ w + b)``: ``x[n, d_in]``, ``w[d_in, d_out]``, ``b[d_out]``."""
    return activation(x @ w + b, act)


def dense_backward(a_prev, w, delta, prev_act):
    """Gradients of a dense layer given ``delta = dL/dz`` of its pre-activation.

    Returns ``(dw, db, delta_prev)``: ``dw = a_prev^T delta``, ``db = sum(delta, axis=0)`` and
    ``delta_prev = (delta @ w^T) * act'(a_prev)``, the ``dL/dz`` of the previous layer, where
    ``a_prev`` is that layer's output.  ``prev_act=None`` means ``a_prev`` is the network input:
    ``delta_prev`` is then ``dL/dx = delta @ w^T``.
    """
    dw = a_prev.T @ delta
    db = delta.sum(axis=0)
    back = delta @ w.T
    if prev_act is not None:
        back *= activation_derivative(a_prev, prev_act)
    return dw, db, back
