"""The files of ``fastnn train`` / ``fastnn predict``: data (.csv, .npz, .npy pairs) in,
predictions (.csv) out.

Every problem with a file -- missing, a directory, unreadable, malformed, a missing column,
non-numeric or non-finite features, duplicate column names, labels that do not match, features
too large for the model's dtype -- raises :class:`CLIError` with one line naming the file, which
:func:`fastnn.cli.main` prints on stderr.  This module imports nothing heavy at the top (NumPy
is imported inside the functions): :mod:`fastnn.cli` imports from here at start-up and
``fastnn --help`` must stay instant.
"""
from __future__ import annotations

import os
import sys

__all__ = ["CLIError", "read_data", "model_inputs", "write_predictions", "check_writable"]


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status 1."""


def _labels_beside(path):
    """``X_train.npy`` -> ``y_train.npy``; any other name -> ``y.npy`` in the same folder."""
    folder, name = os.path.split(path)
    return os.path.join(folder, "y" + name[1:] if name[:1] in "Xx" else "y.npy")


def read_data(path, *, target=None, labels=None, features=None, need_y=True):
    """Read ``(X float64[n, d], y ndarray[n] or None, feature names or None)`` from a file.

    ``.csv``: a header row, ``target`` names the label column (``features`` selects columns);
    ``.npz``: arrays ``X`` and ``y``; ``.npy``: ``X`` here, labels from ``labels`` or the file
    beside it (:func:`_labels_beside`).  Any problem raises :class:`CLIError` or ``OSError``.
    """
    import numpy as np

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a data file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        X, y, names = _read_csv(path, target, features, need_y)
    elif ext == ".npz":
        arrays = _np_load(path, ".npz")
        if not isinstance(arrays, np.lib.npyio.NpzFile) or "X" not in arrays.files:
            found = ", ".join(arrays.files) if hasattr(arrays, "files") else "a single array"
            raise CLIError(f"{path}: expected arrays 'X' and 'y' in the .npz (found: {found})")
        with arrays:
            X = _array(arrays, "X", path)
            y = _array(arrays, "y", path) if "y" in arrays.files else None
        if need_y and y is None:
            raise CLIError(f"{path}: no labels: the .npz needs an array 'y' beside 'X'")
        names = None
    elif ext == ".npy":
        X = _np_load(path, ".npy")
        lab = labels or _labels_beside(path)
        y = _np_load(lab, ".npy") if (labels or need_y) and os.path.exists(lab) else None
        if labels and y is None:
            raise CLIError(f"{labels}: no such file")
        if need_y and y is None:
            raise CLIError(f"{path}: no labels: pass --labels y.npy or put {lab} beside it")
        names = None
    else:
        raise CLIError(f"{path}: unsupported file type {ext or '(none)'!r}: use .csv, .npz or .npy")
    X = _features(np.asarray(X), path)
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise CLIError(f"{path}: labels must be 1-D with one per row of X "
                           f"(X has {X.shape[0]} rows, labels have shape {y.shape})")
    return X, y, names


def model_inputs(X, arrays, dtype, model_path, data_path):
    """``X`` standardised with the model file's scaler (``x_mean``, ``x_scale``, if any) and
    cast to the model's ``dtype``; values that overflow it raise :class:`CLIError`."""
    import numpy as np

    n_in = X.shape[1]
    if "x_mean" in arrays or "x_scale" in arrays:
        mean, scale = arrays.get("x_mean"), arrays.get("x_scale")
        if any(a is None or a.shape != (n_in,) or a.dtype.kind not in "iuf" for a in (mean, scale)):
            raise CLIError(f"{model_path}: its feature scaler (x_mean, x_scale) does not fit "
                           f"{n_in} features")
        with np.errstate(all="ignore"):  # overflow or a zero scale -> inf: refused below
            X = (X - mean) / scale
    with np.errstate(over="ignore", invalid="ignore"):
        Z = X.astype(dtype)
    if not np.isfinite(Z).all():
        row = int(np.argwhere(~np.isfinite(Z))[0, 0])
        raise CLIError(f"{data_path}: features too large for the model's {np.dtype(dtype).name} "
                       f"after scaling (|x| > {np.finfo(dtype).max:.3g}; first in row {row})")
    return Z


def write_predictions(path, pred, proba, classes):
    """CSV of predictions (one column, or one per output) and optional probabilities, to
    ``path`` or stdout."""
    import csv

    fh = open(path, "w", newline="", encoding="utf-8") if path else sys.stdout
    try:
        writer = csv.writer(fh)
        cols = pred.shape[1] if pred.ndim == 2 else 1
        header = ["prediction"] if cols == 1 else [f"prediction_{j}" for j in range(cols)]
        if proba is not None:
            names = classes if classes is not None else range(proba.shape[1])
            header += [f"p_{c}" for c in names]
        writer.writerow(header)
        for i in range(pred.shape[0]):
            row = [_cell(v) for v in (pred[i] if cols > 1 else [pred[i]])]
            if proba is not None:
                row += [f"{v:.6g}" for v in proba[i]]
            writer.writerow(row)
    finally:
        if path:
            fh.close()
    if path:
        print(f"wrote {pred.shape[0]} predictions to {path}", file=sys.stderr)


def _cell(v):
    floating = isinstance(v, float) or getattr(getattr(v, "dtype", None), "kind", "") == "f"
    return f"{v:.7g}" if floating else str(v)


def _np_load(path, kind):
    import zipfile

    import numpy as np

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith(b"\x93NUMPY" if kind == ".npy" else b"PK"):
        raise CLIError(f"{path}: not a {kind} file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CLIError(f"{path}: not a readable {kind} file ({_first_line(exc)})") from None


def _array(arrays, key, path):
    import zipfile

    try:
        return arrays[key]
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise CLIError(f"{path}: cannot read array {key!r} ({_first_line(exc)})") from None


def _features(X, path):
    import numpy as np

    if X.dtype.kind not in "biuf":
        raise CLIError(f"{path}: features must be numeric, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"{path}: features must be a non-empty 2-D array, got shape {X.shape}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        row = int(np.argwhere(~np.isfinite(X))[0, 0])
        raise CLIError(f"{path}: features contain NaN or infinity (first in row {row})")
    return X


def _read_csv(path, target, features, need_y):
    import csv

    import numpy as np

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: drop a BOM
            rows = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a UTF-8 text CSV file") from None
    except csv.Error as exc:
        raise CLIError(f"{path}: malformed CSV ({exc})") from None
    if len(rows) < 2:
        raise CLIError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:  # a dict of columns would silently keep only the last one
        raise CLIError(f"{path}: duplicate column name(s) {', '.join(map(repr, twice))} in the "
                       "header; rename them")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise CLIError(f"{path}: row {i} has {len(row)} fields, the header has {len(header)}")
    columns = {name: [row[j].strip() for row in rows[1:]] for j, name in enumerate(header)}
    shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    if target is not None and target not in columns and (need_y or features is None):
        raise CLIError(f"{path}: no column {target!r} (columns: {shown})")
    if target is None and need_y:
        raise CLIError(f"{path}: name the label column with --target COLUMN (columns: {shown})")
    names = list(features) if features is not None else [h for h in header if h != target]
    missing = [n for n in names if n not in columns]
    if missing:
        raise CLIError(f"{path}: missing feature column(s) {', '.join(map(repr, missing))}")
    X = np.empty((len(rows) - 1, len(names)))
    for j, name in enumerate(names):
        try:
            X[:, j] = np.array(columns[name], dtype=np.float64)
        except ValueError:
            i, v = next((i, v) for i, v in enumerate(columns[name]) if not _is_number(v))
            raise CLIError(f"{path}: column {name!r} is not numeric "
                           f"(row {i + 2}: {v!r})") from None
    y = None
    if target is not None and target in columns:
        y = np.array(columns[target])
        if all(_is_number(v) for v in y):
            num = y.astype(np.float64)
            y = num.astype(np.int64) if np.all(num == np.round(num)) else num
    return X, y, names


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_writable(*paths):
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
