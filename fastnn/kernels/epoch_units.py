"""Epochs of a ONE-hidden-layer network on two threads, each owning half of the hidden units.

scikit-learn's default MLP has one hidden layer, ``d0 -> d1 -> d2``.  Split its ``d1`` units in
two: thread ``t`` owns units ``[u0, u0 + h_t)``, i.e. the columns ``W1[:, u0:u0+h_t]``, the
biases ``b1[u0:u0+h_t]`` and the rows ``W2[u0:u0+h_t, :]`` — a sub-network
``d0 -> h_t -> d2`` whose output is a PARTIAL logit ``P_t = relu(x W1_t + b1_t) W2_t``:

1. both threads gather the whole minibatch; thread ``t`` runs its sub-network's forward pass to
   ``P_t`` (thread 0 adds ``b2``);
2. barrier; each thread sums ``z = P_0 + P_1`` (the same sum, in the same order) and runs the
   fused loss on the whole minibatch — both get the same loss and ``dL/dz``;
3. each thread runs the backward pass and the optimizer update of its own sub-network: its part
   of ``dL/dW1``, ``dL/db1``, ``dL/dW2`` depends only on its own units and ``dL/dz``.

One barrier per step; nothing but ``P_t`` (``rows x d2`` values) crosses between the cores,
while every weight stays in the cache of the core that owns it.  Splitting minibatch rows
instead (:mod:`fastnn.kernels.epochs`) moves every gradient across each step; a BLAS threaded
inside each product splits each GEMM its own way, so the forward product and the update of
``W1`` split ``W1`` differently and half of it moves between the cores every step.

Each thread keeps its sub-network packed in one flat vector (``W1_t``, ``b1_t``, ``W2_t``, its
own ``b2`` — the real one for thread 0, zeros for thread 1) with its gradient and optimizer
state, and runs the one-thread engine (:func:`fastnn.kernels.epoch._backward`) on it, so every
optimizer, output and L2 rule is the one-thread code.  The packed weights are written back
into ``params`` at the end of every epoch (and the states at the end of the call).
The arithmetic is the one-thread engine's, except that ``z`` is summed in two parts.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from fastnn._jit import jit
from fastnn.kernels import _sync
from fastnn.kernels._cpu import FTZ_DAZ, fp_mode, set_fp_mode
from fastnn.kernels.dense import dense_forward
from fastnn.kernels.epoch import (
    _backward,
    _borrow,
    _load_batch,
    _output_loss,
    _param_views,
    _weight_sum,
    _work_views,
    workspace_size,
)
from fastnn.kernels.epochs import (
    _EPOCHS, _FINITE, _RAN, _STEPS, _STOPPED, _epoch_end, landed, launch,
)

__all__ = ["units_of", "packed_size", "unit_workspace_size", "train_epochs_units"]


def units_of(d1):
    """``(u0, h)`` hidden units of thread 0 and 1: ``[(0, h0), (h0, d1 - h0)]``."""
    h0 = (int(d1) + 1) // 2
    return [(0, h0), (h0, int(d1) - h0)]


def packed_size(sizes):
    """Length of the largest packed sub-network vector (thread 0's)."""
    d0, d1, d2 = (int(s) for s in sizes)
    h = units_of(d1)[0][1]
    return d0 * h + h + h * d2 + d2


def unit_workspace_size(sizes, batch_size):
    """Per-thread workspace length: the sub-network's workspace for the whole minibatch."""
    d0, d1, d2 = (int(s) for s in sizes)
    return workspace_size([d0, units_of(d1)[0][1], d2], batch_size, True)


@jit
def _move(flat, packed, sizes, w_off, b_off, u0, h, with_b2, to_packed):
    """Copy thread-owned parameters between the network layout ``flat`` and ``packed``
    (``to_packed``) or back.  ``with_b2`` False: the packed ``b2`` is zeroed (to_packed) or
    not written back."""
    d0, d1, d2 = sizes[0], sizes[1], sizes[2]
    o = 0
    for r in range(d0):
        base = w_off[0] + r * d1 + u0
        for j in range(h):
            if to_packed:
                packed[o + j] = flat[base + j]
            else:
                flat[base + j] = packed[o + j]
        o += h
    for j in range(h):
        if to_packed:
            packed[o + j] = flat[b_off[0] + u0 + j]
        else:
            flat[b_off[0] + u0 + j] = packed[o + j]
    o += h
    base = w_off[1] + u0 * d2
    for j in range(h * d2):
        if to_packed:
            packed[o + j] = flat[base + j]
        else:
            flat[base + j] = packed[o + j]
    o += h * d2
    for j in range(d2):
        if to_packed:
            packed[o + j] = flat[b_off[1] + j] if with_b2 else 0
        elif with_b2:
            flat[b_off[1] + j] = packed[o + j]


@jit
def _sum_parts(p0, p1, z):
    """``z = p0 + p1`` (both threads: the same values, in the same order)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] = p0[i, j] + p1[i, j]


@jit
def _finish(me, e, steps, finite, stopped, results):
    results[me, _EPOCHS] = e
    results[me, _STEPS] = steps
    results[me, _FINITE] = 1.0 if finite else 0.0
    results[me, _STOPPED] = 1.0 if stopped else 0.0


@jit
def _worker(me, x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes, out_kind,
            params, opt_kind, hp, state1, state2, step0, alpha, fuse_min, own, ws, lb, tb, wb,
            parts, loss_scale, stop, losses, snapshot, flags, box, results):
    """Thread ``me``'s part of :func:`train_epochs_units`; writes ``results[me]``."""
    if not _sync.handshake(flags, me):
        return
    results[me, _RAN] = 1.0
    d0, d1, d2 = sizes[0], sizes[1], sizes[2]
    h0 = (d1 + 1) // 2
    u0, h = (0, h0) if me == 0 else (h0, d1 - h0)
    mine = me == 0  # thread 0 owns b2
    sizes_t = np.array([d0, h, d2], dtype=np.int64)
    w_off_t = np.array([0, d0 * h + h], dtype=np.int64)
    b_off_t = np.array([d0 * h, d0 * h + h + h * d2], dtype=np.int64)
    n_t = d0 * h + h + h * d2 + d2
    prm, grad = own[me, 0, :n_t], own[me, 1, :n_t]
    s1 = own[me, 2, :n_t] if state1.shape[0] > 0 else own[me, 2, :0]
    s2 = own[me, 3, :n_t] if state2.shape[0] > 0 else own[me, 3, :0]
    _move(params, prm, sizes, w_off, b_off, u0, h, mine, True)
    if s1.shape[0] > 0:
        _move(state1, s1, sizes, w_off, b_off, u0, h, mine, True)
    if s2.shape[0] > 0:
        _move(state2, s2, sizes, w_off, b_off, u0, h, mine, True)
    wts, bs = _param_views(prm, sizes_t, w_off_t, b_off_t)
    dws, dbs = _param_views(grad, sizes_t, w_off_t, b_off_t)
    vws, vbs = _param_views(s1 if s1.shape[0] > 0 else grad, sizes_t, w_off_t, b_off_t)
    b2 = bs[1]
    lb, tb, wb = _borrow(lb[me]), _borrow(tb[me]), _borrow(wb[me])
    m = orders.shape[1]
    last = m % batch_size
    xb, acts, deltas = _work_views(ws[me], sizes_t, batch_size, batch_size, np.bool_(True))
    xr, acts_r, deltas_r = _work_views(ws[me], sizes_t, batch_size, last, np.bool_(True))
    line = _sync.LINE
    steps = 0
    k = 0  # barriers passed
    for e in range(orders.shape[0]):
        order = orders[e]
        if me == 0:
            snapshot[:] = params  # (written back by both threads before the last barrier)
        data_sum = 0.0
        l2_sum = 0.0
        for i0 in range(0, m, batch_size):
            par = steps % 2
            rows = min(batch_size, m - i0)
            full = rows == batch_size
            av = acts if full else acts_r
            dv = deltas if full else deltas_r
            xv, lv, tv, wv = _load_batch(x, labels, targets, sw, order, i0, rows,
                                         xb if full else xr, lb, tb, wb)
            dense_forward(xv, wts[0], bs[0], codes[0], av[0])
            dense_forward(av[0], wts[1], b2, codes[1], parts[par, me, :rows])
            k += 1
            _sync.arrive_and_wait(flags, me, k)
            z = av[1]
            _sum_parts(parts[par, 0, :rows], parts[par, 1, :rows], z)
            data = _output_loss(z, lv, tv, wv, dv[1], out_kind)
            if not math.isfinite(data):  # (both threads see the same loss)
                _move(params, prm, sizes, w_off, b_off, u0, h, mine, False)
                _store_states(s1, s2, state1, state2, sizes, w_off, b_off, u0, h, mine)
                _finish(me, e, steps, False, False, results)
                return
            l2 = _backward(xv, av, dv, wts, bs, dws, dbs, codes, alpha, _weight_sum(wv, rows),
                           np.bool_(True), opt_kind, hp, prm, grad, s1, s2, step0 + steps + 1,
                           vws, vbs, w_off_t, b_off_t, fuse_min, np.int64(0))
            if not mine:
                b2[:] = 0  # the bias of z is thread 0's: thread 1's copy stays zero
            data_sum += data * rows
            l2_sum += l2 * rows
            steps += 1
        _move(params, prm, sizes, w_off, b_off, u0, h, mine, False)
        # thread 0 computes the epoch's loss (its L2 term has a part from each thread) and
        # applies the end-of-epoch rules; thread 1 reads the decision after a second barrier
        box[me * line + 1] = l2_sum
        k += 1
        _sync.arrive_and_wait(flags, me, k)
        if me == 0:
            loss = (data_sum * loss_scale + box[1] + box[line + 1]) / max(1, m)
            losses[e] = loss
            box[3] = 1.0 if _epoch_end(stop, hp, loss, m) else 0.0
        k += 1
        _sync.arrive_and_wait(flags, me, k)
        if box[3] == 1.0:
            _store_states(s1, s2, state1, state2, sizes, w_off, b_off, u0, h, mine)
            _finish(me, e + 1, steps, True, True, results)
            return
    _store_states(s1, s2, state1, state2, sizes, w_off, b_off, u0, h, mine)
    _finish(me, orders.shape[0], steps, True, False, results)


@jit
def _store_states(s1, s2, state1, state2, sizes, w_off, b_off, u0, h, mine):
    if s1.shape[0] > 0:
        _move(state1, s1, sizes, w_off, b_off, u0, h, mine, False)
    if s2.shape[0] > 0:
        _move(state2, s2, sizes, w_off, b_off, u0, h, mine, False)


@jit(parallel=True)
def train_epochs_units(x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes,
                       out_kind, params, opt_kind, hp, state1, state2, step0, alpha, fuse_min,
                       own, ws, lb, tb, wb, parts, loss_scale, stop, losses, snapshot):
    """:func:`fastnn.kernels.epochs.train_epochs` for a one-hidden-layer network (``sizes`` has
    3 entries) on two threads (module docstring).

    Parameters
    ----------
    As :func:`~fastnn.kernels.epochs.train_epochs`, with per-thread buffers instead of
    ``grad``, ``ws``, ``lb``, ``tb``, ``wb``:
    own : float[2, 4, q], q >= packed_size(sizes) — each thread's packed parameters, gradient
        and two optimizer states.
    ws : float[2, unit_workspace_size(sizes, batch_size)].
    lb : int64[2, batch_size] or int64[2, 0]; tb : float[2, batch_size, k] or float[2, 0, k];
    wb : float[2, batch_size] or float[2, 0] — each thread gathers the whole minibatch.
    parts : float[2, 2, batch_size, sizes[2]] — partial logits by step parity and thread.

    Returns
    -------
    (epochs, steps, finite, stopped, ran) : as :func:`fastnn.kernels.epochs.train_epochs_2`.
    """
    flags, box, results, blas = launch()
    for me in numba.prange(2):
        mode = fp_mode()
        set_fp_mode(mode | FTZ_DAZ)
        _worker(me, x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes,
                out_kind, params, opt_kind, hp, state1, state2, step0, alpha, fuse_min, own, ws,
                lb, tb, wb, parts, loss_scale, stop, losses, snapshot, flags, box, results)
        set_fp_mode(mode)
    return landed(results, blas)
