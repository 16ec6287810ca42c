"""Dense (fully connected) layer: forward ``act(x @ w + b)`` and backward, GEMMs through BLAS.

The three products of a layer (``x @ w``, ``a_prevᵀ δ``, ``δ wᵀ``) go to BLAS through
:func:`fastnn.kernels._blas.gemm` (SciPy's OpenBLAS, the one ``np.dot`` in njit uses, called
directly with transpose flags: no copies, and half the per-call overhead of ``np.dot``, which
matters for small layers).  Everything else —
bias add and activation, ``act'`` and the bias gradient — is fused into one pass over the
output, so the layer costs its GEMMs plus one read/write of the activations.

For tiny layers (the 2-3-2 seed net at batch 4) a BLAS call costs more than the whole product:
up to :data:`SMALL_FORWARD` / :data:`SMALL_BACKWARD` multiply-adds the products are plain
loops with the same fusion.
"""
from __future__ import annotations

from fastnn._jit import jit
from fastnn.kernels._blas import gemm
from fastnn.kernels._math import like
from fastnn.kernels.activations import activation_backward, apply_activation

__all__ = [
    "SMALL_FORWARD", "SMALL_BACKWARD", "dense_forward", "dense_backward", "dense_backward_sgd",
]

#: Layers with at most this many multiply-adds (``n * d_in * d_out``) use loops, not BLAS, in the
#: forward pass and in the backward pass.  Measured inside njit (float32, 2 threads): a direct
#: BLAS call costs ~0.05-0.1 us, so loops win only for tiny layers -- the 2-3-2 seed net at
#: batch 4 (24 multiply-adds: loops 1.2x faster forward, 1.7x backward); at 4x8x8 BLAS is
#: already 2x faster forward (loops still 1.4x faster backward), at 16x16x16 3x faster.
SMALL_FORWARD = 64
SMALL_BACKWARD = 256


# --------------------------------------------------------------------------- fused loops
# Loops receive the scalar pair (act, grad) from apply_activation; inlined at the call site.
@jit(inline="always")
def _bias_act_loop(act, grad, args):
    out, b = args
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = act(out[i, j] + b[j])


@jit(inline="always")
def _small_forward_loop(act, grad, args):
    x, w, b, out = args
    for i in range(x.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = b[j]
        for k in range(x.shape[1]):
            xik = x[i, k]
            for j in range(out.shape[1]):
                out[i, j] += xik * w[k, j]
        for j in range(out.shape[1]):
            out[i, j] = act(out[i, j])


@jit(inline="always")
def _small_delta_loop(act, grad, args):
    a_prev, w, delta, delta_prev = args
    for i in range(delta.shape[0]):
        for k in range(w.shape[0]):
            s = like(0.0, delta)
            for j in range(delta.shape[1]):
                s += delta[i, j] * w[k, j]
            delta_prev[i, k] = s * grad(a_prev[i, k])


@jit
def _bias_grad(delta, db):
    for j in range(db.shape[0]):
        db[j] = 0
    for i in range(delta.shape[0]):
        for j in range(db.shape[0]):
            db[j] += delta[i, j]


@jit
def _weight_grad(a_prev, delta, alpha, beta, dw, db, small):
    """``dw = beta * dw + alpha * a_prevᵀ δ`` (``beta = 0``: old ``dw`` ignored), ``db = Σ δ``."""
    _bias_grad(delta, db)
    if not small:
        gemm(True, False, alpha, a_prev, delta, beta, dw)
        return
    al, be = like(alpha, dw), like(beta, dw)  # keep float32 arithmetic in float32
    for k in range(dw.shape[0]):
        for j in range(dw.shape[1]):
            dw[k, j] = be * dw[k, j] if beta != 0 else 0
    for i in range(delta.shape[0]):
        for k in range(dw.shape[0]):
            aik = al * a_prev[i, k]
            for j in range(dw.shape[1]):
                dw[k, j] += aik * delta[i, j]


@jit
def _delta_prev(a_prev, w, delta, prev_code, delta_prev, small):
    """``delta_prev = (δ wᵀ) ⊙ act'(a_prev)``, unless ``delta_prev`` has zero rows."""
    if delta_prev.shape[0] == 0:
        return
    if small:
        apply_activation(prev_code, _small_delta_loop, (a_prev, w, delta, delta_prev))
    else:
        gemm(False, True, 1.0, delta, w, 0.0, delta_prev)
        activation_backward(a_prev, delta_prev, prev_code)


# --------------------------------------------------------------------------- kernels
@jit
def dense_forward(x, w, b, code, out):
    """``out = act(x @ w + b)``.

    Parameters
    ----------
    x : float32[n, d_in] or float64[n, d_in], C-contiguous
    w : float[d_in, d_out], C-contiguous, same dtype
    b : float[d_out]
    code : int
        Activation code (:data:`fastnn.kernels.activations.ACTIVATIONS`).
    out : float[n, d_out], C-contiguous, same dtype
        Overwritten with the activations (must not alias ``x``).
    """
    if x.shape[0] * x.shape[1] * out.shape[1] <= SMALL_FORWARD:
        apply_activation(code, _small_forward_loop, (x, w, b, out))
    else:
        gemm(False, False, 1.0, x, w, 0.0, out)
        apply_activation(code, _bias_act_loop, (out, b))


@jit
def dense_backward(a_prev, w, delta, prev_code, dw, db, delta_prev):
    """Gradients of a dense layer from ``delta = dL/dz`` of its pre-activation ``z``.

    ``dw = a_prevᵀ δ``, ``db = Σ_rows δ`` and, unless ``delta_prev.shape[0] == 0``,
    ``delta_prev = (δ wᵀ) ⊙ act'(a_prev)``: the ``dL/dz`` of the previous layer, with ``act'``
    written in terms of that layer's output ``a_prev`` (``prev_code=IDENTITY`` gives ``dL/dx``).

    Parameters
    ----------
    a_prev : float32[n, d_in] or float64[n, d_in], C-contiguous
        The layer's input (the previous layer's output).
    w : float[d_in, d_out], C-contiguous
    delta : float[n, d_out], C-contiguous
    prev_code : int
        Activation code of the previous layer.
    dw : float[d_in, d_out], C-contiguous
        Overwritten with the weight gradient.
    db : float[d_out]
        Overwritten with the bias gradient.
    delta_prev : float[n, d_in] or float[0, d_in], C-contiguous
        Overwritten with the previous layer's delta; pass zero rows to skip it (first layer).
    """
    small = a_prev.shape[0] * a_prev.shape[1] * delta.shape[1] <= SMALL_BACKWARD
    _delta_prev(a_prev, w, delta, prev_code, delta_prev, small)
    _weight_grad(a_prev, delta, 1.0, 0.0, dw, db, small)


@jit
def dense_backward_sgd(a_prev, w, b, delta, prev_code, lr, w_scale, db, delta_prev):
    """:func:`dense_backward` fused with a plain SGD step on this layer's parameters.

    First ``delta_prev = (δ wᵀ) ⊙ act'(a_prev)`` with the *old* ``w`` (skipped for zero rows),
    then ``w = w_scale * w - lr * a_prevᵀ δ`` as one GEMM accumulating into ``w`` (no ``dw``
    buffer is written or read again: for a 4096x4096 layer that saves ~200 MB of memory
    traffic per step), ``db = Σ_rows δ`` and ``b -= lr * db``.  ``w_scale = 1 - lr * alpha / n``
    folds in scikit-learn's L2 penalty; ``w_scale = 1`` without it.

    Parameters
    ----------
    a_prev : float32[n, d_in] or float64[n, d_in], C-contiguous
    w : float[d_in, d_out], C-contiguous
        Updated in place.
    b : float[d_out]
        Updated in place.
    delta : float[n, d_out], C-contiguous
    prev_code : int
    lr, w_scale : float
    db : float[d_out]
        Overwritten with the bias gradient.
    delta_prev : float[n, d_in] or float[0, d_in], C-contiguous
    """
    small = a_prev.shape[0] * a_prev.shape[1] * delta.shape[1] <= SMALL_BACKWARD
    _delta_prev(a_prev, w, delta, prev_code, delta_prev, small)
    _weight_grad(a_prev, delta, -lr, w_scale, w, db, small)
    step = like(lr, b)
    for j in range(b.shape[0]):
        b[j] -= step * db[j]
