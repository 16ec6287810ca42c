"""The Python side of the training engine (:mod:`fastnn.kernels.engine`): :func:`run_epochs`
(a block of epochs) and :func:`run_epoch` (one epoch, the documented engine API, exported by
:mod:`fastnn.train`).

A block of epochs is ONE compiled call: a small network's epoch is short (digits 64-100-10: 8
minibatches, well under a millisecond), so the Python around each call would otherwise cost a
large part of it.  scikit-learn's end-of-epoch rules (stopping on ``tol``/``n_iter_no_change``,
the ``invscaling`` and ``adaptive`` learning rates) run inside the kernel between the epochs of
a block (:func:`fastnn.kernels.engine.epoch_end`, the one implementation of those rules).

Threads: an epoch runs on the calling thread.  A network whose products are all small runs them
on one BLAS thread (waking a second one costs more than it saves); a large one lets BLAS thread
each product.  Many fits use many cores as parallel fits (joblib / Dask), see docs/scale.md.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from fastnn._aligned import zeros as aligned_zeros
from fastnn._checks import check_int
from fastnn._sparse import CSR
from fastnn.kernels import engine as _k

__all__ = ["run_epoch", "run_epochs", "stop_state", "loss_marker", "weights_array",
           "NonFiniteLossError", "OUT_POISSON"]

OUT_POISSON = _k.OUT_POISSON


class NonFiniteLossError(FloatingPointError):
    """A minibatch loss was NaN or inf; the network keeps its last finite weights."""


#: per network: the engine's scratch buffers for the last (batch size, dtype) it trained with
_buffers_of = weakref.WeakKeyDictionary()
#: per network: held while it trains, so that two threads training one network take turns
#: (their steps would otherwise interleave on the same parameters and buffers)
_locks = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock(net):
    with _locks_guard:
        lock = _locks.get(net)
        if lock is None:
            lock = _locks[net] = threading.Lock()
    return lock


def stop_state(tol, n_iter_no_change, best_loss, count, schedule="constant", lr_init=0.0,
               power_t=0.5, samples_seen=0):
    """The ``stop`` array of :func:`run_epochs`: scikit-learn's stopping rule and schedule."""
    code = {"constant": _k.CONSTANT, "invscaling": _k.INVSCALING, "adaptive": _k.ADAPTIVE}
    return np.array([tol, n_iter_no_change, best_loss, count, code[schedule], lr_init, power_t,
                     samples_seen], dtype=np.float64)


def loss_marker(out_kind, targets):
    """The kernels' ``loss`` argument for output kind ``out_kind`` and these targets (integer
    labels select the label form of the softmax cross-entropy)."""
    return _k.loss_marker(out_kind, targets.ndim == 1)


def weights_array(sample_weight, dtype):
    """Sample weights as the kernels take them: ``float[n]`` of ``dtype``, or ``float[0]``."""
    if sample_weight is None:
        return np.zeros(0, dtype=dtype)
    return np.ascontiguousarray(sample_weight, dtype=dtype)


def _buffers(net, batch_size, sparse=False):
    """``(workspace, gradient, snapshots)`` for ``net``: the first two per batch size (and
    input kind), the snapshot (the start of the last epoch known to give a finite loss, see
    :func:`fastnn.kernels.engine.train_epochs`) kept across calls and batch sizes."""
    bufs = _buffers_of.get(net)
    p = net.n_params
    if bufs is None or bufs["snapshots"][0].shape[0] != p or bufs["dtype"] != net.dtype:
        bufs = _buffers_of[net] = {"dtype": net.dtype, "batch": None, "snapshots": (
            aligned_zeros(p, net.dtype), np.zeros(1, dtype=np.int64))}
    if bufs["batch"] != (batch_size, sparse):
        bufs["batch"] = (batch_size, sparse)
        bufs["work"] = (aligned_zeros(_k.workspace_size(net.layer_sizes, batch_size, sparse),
                                      net.dtype), aligned_zeros(p, net.dtype))
    return (*bufs["work"], bufs["snapshots"])


def one_blas_thread(layer_sizes, batch_size):
    """Whether every product of a step is small enough to run on one BLAS thread."""
    sizes = [int(s) for s in layer_sizes]
    return max(batch_size * a * b for a, b in zip(sizes[:-1], sizes[1:])) < _k.BLAS_SERIAL_MAX


def run_epochs(net, X, targets, sw, optimizer, *, batch_size, orders, alpha=0.0,
               data_loss_scale=1.0, stop=None, out_kind=None):
    """Train ``net`` for ``len(orders)`` epochs in one compiled call.

    Parameters
    ----------
    net : Network; X : float[n, n_in] of ``net.dtype``, C-contiguous, or a
        :class:`fastnn._sparse.CSR` (validated by the caller).
    targets : int64[n] class labels (softmax) or float[n, k] of ``net.dtype``
        (:func:`fastnn.train.prepare_targets`); sw : float[n] of ``net.dtype`` or float[0].
    optimizer : SGD, Adam or AdamW; its ``t`` advances by the steps taken and its ``lr``
        follows the schedule in ``stop``.
    batch_size : int >= 1; orders : int64[E, m] — the rows of each epoch, in order (validated
        by the caller: every entry in ``[0, n)``).
    alpha : float — L2 coefficient; data_loss_scale : float — multiplies the data term of the
        reported loss.
    stop : float64[8] from :func:`stop_state` (updated in place) or None: all E epochs run.
    out_kind : int or None — the output kind trained (None: the network's own).

    Returns
    -------
    (losses, stopped, failed_step) : float64[e] losses of the e completed epochs; True when the
    rule in ``stop`` ended training; 0, or the 1-based minibatch of epoch ``e + 1`` at which
    the loss (or, at the epoch's end, a parameter) was not finite — ``net.params`` are then
    the last parameters known to give a finite loss (the start of that epoch, or of the one
    before when its first minibatch failed).
    """
    # read-only input (e.g. arrays unpickled by a parallel backend) is copied: the kernels take
    # writeable arrays, so one compiled version serves every caller
    targets, sw = (a if a.flags.writeable else a.copy() for a in (targets, sw))
    sparse = isinstance(X, CSR)
    if sparse:  # read in place (a read-only memory map too: its own compiled version)
        X = X.arrays
    else:  # the kernels take dense rows flat (a view)
        X = (X if X.flags.writeable else X.copy()).reshape(-1)
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    n_epochs, m = orders.shape
    batch_size = int(min(batch_size, max(1, m)))
    steps_per_epoch = -(-m // batch_size)
    stop = np.zeros(0) if stop is None else stop
    losses = np.zeros(n_epochs)
    s1, s2 = optimizer.buffers(net.params)
    hp = optimizer.hyperparameters()
    kind = net.out_kind if out_kind is None else int(out_kind)
    with _lock(net):
        ws, grad, snapshots = _buffers(net, batch_size, sparse)
        epochs, steps, finite, stopped = _k.train_epochs(
            (X, targets, sw), loss_marker(kind, targets), orders, batch_size, net.tables,
            net.params, grad, (_k.optimizer_marker(optimizer.kind), hp, s1, s2), optimizer.t,
            float(alpha), ws, float(data_loss_scale), stop, losses, snapshots,
            one_blas_thread(net.layer_sizes, batch_size))
        optimizer.t += steps
        optimizer.lr = float(hp[0])
    failed = 0 if finite else min(steps_per_epoch, max(1, steps - epochs * steps_per_epoch + 1))
    return losses[:epochs], bool(stopped), failed


def run_epoch(net, X, y, optimizer, *, batch_size, order, alpha=0.0, sample_weight=None,
              data_loss_scale=1.0, _output=None):
    """Train ``net`` for one epoch in one compiled call; return the epoch's mean loss.

    Parameters
    ----------
    net : Network
    X : float[n, n_in] of ``net.dtype``, C-contiguous, or a :class:`fastnn._sparse.CSR` of
        that dtype (not validated here: see :func:`fastnn._checks.prepare_inputs`).
    y : output of :func:`prepare_targets`.
    optimizer : SGD, Adam or AdamW.
    batch_size : int >= 1; the last minibatch of ``order`` may be smaller.
    order : int64[m] — row indices to visit, in that order (a permutation for shuffling).
    alpha : float — L2 coefficient; sample_weight : float[n] of ``net.dtype`` or None.
    data_loss_scale : float — multiplies the data term of the *reported* loss only (never the
        gradient): MLPRegressor passes ``1 / n_outputs`` to match scikit-learn's ``loss_``.
    _output : None or "exp" — private: ``"exp"`` trains an identity-output ``net`` as an
        exponential output with the half Poisson deviance (``MLPRegressor(loss="poisson")``;
        the network keeps its identity output for prediction).

    Returns
    -------
    float : ``sum_b (scale * data_loss_b + l2_b) * len_b / m`` (scikit-learn's ``loss_``).

    Raises
    ------
    NonFiniteLossError
        when a minibatch loss (or a parameter after the epoch) is NaN/inf: ``net.params`` are
        restored to the last ones known to give a finite loss (the start of the epoch, or of
        the epoch before when the first minibatch failed).
    """
    if not isinstance(X, (np.ndarray, CSR)):  # e.g. a scipy.sparse matrix: not the engine's form
        raise TypeError(f"X must be a C-contiguous 2-D {net.dtype} array or the validated sparse "
                        f"input that fastnn.train.prepare_inputs returns, got "
                        f"{type(X).__name__}")
    if X.dtype != net.dtype or X.ndim != 2 or not (isinstance(X, CSR) or X.flags.c_contiguous):
        raise TypeError(f"X must be a C-contiguous 2-D {net.dtype} array (see prepare_targets / "
                        f"fit for validation), got {X.dtype} {X.shape}")
    if y.ndim != 2 and not (y.ndim == 1 and net.output == "softmax"):
        raise TypeError(f"y must come from prepare_targets: float[n, {net.layer_sizes[-1]}] for "
                        f"a {net.output} output, got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    out_kind = None
    if _output is not None:
        if _output != "exp" or net.output != "identity":
            raise ValueError(f"_output must be None or 'exp' with an identity-output network, "
                             f"got _output={_output!r} for a {net.output} output")
        out_kind = OUT_POISSON
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.ndim != 1:
        raise ValueError(f"order must be a 1-D array of row indices, got shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError(f"order must hold row indices in [0, {X.shape[0]}), got min "
                         f"{order.min()} and max {order.max()}")
    batch_size = check_int(batch_size, "batch_size", 1)
    sw = weights_array(sample_weight, net.dtype)
    losses, _, failed = run_epochs(
        net, X, y, sw, optimizer, batch_size=batch_size, orders=order[None], alpha=alpha,
        data_loss_scale=data_loss_scale, out_kind=out_kind)
    if failed:
        raise NonFiniteLossError(
            f"the training loss became NaN or infinite at minibatch {failed} of the epoch "
            f"(learning rate {optimizer.lr:g}); the network keeps the last weights that gave a "
            "finite loss (the start of an epoch). Lower the learning rate or scale the inputs.")
    return float(losses[0])
