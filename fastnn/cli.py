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
import sys

from fastnn._data import (CLIError, _first_line, check_writable, is_sparse, model_inputs,
                          read_data, row_blocks, write_predictions)

__all__ = ["main", "CLIError", "COMMANDS"]


# --------------------------------------------------------------------------- train
def _add_train(sub):
    p = sub.add_parser("train", help="train an MLP classifier (digits by default)",
                       description="Train an MLP classifier and report held-out accuracy. "
                       "Without --data it trains on scikit-learn's digits (8x8 images, 10 classes).")
    p.add_argument("--data", metavar="PATH", help=".csv (with --target), .npz (X, y), .npy, or "
                   "a sparse matrix .npz (scipy.sparse.save_npz; labels as for .npy)")
    p.add_argument("--target", metavar="COLUMN", help="label column of a .csv file")
    p.add_argument("--labels", metavar="PATH", help="labels .npy for --data X.npy or a sparse "
                   "X.npz (default: y.npy beside it, or the name with the leading X replaced by "
                   "y and the extension by .npy)")
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



def _run_train(args):
    from fastnn._train_command import run_train

    return run_train(args)


# --------------------------------------------------------------------------- predict
def _add_predict(sub):
    p = sub.add_parser("predict", help="predict with a saved model",
                       description="Predict labels for the rows of a data file with a model saved "
                       "by `fastnn train --save` (or fastnn.save). Writes CSV; if the file also "
                       "holds labels, the accuracy goes to stderr.")
    p.add_argument("--model", required=True, metavar="MODEL.npz")
    p.add_argument("--data", required=True, metavar="PATH",
                   help=".csv, .npz (X, or a sparse matrix) or .npy (X)")
    p.add_argument("--target", metavar="COLUMN", help="label column to ignore/score in a .csv")
    p.add_argument("--output", metavar="PREDS.csv", help="write here instead of stdout")
    p.add_argument("--proba", action="store_true", help="add one probability column per class")
    p.set_defaults(run=_run_predict)


def _run_predict(args):
    import numpy as np

    from fastnn import io

    check_writable(args.output)
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
    classes = info["classes"]
    if args.proba and (net.output == "identity" or not hasattr(model, "predict_proba")):
        raise CLIError(f"--proba: {args.model} is a regression model, it has no probabilities")
    parts = [_predictions(model, net, model_inputs(rows, arrays, net.params.dtype, args.model,
                                                   args.data, offset), classes, args.proba)
             for offset, rows in row_blocks(X, arrays)]
    preds, probas = zip(*parts)
    pred = np.concatenate(preds)
    proba = np.concatenate(probas) if args.proba else None
    if pred.ndim == 2 and pred.shape[1] == 1:  # one output: one plain number per row
        pred = pred[:, 0]
    write_predictions(args.output, pred, proba, classes)
    known = None if classes is None else classes.astype(str)
    if y is not None and pred.ndim == 1 and net.output != "identity" \
            and (known is None or np.isin(y.astype(str), known).all()):
        acc = float(np.mean(pred.astype(str) == y.astype(str)))
        print(f"accuracy: {acc:.4f} ({y.size} labelled rows in {args.data})", file=sys.stderr)
    return 0


def _predictions(model, net, X, classes, with_proba):
    """``(pred, proba or None)`` for the rows ``X`` (ready for the model: scaled and cast)."""
    import numpy as np

    if model is not net:  # a fitted estimator: its own predict (label encoding included)
        pred = np.asarray(model.predict(X))
        return pred, np.asarray(model.predict_proba(X)) if with_proba else None
    proba = net.predict_proba(X)
    if net.output == "softmax":
        idx = proba.argmax(axis=1)
        pred = classes[idx] if classes is not None else idx
    else:
        pred = proba if net.output == "identity" else (proba > 0.5).astype(np.int64)
    return pred, proba if with_proba else None


# --------------------------------------------------------------------------- diagnose
def _add_diagnose(sub):
    p = sub.add_parser("diagnose", help="explain why a saved model does not learn",
                       description="Print what fastnn.diagnose measures for a saved model on a "
                       "labelled data file (collapsed outputs, symmetric, dead or saturated "
                       "units, cancelling, vanishing or exploding gradients).")
    p.add_argument("--model", required=True, metavar="MODEL.npz")
    p.add_argument("--data", required=True, metavar="PATH",
                   help=".csv, .npz (X, y, or a sparse matrix) or .npy")
    p.add_argument("--target", metavar="COLUMN", help="label column of a .csv (default: the "
                   "model's)")
    p.add_argument("--labels", metavar="PATH", help="labels .npy for --data X.npy or a sparse "
                   "X.npz")
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
    if is_sparse(X) and ("x_mean" in arrays or "x_scale" in arrays):
        X, y = _dense_sample(X, y, args.data)  # standardised rows are dense
    X = model_inputs(X, arrays, net.params.dtype, args.model, args.data)
    y = label_targets(net, y, info["classes"], args.data)
    print(diagnose(net, X, y, batch_size=args.batch_size))
    return 0


#: bytes of dense rows ``fastnn diagnose`` may make of a sparse matrix for a model that
#: standardises its features (a sparse matrix is otherwise diagnosed sparse)
DIAGNOSE_BYTES = 512 << 20


def _dense_sample(X, y, path):
    """A random sample of the rows of the sparse ``X`` (and ``y``) as a dense array of at most
    :data:`DIAGNOSE_BYTES` (and :data:`fastnn.diagnosis.MAX_ROWS` rows, all diagnose uses).
    Fewer rows than its per-example measurements need raise :class:`CLIError`."""
    import numpy as np

    from fastnn.diagnosis import MAX_ROWS, PER_EXAMPLE_ROWS

    n, d = X.shape
    rows = min(n, MAX_ROWS, DIAGNOSE_BYTES // (8 * d))
    if rows < min(n, PER_EXAMPLE_ROWS):
        need = PER_EXAMPLE_ROWS * d * 8 / 2 ** 30
        raise CLIError(f"{path}: {d} features are too many to diagnose with a feature scaler: "
                       f"its measurements need {PER_EXAMPLE_ROWS} standardised (dense) rows, "
                       f"{need:.3g} GiB")
    if rows < n:
        print(f"fastnn diagnose: a random sample of {rows} of the {n} rows of the sparse "
              f"{path}, standardised as dense rows", file=sys.stderr)
    idx = np.sort(np.random.default_rng(0).choice(n, rows, replace=False))
    return X[idx].toarray(), y[idx]


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
                       "installing, in an image build, on one worker per machine of a cluster); "
                       "NUMBA_CACHE_DIR chooses where the compiled kernels are kept.")
    p.add_argument("--dtype", choices=["both", "float32", "float64"], default="both",
                   help="dtypes to compile (default: both)")
    p.add_argument("--sparse", action="store_true",
                   help="also compile the kernels that read sparse (CSR) input")
    p.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="processes compiling at once, one dtype each (default: the usable "
                   "cores; 1: everything in this process)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_run_warmup)


def _run_warmup(args):
    import json

    from fastnn.warmup import DTYPES, warmup

    report = warmup(DTYPES if args.dtype == "both" else (args.dtype,), sparse=args.sparse,
                    jobs=args.jobs)
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
