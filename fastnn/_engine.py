"""Several epochs in one compiled call, on one or two threads: :func:`run_epochs`.

:func:`fastnn.train.run_epoch` is one epoch per call.  A small network's epoch is short (digits
64-100-10: 8 minibatches, ~0.6 ms), so the Python around each call (scikit-learn's
bookkeeping, ~90 µs) and starting the second thread (~0.1 ms) would cost as much as a fifth of
it.  :func:`run_epochs` trains a block of epochs in one call and applies scikit-learn's
end-of-epoch rules (stopping on ``tol``/``n_iter_no_change``, the ``invscaling`` and ``adaptive``
learning rates) between them inside the kernel (:mod:`fastnn.kernels.epochs`).

With two or more numba threads and enough work, an epoch runs on two threads in lock step
(:func:`use_two_threads`): a one-hidden-layer network splits its hidden units (``"units"``,
:mod:`fastnn.kernels.epoch_units`: only partial logits cross between the cores), other small
networks split each minibatch's rows (``"rows"``, :mod:`fastnn.kernels.epochs`: the gradients
cross); otherwise one thread runs the epoch with BLAS threaded inside large products (see
docs/architecture.md).
"""
from __future__ import annotations

import contextlib
import threading

import numba
import numpy as np

from fastnn._aligned import zeros as aligned_zeros
from fastnn.kernels import epoch as _k1
from fastnn.kernels import epoch_units as _ku
from fastnn.kernels import epochs as _k
from fastnn.kernels.softmax import PARALLEL_MIN_SIZE

__all__ = ["run_epochs", "engine_arrays", "split_targets", "use_two_threads", "stop_state"]

#: two threads need at least this many multiply-adds per minibatch (below, one thread's step
#: is a few µs and the two barriers per step are a large part of it)
TWO_THREADS_MIN_MACS = 1 << 19
#: ... at least this many rows per minibatch (half of them per thread) ...
TWO_THREADS_MIN_ROWS = 16
#: ... and this many minibatches in the call (starting the second thread costs ~0.1 ms)
TWO_THREADS_MIN_STEPS = 16

#: the hidden-unit split needs at least this many hidden units per thread
UNITS_MIN = 16

_broken = []  # set once when the two prange iterations did not run at the same time
force = []  # tests: append "one", "rows" or "units" to choose the kernel (pop to undo)


def use_two_threads(sizes, batch_size, steps):
    """How :func:`run_epochs` trains: ``"units"`` (one hidden layer, its units split between
    two threads), ``"rows"`` (minibatch rows split between two threads) or ``"one"``."""
    if force:
        return force[-1]
    sizes = [int(s) for s in sizes]
    macs = [batch_size * a * b for a, b in zip(sizes[:-1], sizes[1:])]
    if _broken or numba.get_num_threads() < 2 or steps < TWO_THREADS_MIN_STEPS \
            or sum(macs) < TWO_THREADS_MIN_MACS or batch_size * sizes[-1] >= PARALLEL_MIN_SIZE:
        return "one"
    one_hidden = len(sizes) == 3 and sizes[1] >= 2 * UNITS_MIN
    small = max(macs) < _k1.BLAS_SERIAL_MAX  # BLAS would run every product on one thread
    if small:
        if batch_size < TWO_THREADS_MIN_ROWS:
            return "one"
        # what crosses between the cores each step: the partial logits (units) or every
        # gradient (rows); digits 64-100-10, batch 200: 2,000 values against 7,510
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        return "units" if one_hidden and batch_size * sizes[-1] <= n_params else "rows"
    # large products: with more than two threads, BLAS threads them all (the kernels below
    # use two)
    if numba.get_num_threads() == 2 and one_hidden:
        return "units"
    return "one"


def stop_state(tol, n_iter_no_change, best_loss, count, schedule="constant", lr_init=0.0,
               power_t=0.5, samples_seen=0):
    """The ``stop`` array of :func:`run_epochs`: scikit-learn's stopping rule and schedule."""
    code = {"constant": _k.CONSTANT, "invscaling": _k.INVSCALING, "adaptive": _k.ADAPTIVE}
    return np.array([tol, n_iter_no_change, best_loss, count, code[schedule], lr_init, power_t,
                     samples_seen], dtype=np.float64)


def _buffers(net, batch_size, labels, targets, sw, two):
    key = ("epochs", two, batch_size, labels.shape[0] > 0, targets.shape[0] > 0,
           sw.shape[0] > 0)
    bufs = net._workspaces.get(key)
    if bufs is None:
        k = net.layer_sizes[-1]
        p = net.params.shape[0]
        if two == "units":
            h = 2 * batch_size  # two input sets: the next minibatch is gathered during a step
            rows = (2, h)
            ws = aligned_zeros((2, _ku.unit_workspace_size(net.layer_sizes, batch_size)), net.dtype)
            q = -(-_ku.packed_size(net.layer_sizes) // _k.PAD) * _k.PAD
            parts = aligned_zeros((2, 2, _ku.parts_size(net.layer_sizes, batch_size)), net.dtype)
            grad = (aligned_zeros((2, 5, q), net.dtype), parts)
        elif two == "rows":
            h = _k.half_rows(batch_size)
            rows = (2, h)
            ws = aligned_zeros((2, _k.thread_workspace_size(net.layer_sizes, batch_size)),
                               net.dtype)
            q = -(-p // _k.PAD) * _k.PAD
            grad = (aligned_zeros((6, q), net.dtype), aligned_zeros((3, q), net.dtype))
        else:
            h = batch_size
            rows = (h,)
            ws = aligned_zeros(_k1.workspace_size(net.layer_sizes, batch_size, True), net.dtype)
            grad = aligned_zeros(p, net.dtype)
        lb = aligned_zeros(rows[:-1] + (h if labels.shape[0] else 0,), np.int64)
        tb = aligned_zeros(rows[:-1] + (h if targets.shape[0] else 0, k), net.dtype)
        wb = aligned_zeros(rows[:-1] + (h if sw.shape[0] else 0,), net.dtype)
        snapshot = aligned_zeros(p, net.dtype)
        bufs = net._workspaces[key] = (ws, grad, lb, tb, wb, snapshot)
    return bufs


def split_targets(net, y):
    """``(labels, targets)``: int64 labels and an empty ``float[0, k]``, or an empty int64[0]
    and the float targets — the kernels' two target arguments, from prepared targets ``y``."""
    if y.ndim == 1:
        return y, np.zeros((0, net.layer_sizes[-1]), dtype=net.dtype)
    return np.zeros(0, dtype=np.int64), y


def engine_arrays(net, y, sample_weight):
    """``(labels, targets, sw)`` for :func:`run_epochs` from :func:`fastnn.train.prepare_targets`
    output and sample weights (or None)."""
    labels, targets = split_targets(
        net, np.ascontiguousarray(y, dtype=np.int64 if y.ndim == 1 else net.dtype))
    sw = np.zeros(0, dtype=net.dtype) if sample_weight is None else \
        np.ascontiguousarray(sample_weight, dtype=net.dtype)
    return labels, targets, sw


_workqueue_lock = threading.Lock()


def _parallel_region():
    """numba's ``workqueue`` threading layer (used where no OpenMP or TBB is installed) aborts
    the process when two Python threads launch parallel regions at the same time: there, the
    two-thread kernels of concurrent fits run one after the other.  ``omp`` and ``tbb`` take
    concurrent launches (each caller gets its own threads)."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # pragma: no cover - fastnn._jit starts the layer on import
        layer = None
    return _workqueue_lock if layer == "workqueue" else contextlib.nullcontext()


def _ran(result, ran):
    """The result of a two-thread kernel, or None when its two threads did not run at the same
    time (nothing was trained); then two threads are not tried again in this process, unless
    numba's pool had a single thread (a forced kernel, in tests)."""
    if ran:
        return result
    if numba.get_num_threads() >= 2:
        _broken.append(True)
    return None


def run_epochs(net, X, labels, targets, sw, optimizer, *, batch_size, orders, alpha=0.0,
               data_loss_scale=1.0, stop=None, fuse_min=0, out_kind=None):
    """Train ``net`` for ``len(orders)`` epochs in one compiled call.

    Parameters
    ----------
    net : Network; X : float[n, n_in] of ``net.dtype``, C-contiguous (validated by the caller).
    labels, targets, sw : as :func:`fastnn.kernels.epoch.epoch_steps` (:func:`engine_arrays`).
    optimizer : SGD, Adam or AdamW; its ``t`` advances by the steps taken and its ``lr``
        follows the schedule in ``stop``.
    batch_size : int >= 1; orders : int64[E, m] — the rows of each epoch, in order.
    alpha : float — L2 coefficient; data_loss_scale : float — as ``run_epoch``.
    stop : float64[8] from :func:`stop_state` (updated in place) or None: all E epochs run.
    fuse_min : int — as ``epoch_steps`` (one thread only).
    out_kind : int or None — the kernel's output kind (None: the network's own).

    Returns
    -------
    (losses, stopped, failed_step, restored) : float64[e] losses of the e completed epochs;
    True when the rule in ``stop`` ended training; 0, or the 1-based minibatch of epoch
    ``e + 1`` whose loss was not finite (its update not applied); True when ``net.params``
    were not finite then and were restored to the start of that epoch.
    """
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    n_epochs, m = orders.shape
    batch_size = int(min(batch_size, max(1, m)))
    steps_per_epoch = -(-m // batch_size)
    stop = np.zeros(0) if stop is None else stop
    losses = np.zeros(n_epochs)
    s1, s2 = optimizer._buffers(net.params)
    hp = optimizer._hparams()
    args = (X, labels, targets, sw, orders, batch_size, net._sizes, net._w_off, net._b_off,
            net._codes, net._out_kind if out_kind is None else int(out_kind), net.params)
    two = use_two_threads(net.layer_sizes, batch_size, n_epochs * steps_per_epoch)
    result = None
    if two == "units":
        ws, (own, parts), lb, tb, wb, snapshot = _buffers(net, batch_size, labels, targets, sw,
                                                          two)
        with _parallel_region():
            *result, ran = _ku.train_epochs_units(
                *args, optimizer.kind, hp, s1, s2, optimizer.t, float(alpha), own, ws, lb, tb,
                wb, parts, float(data_loss_scale), stop, losses, snapshot)
        result = _ran(result, ran)
    elif two == "rows":
        ws, (grads, replica), lb, tb, wb, snapshot = _buffers(net, batch_size, labels, targets,
                                                               sw, two)
        with _parallel_region():
            *result, ran = _k.train_epochs_2(*args, grads, optimizer.kind, hp, s1, s2,
                                             optimizer.t, float(alpha), ws, lb, tb, wb,
                                             float(data_loss_scale), stop, losses, snapshot,
                                             replica)
        result = _ran(result, ran)
    if result is None:
        ws, grad, lb, tb, wb, snapshot = _buffers(net, batch_size, labels, targets, sw, "one")
        result = _k.train_epochs(*args, grad, optimizer.kind, hp, s1, s2, optimizer.t,
                                 float(alpha), int(fuse_min), ws, lb, tb, wb,
                                 float(data_loss_scale), stop, losses, snapshot)
    epochs, steps, finite, stopped = result
    optimizer.t += steps
    optimizer.lr = float(hp[0])
    failed, restored = 0, False
    if not finite:
        failed = steps - epochs * steps_per_epoch + 1
        restored = not np.isfinite(net.params).all()
        if restored:
            net.params[...] = snapshot
    return losses[:epochs], bool(stopped), failed, restored
