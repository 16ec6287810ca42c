"""The pieces of scikit-learn's MLP training loop that are not the estimator itself.

* :class:`LearningRateSchedule` is scikit-learn's ``SGDOptimizer``/``AdamOptimizer`` around a
  fastnn optimizer: its ``learning_rate`` is the optimizer's ``lr``, which the engine's
  end-of-epoch rule (:func:`fastnn.kernels.rules.epoch_end`) changes exactly where
  scikit-learn's ``iteration_ends`` and ``trigger_stopping`` do.
* :func:`shuffled` reproduces ``sklearn.utils.shuffle(idx, random_state=rs)`` draw for draw, so a
  fastnn fit consumes the same random numbers as scikit-learn's and sees the same batches.
* :func:`lbfgs` runs scipy's L-BFGS-B on the network's flat parameter buffer.
* :func:`accuracy` and :func:`r2` are scikit-learn's validation scores without their input
  checks (early stopping scores every epoch; the checks cost more than a small epoch).
* The Poisson loss (``MLPRegressor(loss="poisson")``: exp output, half Poisson deviance) trains
  an identity-output network through the engine's private Poisson output kind (the fused
  ``poisson_deviance`` kernel: loss and ``dL/dz = w (exp(z) - y) / sum w``): one compiled call per
  epoch (:func:`poisson_epoch`) or per L-BFGS evaluation (:func:`poisson_loss_and_grad`).
"""
from __future__ import annotations

import numpy as np
import scipy.optimize
from scipy.special import xlogy
from sklearn.model_selection import train_test_split

from fastnn import stream
from fastnn._engine import OUT_POISSON, weights_array
from fastnn._sparse import CSR
from fastnn.optim import SGD, Adam
from fastnn._engine import NonFiniteLossError, run_epoch

__all__ = [
    "accuracy",
    "r2",
    "LearningRateSchedule",
    "shuffled",
    "shuffled_block",
    "lbfgs",
    "l2_penalty",
    "poisson_loss",
    "poisson_loss_and_grad",
    "poisson_epoch",
    "split_rows",
]


class LearningRateSchedule:
    """scikit-learn's optimizer state machine around a fastnn optimizer.

    ``learning_rate`` is scikit-learn's attribute of the same name (the current rate for SGD;
    ``learning_rate_init`` for Adam, whose bias correction lives inside the engine's update).
    """

    def __init__(self, est):
        self.learning_rate_init = float(est.learning_rate_init)
        if est.solver == "sgd":
            self.engine = SGD(
                lr=self.learning_rate_init,
                momentum=float(est.momentum),
                nesterov=bool(est.nesterovs_momentum),
            )
        else:
            self.engine = Adam(
                lr=self.learning_rate_init,
                beta1=float(est.beta_1),
                beta2=float(est.beta_2),
                eps=float(est.epsilon),
            )

    @property
    def learning_rate(self):
        return float(self.engine.lr)

    @learning_rate.setter
    def learning_rate(self, value):
        self.engine.lr = float(value)


def shuffled(sample_idx, rs):
    """``sklearn.utils.shuffle(sample_idx, random_state=rs)`` without its validation overhead.

    ``shuffle`` -> ``resample(replace=False)`` draws ``rs.shuffle(arange(n))`` and indexes with it.
    """
    perm = np.arange(sample_idx.shape[0])
    rs.shuffle(perm)
    return sample_idx[perm]


def shuffled_block(sample_idx, rs, epochs):
    """``(orders, sample_idx)``: the orders of ``epochs`` epochs, ``orders[e]`` after ``e + 1``
    calls of :func:`shuffled`, and the last one; ``rs`` advances as those calls advance it."""
    orders = np.empty((epochs, sample_idx.shape[0]), dtype=np.int64)
    for e in range(epochs):
        sample_idx = orders[e] = shuffled(sample_idx, rs)
    return orders, sample_idx


def accuracy(y_true, y_pred, sample_weight=None):
    """``sklearn.metrics.accuracy_score`` (subset accuracy for indicator rows) without its
    input validation, which costs more than a small epoch: early stopping scores every epoch."""
    correct = y_true == y_pred
    if correct.ndim == 2:
        correct = correct.all(axis=1)
    return float(np.average(correct, weights=sample_weight))


def r2(y_true, y_pred, sample_weight=None):
    """``sklearn.metrics.r2_score`` (uniform average over outputs, ``force_finite=True``), same
    arithmetic and dtype, without its input validation."""
    n = y_true.shape[0]
    floats = [a.dtype for a in (y_true, y_pred, sample_weight) if a is not None and a.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.float64
    y_true = np.asarray(y_true, dtype=dtype).reshape(n, -1)
    y_pred = np.asarray(y_pred, dtype=dtype).reshape(n, -1)
    weight = 1.0 if sample_weight is None else np.asarray(sample_weight, dtype=dtype)[:, None]
    numerator = np.sum(weight * (y_true - y_pred) ** 2, axis=0)
    mean = np.average(y_true, axis=0, weights=sample_weight)
    denominator = np.sum(weight * (y_true - mean) ** 2, axis=0)
    scores = np.ones(y_true.shape[1], dtype=numerator.dtype)
    valid = (denominator != 0) & (numerator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return float(np.mean(scores))


def l2_penalty(net, alpha, sw_sum):
    """``alpha / (2 sw_sum) * sum_l ||W_l||^2`` as scikit-learn adds it to the loss."""
    total = 0.0
    for w in net.weights:
        s = w.ravel()
        total += float(np.dot(s, s))
    return 0.5 * alpha * total / sw_sum


def poisson_loss(y, z, sample_weight=None):
    """scikit-learn's ``poisson_loss`` (half deviance incl. ``xlogy(y, y)``) from log-predictions."""
    y_pred = np.exp(z)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dev = xlogy(y, y / y_pred) - y + y_pred
    return float(np.average(dev, weights=sample_weight, axis=0).sum())


def poisson_loss_and_grad(net, X, y, alpha, sample_weight=None):
    """Loss (with its L2 term) and flat gradient of an identity-output ``net`` read as an ``exp``
    output with the half Poisson deviance (scikit-learn's objective, :func:`poisson_loss`).

    In memory: one compiled forward/backward pass with the Poisson output kind (what
    ``Network.loss_and_grad`` runs for its own outputs).  An out-of-core ``X`` streams through
    ``Network.loss_and_grad`` of the identity output against the shifted target
    ``y' = z - (exp(z) - y)``, whose squared-error delta ``z - y'`` is the Poisson ``exp(z) - y``.

    Raises
    ------
    NonFiniteLossError
        when ``exp`` of the output overflows (or the loss is NaN).
    """
    if stream.is_out_of_core(X):
        return _poisson_loss_and_grad_streamed(net, X, y, alpha, sample_weight)
    dtype = net.dtype
    if not isinstance(X, CSR):  # (a sparse X arrives validated, in the network's dtype)
        X = np.ascontiguousarray(X, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype).reshape(X.shape[0], -1)
    grad = np.empty_like(net.params)
    data, l2 = net.loss_grad_into(X, y, weights_array(sample_weight, dtype), alpha, grad,
                                  out_kind=OUT_POISSON)
    if not np.isfinite(data):
        raise NonFiniteLossError("the Poisson loss overflowed (exp of the output is infinite)")
    return data + l2, grad


def _poisson_loss_and_grad_streamed(net, X, y, alpha, sample_weight):
    z = net.forward(X)  # identity output: z, in bounded chunks
    sw_sum = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = z - (np.exp(z) - y)
    if not np.isfinite(shifted).all():
        raise NonFiniteLossError("the Poisson loss overflowed (exp of the output is infinite)")
    _, grad = net.loss_and_grad(X, np.ascontiguousarray(shifted, dtype=net.dtype), alpha,
                                sample_weight)
    return poisson_loss(y, z, sample_weight) + l2_penalty(net, alpha, sw_sum), grad


def poisson_epoch(net, X, y, optimizer, *, batch_size, order, alpha, sample_weight):
    """One epoch of minibatch updates for the Poisson loss; returns the batch-size-weighted mean
    loss (scikit-learn's ``loss_curve_`` entry).

    One compiled call (:func:`fastnn.train.run_epoch` with the private ``exp`` output).  An
    out-of-core ``X`` is read into memory by fancy indexing, a block of whole minibatches of
    ``order`` at a time: the same minibatches as in memory, so the same weights.
    """
    kw = dict(batch_size=batch_size, alpha=alpha, _output="exp")
    if not stream.is_out_of_core(X):
        return run_epoch(net, X, y, optimizer, order=order, sample_weight=sample_weight, **kw)
    n = order.shape[0]
    rows = stream.block_rows(X.shape[1], net.dtype, None, batch_size)
    total = 0.0
    for start in range(0, n, rows):
        idx = order[start:start + rows]
        xb = np.ascontiguousarray(X[idx], dtype=net.dtype)
        sw = None if sample_weight is None else sample_weight[idx]
        loss = run_epoch(net, xb, y[idx], optimizer, order=np.arange(idx.shape[0]),
                         sample_weight=sw, **kw)
        total += loss * idx.shape[0]
    return total / n


def lbfgs(net, loss_and_grad, *, max_iter, max_fun, tol, verbose):
    """scipy L-BFGS-B over ``net.params`` (float64 iterates, copied into the buffer each call).

    ``loss_and_grad()`` evaluates the network at its current parameters (its gradient may be a
    buffer it reuses: ``fun`` hands scipy a copy).  Returns scipy's
    ``OptimizeResult``; the buffer holds ``result.x`` on return.
    """
    params = net.params

    def fun(x):
        params[...] = x
        loss, grad = loss_and_grad()
        # a copy: scipy keeps the returned gradient while ``grad`` may be a reused buffer
        return float(loss), np.array(grad, dtype=np.float64)

    options = {"maxfun": max_fun, "maxiter": max_iter, "gtol": tol}
    if _scipy_lbfgs_takes_iprint():
        options["iprint"] = 1 if (verbose is True or verbose >= 1) else -1
    res = scipy.optimize.minimize(
        fun, params.astype(np.float64), method="L-BFGS-B", jac=True, options=options
    )
    params[...] = res.x
    return res


def _scipy_lbfgs_takes_iprint():
    # scipy >= 1.15 deprecated L-BFGS-B's iprint (scikit-learn drops it there as well)
    major, minor = (int(p) for p in scipy.__version__.split(".")[:2])
    return (major, minor) < (1, 15)


def split_rows(X, *arrays, **split_options):
    """scikit-learn's ``train_test_split(X, *arrays, **split_options)`` for an out-of-core ``X``
    without copying its training part: the same split (the same random draws), returned in the
    same order ``X_train, X_val, a_train, a_val, ...``, but ``X_train`` is a
    :class:`fastnn.stream.RowSubset` (rows in file order; the other training arrays are
    reordered to match) and ``X_val`` is read into memory.  The estimators use it for
    ``early_stopping=True``.
    """
    parts = train_test_split(np.arange(X.shape[0]), *arrays, **split_options)
    train, val = parts[0], parts[1]
    order = np.argsort(train, kind="stable")
    out = [stream.RowSubset(X, train), np.asarray(X[np.sort(val)])[np.argsort(np.argsort(val))]]
    for a_train, a_val in zip(parts[2::2], parts[3::2]):
        out += [a_train[order], a_val]
    return out
