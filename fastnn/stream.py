"""Data larger than memory: train and predict on a memory-mapped array, one block of rows at a time.

``fastnn.fit``, ``Network.forward``/``logits``/``loss_and_grad`` and the estimators send an
out-of-core ``X`` (an ``np.memmap``, an ``np.load(path, mmap_mode="r")`` array, or any view of
one — see :func:`is_out_of_core`) through this module instead of copying it into memory:

* **Validation streams.**  :func:`prepare_inputs` checks shape, dtype and finiteness block by block
  (``np.sum`` per block, and the element-wise test only for a block whose sum is not finite), so
  no temporary ever has the size of ``X``.
* **Training reads blocks.**  :func:`run_epoch_blocks` cuts the rows into blocks of
  :func:`block_rows` rows (a multiple of ``batch_size`` that fits in ``block_bytes``, default
  :data:`DEFAULT_BLOCK_BYTES` = 64 MiB in the network's dtype), copies one block at a time into a
  buffer cached on the network (dtype conversion happens in that copy) and runs the compiled epoch
  (:func:`fastnn.train.run_epoch`) over it.  Anonymous memory is therefore the network, its
  workspaces and one block buffer, whatever the size of the file; the file's pages are clean page
  cache that the kernel can evict.
* **Prediction writes blocks.**  :func:`forward` fills a preallocated ``float[n, k]`` result (or a
  writeable memmap passed as ``out=``) block by block.

Shuffling semantics (deterministic for a seed): each epoch draws a permutation of the *blocks*
from ``rng``, then, for each block in that order, a permutation of the rows *within* the block
(:func:`iter_blocks`).  Minibatches never straddle two blocks; since every block but the file's
last one holds a multiple of ``batch_size`` rows, every minibatch is full except the last one of
that short block (which may come anywhere in the epoch).  The rows of one minibatch therefore
come from one contiguous region of ``block_rows`` rows: shuffle the file once when it is written
if it is sorted (by label, by time), as with any block-shuffling data loader.

The path depends only on the data, the seed and ``block_rows``, not on where the data lives: an
in-memory array trained with ``fit(..., block_bytes=b)`` gives bit-for-bit the weights of the
same array memory-mapped, trained with the same ``block_bytes``.  Data that fits in one block
trains exactly as the in-memory ``fit`` (one permutation of all rows, drawn the same way), and
so does any block size with ``shuffle=False``.
"""
from __future__ import annotations

import mmap
import numbers
import threading

import numpy as np

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "is_out_of_core",
    "RowSubset",
    "block_rows",
    "iter_blocks",
    "read_block",
    "check_finite",
    "prepare_inputs",
    "run_epoch_blocks",
    "loss_and_grad",
    "forward",
    "map_blocks",
]

#: Default size of the block buffer: 64 MiB of rows in the network's dtype.
DEFAULT_BLOCK_BYTES = 64 << 20


def is_out_of_core(X) -> bool:
    """True when ``X`` is (a view of) a memory-mapped array: an ``np.memmap``, the result of
    ``np.load(..., mmap_mode=...)``, or an ndarray whose ``.base`` chain ends in one (what
    ``np.asarray``/scikit-learn's ``check_array`` return for a memmap)."""
    a = X
    for _ in range(64):  # the .base chain of any real view is short
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
        if a is None:
            return False
    return False


def _check_block_bytes(block_bytes):
    if block_bytes is None:
        return DEFAULT_BLOCK_BYTES
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, numbers.Integral) \
            or block_bytes < 1:
        raise ValueError(f"block_bytes must be an int >= 1 (bytes), got {block_bytes!r}")
    return int(block_bytes)


def block_rows(n_features, dtype, block_bytes=None, batch_size=1):
    """Rows per block: as many as fit in ``block_bytes`` bytes of ``dtype``, rounded down to a
    multiple of ``batch_size``, and at least ``batch_size``."""
    block_bytes = _check_block_bytes(block_bytes)
    row = max(1, int(n_features)) * np.dtype(dtype).itemsize
    batch_size = max(1, int(batch_size))
    rows = block_bytes // row
    return max(batch_size, rows - rows % batch_size)


def iter_blocks(n, rows, rng=None, shuffle=True):
    """Yield ``(start, stop, order)`` for one epoch over ``n`` rows in blocks of ``rows``.

    ``order`` is ``int64[stop - start]``, the block's local row indices in visiting order.  With
    ``shuffle`` the block order is ``rng.permutation(n_blocks)`` and each block's order is
    ``rng.permutation(stop - start)`` drawn when the block is reached (``rng``: a numpy
    ``Generator`` or ``RandomState``); without it, blocks and rows come in file order.
    """
    n_blocks = -(-int(n) // int(rows))
    blocks = rng.permutation(n_blocks) if shuffle else range(n_blocks)
    for b in blocks:
        start = int(b) * rows
        stop = min(int(n), start + rows)
        if shuffle:
            order = rng.permutation(stop - start).astype(np.int64, copy=False)
        else:
            order = np.arange(stop - start, dtype=np.int64)
        yield start, stop, order


def read_block(X, start, stop, buf):
    """Copy rows ``X[start:stop]`` into ``buf[:stop - start]`` (converting the dtype) and return
    that view (C-contiguous, writeable, ``buf``'s dtype)."""
    out = buf[: stop - start]
    np.copyto(out, X[start:stop], casting="unsafe")
    return out


def _buffer(net, key, rows, cols):
    """A ``net.dtype[rows, cols]`` buffer cached on the network: allocated once and reused (a
    cached buffer with more rows is sliced; training and prediction share it)."""
    full = ("stream", key, cols)
    buf = net.scratch.get(full)
    if buf is None or buf.shape[0] < rows or buf.dtype != net.dtype:
        buf = net.scratch[full] = None  # free the old buffer before allocating the new one
        buf = net.scratch[full] = np.empty((rows, cols), dtype=net.dtype)
    return buf[:rows]


class RowSubset:
    """Rows ``index`` of an out-of-core array, not read until indexed: ``subset[a:b]`` reads
    ``base[index[a:b]]`` (one block).  ``index`` is sorted, so blocks read the file in order.
    ``.base`` is the array, so :func:`is_out_of_core` holds for a subset of a memmap."""

    def __init__(self, base, index):
        self.base = base
        self.index = np.sort(np.asarray(index, dtype=np.int64))
        self.shape = (self.index.shape[0],) + tuple(base.shape[1:])
        self.dtype = base.dtype
        self.ndim = base.ndim

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        """Rows ``key`` (a slice or an integer array) of the subset, read into memory."""
        if isinstance(key, tuple):
            raise TypeError("RowSubset supports row selection only (a slice or an index array)")
        return self.base[self.index[key]]


# --------------------------------------------------------------------------- validation
def _block_slices(n, rows):
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def check_finite(X, name="X", block_bytes=None, dtype=None):
    """Raise ``ValueError`` if ``X`` holds NaN or infinity, reading it one block at a time; with
    ``dtype``, also if a value becomes infinite when cast to it (float64 1e39 to float32).

    Per block: a float64 sum (no temporary of the block's size); only a block whose sum is not
    finite gets the element-wise test, so finite values that merely overflow the sum pass.
    """
    if not isinstance(X, (np.ndarray, RowSubset)):
        X = np.asarray(X)
    if X.dtype.kind != "f" or 0 in X.shape:
        return
    cols = int(np.prod(X.shape[1:], dtype=np.int64)) if X.ndim > 1 else 1
    rows = block_rows(cols, X.dtype, block_bytes)
    narrow = dtype is not None and np.dtype(dtype).itemsize < X.dtype.itemsize
    for start, stop in _block_slices(X.shape[0], rows):
        part = X[start:stop]
        if not np.isfinite(np.sum(part, dtype=np.float64)) and not np.isfinite(part).all():
            raise ValueError(f"{name} contains NaN or infinity")
        if narrow and part.size:  # the cast is monotonic: its extremes decide
            with np.errstate(over="ignore"):
                ends = np.array([part.min(), part.max()]).astype(dtype)
            if not np.isfinite(ends).all():
                raise ValueError(f"{name} contains NaN or infinity (once cast to {dtype})")


def prepare_inputs(net, X, y, sample_weight=None, alpha=0.0, block_bytes=None, xname="X",
                   yname="y"):
    """Validate an out-of-core training set without copying ``X``; return ``(X, y, sw)``.

    ``X`` is returned as is (its blocks are converted to ``net.dtype`` when read); ``y`` in the
    engine's form (:func:`fastnn.train.prepare_targets`) when it is in memory, or the memmap itself
    (validated block by block here, converted block by block while training); ``sw`` is a
    C-contiguous ``float[n]`` of ``net.dtype`` or an empty ``float[0]`` (as
    :func:`fastnn._checks.prepare_inputs`).  Raises ``ValueError``/``TypeError`` naming the
    argument, as the in-memory path does.
    """
    from fastnn._checks import prepare_targets, prepare_weights

    if not isinstance(X, (np.ndarray, RowSubset)):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{xname} must be a 2-D array (n_samples, n_features), got shape "
                         f"{X.shape}")
    if X.shape[1] != net.layer_sizes[0]:
        raise ValueError(f"{xname} has {X.shape[1]} features but the network expects "
                         f"{net.layer_sizes[0]}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{xname} must hold numbers, got dtype {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"{xname} must have at least one row")
    check_finite(X, xname, block_bytes, net.dtype)
    n = X.shape[0]
    if is_out_of_core(y):
        rows = block_rows(int(np.prod(np.shape(y)[1:], dtype=np.int64)), np.float64, block_bytes)
        for start, stop in _block_slices(np.shape(y)[0], rows):
            prepare_targets(net, y[start:stop], yname)
        t = y
    else:
        t = prepare_targets(net, y, yname)
    if t.shape[0] != n:
        raise ValueError(f"{xname} has {n} rows but {yname} has {t.shape[0]}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0 \
            or not np.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    sw = prepare_weights(sample_weight, n, net.dtype)
    _check_block_bytes(block_bytes)
    return X, t, sw


# --------------------------------------------------------------------------- training
def run_epoch_blocks(net, X, y, optimizer, *, batch_size, rng, shuffle=True, alpha=0.0,
                     sample_weight=None, data_loss_scale=1.0, block_bytes=None, on_block=None):
    """One epoch over ``X`` in shuffled blocks (module docstring); return the epoch's mean loss.

    Parameters
    ----------
    net : Network
    X : float or int [n, n_in] — typically a memmap; never copied whole.
    y : engine targets for all ``n`` rows (:func:`fastnn.train.prepare_targets`: ``int64[n]``
        labels or ``float[n, k]``), in memory or memory-mapped (then converted per block).
    optimizer : fastnn.SGD, Adam or AdamW.
    batch_size : int >= 1.
    rng : numpy Generator or RandomState — draws the block and row orders.
    shuffle : bool — False visits blocks and rows in file order.
    alpha, data_loss_scale : as :func:`fastnn.train.run_epoch`.
    sample_weight : float[n] of ``net.dtype`` or None (an empty array means None).
    block_bytes : int or None — size of the block buffer (default :data:`DEFAULT_BLOCK_BYTES`).
    on_block : callable ``on_block(rows)`` or None — called after each block (progress bars).

    Returns
    -------
    float : ``sum_blocks loss_block * rows_block / n`` — the same weighting as ``run_epoch``.

    Raises
    ------
    fastnn.train.NonFiniteLossError
        as ``run_epoch``; the weights are those after the last finite update (or those at the
        start of the failing block).
    """
    from fastnn._checks import prepare_targets
    from fastnn._engine import run_epoch

    n, d = X.shape
    rows = min(n, block_rows(d, net.dtype, block_bytes, batch_size))
    buf = _buffer(net, "x", rows, d)
    sw = None if sample_weight is None or sample_weight.shape[0] == 0 else sample_weight
    y_mapped = is_out_of_core(y)
    total = 0.0
    for start, stop, order in iter_blocks(n, rows, rng, shuffle):
        xb = read_block(X, start, stop, buf)
        yb = prepare_targets(net, y[start:stop]) if y_mapped else y[start:stop]
        wb = None if sw is None else sw[start:stop]
        loss = run_epoch(net, xb, yb, optimizer, batch_size=batch_size, order=order,
                         alpha=alpha, sample_weight=wb, data_loss_scale=data_loss_scale)
        total += loss * (stop - start)
        if on_block is not None:
            on_block(stop - start)
    return total / n


def loss_and_grad(net, X, y, alpha=0.0, sample_weight=None, block_bytes=None):
    """``net.loss_and_grad(X, y, alpha, sample_weight)`` over an out-of-core ``X`` (full-batch
    solvers such as L-BFGS), accumulated block by block with the same weighting:
    ``loss = sum_i w_i l_i / W + alpha / (2 W) sum ||W_l||^2``, ``W = sum_i w_i`` (``n``
    unweighted).  Blocks are sized so the input block *and* the network's activations and
    deltas for it fit in ``block_bytes``.  Returns ``(loss, grad)``.
    """
    n, d = X.shape
    per_row = d + 2 * sum(net.layer_sizes[1:])
    rows = max(1, min(n, _check_block_bytes(block_bytes) // (per_row * net.dtype.itemsize)))
    buf = _buffer(net, "x", rows, d)
    sw_all = None if sample_weight is None else np.asarray(sample_weight)
    total_w = float(n) if sw_all is None else float(np.sum(sw_all, dtype=np.float64))
    grad = np.zeros(net.n_params, dtype=np.float64)
    data = 0.0
    for start, stop in _block_slices(n, rows):
        xb = read_block(X, start, stop, buf)
        wb = None if sw_all is None else sw_all[start:stop]
        w_b = float(stop - start) if wb is None else float(np.sum(wb, dtype=np.float64))
        if w_b == 0.0:
            continue
        loss_b, grad_b = net.loss_and_grad(xb, y[start:stop], 0.0, wb)
        data += loss_b * w_b
        grad += grad_b * w_b
    l2 = 0.0
    if alpha:
        for l, w in enumerate(net.weights):
            flat = w.ravel()
            l2 += float(np.dot(flat, flat))
            off = int(net.tables[1][l])
            grad[off:off + flat.shape[0]] += alpha * flat
    grad /= total_w
    return data / total_w + 0.5 * alpha * l2 / total_w, grad.astype(net.dtype)


# --------------------------------------------------------------------------- prediction
def map_blocks(fn, X, out, *, dtype, block_bytes=None, buf=None):
    """``out[s:e] = fn(X[s:e])`` block by block; the blocks of ``X`` are read into one reused
    ``dtype`` buffer first (so ``fn`` sees C-contiguous, writeable arrays).  Returns ``out``.

    ``fn`` maps ``float[r, d]`` to an array of ``r`` rows of ``out``'s row shape; ``out`` is
    any array with ``X.shape[0]`` rows (a preallocated ndarray, or a writeable memmap);
    ``buf`` is an optional ``dtype[rows, d]`` buffer to read the blocks into.
    """
    n = X.shape[0]
    if buf is None:
        d = int(np.prod(X.shape[1:], dtype=np.int64))
        rows = max(1, min(n, block_rows(d, dtype, block_bytes)))
        buf = np.empty((rows,) + tuple(X.shape[1:]), dtype=dtype)
    for start, stop in _block_slices(n, buf.shape[0]):
        out[start:stop] = fn(read_block(X, start, stop, buf))
    return out


def forward(net, X, out=None, block_bytes=None, fn=None):
    """``net.forward(X)`` for an out-of-core ``X``: bounded memory, result into ``out``.

    Parameters
    ----------
    net : Network
    X : [n, n_in] numbers (a memmap; never copied whole).
    out : float[n, k] or None — where to write the outputs (e.g. ``np.lib.format.open_memmap(
        path, "w+", net.dtype, (n, k))``); a new ``net.dtype`` array when None.
    block_bytes : int or None — size of the input block buffer.
    fn : callable or None — what to compute per block, ``float[r, n_in] -> float[r, k]``
        (default ``net.forward``; e.g. ``net.logits``).

    Returns
    -------
    out : float[n, k] — probabilities (softmax / sigmoid outputs) or values (identity).
    """
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    k = net.layer_sizes[-1]
    if X.ndim != 2 or X.shape[1] != net.layer_sizes[0]:
        raise ValueError(f"X must have shape (n_samples, {net.layer_sizes[0]}), got {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers, got dtype {X.dtype}")
    if out is None:
        out = np.empty((X.shape[0], k), dtype=net.dtype)
    elif getattr(out, "shape", None) != (X.shape[0], k) or not out.flags.writeable:
        raise ValueError(f"out must be a writeable array of shape {(X.shape[0], k)}, got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    if X.shape[0] == 0:
        return out
    rows = min(X.shape[0], block_rows(X.shape[1], net.dtype, block_bytes))
    fn = net.forward if fn is None else fn
    # the training buffer, when it has this size; a buffer of its own for a call made while
    # another thread predicts with the same network (the kernels release the GIL)
    lock = net.scratch.setdefault(("stream", "lock"), threading.Lock())
    if not lock.acquire(blocking=False):
        return map_blocks(fn, X, out, dtype=net.dtype,
                          buf=np.empty((rows, X.shape[1]), dtype=net.dtype))
    try:
        return map_blocks(fn, X, out, dtype=net.dtype, buf=_buffer(net, "x", rows, X.shape[1]))
    finally:
        lock.release()
