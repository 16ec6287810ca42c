"""The engine's input: a dense block of rows, or the rows of a CSR matrix read in place.

The first layer is the only one that touches the input.  :mod:`fastnn.kernels.engine` reaches
it through the functions below, selected at compile time by the *type* of the input, so a dense
fit never compiles the sparse code and vice versa.  The smallest are inlined into their
callers at numba's IR level (``inline="always"``): a separate compile would cost more than the
code it holds.

``x`` (the ``data[0]`` of the engine's entry points)
    dense rows as one flat C-contiguous ``float[n * d]`` (a C-contiguous ``float[n, d]``
    reshaped: a view), or a CSR matrix as the tuple ``(data, indices,
    starts, ends)``: row ``r`` holds the non-zeros ``starts[r]:ends[r]`` of ``data``
    (``float``, the network's dtype) and ``indices`` (``int32/int64``).  A whole CSR matrix
    passes ``indptr[:-1]`` and ``indptr[1:]``; a subset of its rows (a validation split)
    passes its own ``starts``/``ends`` and shares ``data`` and ``indices``.  Validated by
    :func:`fastnn._sparse.as_csr` (indices in ``[0, d)``, ``starts <= ends`` within the
    arrays).  Duplicate indices in a row add up and unsorted indices are fine (each non-zero
    is one term of a sum), as in scipy.

``inp`` (a block of rows, :func:`batch` and :func:`rows`)
    dense: ``(flat, offset)`` — the rows are ``flat[offset:]`` with row stride ``d``;
    sparse: ``(data, indices, starts, ends, order, i0)`` — the rows are
    ``order[i0:i0 + rows]``.

:func:`first_product` writes ``X_b W`` (one GEMM, or for CSR: each non-zero ``x_ic`` adds
``x_ic W[c, :]`` to output row ``i``), and :func:`first_grad` writes ``beta * out + scale *
X_bᵀ δ`` (one GEMM, or for CSR: each non-zero adds ``scale x_ic δ_i`` to row ``c``: a scatter
into the rows of ``W`` it touches).  With ``beta == 1`` the sparse form touches only those rows,
which is how plain SGD without L2 updates a sparse first layer.
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from fastnn.kernels._blas import gemm_flat

__all__ = ["is_sparse", "input_block", "batch", "row_order", "rows", "first_product",
           "first_grad"]


def _sparse_type(x):
    """CSR: an input ``x`` (4-tuple) or a block ``inp`` (6-tuple); a dense block is a 2-tuple."""
    return isinstance(x, types.BaseTuple) and len(x) != 2


def is_sparse(x):
    """True for a CSR input or block, False for a dense one (a compile-time constant)."""
    raise NotImplementedError("only callable from compiled code")


@overload(is_sparse, inline="always")
def _is_sparse_ov(x):
    sparse = _sparse_type(x)
    return lambda x: sparse


def input_block(x, cap, d):
    """Length of the workspace's input block for ``cap`` rows of ``x`` (an input or a block):
    ``cap * d`` dense, 0 sparse."""
    raise NotImplementedError("only callable from compiled code")


@overload(input_block, inline="always")
def _input_block_ov(x, cap, d):
    if _sparse_type(x):
        return lambda x, cap, d: 0 * cap
    return lambda x, cap, d: cap * d


def batch(x, ws, order, i0, n_rows, d):
    """The minibatch ``order[i0:i0 + n_rows]`` as an ``inp``: dense rows are gathered into the
    workspace's input block (``ws[0:]``); CSR rows are read in place."""
    raise NotImplementedError("only callable from compiled code")


@overload(batch, inline="always")
def _batch_ov(x, ws, order, i0, n_rows, d):
    if _sparse_type(x):
        return lambda x, ws, order, i0, n_rows, d: (x[0], x[1], x[2], x[3], order, i0)

    def gather(x, ws, order, i0, n_rows, d):
        for r in range(n_rows):
            o = order[i0 + r] * d
            src, dst = x[o:o + d], ws[r * d:(r + 1) * d]
            for j in range(d):
                dst[j] = src[j]
        return ws, i0 * 0
    return gather


def row_order(x, n, ints):
    """The ``order`` of :func:`rows` for ``n`` rows: ``arange(n)`` for CSR; for a dense input,
    which does not read it, an empty view of the ``int64`` array ``ints`` (nothing to compile
    or allocate)."""
    raise NotImplementedError("only callable from compiled code")


@overload(row_order, inline="always")
def _row_order_ov(x, n, ints):
    if _sparse_type(x):
        return lambda x, n, ints: np.arange(n)
    return lambda x, n, ints: ints[0:0]


def rows(x, order, i0, d):
    """Rows ``i0, i0 + 1, ...`` of ``x`` as an ``inp`` (``order``: ``arange(n)``, used by CSR)."""
    raise NotImplementedError("only callable from compiled code")


@overload(rows, inline="always")
def _rows_ov(x, order, i0, d):
    if _sparse_type(x):
        return lambda x, order, i0, d: (x[0], x[1], x[2], x[3], order, i0)
    return lambda x, order, i0, d: (x, i0 * d)


def first_product(inp, n_rows, d_in, d_out, params, wo, ws, ao):
    """``ws[ao:]`` (``n_rows x d_out``) = ``X_b W`` with ``W = params[wo:]`` (``d_in x d_out``)."""
    raise NotImplementedError("only callable from compiled code")


@overload(first_product)
def _first_product_ov(inp, n_rows, d_in, d_out, params, wo, ws, ao):
    if len(inp) == 2:
        def dense(inp, n_rows, d_in, d_out, params, wo, ws, ao):
            no = np.bool_(False)  # (a value, not a literal: gemm_flat compiles once)
            gemm_flat(no, no, n_rows, d_out, d_in, 1.0, inp[0], inp[1], d_in, params, wo, d_out,
                      0.0, ws, ao, d_out)
        return dense

    def sparse(inp, n_rows, d_in, d_out, params, wo, ws, ao):
        data, indices, starts, ends, order, i0 = inp
        for i in range(n_rows):
            out = ws[ao + i * d_out:ao + (i + 1) * d_out]
            out[:] = 0.0
            r = order[i0 + i]
            for p in range(starts[r], ends[r]):
                v = data[p]
                c = wo + indices[p] * d_out
                w = params[c:c + d_out]
                for j in range(w.shape[0]):  # (== d_out for a validated index: never past W)
                    out[j] += v * w[j]
    return sparse


def first_grad(inp, n_rows, d_in, d_out, ws, do, scale, beta, out, oo):
    """``out[oo:]`` (``d_in x d_out``) = ``beta * out + scale * X_bᵀ δ`` with ``δ = ws[do:]``
    (``n_rows x d_out``); ``beta == 0`` overwrites, ``beta == 1`` (sparse) touches only the
    rows of the features present in the batch."""
    raise NotImplementedError("only callable from compiled code")


@overload(first_grad)
def _first_grad_ov(inp, n_rows, d_in, d_out, ws, do, scale, beta, out, oo):
    if len(inp) == 2:
        def dense(inp, n_rows, d_in, d_out, ws, do, scale, beta, out, oo):
            yes, no = np.bool_(True), np.bool_(False)
            gemm_flat(yes, no, d_in, d_out, n_rows, scale, inp[0], inp[1], d_in, ws, do, d_out,
                      beta, out, oo, d_out)
        return dense

    def sparse(inp, n_rows, d_in, d_out, ws, do, scale, beta, out, oo):
        data, indices, starts, ends, order, i0 = inp
        t = out.dtype.type
        g = out[oo:oo + d_in * d_out]
        if beta == 0.0:
            g[:] = 0.0
        elif beta != 1.0:
            b = t(beta)
            for i in range(g.shape[0]):
                g[i] *= b
        s = t(scale)
        for i in range(n_rows):
            delta = ws[do + i * d_out:do + (i + 1) * d_out]
            r = order[i0 + i]
            for p in range(starts[r], ends[r]):
                v = s * data[p]
                c = indices[p] * d_out
                row = g[c:c + d_out]
                for j in range(row.shape[0]):  # (== d_out for a validated index: never past dW)
                    row[j] += v * delta[j]
    return sparse
