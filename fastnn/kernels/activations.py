"""Hidden-layer activations: forward in place, derivative written in terms of the *output*.

One source for every activation: a scalar pair ``act(z)`` / ``grad(a)`` (``grad`` is ``act'(z)``
expressed through ``a = act(z)``, so backprop never keeps ``z``), and one place,
:func:`apply_activation`, that maps an integer code to its pair.  Loops take the pair as
compile-time arguments, so the dispatch on ``code`` happens once per call, outside the inner
loop, and every loop is specialised and vectorised for each activation.  The dense layer
(:mod:`fastnn.kernels.dense`) fuses the same scalar functions into its own loops.

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

from fastnn._jit import jit
from fastnn.kernels._math import exp, expm1, like

__all__ = [
    "IDENTITY", "LOGISTIC", "TANH", "RELU", "LEAKY_RELU", "LEAKY_SLOPE",
    "ACTIVATIONS", "activation_code", "activation_forward", "activation_backward",
    "apply_activation",
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


# --------------------------------------------------------------------------- scalar pairs
# Each takes and returns one float32/float64 scalar; constants go through like() so float32
# arithmetic stays float32.
@jit
def _identity(z):
    return z


@jit
def _identity_grad(a):
    return like(1.0, a)


@jit
def _logistic(z):
    # Accurate for every z (no cancellation: 1 + e^-z >= 1); for very negative z, e^-z = inf
    # gives exactly 0, for large z exactly 1 (compiled code raises no overflow warning).
    return like(1.0, z) / (like(1.0, z) + exp(-z))


@jit
def _logistic_grad(a):
    return a * (like(1.0, a) - a)


@jit
def _tanh(z):
    # tanh|z| = -expm1(-2|z|) / (2 + expm1(-2|z|)): expm1 keeps full precision near 0.
    t = expm1(like(-2.0, z) * abs(z))
    y = -t / (like(2.0, z) + t)
    return -y if z < like(0.0, z) else y


@jit
def _tanh_grad(a):
    return like(1.0, a) - a * a


@jit
def _relu(z):
    return like(0.0, z) if z < like(0.0, z) else z


@jit
def _relu_grad(a):
    return like(1.0, a) if a > like(0.0, a) else like(0.0, a)


@jit
def _leaky_relu(z):
    return like(LEAKY_SLOPE, z) * z if z < like(0.0, z) else z


@jit
def _leaky_relu_grad(a):
    return like(1.0, a) if a > like(0.0, a) else like(LEAKY_SLOPE, a)


@jit(inline="always")
def apply_activation(code, loop, args):
    """Call ``loop(act, grad, args)`` with the scalar pair of activation ``code``.

    The one dispatch point from code to functions: every loop over an activation goes through
    it, so ``loop`` is compiled once per activation with ``act``/``grad`` inlined.
    """
    if code == LOGISTIC:
        loop(_logistic, _logistic_grad, args)
    elif code == TANH:
        loop(_tanh, _tanh_grad, args)
    elif code == RELU:
        loop(_relu, _relu_grad, args)
    elif code == LEAKY_RELU:
        loop(_leaky_relu, _leaky_relu_grad, args)
    else:
        loop(_identity, _identity_grad, args)


# --------------------------------------------------------------------------- loops
@jit(inline="always")
def _forward_loop(act, grad, args):
    (z,) = args
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] = act(z[i, j])


@jit(inline="always")
def _backward_loop(act, grad, args):
    a, delta = args
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            delta[i, j] *= grad(a[i, j])


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
    if code != IDENTITY:
        apply_activation(code, _forward_loop, (z,))


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
    if code != IDENTITY:
        apply_activation(code, _backward_loop, (a, delta))
