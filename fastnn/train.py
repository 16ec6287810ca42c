"""Training: :func:`fit` (the Python epoch loop) over :func:`run_epoch` (ONE compiled call).

``fit`` validates everything once, then per epoch draws a shuffled order, calls
:func:`run_epoch` (gather, forward, fused loss, backward and the optimizer update for every
minibatch inside one compiled kernel), evaluates the validation set, applies the learning-rate
schedule and calls the callbacks.  Estimators with their own loop (``fastnn.sklearn``) call
:func:`prepare_targets` once and :func:`run_epoch` per epoch.
"""
from __future__ import annotations

import contextlib
import numbers
import time

import numpy as np

from fastnn._engine import NonFiniteLossError, run_epoch  # noqa: F401  (public here)
from fastnn._jit import on_first_compile
from fastnn._checks import check_int, prepare_inputs, prepare_targets  # noqa: F401 (public)
from fastnn.optim import _Optimizer, make_schedule

__all__ = ["fit", "run_epoch", "prepare_targets", "History", "NonFiniteLossError"]


#: what fit(verbose=True) prints when kernels compile (the first run on a machine)
COMPILING_MESSAGE = ("fastnn: compiling kernels for this machine (first run only, a few seconds; "
                     "later runs load them from the cache)")
#: progress-bar updates per epoch in fit(verbose=True)
_BAR_UPDATES = 10


class History:
    """Per-epoch record returned by :func:`fit`.

    Attributes (lists with one entry per completed epoch)
    ----------------------------------------------------
    train_loss : mean training loss of the epoch, ``sum_b loss_b * len_b / n`` including the L2
        term (scikit-learn's ``loss_curve_``).
    val_loss : validation data loss (no L2 term), or None without ``validation_data``.
    val_accuracy : validation accuracy for softmax / sigmoid outputs (subset accuracy for
        multilabel), None for identity outputs or without validation data.
    val_r2 : validation R^2 (uniform average over outputs) for identity outputs, else None.
    seconds : wall time of the epoch's training call (validation excluded).
    lr : learning rate used during the epoch.
    stop_reason : None, or why training stopped before ``epochs`` ("callback", "schedule").
    """

    def __init__(self):
        self.train_loss, self.val_loss, self.val_accuracy, self.val_r2 = [], [], [], []
        self.seconds, self.lr = [], []
        self.stop_reason = None

    @property
    def epochs(self):
        """Number of completed epochs."""
        return len(self.train_loss)

    def __len__(self):
        return len(self.train_loss)

    def as_dict(self):
        return {k: list(getattr(self, k)) for k in
                ("train_loss", "val_loss", "val_accuracy", "val_r2", "seconds", "lr")}

    def plot(self, path):
        """Write a PNG of the curves (needs matplotlib); returns the path."""
        from fastnn.plot import plot_history

        return plot_history(self, path)

    def __repr__(self):
        last = f", last train_loss={self.train_loss[-1]:.6g}" if self.train_loss else ""
        return f"History(epochs={self.epochs}{last})"


# --------------------------------------------------------------------------- fit
def _callback_fn(cb):
    fn = getattr(cb, "on_epoch_end", cb)
    if not callable(fn):
        raise ValueError(f"callbacks must be callables or objects with on_epoch_end, got {cb!r}")
    return fn


def _validation_metrics(net, Xv, yv):
    """(data loss, accuracy or None, R^2 or None) on the validation set.

    The loss comes from the logits (log-sum-exp), not from probabilities: a confident wrong
    prediction whose probability underflows to 0 still has its finite loss instead of a clipped
    one.  It is computed by :mod:`fastnn.reference`, the NumPy twins of the fused losses (the
    same formulas; tested against the kernels): once per epoch on the validation rows, NumPy
    costs nothing next to the epoch, and a first fit compiles one kernel fewer."""
    from fastnn import reference as F

    z = net.logits(Xv)
    if net.output == "softmax":
        loss, _ = F.softmax_cross_entropy(z, yv)
        truth = yv if yv.ndim == 1 else np.argmax(yv, axis=1)
        return float(loss), float(np.mean(np.argmax(z, axis=1) == truth)), None
    if net.output == "sigmoid":
        if net.loss == "squared_error":  # the non-canonical pair: the loss it is trained with
            loss, _ = F.squared_error(net.forward(Xv), yv)
        else:
            loss, _ = F.sigmoid_cross_entropy(z, yv)
        return float(loss), float(np.mean(np.all((z > 0) == (yv > 0.5), axis=1))), None
    loss, _ = F.squared_error(z, yv)
    r = z.astype(np.float64) - yv
    ss_res = np.sum(r * r, axis=0)
    ss_tot = np.sum((yv - yv.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(loss), None, float(np.mean(r2))


def fit(net, X, y, *, epochs, batch_size, optimizer, shuffle=True, seed=None,
        validation_data=None, alpha=0.0, sample_weight=None, callbacks=None, verbose=False,
        lr_schedule="constant", power_t=0.5, block_bytes=None):
    """Train ``net`` in place with minibatch gradient descent; return a :class:`History`.

    Parameters
    ----------
    net : Network
    X : float[n, n_in], or a scipy.sparse matrix (CSR used in place, CSC/COO converted once;
        never densified: the first layer reads the non-zeros, see docs/sklearn.md); y : labels
        int[n] (or probability rows) for softmax, float[n, k] for sigmoid (values in [0, 1])
        and identity outputs.
    epochs : int >= 1; batch_size : int >= 1 (clipped to n; the last minibatch may be partial).
    optimizer : fastnn.SGD, Adam or AdamW (its state persists across calls: warm restarts).
    shuffle : bool — visit rows in a new random order each epoch (else in order).
    seed : None or int — seeds the shuffling (``np.random.default_rng(seed)``); same seed and
        same thread count give identical weights.
    validation_data : (X_val, y_val) or None — evaluated after every epoch.
    alpha : float >= 0 — L2 penalty as scikit-learn (``alpha / (2 n_b) sum ||W||^2`` per batch).
    sample_weight : float[n] >= 0 or None — folded into the fused loss (scikit-learn's rule).
    callbacks : list of callables ``cb(epoch, history)`` (or objects with
        ``on_epoch_end(epoch, history)``), called after each epoch with the 1-based epoch
        number; returning True or raising StopIteration stops training after that epoch.
    verbose : bool — tqdm progress bar over minibatches (updated ~10 times per epoch) with the
        epoch and its losses; after training, a one-line hint pointing to
        :func:`fastnn.diagnose` if the network answers every input alike.
    lr_schedule : "constant", "invscaling", "adaptive" (scikit-learn's definitions, see
        :mod:`fastnn.optim`) or a schedule object; power_t : float for "invscaling".
    block_bytes : int or None — out-of-core training (:mod:`fastnn.stream`): a memory-mapped
        ``X`` (``np.memmap``, ``np.load(..., mmap_mode="r")``) is never copied; each epoch reads
        shuffled blocks of rows into one buffer of ``block_bytes`` (default 64 MiB) and trains on
        them.  Given for an in-memory ``X``, it takes the same path (same weights as the memmap).
        A sparse ``X`` does not use it (checked all the same): its rows are read in place,
        memory-mapped arrays included.

    Raises
    ------
    ValueError naming the argument for bad input (NaN/inf, shapes, labels out of range,
    batch_size < 1, epochs < 1, ...); :class:`NonFiniteLossError` if the loss diverges.
    """
    from fastnn.network import Network

    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastnn.Network, got {type(net).__name__}")
    if not isinstance(optimizer, _Optimizer):
        raise TypeError(f"optimizer must be fastnn.SGD, Adam or AdamW, got {optimizer!r}")
    epochs = check_int(epochs, "epochs", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    from fastnn import stream

    from fastnn._sparse import is_sparse

    # a sparse X is read in place (memory-mapped arrays too): rows, not blocks
    sparse = is_sparse(X)
    if sparse and block_bytes is not None:
        stream._check_block_bytes(block_bytes)  # (unused, but a wrong value is still wrong)
    blocked = not sparse and (block_bytes is not None or stream.is_out_of_core(X))
    if blocked:  # data larger than memory: validated and trained block by block, never copied
        X, y_eng, sw = stream.prepare_inputs(net, X, y, sample_weight, alpha,
                                             block_bytes=block_bytes)
    else:
        X, y_eng, sw = prepare_inputs(net, X, y, sample_weight, alpha)
    sw = sw if sample_weight is not None else None
    if X.shape[0] == 0:
        raise ValueError("X must have at least one row")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (X_val, y_val)")
        Xv, yv, _ = prepare_inputs(net, validation_data[0], validation_data[1], None, 0.0,
                                   "validation_data[0]", "validation_data[1]")
        if Xv.shape[0] == 0:
            raise ValueError("validation_data[0] must have at least one row")
        val = (Xv, yv)  # the targets prepare_targets gave, not redone
    fns = [_callback_fn(cb) for cb in (callbacks or [])]
    schedule = make_schedule(lr_schedule, power_t)
    schedule.start(optimizer)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    history = History()
    batches = -(-n // batch_size)  # per epoch
    bar = None
    per_call = n
    if verbose:
        from tqdm.auto import tqdm

        # smoothing=0: the rate is progress over elapsed time, from which compiling is left
        # out below, so the ETA is the training's own
        bar = tqdm(total=epochs * batches, desc="fastnn.fit", unit="batch", smoothing=0)
        # an epoch then runs as <= _BAR_UPDATES compiled calls of whole minibatches (the same
        # steps, so the same weights) and the bar moves within the epoch
        per_call = batch_size * -(-batches // _BAR_UPDATES)
    samples_seen = 0
    compiling = contextlib.ExitStack()
    if bar is not None:  # the first run on a machine compiles: say so instead of a false ETA
        def compiled(seconds):
            bar.start_t += seconds  # (tqdm's public start time)

        compiling.enter_context(on_first_compile(lambda: bar.write(COMPILING_MESSAGE), compiled))
    try:
        for epoch in range(1, epochs + 1):
            lr = optimizer.lr
            t0 = time.perf_counter()
            if blocked:  # shuffled blocks read from X (fastnn.stream); the bar moves per block
                loss = stream.run_epoch_blocks(
                    net, X, y_eng, optimizer, batch_size=batch_size, rng=rng, shuffle=shuffle,
                    alpha=alpha, sample_weight=sw, block_bytes=block_bytes,
                    on_block=None if bar is None else
                    lambda rows: bar.update(-(-rows // batch_size)))
            else:
                order = rng.permutation(n) if shuffle else np.arange(n)
                loss = 0.0
                for i in range(0, n, per_call):
                    part = order[i:i + per_call]
                    loss += run_epoch(net, X, y_eng, optimizer, batch_size=batch_size,
                                      order=part, alpha=alpha,
                                      sample_weight=sw) * (part.shape[0] / n)
                    if bar is not None:
                        bar.update(-(-part.shape[0] // batch_size))
            history.seconds.append(time.perf_counter() - t0)
            history.train_loss.append(loss)
            history.lr.append(lr)
            vl = acc = r2 = None
            if val is not None:
                vl, acc, r2 = _validation_metrics(net, *val)
            history.val_loss.append(vl)
            history.val_accuracy.append(acc)
            history.val_r2.append(r2)
            samples_seen += n
            if bar is not None:
                post = {"loss": f"{loss:.4g}"}
                if vl is not None:
                    post["val_loss"] = f"{vl:.4g}"
                post["epoch"] = epoch
                bar.set_postfix(post)
            if schedule.epoch_end(optimizer, samples_seen, loss):
                history.stop_reason = "schedule"
                break
            stop = False
            for fn in fns:
                try:
                    stop = fn(epoch, history) is True or stop
                except StopIteration:
                    stop = True
            if stop:
                history.stop_reason = "callback"
                break
    finally:
        compiling.close()
        if bar is not None:
            bar.close()
    if verbose:  # a collapsed fit says where to look, not only that the loss stayed high
        from fastnn.diagnosis import collapse_hint

        hint = collapse_hint(net, X, y_eng)
        if hint:
            print(hint)
    return history
