"""The ``fastnn`` command line (also ``python -m fastnn``).

``fastnn train``    train an MLP (scikit-learn's digits by default, or ``--data FILE``)
``fastnn predict``  predict with a saved model
``fastnn diagnose`` explain why a saved model does not learn (:func:`fastnn.diagnose`)
``fastnn bench``    fastnn vs the NumPy reference on this machine, in under a minute
``fastnn warmup``   compile every kernel once so that later processes start fast

Each subcommand is one ``_add_<name>(subparsers)`` function in :data:`COMMANDS` that declares
its options and sets ``run``; the ``run`` functions import NumPy, Numba and the engine lazily so
``fastnn --help`` starts instantly.  Reading data files and writing predictions live in
:mod:`fastnn._data` (light at import: NumPy is imported inside its functions), the benchmark
table in :mod:`fastnn._bench` and the compile step in :mod:`fastnn.warmup`, both imported by
their runners.  User errors (bad paths, unreadable or malformed data, a foreign model file) end in one
line on stderr and exit status 1, never a traceback (``--debug`` shows it).  See docs/cli.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from fastnn._data import CLIError, _first_line, model_inputs, read_data, write_predictions

__all__ = ["main", "CLIError", "COMMANDS"]


# --------------------------------------------------------------------------- train
def _add_train(sub):
    p = sub.add_parser("train", help="train an MLP classifier (digits by default)",
                       description="Train an MLP classifier and report held-out accuracy. "
                       "Without --data it trains on scikit-learn's digits (8x8 images, 10 classes).")
    p.add_argument("--data", metavar="PATH", help=".csv (with --target), .npz (X, y) or .npy")
    p.add_argument("--target", metavar="COLUMN", help="label column of a .csv file")
    p.add_argument("--labels", metavar="PATH", help="labels .npy for --data X.npy "
                   "(default: the file beside it with the leading X replaced by y)")
    p.add_argument("--hidden", default="64", metavar="SIZES", help="hidden sizes, e.g. 128,64")
    p.add_argument("--activation", default="relu",
                   choices=["relu", "tanh", "logistic", "sigmoid", "leaky_relu", "identity"])
    p.add_argument("--solver", default="adam", choices=["adam", "sgd"])
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default 1e-3 for adam, 0.05 for sgd with momentum 0.9)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-size", type=_fraction, default=0.2,
                   help="held-out fraction, never trained on (default 0.2)")
    p.add_argument("--val-size", type=_fraction, default=0.1,
                   help="fraction of the training part watched per epoch (default 0.1; 0 = none)")
    p.add_argument("--save", metavar="MODEL.npz", help="save the trained model")
    p.add_argument("--plot", metavar="CURVE.png", help="save the loss/accuracy curves")
    p.add_argument("--quiet", action="store_true", help="only the final summary")
    p.set_defaults(run=_run_train)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text):
    value = float(text)
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


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


def _check_writable(*paths):
    for path in paths:
        if not path:
            continue
        if os.path.isdir(path):
            raise CLIError(f"{path}: is a directory; give a file name, e.g. "
                           f"{os.path.join(path, 'model.npz')}")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CLIError(f"{path}: the folder to write into does not exist")
        if not os.access(folder, os.W_OK):
            raise CLIError(f"{path}: the folder {folder} is not writable")


def _split(n, fraction, rng):
    """(rest, part) index arrays with ``round(fraction * n)`` (at least 1 if fraction > 0)."""
    order = rng.permutation(n)
    k = 0 if fraction == 0 else max(1, int(round(fraction * n)))
    return order[k:], order[:k]


def _run_train(args):
    import numpy as np

    t0 = time.perf_counter()
    say = (lambda text: None) if args.quiet else print
    hidden = _parse_hidden(args.hidden)
    _check_writable(args.save, args.plot)
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
    mean = X[train_idx].mean(axis=0)
    scale = X[train_idx].std(axis=0)
    scale[scale == 0] = 1.0
    Z = ((X - mean) / scale).astype(args.dtype)

    import fastnn

    sizes = [X.shape[1], *hidden, classes.size]
    _check_network_size(sizes, args)
    net = fastnn.Network(sizes, activation=args.activation, output="softmax",
                         dtype=args.dtype, seed=args.seed)
    if args.solver == "adam":
        opt = fastnn.Adam(args.lr if args.lr is not None else 1e-3)
    else:
        opt = fastnn.SGD(args.lr if args.lr is not None else 0.05, momentum=0.9)
    say(f"data: {source}: {X.shape[0]} samples, {X.shape[1]} features, {classes.size} classes"
            f" -> train {train_idx.size}, validation {val_idx.size}, held-out {test_idx.size}")
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
                arrays={"x_mean": mean, "x_scale": scale},
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


# --------------------------------------------------------------------------- predict
def _add_predict(sub):
    p = sub.add_parser("predict", help="predict with a saved model",
                       description="Predict labels for the rows of a data file with a model saved "
                       "by `fastnn train --save` (or fastnn.save). Writes CSV; if the file also "
                       "holds labels, the accuracy goes to stderr.")
    p.add_argument("--model", required=True, metavar="MODEL.npz")
    p.add_argument("--data", required=True, metavar="PATH", help=".csv, .npz (X) or .npy (X)")
    p.add_argument("--target", metavar="COLUMN", help="label column to ignore/score in a .csv")
    p.add_argument("--output", metavar="PREDS.csv", help="write here instead of stdout")
    p.add_argument("--proba", action="store_true", help="add one probability column per class")
    p.set_defaults(run=_run_predict)


def _run_predict(args):
    import numpy as np

    from fastnn import io

    _check_writable(args.output)
    try:
        model, info = io.load_model(args.model)
    except FileNotFoundError:
        raise CLIError(f"{args.model}: no such file") from None
    meta, arrays = info.get("metadata") or {}, info["arrays"]
    net = getattr(model, "network_", model)
    names, target = meta.get("feature_names"), meta.get("target")
    if not (names is None or isinstance(names, list) and all(isinstance(n, str) for n in names)) \
            or not (target is None or isinstance(target, str)):
        raise CLIError(f"{args.model}: its feature names or target in the metadata are not text")
    X, y, _ = read_data(args.data, target=args.target or target, features=names, need_y=False)
    n_in = net.layer_sizes[0]
    if X.shape[1] != n_in:
        raise CLIError(f"{args.data}: {X.shape[1]} features, the model expects {n_in}")
    X = model_inputs(X, arrays, net.params.dtype, args.model, args.data)
    classes = info["classes"]
    if args.proba and (net.output == "identity" or not hasattr(model, "predict_proba")):
        raise CLIError(f"--proba: {args.model} is a regression model, it has no probabilities")
    if model is not net:  # a fitted estimator: its own predict (label encoding included)
        pred = np.asarray(model.predict(X))
        proba = np.asarray(model.predict_proba(X)) if args.proba else None
    else:
        proba = net.predict_proba(X)
        if net.output == "softmax":
            idx = proba.argmax(axis=1)
            pred = classes[idx] if classes is not None else idx
        else:
            pred = proba if net.output == "identity" else (proba > 0.5).astype(np.int64)
    if pred.ndim == 2 and pred.shape[1] == 1:  # one output: one plain number per row
        pred = pred[:, 0]
    write_predictions(args.output, pred, proba if args.proba else None, classes)
    known = None if classes is None else classes.astype(str)
    if y is not None and pred.ndim == 1 and net.output != "identity" \
            and (known is None or np.isin(y.astype(str), known).all()):
        acc = float(np.mean(pred.astype(str) == y.astype(str)))
        print(f"accuracy: {acc:.4f} ({y.size} labelled rows in {args.data})", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- diagnose
def _add_diagnose(sub):
    p = sub.add_parser("diagnose", help="explain why a saved model does not learn",
                       description="Print what fastnn.diagnose measures for a saved model on a "
                       "labelled data file (collapsed outputs, symmetric, dead or saturated "
                       "units, cancelling, vanishing or exploding gradients).")
    p.add_argument("--model", required=True, metavar="MODEL.npz")
    p.add_argument("--data", required=True, metavar="PATH", help=".csv, .npz (X, y) or .npy")
    p.add_argument("--target", metavar="COLUMN", help="label column of a .csv (default: the "
                   "model's)")
    p.add_argument("--labels", metavar="PATH", help="labels .npy for --data X.npy")
    p.add_argument("--batch-size", type=_positive_int, help="your minibatch size (default: all)")
    p.set_defaults(run=_run_diagnose)


def _run_diagnose(args):
    from fastnn import io
    from fastnn.diagnosis import diagnose, label_targets

    try:
        model, info = io.load_model(args.model)
    except FileNotFoundError:
        raise CLIError(f"{args.model}: no such file") from None
    meta, arrays = info.get("metadata") or {}, info["arrays"]
    net = getattr(model, "network_", model)
    X, y, _ = read_data(args.data, target=args.target or meta.get("target"), labels=args.labels,
                        features=meta.get("feature_names"))
    if X.shape[1] != net.layer_sizes[0]:
        raise CLIError(f"{args.data}: {X.shape[1]} features, the model expects "
                       f"{net.layer_sizes[0]}")
    X = model_inputs(X, arrays, net.params.dtype, args.model, args.data)
    y = label_targets(net, y, info["classes"], args.data)
    print(diagnose(net, X, y, batch_size=args.batch_size))
    return 0


# --------------------------------------------------------------------------- bench
def _add_bench(sub):
    p = sub.add_parser("bench", help="fastnn vs the NumPy reference on this machine (< 1 min)",
                       description="Time fastnn's kernels and training step against the plain "
                       "NumPy reference (fastnn.reference) with both pinned to the same number of "
                       "threads; median of repeats. For the full suite: pytest benchmarks "
                       "--benchmark-only.")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for both sides (default: all cores)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--budget", type=_positive_float, default=0.4, metavar="SECONDS",
                   help="time spent per side and row (default 0.4)")
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    from fastnn._bench import run_bench

    return run_bench(args.threads, args.dtype, args.budget)


# --------------------------------------------------------------------------- warmup
def _add_warmup(sub):
    p = sub.add_parser("warmup", help="compile every kernel once (float32 and float64) so that "
                       "later processes start fast",
                       description="Compile -- or load from numba's cache -- every fastnn kernel "
                       "and report the time per step and in total. Run it once per machine (after "
                       "installing, in an image build, on each cluster worker); NUMBA_CACHE_DIR "
                       "chooses where the compiled kernels are kept.")
    p.add_argument("--dtype", choices=["both", "float32", "float64"], default="both",
                   help="dtypes to compile (default: both)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_run_warmup)


def _run_warmup(args):
    import json

    from fastnn.warmup import DTYPES, warmup

    report = warmup(DTYPES if args.dtype == "both" else (args.dtype,))
    print(json.dumps(report.as_dict(), indent=2) if args.json else report)
    return 0


# --------------------------------------------------------------------------- main
#: subcommand name -> function(subparsers) that adds its parser and sets ``run``.
COMMANDS = {"train": _add_train, "predict": _add_predict, "diagnose": _add_diagnose,
            "bench": _add_bench, "warmup": _add_warmup}


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line too (subcommand parsers inherit this class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    from fastnn import __version__

    parser = _Parser(prog="fastnn", description="Fast, exact MLPs on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv=None):
    """Entry point of the ``fastnn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastnn predict ... | head`
        sys.stderr.close()
        return 0
    except (CLIError, ValueError, TypeError, OSError, ImportError) as exc:
        if args.debug:
            raise
        print(f"fastnn {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        if args.debug:
            raise
        print(f"fastnn {args.command}: error: out of memory ({_first_line(exc)})", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, with a way to see more
        if args.debug:
            raise
        print(f"fastnn {args.command}: internal error: {type(exc).__name__}: {_first_line(exc)}"
              " (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _message(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return _first_line(exc)


if __name__ == "__main__":
    sys.exit(main())
