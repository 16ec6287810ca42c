"""In-place optimizer updates over the flat parameter / gradient / state buffers.

Every buffer shares the layout of :attr:`fastnn.Network.params` (one flat C-contiguous vector),
so one loop updates the whole network.  The rules are exactly scikit-learn's
(``sklearn/neural_network/_stochastic_optimizers.py``), in order of increasing complexity:

* SGD with momentum ``mu``: ``v = mu v - lr g``; ``p += v``, or with Nesterov ``p += mu v - lr g``
  (the *new* ``v``).  ``mu = 0`` and an empty ``v`` is plain ``p -= lr g``.
* Adam: ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g²``;
  ``p -= lr_t m / (sqrt(v) + eps)`` with ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``.
* AdamW: Adam plus the decoupled decay ``p -= lr wd p`` applied first (PyTorch's rule, on every
  parameter).

Scalars are cast to the buffers' dtype once, so float32 buffers are updated in float32 SIMD.
"""
from __future__ import annotations

import math

import numpy as np

from fastnn._jit import jit

__all__ = ["SGD_KIND", "ADAM_KIND", "sgd_range", "adam_range", "sgd_update", "adam_update",
           "adam_lr", "optimizer_step"]

SGD_KIND = 0
ADAM_KIND = 1


@jit
def sgd_range(params, grad, velocity, lr, momentum, nesterov, lo, hi):
    """SGD step on ``params[lo:hi]`` (serial); scalars already in the buffers' dtype."""
    if velocity.shape[0] == 0:
        for i in range(lo, hi):
            params[i] -= lr * grad[i]
    elif nesterov:
        for i in range(lo, hi):
            v = momentum * velocity[i] - lr * grad[i]
            velocity[i] = v
            params[i] += momentum * v - lr * grad[i]
    else:
        for i in range(lo, hi):
            v = momentum * velocity[i] - lr * grad[i]
            velocity[i] = v
            params[i] += v


@jit
def adam_range(params, grad, m, v, lr_t, beta1, beta2, eps, decay, lo, hi):
    """Adam step on ``params[lo:hi]`` (serial): ``p = p decay - lr_t m / (sqrt(v) + eps)``."""
    one = params.dtype.type(1.0)
    for i in range(lo, hi):
        g = grad[i]
        mi = beta1 * m[i] + (one - beta1) * g
        vi = beta2 * v[i] + (one - beta2) * (g * g)
        m[i] = mi
        v[i] = vi
        params[i] = params[i] * decay - lr_t * mi / (np.sqrt(vi) + eps)


@jit
def sgd_update(params, grad, velocity, lr, momentum, nesterov):
    """SGD step, in place: ``v = mu v - lr g``; ``p += v`` (Nesterov: ``p += mu v - lr g``).

    Parameters
    ----------
    params : float32[p] or float64[p], C-contiguous — updated in place.
    grad : same dtype, float[p].
    velocity : same dtype, float[p] (updated in place), or float[0] for plain SGD.
    lr, momentum : float — learning rate and momentum coefficient.
    nesterov : bool
    """
    t = params.dtype.type
    lr_, mu = t(lr), t(momentum)
    sgd_range(params, grad, velocity, lr_, mu, nesterov, 0, params.shape[0])


@jit
def adam_lr(lr, beta1, beta2, step):
    """Adam's bias-corrected rate ``lr sqrt(1 - beta2^step) / (1 - beta1^step)`` (float64)."""
    return lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)


@jit
def adam_update(params, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """Adam / AdamW step number ``step`` (1-based), in place on ``params``, ``m`` and ``v``.

    ``p = p (1 - lr wd) - lr_t m / (sqrt(v) + eps)`` with ``lr_t = adam_lr(lr, beta1, beta2,
    step)`` (``wd = 0`` is plain Adam).

    Parameters
    ----------
    params, grad, m, v : float32[p] or float64[p], C-contiguous, one dtype.
    step : int — the step being taken (``t`` after incrementing), >= 1.
    lr, beta1, beta2, eps, weight_decay : float
    """
    t = params.dtype.type
    lr_t, b1, b2 = t(adam_lr(lr, beta1, beta2, step)), t(beta1), t(beta2)
    e, decay = t(eps), t(1.0 - lr * weight_decay)
    adam_range(params, grad, m, v, lr_t, b1, b2, e, decay, 0, params.shape[0])


@jit
def optimizer_step(kind, hp, params, grad, state1, state2, step):
    """One update of the whole buffer by optimizer ``kind``.

    Parameters
    ----------
    kind : int — :data:`SGD_KIND` or :data:`ADAM_KIND`.
    hp : float64[5] — SGD: ``(lr, momentum, nesterov, 0, 0)``;
        Adam/AdamW: ``(lr, beta1, beta2, eps, weight_decay)``.
    params, grad, state1, state2 : float[p] — SGD: state1 is the velocity (or float[0]);
        Adam: state1 = m, state2 = v.
    step : int — 1-based step number (Adam's bias correction).
    """
    if kind == SGD_KIND:
        sgd_update(params, grad, state1, hp[0], hp[1], hp[2] != 0.0)
    else:
        adam_update(params, grad, state1, state2, step, hp[0], hp[1], hp[2], hp[3], hp[4])
