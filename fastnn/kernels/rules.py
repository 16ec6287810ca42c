"""What a training step computes besides the products, chosen at compile time: the fused
output loss (:func:`loss_marker`), the optimizer update (:func:`optimizer_marker`) and
scikit-learn's end-of-epoch rule (:func:`epoch_end`).  Used by :mod:`fastnn.kernels.engine`.

A marker is a tuple of zeros whose *length* (part of its numba type) selects the
implementation, through an ``@overload``: a call compiles only the loss and update it uses, and
the compiled code stays cacheable (no first-class functions).
"""
from __future__ import annotations

import numpy as np
from numba.extending import overload

from fastnn._jit import jit
from fastnn.kernels.optim import SGD_KIND, adam_lr, adam_range, sgd_range
from fastnn.kernels.losses import _poisson_row, _sigmoid_ce_row, _sigmoid_se_row, _squared_row
from fastnn.kernels.softmax import _ce_probs_row, ce_labels_block

__all__ = [
    "OUT_SOFTMAX", "OUT_SIGMOID", "OUT_IDENTITY", "OUT_POISSON", "OUT_SIGMOID_SE", "LOSS_ROWS",
    "loss_marker", "optimizer_marker", "STOP_SIZE", "CONSTANT", "INVSCALING", "ADAPTIVE",
    "GO_ON", "STOP", "RATE_DIVIDED", "epoch_end",
]

OUT_SOFTMAX = 0
OUT_SIGMOID = 1
OUT_IDENTITY = 2
#: not a Network output: an identity-output network trained as ``exp`` + half Poisson deviance
#: (``MLPRegressor(loss="poisson")``)
OUT_POISSON = 3
#: sigmoid outputs trained with squared error: the non-canonical pair a learner starts from
#: (``Network(output="sigmoid", loss="squared_error")``), delta ``(p - y) p (1 - p)``
OUT_SIGMOID_SE = 4

#: the row functions of the fused losses; ``LOSS_ROWS[i]`` is selected by the marker
#: :func:`loss_marker` ``(i)``; marker 0 (a softmax with integer labels) selects the block
#: kernel ``ce_labels_block`` instead
LOSS_ROWS = (None, _ce_probs_row, _sigmoid_ce_row, _squared_row, _poisson_row, _sigmoid_se_row)


def loss_marker(out_kind, labels):
    """The kernels' ``loss`` argument for output kind ``out_kind`` (``labels``: a softmax with
    integer class labels).  Its *type* selects the loss's row function at compile time (a tuple
    of ``i + 1`` zeros selects ``LOSS_ROWS[i]``), so a call compiles only the loss it uses and
    the compiled code stays cacheable."""
    index = {OUT_SOFTMAX: 1, OUT_SIGMOID: 2, OUT_IDENTITY: 3, OUT_POISSON: 4,
             OUT_SIGMOID_SE: 5}[out_kind]
    if out_kind == OUT_SOFTMAX and labels:
        index = 0
    return (0,) * (index + 1)


def optimizer_marker(kind):
    """The kernels' optimizer argument for ``kind`` (``SGD_KIND`` or ``ADAM_KIND``): its type
    selects the update at compile time, as :func:`loss_marker` does for the loss."""
    return (0,) if kind == SGD_KIND else (0, 0)


def _is_sgd(kind):
    raise NotImplementedError("only callable from compiled code")


@overload(_is_sgd)
def _is_sgd_ov(kind):
    sgd = kind.count == 1
    return lambda kind: sgd


def _update(kind, hp, step, params, grad, s1, s2):
    """The optimizer step on ``params`` (a slice starting at its range) from ``grad``."""
    raise NotImplementedError("only callable from compiled code")


@overload(_update)
def _update_ov(kind, hp, step, params, grad, s1, s2):
    if kind.count == 1:
        def sgd(kind, hp, step, params, grad, s1, s2):
            t = params.dtype.type
            sgd_range(params, grad, s1, t(hp[0]), t(hp[1]), hp[2] != 0.0, 0, params.shape[0])
        return sgd

    def adam(kind, hp, step, params, grad, s1, s2):
        t = params.dtype.type
        lr_t = adam_lr(hp[0], hp[1], hp[2], step)
        adam_range(params, grad, s1, s2, t(lr_t), t(hp[1]), t(hp[2]), t(hp[3]),
                   t(1.0 - hp[0] * hp[4]), 0, params.shape[0])
    return adam


def _loss(loss, ws, zo, do, rows, k, tgt, sw, order, i0, wsum):
    """The fused output loss of rows ``order[i0:i0 + rows]``: logits at ``ws[zo:]``, writes
    ``dL/dz`` at ``ws[do:]``; returns ``sum_i w_i l_i / wsum``.  ``loss``: the marker of the
    loss (:func:`loss_marker`)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_loss)
def _loss_ov(loss, ws, zo, do, rows, k, tgt, sw, order, i0, wsum):
    if loss.count == 1:
        return lambda loss, ws, zo, do, rows, k, tgt, sw, order, i0, wsum: ce_labels_block(
            ws, zo, ws, do, rows, k, tgt, sw, order, i0, wsum)
    row_fn = LOSS_ROWS[loss.count - 1]

    def rows_loss(loss, ws, zo, do, rows, k, tgt, sw, order, i0, wsum):
        weighted = sw.shape[0] > 0
        total = 0.0
        for i in range(rows):
            src = order[i0 + i]
            w = np.float64(sw[src]) if weighted else 1.0
            row = row_fn(ws[zo + i * k:zo + (i + 1) * k], tgt[src], w / wsum,
                         ws[do + i * k:do + (i + 1) * k])
            if w != 0.0:  # (a zero-weight row adds nothing, even where its loss is infinite)
                total += w * row
        return total / wsum

    return rows_loss


#: ``stop`` : float64[STOP_SIZE] — scikit-learn's stopping rule and learning-rate schedule:
#: ``tol, n_iter_no_change, best_loss, no_improvement_count, schedule, lr_init, power_t,
#: samples_seen`` (``schedule``: CONSTANT, INVSCALING or ADAPTIVE)
STOP_SIZE = 8
_TOL, _PATIENCE, _BEST, _COUNT, _SCHEDULE, _LR_INIT, _POWER_T, _SEEN = range(STOP_SIZE)
CONSTANT, INVSCALING, ADAPTIVE = 0, 1, 2


#: :func:`epoch_end`'s answers
GO_ON, STOP, RATE_DIVIDED = 0, 1, 2


@jit(fastmath=False)  # the invscaling power as Python's (libm pow): scikit-learn's exact rate
def epoch_end(stop, hp, loss, n_samples):
    """scikit-learn's end of an epoch (``_update_no_improvement_count``, ``iteration_ends`` and
    ``trigger_stopping``, in that order) on ``stop`` and the learning rate ``hp[0]``.

    ``loss`` is the value that must decrease: the training loss, or minus the validation score
    with early stopping (``score < best + tol`` is ``-score > -best - tol``).  ``stop`` :
    float64[STOP_SIZE] (see :data:`STOP_SIZE`), or float64[0] for no rule.  Returns
    :data:`STOP` to stop training, :data:`RATE_DIVIDED` when the ``adaptive`` schedule divided
    the rate by 5 instead, else :data:`GO_ON`."""
    if stop.shape[0] == 0:
        return GO_ON
    if loss > stop[_BEST] - stop[_TOL]:
        stop[_COUNT] += 1.0
    else:
        stop[_COUNT] = 0.0
    if loss < stop[_BEST]:
        stop[_BEST] = loss
    stop[_SEEN] += n_samples
    if stop[_SCHEDULE] == INVSCALING:
        hp[0] = stop[_LR_INIT] / (stop[_SEEN] + 1.0) ** stop[_POWER_T]
    if stop[_COUNT] > stop[_PATIENCE]:
        if stop[_SCHEDULE] != ADAPTIVE or hp[0] <= 1e-6:
            return STOP
        hp[0] = hp[0] / 5.0
        stop[_COUNT] = 0.0
        return RATE_DIVIDED
    return GO_ON
