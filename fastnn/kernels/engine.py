"""The training engine: forward, fused loss, backward and update for any depth, on flat buffers.

Three entry points, one implementation of each formula:

* :func:`train_epochs` — a block of epochs in ONE compiled call: for every minibatch of each
  row of ``orders``, gather the rows, forward, the fused loss, backward and the optimizer
  update; scikit-learn's end-of-epoch rules (:func:`epoch_end`) between epochs.
* :func:`loss_grad` — loss and flat gradient on one batch (L-BFGS, ``Network.loss_and_grad``).
* :func:`forward` — outputs in chunks of rows (prediction).

A network reaches the kernels as its flat parameter vector and ``tables``, a tuple of four
``int64`` arrays (never lists of arrays, whose reflection costs ~60 µs per call):

``sizes : int64[L + 1]``
    layer widths ``(n_in, h_1, ..., n_out)``; layer ``l`` maps ``sizes[l] -> sizes[l + 1]``.
``w_off, b_off : int64[L]``
    start of ``W[l]`` (``sizes[l] x sizes[l+1]``, row-major) and ``b[l]`` in ``params``; the
    gradient and the optimizer state share the layout.
``codes : int64[L]``
    activation code of each layer's output (:mod:`fastnn.kernels.activations`); the last entry
    is ``IDENTITY``: the output nonlinearity lives in the fused loss (its row function,
    :data:`LOSS_ROWS`).

Workspace ``ws`` (flat, the params' dtype; :func:`workspace_size`) for a capacity of ``cap``
rows: the gathered input block ``[cap, sizes[0]]`` (none for a sparse input, whose first layer
reads the CSR arrays in place: :mod:`fastnn.kernels.inputs`), then the activations
``[cap, sizes[l+1]]`` of every layer, then the deltas ``dL/dz`` with the same shapes.  A block of ``r <= cap`` rows
is row-major with the layer's width as row stride, so every product is one GEMM on offsets into
the flat buffers (:func:`fastnn.kernels._blas.gemm_flat`): no 2-D views, no reshapes.

Design rules that keep the first compile short (numba's type inference and LLVM dominate it):
small functions over plain 1-D arrays and integers, no inlining at numba's IR level, no
closures or first-class functions, no exceptions or string formatting, and the loss and the
optimizer selected by the *type* of a marker argument (:mod:`fastnn.kernels.rules`), as the
input is by its own type, so that a call compiles only the loss, update and input it uses.
"""
from __future__ import annotations

import math

import numpy as np
from numba.extending import overload

from fastnn._jit import jit
from fastnn.kernels._blas import gemm_flat
from fastnn.kernels._cpu import FTZ_DAZ, blas_threads, fp_mode, set_blas_threads, set_fp_mode
from fastnn.kernels._math import like
from fastnn.kernels.activations import activation_grad, bias_activation, logistic
from fastnn.kernels.inputs import (
    batch, first_grad, first_product, input_block, is_sparse, row_order,
)
from fastnn.kernels.inputs import rows as rows_of
from fastnn.kernels.rules import (  # noqa: F401  (re-exported: the engine's public names)
    ADAPTIVE, CONSTANT, INVSCALING, LOSS_ROWS, OUT_IDENTITY, OUT_POISSON, OUT_SIGMOID,
    OUT_SIGMOID_SE, OUT_SOFTMAX, STOP, STOP_SIZE, _is_sgd, _loss, _update, epoch_end,
    loss_marker, optimizer_marker,
)
from fastnn.kernels.softmax import _softmax_row

__all__ = [
    "OUT_SOFTMAX", "OUT_SIGMOID", "OUT_IDENTITY", "OUT_POISSON", "OUT_SIGMOID_SE", "LOSS_ROWS",
    "loss_marker", "optimizer_marker", "SMALL_MACS", "BLAS_SERIAL_MAX", "STOP_SIZE", "CONSTANT",
    "INVSCALING", "ADAPTIVE", "workspace_size", "train_epochs", "loss_grad", "forward",
    "epoch_end",
]

#: plain SGD is folded into the weight-gradient GEMM above this many multiply-adds
SMALL_MACS = 256
#: products below this many multiply-adds run on ONE BLAS thread: waking a second thread for a
#: small product costs more than it saves
BLAS_SERIAL_MAX = 1 << 22

#: options of kernels only called from other kernels: no CPython wrapper to generate
_INTERNAL = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)


def workspace_size(sizes, rows, sparse=False):
    """Length of the flat workspace for ``rows`` rows (input block, activations, deltas); a
    sparse input has no input block (its first layer reads the CSR arrays directly)."""
    sizes = [int(s) for s in sizes]
    return rows * ((0 if sparse else sizes[0]) + 2 * sum(sizes[1:]))


# --------------------------------------------------------------------------- one batch
@jit(**_INTERNAL)
def _fwd(inp, rows, tables, params, ws, cap):
    """Forward pass of the block of ``rows`` rows ``inp`` (:mod:`fastnn.kernels.inputs`);
    every layer's output goes to its activation block of ``ws`` (the last one: the logits).
    Returns the logits' offset."""
    sizes, w_off, b_off, codes = tables
    no = np.bool_(False)  # (a value, not a literal: _mm compiles once for all flag values)
    ao = input_block(inp, cap, sizes[0])
    first_product(inp, rows, sizes[0], sizes[1], params, w_off[0], ws, ao)
    bias_activation(ws, ao, rows, sizes[1], params[b_off[0]:b_off[0] + sizes[1]], codes[0])
    for l in range(1, w_off.shape[0]):
        d_in, d_out = sizes[l], sizes[l + 1]
        gemm_flat(no, no, rows, d_out, d_in, 1.0, ws, ao, d_in, params, w_off[l], d_out, 0.0,
            ws, ao + cap * d_in, d_out)
        ao += cap * d_in
        bias_activation(ws, ao, rows, d_out, params[b_off[l]:b_off[l] + d_out], codes[l])
    return ao


@jit(**_INTERNAL)
def _weight_sum(sw, order, i0, rows):
    if sw.shape[0] == 0:
        return float(rows)
    s = 0.0
    for i in range(i0, i0 + rows):
        s += sw[order[i]]
    return s


@jit(**_INTERNAL)
def _update_rows(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2, wo, bo, c):
    """The optimizer step on a sparse first layer (``W = params[wo:bo]``, its bias after it)
    from ``grad + c W`` (the L2 term): the batch's gradient is scattered onto the rows of
    ``grad``, which are zero between steps; ``W`` is then updated a block of rows at a time, so
    that each element crosses memory once, and the gradient is zeroed behind.  Returns
    ``sum W²`` before the step (for the reported L2 loss) when ``c > 0``."""
    d_in = (bo - wo) // d_out
    first_grad(inp, rows, d_in, d_out, ws, do, 1.0, 1.0, grad, wo)
    block = max(1, 8192 // d_out) * d_out
    sq = 0.0
    for b0 in range(wo, bo, block):
        b1 = min(bo, b0 + block)
        w, g = params[b0:b1], grad[b0:b1]
        if c > 0.0:
            cc = like(c, g)
            for i in range(g.shape[0]):
                sq += np.float64(w[i] * w[i])
                g[i] += cc * w[i]
        _update(kind, hp, step, w, g, s1[b0:b1] if s1.shape[0] > 0 else s1,
                s2[b0:b1] if s2.shape[0] > 0 else s2)
        g[:] = 0.0
    hi = bo + d_out
    _update(kind, hp, step, params[bo:hi], grad[bo:hi], s1[bo:hi] if s1.shape[0] > 0 else s1,
            s2[bo:hi] if s2.shape[0] > 0 else s2)
    return sq


def _sparse_update(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2, wo, bo, c):
    """:func:`_update_rows` for a sparse input; nothing (never called) for a dense one, so a
    dense fit does not compile it."""
    raise NotImplementedError("only callable from compiled code")


@overload(_sparse_update, inline="always")
def _sparse_update_ov(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2, wo, bo,
                      c):
    if len(inp) == 2:
        def dense(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2, wo, bo, c):
            return 0.0
        return dense

    def sparse(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2, wo, bo, c):
        return _update_rows(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2, wo,
                            bo, c)
    return sparse


@jit(**_INTERNAL)
def _backward(inp, rows, tables, params, grad, ws, cap, alpha, wsum, update, opt, step):
    """Backward pass from the output delta; writes ``grad`` (or, with ``update``, applies the
    optimizer to each layer as soon as its gradient is known: its old ``W`` is no longer
    needed).  Plain SGD on a layer above :data:`SMALL_MACS` multiply-adds is folded into the
    weight GEMM: ``W = (1 - lr alpha / wsum) W - lr a_prevᵀ δ``, no gradient written.  Returns
    the L2 term ``alpha / (2 wsum) sum ||W||²``."""
    sizes, w_off, b_off, codes = tables
    kind, hp, s1, s2 = opt
    no, yes = np.bool_(False), np.bool_(True)
    n_layers = w_off.shape[0]
    h_total = 0
    for l in range(1, sizes.shape[0]):
        h_total += sizes[l]
    c = alpha / wsum
    lr = hp[0]
    plain_sgd = update and _is_sgd(kind) and hp[1] == 0.0
    sq = 0.0
    ao = input_block(inp, cap, sizes[0])
    for l in range(n_layers - 1):
        ao += cap * sizes[l + 1]
    # ao: offset of layer l's activations; its delta is h_total * cap further
    for l in range(n_layers - 1, -1, -1):
        d_in, d_out = sizes[l], sizes[l + 1]
        do = ao + cap * h_total
        po = ao - cap * d_in  # (l > 0) the previous layer's activations: this layer's input
        if l > 0:
            # δ_prev = (δ Wᵀ) ⊙ act'(a_prev), with the old W
            gemm_flat(no, yes, rows, d_in, d_out, 1.0, ws, do, d_out, params, w_off[l], d_out,
                0.0, ws, po + cap * h_total, d_in)
            activation_grad(ws[po + cap * h_total:po + cap * h_total + rows * d_in],
                            ws[po:po + rows * d_in], rows * d_in, codes[l - 1])
        wo, bo = w_off[l], b_off[l]
        w = params[wo:bo]
        # a sparse first layer's update runs over W in cache-sized blocks (_update_rows)
        by_rows = update and not plain_sgd and l == 0 and is_sparse(inp)
        if alpha > 0.0 and not by_rows:
            for i in range(w.shape[0]):
                sq += np.float64(w[i] * w[i])
        db = grad[bo:bo + d_out]
        db[:] = 0.0
        for i in range(rows):
            r = ws[do + i * d_out:do + (i + 1) * d_out]
            for j in range(d_out):
                db[j] += r[j]
        if plain_sgd and (l == 0 and is_sparse(inp) or rows * d_in * d_out > SMALL_MACS):
            if l == 0:  # (sparse without L2: only the rows of the features present change)
                first_grad(inp, rows, d_in, d_out, ws, do, -lr, 1.0 - lr * c, params, wo)
            else:
                gemm_flat(yes, no, d_in, d_out, rows, -lr, ws, po, d_in, ws, do, d_out,
                    1.0 - lr * c, params, wo, d_out)
            b = params[bo:bo + d_out]
            step_b = like(lr, b)
            for j in range(d_out):
                b[j] -= step_b * db[j]
        elif by_rows:
            sq += _sparse_update(inp, rows, d_out, ws, do, kind, hp, step, params, grad, s1, s2,
                                 wo, bo, c)
        else:
            if l == 0:
                first_grad(inp, rows, d_in, d_out, ws, do, 1.0, 0.0, grad, wo)
            else:
                gemm_flat(yes, no, d_in, d_out, rows, 1.0, ws, po, d_in, ws, do, d_out, 0.0,
                    grad, wo, d_out)
            if alpha > 0.0:
                g = grad[wo:bo]
                cc = like(c, g)
                for i in range(g.shape[0]):
                    g[i] += cc * w[i]
            if update:
                hi = bo + d_out
                _update(kind, hp, step, params[wo:hi], grad[wo:hi],
                        s1[wo:hi] if s1.shape[0] > 0 else s1,
                        s2[wo:hi] if s2.shape[0] > 0 else s2)
        if l > 0:
            ao -= cap * d_in
    return 0.5 * alpha * sq / wsum


@jit
def loss_grad(data, loss, tables, params, alpha, ws, grad):
    """Loss and flat gradient of the whole network on ``data`` (one batch, no gather).

    Parameters
    ----------
    data : (x, targets, sw) — ``x`` dense rows as a flat ``float[n * d]`` (a C-contiguous
        ``float[n, d]`` reshaped) or a CSR matrix ``(data, indices, starts, ends)``
        (:mod:`fastnn.kernels.inputs`); ``targets`` int64[n] class labels (softmax) or
        float[n, k]; ``sw`` float[n] sample weights or float[0].
    loss : the output loss's marker (:func:`loss_marker`).
    tables, params : the network (module docstring).
    alpha : float — L2 coefficient.
    ws : float[workspace_size(sizes, n, sparse)]; grad : float[p] — written.

    Returns
    -------
    (data_loss, l2_loss) : floats.
    """
    sizes = tables[0]
    n = data[1].shape[0]
    order = np.arange(n)
    wsum = _weight_sum(data[2], order, 0, n)
    zero = np.int64(0)
    inp = rows_of(data[0], order, zero, sizes[0])
    zo = _fwd(inp, n, tables, params, ws, n)
    h_total = 0
    for l in range(1, sizes.shape[0]):
        h_total += sizes[l]
    value = _loss(loss, ws, zo, zo + n * h_total, n, sizes[-1], data[1], data[2], order, zero,
                  wsum)
    # np.int64()/np.bool_(): plain values, not literals, so the callees compile once for every
    # entry point (a literal argument makes numba specialise on it)
    opt = ((zero,), np.zeros(5), params[0:0], params[0:0])  # (SGD: no update is applied)
    l2 = _backward(inp, n, tables, params, grad, ws, n, alpha, wsum, np.bool_(False), opt,
                   np.int64(1))
    return value, l2


@jit
def forward(x, tables, out_kind, params, ws, chunk, out):
    """Output values of the network, ``chunk`` rows at a time (bounded memory).

    ``x`` : rows as :func:`loss_grad` takes them; ``ws :
    float[workspace_size(sizes, chunk, sparse)]``; ``out : float[n * k]`` (a C-contiguous
    ``float[n, k]`` reshaped) gets probabilities (softmax / sigmoid) or values (identity: also
    the logits of any network)."""
    sizes = tables[0]
    k = sizes[-1]
    n = out.shape[0] // k
    order = row_order(x, n, sizes)
    for c0 in range(0, n, chunk):
        rows = min(chunk, n - c0)
        zo = _fwd(rows_of(x, order, np.int64(c0), sizes[0]), rows, tables, params, ws, chunk)
        for i in range(rows):
            o = out[(c0 + i) * k:(c0 + i + 1) * k]
            z = ws[zo + i * k:zo + (i + 1) * k]
            if out_kind == OUT_SOFTMAX:
                _softmax_row(z, o)
            elif out_kind == OUT_SIGMOID:
                for j in range(k):
                    o[j] = logistic(z[j])
            else:
                for j in range(k):
                    o[j] = z[j]


# --------------------------------------------------------------------------- epochs
@jit(**_INTERNAL)
def _copy(src, dst):
    for i in range(src.shape[0]):
        dst[i] = src[i]


@jit(**_INTERNAL)
def _all_finite(a):
    for i in range(a.shape[0]):
        if not math.isfinite(a[i]):
            return False
    return True


@jit
def train_epochs(data, loss, orders, batch_size, tables, params, grad, opt, step0, alpha,
                 ws, loss_scale, stop, losses, snapshots, one_blas_thread):
    """Train one epoch per row of ``orders`` in one call, with scikit-learn's end-of-epoch
    rules (:func:`epoch_end`) in between.

    Parameters
    ----------
    data, loss : as :func:`loss_grad`.
    orders : int64[E, m] — the rows of each epoch, in order; minibatches are
        ``order[i:i + batch_size]`` (the last may be partial).
    batch_size : int >= 1.
    tables, params : the network; grad : float[p] scratch.
    opt : (kind, hp, state1, state2) — ``kind`` the marker :func:`optimizer_marker` of
        SGD_KIND or ADAM_KIND (:mod:`fastnn.kernels.optim`); ``hp`` float64[5]: SGD
        ``(lr, momentum, nesterov, 0, 0)``,
        Adam/AdamW ``(lr, beta1, beta2, eps, weight_decay)``; ``hp[0]`` follows the schedule in
        ``stop``; states float[p] or float[0] (SGD velocity; Adam ``m``, ``v``).
    step0 : int — optimizer steps taken before (Adam's ``t``).
    alpha : float — L2 coefficient.
    ws : float[workspace_size(sizes, batch_size, sparse)] (sparse: ``x`` is a CSR tuple).
    loss_scale : float — multiplies the data term of the reported loss.
    stop : float64[STOP_SIZE] (updated) or float64[0] (run all E epochs).
    losses : float64[E] — written: each epoch's mean loss.
    snapshots : (float[p], int64[1]) — the parameters at the start of the last epoch whose
        first minibatch had a finite loss, and 1 once it holds one; kept across calls (the
        caller's buffers), so one epoch per call works the same.
    one_blas_thread : bool — run every product on one BLAS thread for the call (a network
        whose products are all small: waking a second thread costs more than it saves).

    Returns
    -------
    (epochs, steps, finite, stopped) : epochs completed; optimizer steps taken; False when a
    minibatch loss or the parameters after an epoch were not finite; True when the rule in
    ``stop`` ended training.  A minibatch whose sample weights sum to zero has no gradient: it
    is skipped.  After a failure ``params`` are the last parameters known to give a finite loss:
    the start of the failing epoch, or, when its very first minibatch failed (the updates of
    the epoch before made the parameters finite but useless), the start of the epoch before.
    (Both are the start of the last epoch whose first minibatch was finite: ``snapshots``.)

    Notes
    -----
    Subnormal floats are flushed to zero on the calling thread for the call (x86 FTZ/DAZ,
    restored on return): Adam's first moment of a parameter whose gradient vanishes (a dead
    ReLU) decays into the subnormal range, where every operation costs ~100 cycles.
    """
    mode = fp_mode()
    set_fp_mode(mode | FTZ_DAZ)
    blas = blas_threads()
    if one_blas_thread and blas > 1:
        set_blas_threads(1)
    x, tgt, sw = data
    sizes = tables[0]
    k = sizes[-1]
    h_total = 0
    for l in range(1, sizes.shape[0]):
        h_total += sizes[l]
    yes = np.bool_(True)
    m = orders.shape[1]
    steps = 0
    if is_sparse(x):  # the invariant of _update_rows: the first layer's dW starts at zero
        grad[tables[1][0]:tables[2][0]] = 0.0
    done, finite, stopped = orders.shape[0], True, False
    snapshot, held = snapshots
    for e in range(orders.shape[0]):
        order = orders[e]
        epoch_steps = 0
        data_sum = 0.0
        l2_sum = 0.0
        for i0 in range(0, m, batch_size):
            rows = min(batch_size, m - i0)
            wsum = _weight_sum(sw, order, i0, rows)
            if wsum == 0.0:
                continue
            inp = batch(x, ws, order, np.int64(i0), rows, sizes[0])
            zo = _fwd(inp, rows, tables, params, ws, batch_size)
            value = _loss(loss, ws, zo, zo + batch_size * h_total, rows, k, tgt, sw, order, i0,
                          wsum)
            if not math.isfinite(value):
                finite = False
                break
            if epoch_steps == 0:  # these parameters give a finite loss: keep them
                _copy(params, snapshot)
                held[0] = 1
            l2 = _backward(inp, rows, tables, params, grad, ws, batch_size, alpha, wsum, yes, opt,
                           step0 + steps + 1)
            data_sum += value * rows
            l2_sum += l2 * rows
            steps += 1
            epoch_steps += 1
        if finite:
            finite = _all_finite(params)
        if not finite:
            if held[0] == 1:
                _copy(snapshot, params)
            done = e
            break
        losses[e] = (data_sum * loss_scale + l2_sum) / max(1, m)
        if epoch_end(stop, opt[1], losses[e], m) == STOP:
            done, stopped = e + 1, True
            break
    if one_blas_thread and blas > 1:
        set_blas_threads(blas)
    set_fp_mode(mode)
    return done, steps, finite, stopped
