"""Blocks of epochs in one call: :func:`train_epochs` (one thread) and :func:`train_epochs_2`
(two threads, each minibatch split in two halves), with scikit-learn's end-of-epoch rules
(:func:`_epoch_end`) applied between the epochs of a block.

:func:`fastnn.kernels.epoch.epoch_steps` runs a minibatch on one thread and lets BLAS
use the others inside each GEMM.  For layers below :data:`~fastnn.kernels.epoch.BLAS_SERIAL_MAX`
multiply-adds a second BLAS thread costs more than it saves, so small networks (64-100-50-10,
batch 200) trained on one core.  :func:`train_epochs_2` trains them on two (one-hidden-layer
networks use :mod:`fastnn.kernels.epoch_units` instead, which exchanges less):

1. thread ``t`` takes rows ``[0, h)`` (``t = 0``) or ``[h, rows)`` (``t = 1``) of the minibatch,
   ``h = ceil(rows / 2)``, gathers them into its own workspace and runs forward, the fused loss
   and backward on a ONE-thread BLAS into its own gradient buffer (double-buffered by step
   parity);
2. ONE barrier; both threads form the minibatch gradient ``c_0 g_0 + c_1 g_1`` (``c_t = w_t / w``:
   each half's loss is the mean over its own rows, ``w_t`` its weight sum) plus the L2 term, and
   apply the optimizer to their OWN full copy of the parameters and state (thread 1's replica):
   the same arithmetic in the same order, so the copies stay bit-identical.  Sharing one copy and
   updating half each made every forward pass read half of ``W`` from the other core's cache.

The arithmetic is the one-thread kernel's regrouped (sums split in two and added), so results
agree to rounding, and are identical run to run.  BLAS is set to one thread for the call (each
thread calls it on its own half: two threads in all, never more).  Threads meet through
:mod:`fastnn.kernels._sync`; if the two ``prange`` iterations do not run at the same time,
nothing is trained and the caller falls back to :func:`train_epochs`.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from fastnn._jit import jit
from fastnn.kernels import _sync
from fastnn.kernels._cpu import FTZ_DAZ, fp_mode, set_blas_threads, set_fp_mode
from fastnn.kernels._cpu import blas_threads as current_blas_threads
from fastnn.kernels.epoch import (
    _backward,
    _borrow,
    epoch_steps,
    _forward_loss,
    _load_batch,
    _param_views,
    _work_views,
    workspace_size,
)
from fastnn.kernels.optim import SGD_KIND, adam_lr, step_range

__all__ = ["PAD", "STOP_SIZE", "CONSTANT", "INVSCALING", "ADAPTIVE", "half_rows",
           "thread_workspace_size", "train_epochs", "train_epochs_2"]

#: per-thread buffers are padded to a multiple of this many elements (separate cache lines)
PAD = 32
# results columns (per thread)
_EPOCHS, _STEPS, _FINITE, _STOPPED, _RAN = range(5)
#: ``stop`` : float64[STOP_SIZE] — scikit-learn's stopping rule and learning-rate schedule:
#: ``tol, n_iter_no_change, best_loss, no_improvement_count, schedule, lr_init, power_t,
#: samples_seen`` (``schedule``: CONSTANT, INVSCALING or ADAPTIVE)
STOP_SIZE = 8
_TOL, _PATIENCE, _BEST, _COUNT, _SCHEDULE, _LR_INIT, _POWER_T, _SEEN = range(STOP_SIZE)
CONSTANT, INVSCALING, ADAPTIVE = 0, 1, 2


def half_rows(batch_size):
    """Rows of thread 0's half of a ``batch_size`` minibatch (thread 1 gets the rest)."""
    return (int(batch_size) + 1) // 2


def thread_workspace_size(sizes, batch_size):
    """Padded per-thread workspace length (one row of ``ws`` in :func:`train_epoch_2`)."""
    n = workspace_size(sizes, half_rows(batch_size), True)
    return -(-n // PAD) * PAD


@jit
def _weight_sum(sw, order, a, b):
    """Sum of ``sw[order[a:b]]`` (``b - a`` without weights), float64."""
    if sw.shape[0] == 0:
        return float(b - a)
    s = 0.0
    for i in range(a, b):
        s += sw[order[i]]
    return s


#: elements per chunk of the combined update (its gradient chunk stays in L1)
_CHUNK = 2048


@jit
def _combined_step(p, g0, g1, a, b, l, opt_kind, hp, lr_t, state1, state2, buf):
    """The optimizer step on ``p`` with the gradient ``a g0 + b g1 + l p``, formed chunk by
    chunk in ``buf`` (so each loop touches at most four arrays and vectorises: with more, LLVM
    gives up its run-time alias checks); returns ``sum(p²)`` of the old values."""
    n = p.shape[0]
    sq = 0.0
    for c in range(0, n, _CHUNK):
        k = min(n, c + _CHUNK) - c
        # borrowed views: a chunk's slices cost no reference counting (~1 µs per digits step)
        pc, x0, x1, gb = _borrow(p[c:c + k]), _borrow(g0[c:c + k]), _borrow(g1[c:c + k]), \
            _borrow(buf[:k])
        for j in range(k):
            pj = pc[j]
            sq += pj * pj
            gb[j] = a * x0[j] + b * x1[j] + l * pj
        step_range(opt_kind, hp, lr_t, pc, gb,
                   _borrow(state1[c:c + k]) if state1.shape[0] > 0 else state1,
                   _borrow(state2[c:c + k]) if state2.shape[0] > 0 else state2, k)
    return sq


@jit
def _update_all(sizes, w_off, b_off, lam, c0, c1, params, g0, g1, opt_kind, hp, lr_t, state1,
                state2, buf):
    """The optimizer step of every layer of this thread's replica with the minibatch gradient
    ``c0 g0 + c1 g1`` (plus ``lam W``); returns ``sum(W²)``.  A zero ``c`` drops a half that had
    no rows (its buffer is stale): the other buffer is read twice instead, ``0 g + c g = c g``
    exactly.  Both threads call it with the same arguments, so their replicas stay identical."""
    if c0 == 0.0:
        g0 = g1
    elif c1 == 0.0:
        g1 = g0
    t = params.dtype.type
    a, b = t(c0), t(c1)
    sq = 0.0
    for l in range(w_off.shape[0]):
        for lo, hi, with_l2 in ((w_off[l], w_off[l] + sizes[l] * sizes[l + 1], True),
                                (b_off[l], b_off[l] + sizes[l + 1], False)):
            s1 = state1[lo:hi] if state1.shape[0] > 0 else state1
            s2 = state2[lo:hi] if state2.shape[0] > 0 else state2
            s = _combined_step(params[lo:hi], g0[lo:hi], g1[lo:hi], a, b,
                               t(lam) if with_l2 else t(0.0), opt_kind, hp, lr_t, s1, s2, buf)
            if with_l2:
                sq += s
    return sq


# --------------------------------------------------------------------------- epoch ends
@jit(fastmath=False)  # the invscaling power as Python's (libm pow): scikit-learn's exact rate
def _epoch_end(stop, hp, loss, n_samples):
    """scikit-learn's end of an epoch (``_update_no_improvement_count``, ``iteration_ends`` and
    ``trigger_stopping``, in that order) on ``stop`` and the learning rate ``hp[0]``.  Returns
    True to stop training.  ``stop`` : float64[STOP_SIZE] (see :data:`STOP_SIZE`)."""
    if stop.shape[0] == 0:
        return False
    tol, patience = stop[_TOL], stop[_PATIENCE]
    if loss > stop[_BEST] - tol:
        stop[_COUNT] += 1.0
    else:
        stop[_COUNT] = 0.0
    if loss < stop[_BEST]:
        stop[_BEST] = loss
    stop[_SEEN] += n_samples
    if stop[_SCHEDULE] == INVSCALING:
        hp[0] = stop[_LR_INIT] / (stop[_SEEN] + 1.0) ** stop[_POWER_T]
    if stop[_COUNT] > patience:
        if stop[_SCHEDULE] != ADAPTIVE or hp[0] <= 1e-6:
            return True
        hp[0] = hp[0] / 5.0
        stop[_COUNT] = 0.0
    return False


# --------------------------------------------------------------------------- one thread
@jit
def train_epochs(x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes,
                 out_kind, params, grad, opt_kind, hp, state1, state2, step0, alpha, fuse_min,
                 ws, lb, tb, wb, loss_scale, stop, losses, snapshot):
    """:func:`fastnn.kernels.epoch.epoch_steps` for each row of ``orders``, with scikit-learn's
    end-of-epoch rules in between (module docstring).

    Parameters
    ----------
    x, labels, targets, sw, batch_size, sizes, w_off, b_off, codes, out_kind, params, grad,
    opt_kind, hp, state1, state2, step0, alpha, fuse_min, ws, lb, tb, wb :
        as :func:`~fastnn.kernels.epoch.epoch_steps`; ``hp[0]`` (the learning rate) is updated
        by the schedule in ``stop``.
    orders : int64[E, m] — the rows of each epoch, in order.
    loss_scale : float — multiplies the data term of the reported loss.
    stop : float64[STOP_SIZE] (updated) or float64[0] (no rule: run all E epochs).
    losses : float64[E] — written: each epoch's loss (``run_epoch``'s value).
    snapshot : float[p] — the parameters at the start of the last epoch run.

    Returns
    -------
    (epochs, steps, finite, stopped) : epochs completed; optimizer steps taken; False when a
    minibatch loss was not finite (the epoch ``epochs`` stopped there, its update not applied);
    True when the rule in ``stop`` ended training.
    """
    mode = fp_mode()
    set_fp_mode(mode | FTZ_DAZ)
    blas = current_blas_threads()
    steps = 0
    for e in range(orders.shape[0]):
        snapshot[:] = params
        order = orders[e]
        data, l2, n_steps, finite = epoch_steps(
            x, labels, targets, sw, order, batch_size, sizes, w_off, b_off, codes, out_kind,
            params, grad, opt_kind, hp, state1, state2, step0 + steps, alpha, fuse_min, ws, lb,
            tb, wb, blas)
        steps += n_steps
        if not finite:
            set_fp_mode(mode)
            return e, steps, False, False
        losses[e] = (data * loss_scale + l2) / max(1, order.shape[0])
        if _epoch_end(stop, hp, losses[e], order.shape[0]):
            set_fp_mode(mode)
            return e + 1, steps, True, True
    set_fp_mode(mode)
    return orders.shape[0], steps, True, False


# --------------------------------------------------------------------------- two threads
@jit
def launch():
    """State of a two-thread call: the ``_sync`` flags, the exchange cells, the per-thread
    results and the BLAS thread count to restore (BLAS is set to one thread for the call)."""
    flags = np.zeros(3 * _sync.LINE, dtype=np.int64)
    box = np.zeros(2 * _sync.LINE)
    results = np.zeros((2, 6))
    blas = current_blas_threads()
    if blas > 1:
        set_blas_threads(1)
    return flags, box, results, blas


@jit
def landed(results, blas):
    """Restore BLAS; ``(epochs, steps, finite, stopped, ran)`` from thread 0's results."""
    if blas > 1:
        set_blas_threads(blas)
    ran = results[0, _RAN] == 1.0 and results[1, _RAN] == 1.0
    return (int(results[0, _EPOCHS]), int(results[0, _STEPS]), results[0, _FINITE] == 1.0,
            results[0, _STOPPED] == 1.0, ran)


@jit
def _worker(me, x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes, out_kind,
            params, grads, opt_kind, hp, state1, state2, step0, alpha, ws, lb, tb, wb,
            loss_scale, stop, losses, snapshot, replica, flags, box, results):
    """Thread ``me``'s part of :func:`train_epochs_2`; writes ``results[me]``.

    Thread 0 trains ``params``/``state1``/``state2`` themselves, thread 1 a replica of them in
    ``replica`` (copied here, before the first update); both apply the same combined update.
    ``grads`` rows: ``2 * thread + parity`` the halves' gradients (double-buffered by step
    parity, so one barrier per step suffices), ``4 + thread`` each thread's combined gradient.
    ``box`` cells ``thread * LINE + 4 * parity + (0: finite, 1: the epoch's data sum so far)``.
    """
    if not _sync.handshake(flags, me):
        return
    results[me, _RAN] = 1.0
    n_params = params.shape[0]
    if me == 0:
        prm, s1, s2 = params, state1, state2
    else:
        prm = replica[0, :n_params]
        s1 = replica[1, :state1.shape[0]]
        s2 = replica[2, :state2.shape[0]]
        prm[:] = params
        s1[:] = state1
        s2[:] = state2
    wts, bs = _param_views(prm, sizes, w_off, b_off)
    dws0, dbs0 = _param_views(grads[2 * me], sizes, w_off, b_off)
    dws1, dbs1 = _param_views(grads[2 * me + 1], sizes, w_off, b_off)
    lb, tb, wb = _borrow(lb[me]), _borrow(tb[me]), _borrow(wb[me])
    m = orders.shape[1]
    cap = (batch_size + 1) // 2
    last = m % batch_size
    # this thread's rows of a full and of the last minibatch: views built once
    full_rows = cap if me == 0 else batch_size - cap
    last_rows = (last + 1) // 2 if me == 0 else last // 2
    xf, af, df = _work_views(ws[me], sizes, cap, full_rows, np.bool_(True))
    xl, al, dl = _work_views(ws[me], sizes, cap, last_rows, np.bool_(True))
    none = params[0:0]
    line = _sync.LINE
    steps = 0
    k = 0  # barriers passed
    for e in range(orders.shape[0]):
        order = orders[e]
        if me == 0:
            snapshot[:] = params
        data_sum = 0.0
        l2_sum = 0.0
        par = 0
        for i0 in range(0, m, batch_size):
            par = steps % 2
            rows = min(batch_size, m - i0)
            full = rows == batch_size
            mine = full_rows if full else last_rows
            h = (rows + 1) // 2
            w0 = _weight_sum(sw, order, i0, i0 + h)
            w1 = _weight_sum(sw, order, i0 + h, i0 + rows)
            w_all = w0 + w1
            r0, w_me = (i0, w0) if me == 0 else (i0 + h, w1)
            data = 0.0
            if mine > 0 and w_me != 0.0:
                av, dv = (af, df) if full else (al, dl)
                xv, lv, tv, wv = _load_batch(x, labels, targets, sw, order, r0, mine,
                                             xf if full else xl, lb, tb, wb)
                data = _forward_loss(xv, lv, tv, wv, av, dv, wts, bs, codes, out_kind,
                                     np.int64(0))
                if math.isfinite(data):
                    dws, dbs = (dws0, dbs0) if par == 0 else (dws1, dbs1)
                    _backward(xv, av, dv, wts, bs, dws, dbs, codes, 0.0, 1.0, np.bool_(False),
                              opt_kind, hp, prm, grads[2 * me + par], none, none, np.int64(1),
                              dws, dbs, w_off, b_off, np.int64(0), np.int64(0))
            if w_all > 0.0:
                data_sum += data * (w_me / w_all) * rows
            # (a minibatch of zero-weight rows has no loss: 0/0, as in the one-thread kernel)
            ok = math.isfinite(data) and w_all > 0.0
            box[me * line + 4 * par] = 1.0 if ok else 0.0
            box[me * line + 4 * par + 1] = data_sum
            k += 1
            _sync.arrive_and_wait(flags, me, k)
            if box[4 * par] == 0.0 or box[line + 4 * par] == 0.0:
                results[me, _EPOCHS] = e
                results[me, _STEPS] = steps
                return
            lr_t = hp[0] if opt_kind == SGD_KIND else adam_lr(hp[0], hp[1], hp[2],
                                                              step0 + steps + 1)
            sq = _update_all(sizes, w_off, b_off, alpha / w_all, w0 / w_all, w1 / w_all, prm,
                             grads[par], grads[2 + par], opt_kind, hp, lr_t, s1, s2,
                             grads[4 + me])
            l2_sum += 0.5 * alpha * sq / w_all * rows
            steps += 1
        # thread 0 computes the loss and applies the end-of-epoch rules (it owns ``stop`` and
        # ``hp``) once thread 1 has finished its last update (which reads ``hp[0]``, the rate
        # the schedule may change); thread 1 reads the decision after one more barrier
        k += 1
        _sync.arrive_and_wait(flags, me, k)
        if me == 0:
            loss = ((box[4 * par + 1] + box[line + 4 * par + 1]) * loss_scale + l2_sum) / max(1, m)
            losses[e] = loss
            box[3] = 1.0 if _epoch_end(stop, hp, loss, m) else 0.0
        k += 1
        _sync.arrive_and_wait(flags, me, k)
        if box[3] == 1.0:
            results[me, _EPOCHS] = e + 1
            results[me, _STEPS] = steps
            results[me, _FINITE] = 1.0
            results[me, _STOPPED] = 1.0
            return
    results[me, _EPOCHS] = orders.shape[0]
    results[me, _STEPS] = steps
    results[me, _FINITE] = 1.0


@jit(parallel=True)
def train_epochs_2(x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes,
                   out_kind, params, grads, opt_kind, hp, state1, state2, step0, alpha, ws, lb,
                   tb, wb, loss_scale, stop, losses, snapshot, replica):
    """:func:`train_epochs` on two threads (module docstring).

    Parameters
    ----------
    As :func:`train_epochs` (without ``fuse_min``), except the per-thread buffers:
    grads : float[6, q], q >= len(params) — gradient buffers (see ``_worker``).
    ws : float[2, thread_workspace_size(sizes, batch_size)] — one workspace per thread.
    lb : int64[2, h] or int64[2, 0]; tb : float[2, h, k] or float[2, 0, k];
    wb : float[2, h] or float[2, 0] — per-thread gather buffers, ``h = half_rows(batch_size)``.
    replica : float[3, q] — thread 1's copy of ``params``, ``state1`` and ``state2``.

    Returns
    -------
    (epochs, steps, finite, stopped, ran) : the first four as :func:`train_epochs`; ``ran`` is
    False when the two threads did not run at the same time: nothing was trained (call
    :func:`train_epochs`).  Needs numba's pool to have >= 2 threads.
    """
    flags, box, results, blas = launch()
    for me in numba.prange(2):
        mode = fp_mode()
        set_fp_mode(mode | FTZ_DAZ)
        # (int64: the prange index is unsigned, and a second type compiles _worker twice)
        _worker(np.int64(me), x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off,
                codes, out_kind, params, grads, opt_kind, hp, state1, state2, step0, alpha, ws,
                lb, tb, wb, loss_scale, stop, losses, snapshot, replica, flags, box, results)
        set_fp_mode(mode)
    return landed(results, blas)
