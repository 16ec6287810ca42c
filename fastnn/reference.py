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
    "sigmoid_squared_error",
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


def _floating(z):
    """``z`` as an array of its float dtype; integers and others become float64."""
    z = np.asarray(z)
    return z if z.dtype.kind == "f" else z.astype(np.float64)


def log_softmax(z):
    """``z - logsumexp(z)`` by rows, with the row max subtracted first."""
    z = _floating(z)
    all_masked = np.all(np.isneginf(z), axis=1, keepdims=True)
    shifted = z - _row_max(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    k = z.shape[1]
    return np.where(all_masked, -np.log(z.dtype.type(k)), out).astype(z.dtype, copy=False)


def softmax(z):
    """``exp(z_i - max z) / sum_j exp(z_j - max z)`` by rows."""
    z = _floating(z)
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
    z = _floating(logits)
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


def sigmoid_squared_error(logits, targets, sample_weight=None):
    """Squared error of ``p = sigmoid(logits)``: ``sum_i w_i ||p_i - y_i||^2 / (2 sum(w))``.

    Not a canonical pair: the gradient with respect to the logits keeps the sigmoid's
    derivative, ``dlogits = w_i (p_i - y_i) p_i (1 - p_i) / sum(w)`` (chain rule through
    :func:`squared_error` of the probabilities).
    """
    z = np.asarray(logits)
    p = sigmoid(z)
    loss, dp = squared_error(p, targets, sample_weight)
    return loss, (dp * activation_derivative(p, "logistic")).astype(z.dtype, copy=False)


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


# --------------------------------------------------------------------------- network & trainer
# The training engine's oracle (fastnn.network / fastnn.train) and the benchmark baseline: a
# network is a list of weight matrices ``w[l] (n_in x n_out)``, a list of biases, the hidden
# activation names and the output name ("softmax", "sigmoid" or "identity"); ``loss`` None is
# the output's canonical loss, "squared_error" with a sigmoid output the non-canonical pair.

def reference_forward(weights, biases, activations, output, x):
    """Outputs of every layer: ``[h_1, ..., h_m, logits]`` (the output nonlinearity is *not*
    applied to the last entry)."""
    outs = []
    a = x
    for l, (w, b) in enumerate(zip(weights, biases)):
        a = dense_forward(a, w, b, activations[l] if l < len(activations) else "identity")
        outs.append(a)
    return outs


def reference_predict_proba(weights, biases, activations, output, x):
    """Output-layer values: softmax / sigmoid probabilities, or identity values."""
    z = reference_forward(weights, biases, activations, output, x)[-1]
    if output == "softmax":
        return softmax(z)
    if output == "sigmoid":
        return sigmoid(z)
    return z


def reference_loss_and_grad(weights, biases, activations, output, x, y, alpha=0.0,
                            sample_weight=None, loss=None):
    """scikit-learn's objective and its gradient: ``(loss, dweights, dbiases)``.

    ``loss = sum_i w_i l_i / sum(w) + alpha / (2 sum(w)) sum_l ||W_l||^2`` and
    ``dW_l = a_{l-1}^T delta_l + alpha W_l / sum(w)`` (biases not penalised).
    """
    outs = reference_forward(weights, biases, activations, output, x)
    loss_fn = {"softmax": softmax_cross_entropy, "sigmoid": sigmoid_cross_entropy,
               "identity": squared_error}[output]
    if output == "sigmoid" and loss == "squared_error":
        loss_fn = sigmoid_squared_error
    loss, delta = loss_fn(outs[-1], y, sample_weight)
    wsum = x.shape[0] if sample_weight is None else float(np.sum(sample_weight))
    loss += 0.5 * alpha * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in weights) / wsum
    dws, dbs = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        a_prev = x if l == 0 else outs[l - 1]
        prev_act = None if l == 0 else activations[l - 1]
        dw, db, delta_prev = dense_backward(a_prev, weights[l], delta, prev_act)
        dws[l] = (dw + (alpha / wsum) * weights[l]).astype(x.dtype, copy=False)
        dbs[l] = db
        delta = delta_prev
    return loss, dws, dbs


class ReferenceSGD:
    """scikit-learn's SGD update on lists of arrays (momentum, Nesterov)."""

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        self.lr, self.momentum, self.nesterov, self.velocities = lr, momentum, nesterov, None

    def step(self, params, grads):
        if self.velocities is None:
            self.velocities = [np.zeros_like(p) for p in params]
        self.velocities = [self.momentum * v - self.lr * g
                           for v, g in zip(self.velocities, grads)]
        updates = self.velocities
        if self.nesterov:
            updates = [self.momentum * v - self.lr * g for v, g in zip(self.velocities, grads)]
        for p, u in zip(params, updates):
            p += u


class ReferenceAdam:
    """scikit-learn's Adam update on lists of arrays; ``weight_decay`` > 0 gives AdamW."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay, self.t, self.ms, self.vs = weight_decay, 0, None, None

    def step(self, params, grads):
        if self.ms is None:
            self.ms = [np.zeros_like(p) for p in params]
            self.vs = [np.zeros_like(p) for p in params]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        self.ms = [b1 * m + (1 - b1) * g for m, g in zip(self.ms, grads)]
        self.vs = [b2 * v + (1 - b2) * g * g for v, g in zip(self.vs, grads)]
        lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, m, v in zip(params, self.ms, self.vs):
            if self.weight_decay:
                p *= 1 - self.lr * self.weight_decay
            p -= lr_t * m / (np.sqrt(v) + self.eps)


def reference_train_epoch(weights, biases, activations, output, x, y, order, batch_size,
                          optimizer, alpha=0.0, sample_weight=None, loss=None):
    """One epoch of minibatch training in place on ``weights``/``biases``; visits
    ``order[i:i + batch_size]`` for each batch (the last one may be partial).  Returns the
    mean loss ``sum_b loss_b * len_b / len(order)`` (scikit-learn's ``loss_``)."""
    total = 0.0
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        sw = None if sample_weight is None else sample_weight[idx]
        value, dws, dbs = reference_loss_and_grad(weights, biases, activations, output,
                                                  x[idx], y[idx], alpha, sw, loss)
        optimizer.step(list(weights) + list(biases), dws + dbs)
        total += value * len(idx)
    return total / len(order)
