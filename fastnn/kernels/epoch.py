"""One training epoch in one compiled call; the network's forward and loss+gradient kernels.

A network reaches these kernels as flat arrays plus small ``int64`` tables (never lists of
arrays, whose reflection costs ~60 µs per call):

``sizes : int64[L + 1]``
    layer widths ``(n_in, h_1, ..., n_out)``; layer ``l`` maps ``sizes[l] -> sizes[l + 1]``.
``w_off, b_off : int64[L]``
    start of ``W[l]`` (``sizes[l] x sizes[l+1]``, C order) and ``b[l]`` in ``params``; the
    gradient and the optimizer state use the same layout.
``codes : int64[L]``
    activation code of each layer's output (:mod:`fastnn.kernels.activations`); the last
    entry is ``IDENTITY``: the output nonlinearity lives in the fused loss.
``out_kind : int``
    :data:`OUT_SOFTMAX` (cross-entropy), :data:`OUT_SIGMOID` (binary cross-entropy),
    :data:`OUT_IDENTITY` (squared error) or :data:`OUT_SIGMOID_SE` (sigmoid + squared error).

Workspace ``ws`` (one flat buffer of the params' dtype, allocated once per network and batch
size, see :func:`workspace_size`): an input block ``[B, sizes[0]]`` (when rows are gathered),
then the activations ``[B, sizes[l+1]]`` of every layer, then the deltas ``dL/dz`` of every
layer with the same shapes.  The 2-D views are built once per call, never per step (``reshape``
inside the step loop of a tiny network costs as much as the step), and kept in lists of
*borrowed* views (:func:`_borrow`) so that reading them costs no reference counting.
"""
from __future__ import annotations

import math

import numpy as np
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn._jit import jit
from fastnn.kernels._blas import gemm
from fastnn.kernels._cpu import set_blas_threads
from fastnn.kernels.activations import IDENTITY, LOGISTIC, activation_forward
from fastnn.kernels.dense import (
    _bias_grad,
    _delta_prev,
    dense_backward,
    dense_backward_sgd,
    dense_forward,
)
from fastnn.kernels._math import exp, like
from fastnn.kernels.softmax import (
    PARALLEL_MIN_SIZE,
    _exact_sub,
    _flush,
    _row_max,
    _weights,
    sigmoid_cross_entropy,
    sigmoid_squared_error,
    softmax,
    softmax_cross_entropy_labels,
    softmax_cross_entropy_probs,
    poisson_deviance,
    squared_error,
)
from fastnn.kernels.optim import SGD_KIND, adam_lr, step_range

__all__ = [
    "OUT_SOFTMAX", "OUT_SIGMOID", "OUT_IDENTITY", "OUT_POISSON", "OUT_SIGMOID_SE",
    "workspace_size",
    "network_forward", "network_loss_grad", "epoch_steps",
]

OUT_SOFTMAX = 0
OUT_SIGMOID = 1
OUT_IDENTITY = 2
#: not a Network output: an identity-output network trained as ``exp`` + half Poisson deviance
#: (MLPRegressor(loss='poisson'), through ``fastnn.train.run_epoch(..., _output='exp')``)
OUT_POISSON = 3
#: sigmoid outputs trained with squared error (``Network(output="sigmoid",
#: loss="squared_error")``): the non-canonical pair, kept for teaching; forward as OUT_SIGMOID
OUT_SIGMOID_SE = 4
#: inside the epoch, a layer whose products have fewer multiply-adds (``n * d_in * d_out``) runs
#: its GEMMs on ONE BLAS thread: waking OpenBLAS's second thread for a small product costs more
#: than it saves (measured, float32, 2 cores: the digits epoch, 200x64x100 and 200x100x10 layers,
#: 98 us/step with 2 threads vs 81 with 1; the weight-gradient GEMM 200x64x100 alone 25 us on 1
#: thread vs 31-137 us on 2; 2 threads win from ~5M multiply-adds, e.g. 128x784x256 250 vs 396 us).
BLAS_SERIAL_MAX = 1 << 22


def workspace_size(sizes, rows, with_input):
    """Length of the flat workspace for ``rows`` rows (input block included or not)."""
    sizes = [int(s) for s in sizes]
    return rows * ((sizes[0] if with_input else 0) + 2 * sum(sizes[1:]))


# --------------------------------------------------------------------------- views
@intrinsic
def _borrow(typingctx, arr):
    """The same array without its reference-counted owner (``meminfo = NULL``).

    Every list ``getitem`` and every slice of an owned array costs an atomic incref/decref
    pair; on a 2-3-2 network the ~40 views touched per step cost ~400 ns, a third of the
    step.  Borrowed views skip that.  They are only ever built from the kernel's own
    arguments and never escape the call, so the caller keeps the memory alive.
    """
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()

    return arr(arr), codegen


@jit
def _param_views(params, sizes, w_off, b_off):
    n_layers = w_off.shape[0]
    ws = [params[0:0].reshape((0, 0))]
    bs = [params[0:0]]
    ws.clear()
    bs.clear()
    for l in range(n_layers):
        d_in, d_out = sizes[l], sizes[l + 1]
        ws.append(_borrow(params[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))))
        bs.append(_borrow(params[b_off[l]:b_off[l] + d_out]))
    return ws, bs


@jit
def _work_views(ws, sizes, capacity, rows, with_input):
    """(x block, activations, deltas) views of ``rows`` rows in a workspace of ``capacity``."""
    n_layers = sizes.shape[0] - 1
    off = 0
    xb = ws[0:0].reshape((0, sizes[0]))
    if with_input:
        xb = _borrow(ws[0:rows * sizes[0]].reshape((rows, sizes[0])))
        off = capacity * sizes[0]
    acts = [xb]
    deltas = [xb]
    acts.clear()
    deltas.clear()
    for l in range(n_layers):
        w = sizes[l + 1]
        acts.append(_borrow(ws[off:off + rows * w].reshape((rows, w))))
        off += capacity * w
    for l in range(n_layers):
        w = sizes[l + 1]
        deltas.append(_borrow(ws[off:off + rows * w].reshape((rows, w))))
        off += capacity * w
    return xb, acts, deltas


# --------------------------------------------------------------------------- one batch
@jit
def _ce_labels_small(z, labels, sw, dz):
    """:func:`softmax_cross_entropy_labels` for a small batch, in passes over the whole block
    (row max, ``z - m``, then ONE vectorised ``exp`` over all ``n * k`` values, then row sums
    and scaling) instead of row by row: ~3x faster for ``k = 10`` where a row is shorter than a
    SIMD vector.  Rows with a non-finite max (NaN, +inf, all ``-inf``) go to the row kernel."""
    n, k = z.shape
    for i in range(n):
        if not math.isfinite(_row_max(z[i])):
            return softmax_cross_entropy_labels(z, labels, sw, dz)
    wsum, weighted = _weights(sw, n)
    total = 0.0
    for i in range(n):
        m = _row_max(z[i])
        y = labels[i]
        w = np.float64(sw[i]) if weighted else 1.0
        total += w * _exact_sub(np.float64(m), np.float64(z[i, y]))
        for j in range(k):
            dz[i, j] = z[i, j] - m
    flat = dz.ravel()
    for j in range(flat.shape[0]):
        flat[j] = exp(flat[j])
    for i in range(n):
        s = like(0.0, dz)
        for j in range(k):
            s += dz[i, j]
        w = np.float64(sw[i]) if weighted else 1.0
        total += w * math.log(np.float64(s))
        c = w / wsum
        scale = like(c / s, dz)
        for j in range(k):
            dz[i, j] = _flush(dz[i, j] * scale)
        dz[i, labels[i]] -= like(c, dz)
    return total / wsum


@jit
def _forward_loss(x, labels, targets, sw, acts, deltas, wts, bs, codes, out_kind, blas_threads):
    """Forward pass and fused loss; writes the output delta ``deltas[-1]``; returns the loss.
    ``blas_threads``: as :func:`_backward` (small layers run on one BLAS thread)."""
    n_layers = len(wts)
    a = x
    for l in range(n_layers):
        w = wts[l]
        serial = blas_threads > 1 and x.shape[0] * w.shape[0] * w.shape[1] < BLAS_SERIAL_MAX
        if serial:
            set_blas_threads(1)
        dense_forward(a, w, bs[l], codes[l], acts[l])
        if serial:
            set_blas_threads(blas_threads)
        a = acts[l]
    return _output_loss(acts[n_layers - 1], labels, targets, sw, deltas[n_layers - 1], out_kind)


@jit
def _output_loss(z, labels, targets, sw, dz, out_kind):
    """The fused loss of output kind ``out_kind`` on logits ``z``; writes ``dz = dL/dz``."""
    if out_kind == OUT_SOFTMAX:
        if targets.shape[0] == 0:
            if z.size < PARALLEL_MIN_SIZE:
                return _ce_labels_small(z, labels, sw, dz)
            return softmax_cross_entropy_labels(z, labels, sw, dz)
        return softmax_cross_entropy_probs(z, targets, sw, dz)
    if out_kind == OUT_SIGMOID:
        return sigmoid_cross_entropy(z, targets, sw, dz)
    if out_kind == OUT_POISSON:
        return poisson_deviance(z, targets, sw, dz)
    if out_kind == OUT_SIGMOID_SE:
        return sigmoid_squared_error(z, targets, sw, dz)
    return squared_error(z, targets, sw, dz)


@jit
def _weight_sum(sw, n):
    if sw.shape[0] == 0:
        return float(n)
    s = 0.0
    for i in range(sw.shape[0]):
        s += sw[i]
    return s


@jit
def _l2(w, g, c):
    """``sum(w^2)``, and ``g += c w`` unless ``g`` is empty."""
    s = 0.0
    if g.shape[0] == 0:
        for i in range(w.shape[0]):
            s += w[i] * w[i]
    else:
        for i in range(w.shape[0]):
            wi = w[i]
            s += wi * wi
            g[i] += c * wi
    return s


@jit
def _momentum_layer(a_prev, delta, w, b, db, vw, vb, lr, mu, c):
    """Classic momentum on one layer with the gradient folded into the velocity GEMM:
    ``vw = mu vw - lr (a_prevᵀ δ + c w); w += vw`` (and the same for ``b`` without L2)."""
    t = w.dtype.type
    _bias_grad(delta, db)
    gemm(True, False, -lr, a_prev, delta, mu, vw)
    w1, v1 = w.ravel(), vw.ravel()
    lrc, lr_, mu_ = t(lr * c), t(lr), t(mu)
    for i in range(w1.shape[0]):
        v = v1[i] - lrc * w1[i]
        v1[i] = v
        w1[i] += v
    for j in range(b.shape[0]):
        v = mu_ * vb[j] - lr_ * db[j]
        vb[j] = v
        b[j] += v


@jit
def _backward(x, acts, deltas, wts, bs, dws, dbs, codes, alpha, wsum, update, opt_kind, hp,
              params, grad, s1, s2, step, vws, vbs, w_off, b_off, fuse_min, blas_threads):
    """Backward pass from ``deltas[-1]``; with ``update`` each layer is updated as soon as its
    gradient is known (its old ``W`` is no longer needed).  Returns the L2 loss term.

    ``blas_threads > 1``: the BLAS thread count to restore after a layer of fewer than
    :data:`BLAS_SERIAL_MAX` multiply-adds, whose GEMMs run on one thread (0: leave BLAS alone).

    Plain SGD and classic momentum fold the update into the weight GEMM for layers of more than
    ``fuse_min`` multiply-adds (no gradient buffer written and re-read); other layers and
    optimizers write ``dws``/``dbs`` (views of ``grad``) and update their slice of ``params``.
    """
    n_layers = len(wts)
    n = x.shape[0]
    c = alpha / wsum
    sq = 0.0
    empty = dbs[0][0:0]
    t = params.dtype.type
    lr, mu = hp[0], hp[1]
    nesterov = hp[2] != 0.0
    sgd = opt_kind == SGD_KIND
    lr_t = lr if sgd else adam_lr(lr, hp[1], hp[2], step)
    for l in range(n_layers - 1, -1, -1):
        a_prev = x if l == 0 else acts[l - 1]
        d_prev = deltas[0][0:0] if l == 0 else deltas[l - 1]
        prev_code = IDENTITY if l == 0 else codes[l - 1]
        w = wts[l]
        d_in, d_out = w.shape
        serial = blas_threads > 1 and n * d_in * d_out < BLAS_SERIAL_MAX
        if serial:
            set_blas_threads(1)
        if update and sgd and not nesterov and n * d_in * d_out > fuse_min:
            if alpha > 0.0:
                sq += _l2(w.ravel(), empty, 0.0)
            if mu == 0.0:  # w = (1 - lr c) w - lr a_prevᵀ δ as one GEMM
                dense_backward_sgd(a_prev, w, bs[l], deltas[l], prev_code, lr, 1.0 - lr * c,
                                   dbs[l], d_prev)
            else:
                _delta_prev(a_prev, w, deltas[l], prev_code, d_prev, False)
                _momentum_layer(a_prev, deltas[l], w, bs[l], dbs[l], vws[l], vbs[l], lr, mu, c)
            if serial:
                set_blas_threads(blas_threads)
            continue
        dense_backward(a_prev, w, deltas[l], prev_code, dws[l], dbs[l], d_prev)
        if serial:
            set_blas_threads(blas_threads)
        if alpha > 0.0:
            sq += _l2(w.ravel(), dws[l].ravel(), t(c))
        if update:  # the layer's slices (step_range: views that start at the range)
            lo, hi = w_off[l], b_off[l] + d_out
            step_range(opt_kind, hp, lr_t, _borrow(params[lo:hi]), _borrow(grad[lo:hi]),
                       _borrow(s1[lo:hi]) if s1.shape[0] > 0 else s1,
                       _borrow(s2[lo:hi]) if s2.shape[0] > 0 else s2, hi - lo)
    return 0.5 * alpha * sq / wsum


@jit
def network_loss_grad(x, labels, targets, sw, sizes, w_off, b_off, codes, out_kind,
                      params, alpha, ws, grad):
    """Loss and flat gradient of the whole network on ``x`` (one batch, no gather).

    Parameters
    ----------
    x : float[n, sizes[0]], C-contiguous.
    labels : int64[n] (softmax, or int64[0]); targets : float[n, k] (or float[0, k]).
    sw : float[n] sample weights or float[0].
    sizes, w_off, b_off, codes, out_kind : the network tables (module docstring).
    params : float[p]; alpha : float — L2 coefficient.
    ws : float[workspace_size(sizes, n, False)].
    grad : float[p] — written.

    Returns
    -------
    (data_loss, l2_loss) : floats.
    """
    wts, bs = _param_views(params, sizes, w_off, b_off)
    dws, dbs = _param_views(grad, sizes, w_off, b_off)
    n = x.shape[0]
    _, acts, deltas = _work_views(ws, sizes, n, n, np.bool_(False))
    data = _forward_loss(x, labels, targets, sw, acts, deltas, wts, bs, codes, out_kind,
                         np.int64(0))
    none = params[0:0]
    # np.int64()/np.bool_(): plain values, not literals, so _backward and the kernels it calls
    # are compiled once for both callers (a literal argument makes numba specialise on it)
    l2 = _backward(x, acts, deltas, wts, bs, dws, dbs, codes, alpha, _weight_sum(sw, n),
                   np.bool_(False), np.int64(SGD_KIND), np.zeros(5), params, grad, none, none,
                   np.int64(1), dws, dbs, w_off, b_off, np.int64(0), np.int64(0))
    return data, l2


@jit
def network_forward(x, sizes, w_off, b_off, codes, out_kind, params, ws, chunk, out):
    """Output-layer values of the network, ``chunk`` rows at a time (bounded memory).

    ``ws`` is ``float[workspace_size(sizes, chunk, False)]``; ``out : float[n, sizes[-1]]`` gets
    probabilities (softmax / sigmoid outputs) or values (identity).
    """
    wts, bs = _param_views(params, sizes, w_off, b_off)
    n_layers = len(wts)
    n = x.shape[0]
    for c0 in range(0, n, chunk):
        rows = min(chunk, n - c0)
        _, acts, _ = _work_views(ws, sizes, chunk, rows, np.bool_(False))
        a = x[c0:c0 + rows]
        for l in range(n_layers - 1):
            dense_forward(a, wts[l], bs[l], codes[l], acts[l])
            a = acts[l]
        o = out[c0:c0 + rows]
        dense_forward(a, wts[n_layers - 1], bs[n_layers - 1], codes[n_layers - 1], o)
        if out_kind == OUT_SOFTMAX:
            softmax(o, o)
        elif out_kind == OUT_SIGMOID:
            activation_forward(o, np.int64(LOGISTIC))


# --------------------------------------------------------------------------- one epoch
@jit
def _consecutive_start(order, i0, rows, n):
    """``order[i0]`` when ``order[i0:i0 + rows]`` is the run ``start, start + 1, ...`` of rows
    of an ``n``-row ``x``, else -1."""
    start = order[i0]
    if start < 0 or start + rows > n:
        return -1
    for r in range(1, rows):
        if order[i0 + r] != start + r:
            return -1
    return start


@jit
def _gather(x, labels, targets, sw, order, i0, rows, xb, lb, tb, wb, copy_x):
    d = x.shape[1]
    k = targets.shape[1]
    for r in range(rows):
        src = order[i0 + r]
        if copy_x:
            for j in range(d):
                xb[r, j] = x[src, j]
        if lb.shape[0] > 0:
            lb[r] = labels[src]
        if tb.shape[0] > 0:
            for j in range(k):
                tb[r, j] = targets[src, j]
        if wb.shape[0] > 0:
            wb[r] = sw[src]


@jit
def _load_batch(x, labels, targets, sw, order, i0, rows, xb, lb, tb, wb):
    """The minibatch ``order[i0:i0 + rows]`` as ``(x rows, labels, targets, weights)`` views:
    rows consecutive in ``x`` (an unshuffled order) are read in place, others gathered into
    ``xb``; labels / targets / weights are gathered into ``lb`` / ``tb`` / ``wb`` (when used).

    A copy costs the copy and, with 2 BLAS threads, the second thread then reads half of the
    freshly written block from the other core's cache (784-256-10, batch 128, float32: ~50 µs
    of a ~700 µs step); the results are the same either way."""
    lv = lb[:rows] if lb.shape[0] > 0 else lb
    tv = tb[:rows] if tb.shape[0] > 0 else tb
    wv = wb[:rows] if wb.shape[0] > 0 else wb
    xv = xb
    start = _consecutive_start(order, i0, rows, x.shape[0])
    if start >= 0:
        xv = _borrow(x[start:start + rows])
    _gather(x, labels, targets, sw, order, i0, rows, xv, lv, tv, wv, start < 0)
    return xv, lv, tv, wv


@jit
def epoch_steps(x, labels, targets, sw, order, batch_size, sizes, w_off, b_off, codes, out_kind,
                params, grad, opt_kind, hp, state1, state2, step0, alpha, fuse_min,
                ws, lb, tb, wb, blas_threads):
    """Train one epoch: for each minibatch of ``order`` (the last one may be partial) gather the
    rows, run forward, the fused loss, backward and the optimizer update.

    Parameters
    ----------
    x : float[n, d]; labels : int64[n] or int64[0]; targets : float[n, k] or float[0, k];
    sw : float[n] or float[0] — as :func:`network_loss_grad`.
    order : int64[m] — rows to visit, in order; batches are ``order[i:i + batch_size]``.
    batch_size : int >= 1.
    sizes, w_off, b_off, codes, out_kind : the network tables.
    params, grad : float[p] — updated in place / scratch.
    opt_kind : int — ``SGD_KIND`` or ``ADAM_KIND`` (:mod:`fastnn.kernels.optim`).
    hp : float64[5] — SGD ``(lr, momentum, nesterov, 0, 0)``; Adam/AdamW ``(lr, beta1, beta2,
        eps, weight_decay)``.
    state1, state2 : float[p] or float[0] — SGD velocity (state2 unused); Adam ``m``, ``v``.
    step0 : int — optimizer steps taken before this epoch (Adam's ``t``).
    alpha : float — L2 coefficient.
    fuse_min : int — layers above this many multiply-adds fold SGD into the weight GEMM.
    ws : float[workspace_size(sizes, batch_size, True)];
    lb : int64[batch_size] (labels) or int64[0]; tb : float[batch_size, k] or float[0, k];
    wb : float[batch_size] or float[0] — gather buffers.
    blas_threads : int — OpenBLAS's thread count, restored after a layer below
        :data:`BLAS_SERIAL_MAX` multiply-adds (whose GEMMs run on one thread); 0 leaves BLAS
        alone.

    Returns
    -------
    (data_sum, l2_sum, steps, finite) : ``data_sum = sum_b data_loss_b * len_b`` (and the same
    for the L2 term) over the ``steps`` completed updates; ``finite`` is False when a batch loss
    was not finite — that batch's update was not applied and the epoch stopped there.

    Notes
    -----
    The callers (:mod:`fastnn.kernels.epochs`) flush subnormal floats to zero on the calling
    thread for the call (x86 MXCSR FTZ/DAZ, restored on return): Adam's first moment of a
    parameter whose gradient vanishes (a dead ReLU unit) decays by ``beta1`` per step into the subnormal range, where every operation
    costs ~100 cycles (measured: a digits epoch 0.97 ms -> 1.24 ms by epoch 200 without it).
    Values below 1e-38 (float32) / 1e-308 (float64) change nothing a float comparison sees.
    A minibatch whose rows are consecutive in ``x`` (``order[i:i + b]`` = ``s, s + 1, ...``) is
    read in place; other minibatches are gathered into the workspace.
    """
    lb, tb, wb = _borrow(lb), _borrow(tb), _borrow(wb)
    wts, bs = _param_views(params, sizes, w_off, b_off)
    dws, dbs = _param_views(grad, sizes, w_off, b_off)
    vws, vbs = _param_views(state1 if state1.shape[0] > 0 else grad, sizes, w_off, b_off)
    m = order.shape[0]
    xb, acts, deltas = _work_views(ws, sizes, batch_size, batch_size, np.bool_(True))
    last = m % batch_size
    xr, acts_r, deltas_r = _work_views(ws, sizes, batch_size, last, np.bool_(True))
    data_sum = 0.0
    l2_sum = 0.0
    steps = 0
    for i0 in range(0, m, batch_size):
        rows = min(batch_size, m - i0)
        full = rows == batch_size
        av = acts if full else acts_r
        dv = deltas if full else deltas_r
        xv, lv, tv, wv = _load_batch(x, labels, targets, sw, order, i0, rows, xb if full else xr,
                                     lb, tb, wb)
        data = _forward_loss(xv, lv, tv, wv, av, dv, wts, bs, codes, out_kind, blas_threads)
        if not math.isfinite(data):
            return data_sum, l2_sum, steps, False
        l2 = _backward(xv, av, dv, wts, bs, dws, dbs, codes, alpha, _weight_sum(wv, rows),
                       np.bool_(True),
                       opt_kind, hp, params, grad, state1, state2, step0 + steps + 1, vws, vbs,
                       w_off, b_off, fuse_min, blas_threads)
        data_sum += data * rows
        l2_sum += l2 * rows
        steps += 1
    return data_sum, l2_sum, steps, True
