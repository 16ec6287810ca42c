"""Hidden-layer activations: forward in place, derivative written in terms of the *output*.

Two passes, one implementation of each formula: :func:`bias_activation` (``z = act(z + b)`` on
a block of rows, the forward pass of a layer) and :func:`activation_grad` (``d *= act'(z)``,
with ``act'`` written through the output ``a = act(z)``, so backprop never keeps ``z``).  The
training engine (:mod:`fastnn.kernels.engine`) and the 2-D kernels :func:`activation_forward` /
:func:`activation_backward` call them.  The dispatch on ``code`` happens per row (or per call),
outside the inner loop, and every inner loop runs on a slice from index 0, so it vectorises.

====== ============ ============================== ======================
code   name         act(z)                         act'(z) through a
====== ============ ============================== ======================
0      identity     z                              1
1      logistic     1 / (1 + e^-z)  (stable)       a (1 - a)
2      tanh         tanh z                         1 - a^2
3      relu         max(z, 0)                      1 if a > 0 else 0
4      leaky_relu   z if z > 0 else 0.01 z         1 if a > 0 else 0.01
====== ============ ============================== ======================

NaN in gives NaN out for every activation (relu of NaN is NaN, as in ``np.maximum``).
"""
from __future__ import annotations

import numpy as np

from fastnn._jit import jit
from fastnn.kernels._math import exp, expm1, like

__all__ = [
    "IDENTITY", "LOGISTIC", "TANH", "RELU", "LEAKY_RELU", "LEAKY_SLOPE",
    "ACTIVATIONS", "activation_code", "logistic", "bias_activation", "activation_grad",
    "activation_forward", "activation_backward",
]

IDENTITY, LOGISTIC, TANH, RELU, LEAKY_RELU = 0, 1, 2, 3, 4
LEAKY_SLOPE = 0.01

#: name -> code; "sigmoid" is an alias of "logistic".
ACTIVATIONS = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "sigmoid": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
}


def activation_code(name):
    """The integer code of activation ``name``; ``ValueError`` naming the allowed names."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"activation must be one of {allowed}; got {name!r}") from None


# --------------------------------------------------------------------------- scalar functions
# The two activations that need ``exp``; constants go through like() so float32 stays float32.
@jit
def logistic(z):
    """``1 / (1 + e^-z)``: accurate for every z (no cancellation: ``1 + e^-z >= 1``); very
    negative z gives exactly 0 (``e^-z = inf``), large z exactly 1."""
    return like(1.0, z) / (like(1.0, z) + exp(-z))


@jit
def _tanh(z):
    # tanh|z| = -expm1(-2|z|) / (2 + expm1(-2|z|)): expm1 keeps full precision near 0.
    t = expm1(like(-2.0, z) * abs(z))
    y = -t / (like(2.0, z) + t)
    return -y if z < like(0.0, z) else y


# --------------------------------------------------------------------------- passes
@jit
def bias_activation(z, zo, rows, width, b, code):
    """``z = act(z + b)`` on the ``rows x width`` row-major block at ``z[zo:]``.

    Parameters
    ----------
    z : float32[:] or float64[:] — the flat buffer holding the block (updated in place).
    zo, rows, width : int — the block's offset and shape.
    b : float[width] — the bias (zeros for none).
    code : int — activation code (:data:`ACTIVATIONS`); an unknown code means identity.
    """
    zero = like(0.0, z)
    slope = like(LEAKY_SLOPE, z)
    for i in range(rows):
        r = z[zo + i * width:zo + (i + 1) * width]
        if code == RELU:  # (NaN stays NaN: the comparison is False)
            for j in range(width):
                v = r[j] + b[j]
                r[j] = zero if v < zero else v
        elif code == LOGISTIC:
            for j in range(width):
                r[j] = logistic(r[j] + b[j])
        elif code == TANH:
            for j in range(width):
                r[j] = _tanh(r[j] + b[j])
        elif code == LEAKY_RELU:
            for j in range(width):
                v = r[j] + b[j]
                r[j] = slope * v if v < zero else v
        else:
            for j in range(width):
                r[j] += b[j]


@jit
def activation_grad(d, a, n, code):
    """``d[:n] *= act'(z)``, with ``act'`` through the output ``a = act(z)``: logistic
    ``a (1 - a)``, tanh ``1 - a²``, relu ``1 if a > 0 else 0``, leaky relu ``1 if a > 0 else
    0.01``, identity 1.  ``d``, ``a`` : float[n] slices, same dtype."""
    one, zero = like(1.0, d), like(0.0, d)
    slope = like(LEAKY_SLOPE, d)
    if code == RELU:
        for j in range(n):
            d[j] *= one if a[j] > zero else zero
    elif code == LOGISTIC:
        for j in range(n):
            d[j] *= a[j] * (one - a[j])
    elif code == TANH:
        for j in range(n):
            d[j] *= one - a[j] * a[j]
    elif code == LEAKY_RELU:
        for j in range(n):
            d[j] *= one if a[j] > zero else slope


@jit
def activation_forward(z, code):
    """``z = act(z)`` in place.

    Parameters
    ----------
    z : float32[n, m] or float64[n, m], C-contiguous
        Pre-activations; overwritten with the activations.
    code : int
        Activation code (:data:`ACTIVATIONS`); an unknown code means identity.
    """
    if z.size > 0:
        bias_activation(z.ravel(), np.int64(0), np.int64(1), z.size, np.zeros(z.size, z.dtype),
                        code)


@jit
def activation_backward(a, delta, code):
    """``delta *= act'(z)`` in place, with ``act'`` written in terms of the output ``a``.

    Parameters
    ----------
    a : float[n, m], C-contiguous
        The activation's output ``act(z)``.
    delta : float[n, m], C-contiguous, same dtype
        ``dL/da`` on entry, ``dL/dz`` on exit.
    code : int
        Activation code (:data:`ACTIVATIONS`).
    """
    activation_grad(delta.ravel(), a.ravel(), a.size, code)
