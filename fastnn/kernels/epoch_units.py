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

Each thread keeps its sub-network packed in one flat vector (``W1_t`` ``[d0, h_t]``, ``b1_t``,
``W2_t`` ``[h_t, d2]``, its own ``b2`` — the real one for thread 0, zeros for thread 1) with
its gradient and optimizer state; the packed weights and states are written back into
``params`` / ``state1`` / ``state2`` at the end of the call.  Each thread keeps its part of the
parameters at the start of the epoch, written to ``snapshot`` only when a minibatch loss is not
finite (a per-epoch snapshot of ``params`` read half of them from the other core).

**Unit-major activations.**  Inside a step the activations are stored transposed, one row per
unit and one column per minibatch row: ``xᵀ`` ``[d0, rows]``, ``hᵀ`` ``[h_t, rows]``, ``zᵀ``
``[d2, rows]``.  The products then run along the minibatch (200 rows) rather than along a
thread's units (50 for digits, not a multiple of the 16-float SIMD width) or the 10 classes,
and the fused softmax loss runs along the rows too (:func:`_ce_labels_t`).  Measured on one core,
float32, digits (200 rows, 50 units): the five products 23.8 µs row-major, 21.0 µs unit-major
(including ``xᵀ``, :func:`fastnn.kernels.transpose.transpose`); the loss 4.1 -> 1.6 µs.
``W1ᵀ xᵀ`` is formed from ``xᵀ`` when ``x`` is narrow (``d0 <= 2 h_t``), else as ``x W1`` and
transposed (784-256-10, batch 128: 164 instead of 185 µs per thread and step).
Each step: ``hᵀ = act(W1ᵀ xᵀ + b1)``, ``Pᵀ = W2ᵀ hᵀ``; after the exchange ``dW2 = hᵀ dzᵀᵀ``,
``dhᵀ = (W2 dzᵀ) ⊙ act'(hᵀ)``, ``dW1 = xᵀ dhᵀᵀ`` (``x``: the gathered rows, row-major), then the
L2 term and the optimizer on the whole packed vector (:func:`_update`).  Between arriving at
the exchange and waiting for the partner, a thread gathers the next minibatch into its other
input set (:func:`_inputs`): that work absorbs the wait.  The arithmetic is the
one-thread engine's up to rounding: sums run in another order and ``z`` is summed in two parts.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from fastnn._jit import jit
from fastnn.kernels import _sync
from fastnn.kernels._blas import gemm
from fastnn.kernels._cpu import FTZ_DAZ, fp_mode, set_fp_mode
from fastnn.kernels._math import exp, like
from fastnn.kernels.activations import apply_activation
from fastnn.kernels.epoch import (
    OUT_SOFTMAX,
    _borrow,
    _l2,
    _load_batch,
    _output_loss,
    _weight_sum,
)
from fastnn.kernels.epochs import (
    _EPOCHS, _FINITE, _RAN, _STEPS, _STOPPED, _epoch_end, landed, launch,
)
from fastnn.kernels.optim import SGD_KIND, adam_lr, step_range
from fastnn.kernels.softmax import _exact_sub, _flush, _fmax, _weights
from fastnn.kernels.transpose import transpose

__all__ = ["units_of", "packed_size", "unit_workspace_size", "parts_size", "train_epochs_units"]


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
    """Per-thread workspace length: two input sets (:func:`_inputs`) and the blocks of
    :func:`_views`, for the whole minibatch."""
    d0, d1, d2 = (int(s) for s in sizes)
    return batch_size * (4 * d0 + 2 * units_of(d1)[0][1] + 4 * d2 + 2)


def parts_size(sizes, batch_size):
    """Length of one partial-logit block (``float[sizes[2], batch_size]``), padded to whole
    cache lines so that the two threads' blocks share none."""
    return -(-int(batch_size) * int(sizes[2]) // 32) * 32


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


@jit(inline="always")
def _row_bias_act_loop(act, grad, args):
    """``a[j, i] = act(a[j, i] + b[j])``: the bias and activation of a unit-major block."""
    a, b = args
    for j in range(a.shape[0]):
        bj = b[j]
        for i in range(a.shape[1]):
            a[j, i] = act(a[j, i] + bj)


@jit(inline="always")
def _row_backward_sums_loop(act, grad, args):
    """``d[j, i] *= act'(a[j, i])`` and ``out[j] = sum_i d[j, i]``: the hidden delta and its
    bias gradient in one pass over a unit-major block."""
    a, d, out = args
    for j in range(a.shape[0]):
        s = like(0.0, d)
        for i in range(a.shape[1]):
            v = d[j, i] * grad(a[j, i])
            d[j, i] = v
            s += v
        out[j] = s


@jit
def _row_sums(a, out):
    """``out[j] = sum_i a[j, i]`` (the bias gradient of a unit-major delta block)."""
    for j in range(a.shape[0]):
        s = like(0.0, a)
        for i in range(a.shape[1]):
            s += a[j, i]
        out[j] = s


@jit
def _ce_labels_t(zt, labels, sw, dzt, mx, s):
    """:func:`fastnn.kernels.softmax.softmax_cross_entropy_labels` on logits stored unit-major,
    ``zt : float[k, n]`` (column ``i`` is row ``i``'s logits), writing ``dzt`` the same way:
    every pass runs along the ``n`` rows, so it vectorises for any ``k`` (10 classes fill no
    SIMD register; 200 rows do).  ``mx``, ``s`` : float[n] scratch.

    Returns ``(ok, loss)``; ``ok`` is False (nothing written) when a row's max is not finite
    (NaN, +inf or all ``-inf``): the caller then runs the row kernel, which handles those."""
    k, n = zt.shape
    mx[:] = zt[0]
    for c in range(1, k):
        zc = zt[c]
        for i in range(n):
            mx[i] = _fmax(mx[i], zc[i])
    finite = True
    for i in range(n):
        finite &= math.isfinite(mx[i])
    if not finite:
        return False, 0.0
    wsum, weighted = _weights(sw, n)
    total = 0.0
    for i in range(n):
        w = np.float64(sw[i]) if weighted else 1.0
        total += w * _exact_sub(np.float64(mx[i]), np.float64(zt[labels[i], i]))
    s[:] = 0
    for c in range(k):
        zc, dc = zt[c], dzt[c]
        for i in range(n):
            e = exp(zc[i] - mx[i])
            dc[i] = e
            s[i] += e
    if weighted:
        for i in range(n):
            total += np.float64(sw[i]) * math.log(np.float64(s[i]))
    else:
        # sum_i log(s_i) as the log of float64 products: 1 <= s_i <= k (the max term is 1), so
        # a product of 64 stays below k^64: finite for k < 1e4; larger k takes one log per row
        step = 64 if k < 10_000 else 1
        for i0 in range(0, n, step):
            prod = 1.0
            for i in range(i0, min(n, i0 + step)):
                prod *= np.float64(s[i])
            total += math.log(prod)
    inv = 1.0 / wsum
    for i in range(n):
        c = np.float64(sw[i]) * inv if weighted else inv
        s[i] = like(c / np.float64(s[i]), dzt)  # s becomes the row's scale
    for c in range(k):
        dc = dzt[c]
        for i in range(n):
            dc[i] = _flush(dc[i] * s[i])
    for i in range(n):
        dzt[labels[i], i] -= like(np.float64(sw[i]) * inv if weighted else inv, dzt)
    return True, total / wsum


@jit
def _loss_t(zt, dzt, zs, dzs, mx, s, labels, targets, sw, out_kind):
    """The fused loss of ``out_kind`` on unit-major logits ``zt : float[k, n]``; writes
    ``dzt``.  Softmax with labels runs unit-major (:func:`_ce_labels_t`); other outputs (and
    non-finite rows) go through the row kernels on the transposed block ``zs``/``dzs``."""
    if out_kind == OUT_SOFTMAX and targets.shape[0] == 0:
        ok, data = _ce_labels_t(zt, labels, sw, dzt, mx, s)
        if ok:
            return data
    transpose(zt, zs)
    data = _output_loss(zs, labels, targets, sw, dzs, out_kind)
    transpose(dzs, dzt)
    return data


@jit
def _views(ws, d0, h, d2, capacity, rows):
    """This thread's unit-major blocks for a minibatch of ``rows`` rows: ``(ht, dht, zt, dzt,
    zs, dzs, mx, s, hs)`` — the hidden activations and their deltas ``[h, rows]``, the logits
    and their deltas ``[d2, rows]``, row-major copies of those ``[rows, d2]``, two ``[rows]``
    scratch vectors and ``hs``, the ``dht`` block seen as ``[rows, h]`` (the row-major hidden
    product before its transpose), after the two input sets (:func:`_inputs`); ``capacity``
    rows each."""
    blocks = (h, h, d2, d2, d2, d2, 1, 1)
    out = [_borrow(ws[0:0])]
    out.clear()
    off = 4 * capacity * d0
    for width in blocks:
        out.append(_borrow(ws[off:off + rows * width]))
        off += capacity * width
    return (out[0].reshape((h, rows)), out[1].reshape((h, rows)), out[2].reshape((d2, rows)),
            out[3].reshape((d2, rows)), out[4].reshape((rows, d2)), out[5].reshape((rows, d2)),
            out[6], out[7], out[1].reshape((rows, h)))


@jit
def _inputs(ws, lb, tb, wb, d0, capacity, rows, p):
    """Input set ``p`` (0 or 1: minibatches alternate) for ``rows`` rows: ``(xb, xt, lb, tb,
    wb)`` — gathered rows ``[rows, d0]``, their transpose ``[d0, rows]`` and the gathered
    labels / targets / weights (empty when unused)."""
    off = 2 * p * capacity * d0
    xb = _borrow(ws[off:off + rows * d0]).reshape((rows, d0))
    xt = _borrow(ws[off + capacity * d0:off + capacity * d0 + rows * d0]).reshape((d0, rows))
    lo, hi = p * capacity, p * capacity + rows
    return (xb, xt, lb[lo:hi] if lb.shape[0] > 0 else lb, tb[lo:hi] if tb.shape[0] > 0 else tb,
            wb[lo:hi] if wb.shape[0] > 0 else wb)


@jit
def _load_t(x, labels, targets, sw, order, i0, rows, inputs, transpose_x):
    """Minibatch ``order[i0:i0 + rows]`` into an input set: ``(x rows, xᵀ, labels, targets,
    weights)`` (x rows read in place when consecutive, see :func:`_load_batch`; ``xᵀ`` written
    only with ``transpose_x``)."""
    xb, xt, lb, tb, wb = inputs
    xv, lv, tv, wv = _load_batch(x, labels, targets, sw, order, i0, rows, xb, lb, tb, wb)
    if transpose_x:
        transpose(xv, xt)
    return xv, xt, lv, tv, wv


@jit
def _forward_t(me, xv, xt, ht, hs, pt, w1, b1, w2, b2, code, transpose_x):
    """``hᵀ = act(W1ᵀ xᵀ + b1)`` and this thread's partial logits ``pᵀ = W2ᵀ hᵀ`` (+ ``b2`` on
    thread 0).  ``W1ᵀ xᵀ`` is formed from ``xᵀ`` (``transpose_x``) or as the row-major
    ``x W1`` in ``hs``, then transposed: whichever of ``x`` and ``h`` has fewer columns is
    transposed (see :func:`train_epochs_units`)."""
    if transpose_x:
        gemm(True, False, 1.0, w1, xt, 0.0, ht)  # hᵀ = W1ᵀ xᵀ  [h, rows]
    else:
        gemm(False, False, 1.0, xv, w1, 0.0, hs)  # h = x W1  [rows, h]
        transpose(hs, ht)
    apply_activation(code, _row_bias_act_loop, (ht, b1))
    gemm(True, False, 1.0, w2, ht, 0.0, pt)  # partial zᵀ = W2ᵀ hᵀ  [d2, rows]
    if me == 0:
        for c in range(pt.shape[0]):
            bc = b2[c]
            for i in range(pt.shape[1]):
                pt[c, i] += bc


@jit
def _backward_t(me, xv, lv, tv, wv, views, p0, p1, w2, g1, gb1, g2, gb2, code, out_kind):
    """``z = p0 + p1``, the fused loss on the whole minibatch and this thread's gradients;
    returns the loss."""
    ht, dht, zt, dzt, zs, dzs, mx, s, _ = views
    z = zt.ravel()
    for i in range(z.shape[0]):
        z[i] = p0[i] + p1[i]
    data = _loss_t(zt, dzt, zs, dzs, mx, s, lv, tv, wv, out_kind)
    if not math.isfinite(data):
        return data
    gemm(False, True, 1.0, ht, dzt, 0.0, g2)  # dW2 = hᵀ (dzᵀ)ᵀ  [h, d2]
    if me == 0:
        _row_sums(dzt, gb2)
    else:
        gb2[:] = 0  # the bias of z is thread 0's: thread 1's copy stays zero
    gemm(False, False, 1.0, w2, dzt, 0.0, dht)  # dhᵀ = W2 dzᵀ  [h, rows]
    apply_activation(code, _row_backward_sums_loop, (ht, dht, gb1))
    gemm(True, True, 1.0, xv, dht, 0.0, g1)  # dW1 = xᵀ (dhᵀ)ᵀ  [d0, h]
    return data


@jit
def _update(prm, grad, s1, s2, n1, n2_lo, n2_hi, alpha, wsum, opt_kind, hp, step):
    """L2 (on ``W1 = prm[:n1]`` and ``W2 = prm[n2_lo:n2_hi]``) and the optimizer step on the
    whole packed sub-network; returns the L2 loss term."""
    t = prm.dtype.type
    c = t(alpha / wsum)
    sq = 0.0
    if alpha > 0.0:
        sq += _l2(prm[:n1], grad[:n1], c) + _l2(prm[n2_lo:n2_hi], grad[n2_lo:n2_hi], c)
    lr_t = hp[0] if opt_kind == SGD_KIND else adam_lr(hp[0], hp[1], hp[2], step)
    step_range(opt_kind, hp, lr_t, prm, grad, s1, s2, prm.shape[0])
    return 0.5 * alpha * sq / wsum


@jit
def _finish(me, e, steps, finite, stopped, results):
    results[me, _EPOCHS] = e
    results[me, _STEPS] = steps
    results[me, _FINITE] = 1.0 if finite else 0.0
    results[me, _STOPPED] = 1.0 if stopped else 0.0


@jit
def _worker(me, x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes, out_kind,
            params, opt_kind, hp, state1, state2, step0, alpha, own, ws, lb, tb, wb,
            parts, loss_scale, stop, losses, snapshot, flags, box, results):
    """Thread ``me``'s part of :func:`train_epochs_units`; writes ``results[me]``."""
    if not _sync.handshake(flags, me):
        return
    results[me, _RAN] = 1.0
    d0, d1, d2 = sizes[0], sizes[1], sizes[2]
    h0 = (d1 + 1) // 2
    u0, h = (0, h0) if me == 0 else (h0, d1 - h0)
    mine = me == 0  # thread 0 owns b2
    n1 = d0 * h
    n2_lo = n1 + h
    n2_hi = n2_lo + h * d2
    n_t = n2_hi + d2
    prm, grad, start = own[me, 0, :n_t], own[me, 1, :n_t], own[me, 4, :n_t]
    s1 = own[me, 2, :n_t] if state1.shape[0] > 0 else own[me, 2, :0]
    s2 = own[me, 3, :n_t] if state2.shape[0] > 0 else own[me, 3, :0]
    _move(params, prm, sizes, w_off, b_off, u0, h, mine, True)
    if s1.shape[0] > 0:
        _move(state1, s1, sizes, w_off, b_off, u0, h, mine, True)
    if s2.shape[0] > 0:
        _move(state2, s2, sizes, w_off, b_off, u0, h, mine, True)
    w1, b1 = _borrow(prm[:n1]).reshape((d0, h)), _borrow(prm[n1:n2_lo])
    w2, b2 = _borrow(prm[n2_lo:n2_hi]).reshape((h, d2)), _borrow(prm[n2_hi:])
    g1, gb1 = _borrow(grad[:n1]).reshape((d0, h)), _borrow(grad[n1:n2_lo])
    g2, gb2 = _borrow(grad[n2_lo:n2_hi]).reshape((h, d2)), _borrow(grad[n2_hi:])
    code = codes[0]
    lb, tb, wb = _borrow(lb[me]), _borrow(tb[me]), _borrow(wb[me])
    n_epochs, m = orders.shape
    bs = batch_size
    last = m % bs
    wsm = ws[me]
    full_v = _views(wsm, d0, h, d2, bs, bs)
    last_v = _views(wsm, d0, h, d2, bs, last)
    # x is transposed when narrow (digits: 64 inputs, 50 units per thread), else the hidden
    # product (784 inputs, 128 units: 164 µs per step instead of 185 µs, float32, one core)
    transpose_x = d0 <= 2 * h
    cur = _inputs(wsm, lb, tb, wb, d0, bs, 0, 0)  # (typed, empty: replaced by the first load)
    if n_epochs > 0 and m > 0:
        cur = _load_t(x, labels, targets, sw, orders[0], 0, min(bs, m),
                      _inputs(wsm, lb, tb, wb, d0, bs, min(bs, m), 0), transpose_x)
    line = _sync.LINE
    steps = 0
    k = 0  # barriers passed
    for e in range(n_epochs):
        order = orders[e]
        start[:] = prm  # this thread's part of the parameters at the epoch's start
        data_sum = 0.0
        l2_sum = 0.0
        for i0 in range(0, m, bs):
            par = steps % 2
            rows = min(bs, m - i0)
            views = full_v if rows == bs else last_v
            xv, xt, lv, tv, wv = cur
            pt = _borrow(parts[par, me, :d2 * rows]).reshape((d2, rows))
            _forward_t(me, xv, xt, views[0], views[8], pt, w1, b1, w2, b2, code, transpose_x)
            k += 1
            _sync.arrive(flags, me, k)
            # the next minibatch does not depend on the exchange: it is loaded (into the other
            # input set) while the partner finishes its partial logits
            nxt, i1 = (order, i0 + bs) if i0 + bs < m else (orders[min(e + 1, n_epochs - 1)], 0)
            if i0 + bs < m or e + 1 < n_epochs:
                n1_rows = min(bs, m - i1)
                cur = _load_t(x, labels, targets, sw, nxt, i1, n1_rows,
                              _inputs(wsm, lb, tb, wb, d0, bs, n1_rows, 1 - par), transpose_x)
            _sync.wait(flags, me, k)
            data = _backward_t(me, xv, lv, tv, wv, views, parts[par, 0, :d2 * rows],
                               parts[par, 1, :d2 * rows], w2, g1, gb1, g2, gb2, code, out_kind)
            if not math.isfinite(data):  # (both threads see the same loss)
                _move(snapshot, start, sizes, w_off, b_off, u0, h, mine, False)
                _store(prm, s1, s2, params, state1, state2, sizes, w_off, b_off, u0, h, mine)
                _finish(me, e, steps, False, False, results)
                return
            l2 = _update(prm, grad, s1, s2, n1, n2_lo, n2_hi, alpha, _weight_sum(wv, rows),
                         opt_kind, hp, step0 + steps + 1)
            data_sum += data * rows
            l2_sum += l2 * rows
            steps += 1
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
            _store(prm, s1, s2, params, state1, state2, sizes, w_off, b_off, u0, h, mine)
            _finish(me, e + 1, steps, True, True, results)
            return
    _store(prm, s1, s2, params, state1, state2, sizes, w_off, b_off, u0, h, mine)
    _finish(me, orders.shape[0], steps, True, False, results)


@jit
def _store(prm, s1, s2, params, state1, state2, sizes, w_off, b_off, u0, h, mine):
    """This thread's packed parameters and optimizer states back into the network layout."""
    _move(params, prm, sizes, w_off, b_off, u0, h, mine, False)
    if s1.shape[0] > 0:
        _move(state1, s1, sizes, w_off, b_off, u0, h, mine, False)
    if s2.shape[0] > 0:
        _move(state2, s2, sizes, w_off, b_off, u0, h, mine, False)


@jit(parallel=True)
def train_epochs_units(x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off, codes,
                       out_kind, params, opt_kind, hp, state1, state2, step0, alpha, own, ws,
                       lb, tb, wb, parts, loss_scale, stop, losses, snapshot):
    """:func:`fastnn.kernels.epochs.train_epochs` for a one-hidden-layer network (``sizes`` has
    3 entries) on two threads (module docstring).

    Parameters
    ----------
    As :func:`~fastnn.kernels.epochs.train_epochs` (without ``fuse_min``), with per-thread
    buffers instead of ``grad``, ``ws``, ``lb``, ``tb``, ``wb``:
    own : float[2, 5, q], q >= packed_size(sizes) — each thread's packed parameters, gradient,
        two optimizer states and parameters at the start of the epoch.
    ws : float[2, unit_workspace_size(sizes, batch_size)].
    lb : int64[2, 2 * batch_size] or int64[2, 0]; tb : float[2, 2 * batch_size, k] or
    float[2, 0, k]; wb : float[2, 2 * batch_size] or float[2, 0] — each thread gathers the
    whole minibatch, into two input sets (minibatches alternate between them).
    parts : float[2, 2, parts_size(sizes, batch_size)] — partial logits (unit-major
        ``[sizes[2], rows]``) by step parity and thread.

    Returns
    -------
    (epochs, steps, finite, stopped, ran) : as :func:`fastnn.kernels.epochs.train_epochs_2`.
    """
    flags, box, results, blas = launch()
    for me in numba.prange(2):
        mode = fp_mode()
        set_fp_mode(mode | FTZ_DAZ)
        # (int64: the prange index is unsigned, and a second type compiles _worker twice)
        _worker(np.int64(me), x, labels, targets, sw, orders, batch_size, sizes, w_off, b_off,
                codes, out_kind, params, opt_kind, hp, state1, state2, step0, alpha, own, ws,
                lb, tb, wb, parts, loss_scale, stop, losses, snapshot, flags, box, results)
        set_fp_mode(mode)
    return landed(results, blas)
