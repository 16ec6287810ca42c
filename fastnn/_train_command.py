"""``fastnn train``, the command line's main job (its options are declared in :mod:`fastnn.cli`).

Reads the data (scikit-learn's digits by default), splits off held-out and validation rows,
standardises dense features with the training part's statistics (sparse features are used as
they are and stay sparse), trains a softmax MLP with :func:`fastnn.fit` and reports; errors a
user can fix end as :class:`fastnn._data.CLIError` (one line on stderr, exit 1).
"""
from __future__ import annotations

import time

from fastnn._data import CLIError, check_writable, is_sparse, model_inputs, read_data

__all__ = ["run_train"]


def _parse_hidden(text):
    """``"128,64"`` -> ``[128, 64]``; ``""`` or ``"0"`` -> no hidden layer."""
    if text.strip() in ("", "0"):
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = [0]
    if any(s < 1 for s in sizes):
        raise CLIError(f"--hidden: expected comma-separated positive sizes like 128,64, got {text!r}")
    return sizes


def _check_network_size(sizes, args):
    """Refuse a network whose training state cannot fit in memory, before allocating it."""
    from fastnn.network import memory_problem

    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    copies = 4 if args.solver == "adam" else 3  # parameters, gradient, optimizer state
    itemsize = 4 if args.dtype == "float32" else 8
    need = n_params * itemsize * copies
    problem = memory_problem(need)
    if problem:
        raise CLIError(f"--hidden {args.hidden}: a {'-'.join(map(str, sizes))} network has "
                       f"{n_params:,} parameters; training it with {args.solver} in {args.dtype} "
                       f"needs ~{need / 2 ** 30:.3g} GiB and {problem}")


def _split(n, fraction, rng):
    """(rest, part) index arrays with ``round(fraction * n)`` (at least 1 if fraction > 0)."""
    order = rng.permutation(n)
    k = 0 if fraction == 0 else max(1, int(round(fraction * n)))
    return order[k:], order[:k]


def run_train(args):
    import numpy as np

    t0 = time.perf_counter()
    say = (lambda text: None) if args.quiet else print
    hidden = _parse_hidden(args.hidden)
    check_writable(args.save, args.plot)
    if args.plot:
        from fastnn.plot import _matplotlib

        _matplotlib()  # a missing matplotlib fails now, not after training
    if args.data is None:
        X, y, names, source = *_digits(), "scikit-learn digits"
    else:
        X, y, names = read_data(args.data, target=args.target, labels=args.labels)
        source = args.data
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise CLIError(f"{source}: the labels are fractional numbers, not classes; "
                       "fastnn train fits classifiers")
    classes, y_idx = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise CLIError(f"{source}: the labels hold a single class ({classes[0]!r}); need >= 2")
    rng = np.random.default_rng(args.seed)
    fit_idx, test_idx = _split(X.shape[0], args.test_size, rng)
    train_idx, val_idx = _split(fit_idx.size, args.val_size, rng)
    train_idx, val_idx = fit_idx[train_idx], fit_idx[val_idx]
    if train_idx.size == 0:
        raise CLIError(f"{source}: {X.shape[0]} rows leave nothing to train on after the splits")
    sparse = is_sparse(X)
    if sparse:  # centring would make X dense; counts and TF-IDF values need no scaling
        Z, scaler = model_inputs(X, {}, args.dtype, None, source), {}
    else:
        mean = X[train_idx].mean(axis=0)
        scale = X[train_idx].std(axis=0)
        scale[scale == 0] = 1.0
        Z, scaler = ((X - mean) / scale).astype(args.dtype), {"x_mean": mean, "x_scale": scale}

    import fastnn

    sizes = [X.shape[1], *hidden, classes.size]
    _check_network_size(sizes, args)
    net = fastnn.Network(sizes, activation=args.activation, output="softmax",
                         dtype=args.dtype, seed=args.seed)
    if args.solver == "adam":
        opt = fastnn.Adam(args.lr if args.lr is not None else 1e-3)
    else:
        opt = fastnn.SGD(args.lr if args.lr is not None else 0.05, momentum=0.9)
    kind = (f" (sparse, {X.nnz / X.shape[0]:.3g} non-zeros per row, not standardised)"
            if sparse else "")
    say(f"data: {source}: {X.shape[0]} samples, {X.shape[1]} features{kind}, {classes.size} "
        f"classes -> train {train_idx.size}, validation {val_idx.size}, held-out {test_idx.size}")
    say(f"model: {'-'.join(map(str, sizes))} {args.activation}, softmax output, {args.dtype};"
            f" {args.solver} lr={opt.lr:g}, batch {args.batch_size}, {args.epochs} epochs,"
            f" {fastnn.get_num_threads()} threads")
    val = (Z[val_idx], y_idx[val_idx]) if val_idx.size else None
    from fastnn.train import NonFiniteLossError

    try:
        history = fastnn.fit(net, Z[train_idx], y_idx[train_idx], epochs=args.epochs,
                             batch_size=args.batch_size, optimizer=opt, seed=args.seed,
                             validation_data=val, verbose=not args.quiet,
                             callbacks=[] if args.quiet else [_epoch_printer(args.epochs)])
    except NonFiniteLossError:
        raise CLIError(f"training diverged (the loss became NaN or infinite) with {args.solver} "
                       f"at learning rate {opt.lr:g}: lower --lr") from None
    secs = history.seconds
    if test_idx.size:
        acc = float(np.mean(net.predict(Z[test_idx]) == y_idx[test_idx]))
        print(f"held-out accuracy: {acc:.4f} ({test_idx.size} samples)")
    note = ""
    if len(secs) > 2 and secs[0] > 5 * np.median(secs[1:]):
        note = f"; the first epoch's {secs[0]:.2f} s include loading or compiling the kernels"
    print(f"wall time: {time.perf_counter() - t0:.2f} s (training {sum(secs):.2f} s{note})")
    if args.save:
        from fastnn import io

        io.save(net, args.save, classes=classes,
                arrays=scaler,
                metadata={"feature_names": names, "target": args.target, "source": source})
        print(f"saved model to {args.save}")
    if args.plot:
        history.plot(args.plot)
        print(f"saved curves to {args.plot}")
    return 0


def _digits():
    """scikit-learn's digits (the file it ships, read as ``load_digits`` reads it: importing
    scikit-learn itself would cost most of a second of the main job's start-up)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the default dataset comes with scikit-learn: pip install fastnn[sklearn], "
                       "or pass --data FILE")
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data",
                        "digits.csv.gz")
    if not os.path.exists(path):  # another layout: scikit-learn's own loader
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X, y, None
    import numpy as np

    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int), None


def _epoch_printer(epochs):
    """fit() callback printing one line per epoch through tqdm (the bar stays intact)."""
    from tqdm import tqdm

    width = len(str(epochs))

    def callback(epoch, history):
        i = epoch - 1
        line = f"epoch {epoch:>{width}}/{epochs}  loss {history.train_loss[i]:.4f}"
        if history.val_loss[i] is not None:
            line += (f"  val_loss {history.val_loss[i]:.4f}"
                     f"  val_accuracy {history.val_accuracy[i]:.4f}")
        tqdm.write(f"{line}  ({history.seconds[i]:.3f} s)")

    return callback
