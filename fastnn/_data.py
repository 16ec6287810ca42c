"""The files of ``fastnn train`` / ``fastnn predict``: data (.csv, .npz, .npy pairs, sparse
matrices saved by ``scipy.sparse.save_npz``) in, predictions (.csv) out.

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

__all__ = ["CLIError", "read_data", "model_inputs", "write_predictions", "check_writable",
           "is_sparse"]


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status 1."""


def _labels_beside(path):
    """``X_train.npy`` (or ``X_train.npz``) -> ``y_train.npy``; any other name -> ``y.npy`` in
    the same folder."""
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    return os.path.join(folder, ("y" + stem[1:] if stem[:1] in "Xx" else "y") + ".npy")


def is_sparse(X):
    """:func:`fastnn._sparse.is_sparse`, imported when first called (this module stays light)."""
    from fastnn._sparse import is_sparse as sparse

    return sparse(X)


def read_data(path, *, target=None, labels=None, features=None, need_y=True):
    """Read ``(X, y ndarray[n] or None, feature names or None)`` from a file.

    ``.csv``: a header row, ``target`` names the label column (``features`` selects columns);
    ``.npz``: arrays ``X`` and ``y``, or a sparse matrix written by ``scipy.sparse.save_npz``
    (:func:`_sparse_matrix`) with its labels as for ``.npy``; ``.npy``: ``X`` here, labels from
    ``labels`` or the file beside it (:func:`_labels_beside`).  ``X`` is ``float64[n, d]``, or
    for a sparse file a ``scipy.sparse.csr_matrix`` of float64 (never densified).  Any problem
    raises :class:`CLIError` or ``OSError``.
    """
    import numpy as np

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a data file")
    ext = os.path.splitext(path)[1].lower()
    names = None
    if ext == ".csv":
        X, y, names = _read_csv(path, target, features, need_y)
    elif ext == ".npz":
        arrays = _np_load(path, ".npz")
        files = arrays.files if isinstance(arrays, np.lib.npyio.NpzFile) else []
        if "X" not in files and "format" in files:  # scipy.sparse.save_npz
            with arrays:
                X = _sparse_matrix(arrays, path)
            y = _labels(path, labels, need_y)
        elif "X" not in files:
            found = ", ".join(files) if files else "a single array"
            raise CLIError(f"{path}: expected arrays 'X' and 'y' in the .npz, or a sparse matrix "
                           f"saved by scipy.sparse.save_npz (found: {found})")
        else:
            with arrays:
                X = _array(arrays, "X", path)
                y = _array(arrays, "y", path) if "y" in arrays.files else None
            if need_y and y is None:
                raise CLIError(f"{path}: no labels: the .npz needs an array 'y' beside 'X'")
    elif ext == ".npy":
        X = _np_load(path, ".npy")
        y = _labels(path, labels, need_y)
    else:
        raise CLIError(f"{path}: unsupported file type {ext or '(none)'!r}: use .csv, .npz or .npy")
    X = _sparse_features(X, path) if is_sparse(X) else _features(np.asarray(X), path)
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise CLIError(f"{path}: labels must be 1-D with one per row of X "
                           f"(X has {X.shape[0]} rows, labels have shape {y.shape})")
    return X, y, names


def _labels(path, labels, need_y):
    """The labels of an ``X`` file without its own: ``labels``, else the file beside ``path``
    (read only when needed or asked for)."""
    lab = labels or _labels_beside(path)
    y = _np_load(lab, ".npy") if (labels or need_y) and os.path.exists(lab) else None
    if labels and y is None:
        raise CLIError(f"{labels}: no such file")
    if need_y and y is None:
        raise CLIError(f"{path}: no labels: pass --labels y.npy or put {lab} beside it")
    return y


def model_inputs(X, arrays, dtype, model_path, data_path, offset=0):
    """``X`` standardised with the model file's scaler (``x_mean``, ``x_scale``, if any) and
    cast to the model's ``dtype``; values that overflow it raise :class:`CLIError` (rows are
    numbered from ``offset``).  A sparse ``X`` stays sparse, so it takes no scaler: centring
    would make it dense (:func:`row_blocks` gives a scaled model dense blocks of rows)."""
    import numpy as np

    n_in = X.shape[1]
    if "x_mean" in arrays or "x_scale" in arrays:
        if is_sparse(X):
            raise CLIError(f"{data_path}: a sparse matrix is not standardised with the feature "
                           f"scaler of {model_path} as a whole (it would become dense)")
        mean, scale = arrays.get("x_mean"), arrays.get("x_scale")
        if any(a is None or a.shape != (n_in,) or a.dtype.kind not in "iuf" for a in (mean, scale)):
            raise CLIError(f"{model_path}: its feature scaler (x_mean, x_scale) does not fit "
                           f"{n_in} features")
        with np.errstate(all="ignore"):  # overflow or a zero scale -> inf: refused below
            X = (X - mean) / scale
    with np.errstate(over="ignore", invalid="ignore"):
        Z = X.astype(dtype)
    values = Z.data if is_sparse(Z) else Z
    if not np.isfinite(values).all():
        first = int(np.argwhere(~np.isfinite(values))[0, 0])
        row = int(np.searchsorted(Z.indptr, first, side="right")) - 1 if is_sparse(Z) else first
        scaled = " after scaling" if "x_mean" in arrays or "x_scale" in arrays else ""
        raise CLIError(f"{data_path}: features too large for the model's {np.dtype(dtype).name}"
                       f"{scaled} (|x| > {np.finfo(dtype).max:.3g}; first in row {offset + row})")
    return Z


#: bytes of the dense float64 blocks :func:`row_blocks` makes of a sparse matrix
BLOCK_BYTES = 64 << 20


def row_blocks(X, arrays):
    """``(offset, rows)`` blocks of ``X`` for :func:`model_inputs`: ``X`` whole, except a sparse
    ``X`` for a model with a feature scaler (standardised rows are dense): dense blocks of at
    most :data:`BLOCK_BYTES` (at least one row), so no dense copy of the whole matrix is made."""
    if not (is_sparse(X) and ("x_mean" in arrays or "x_scale" in arrays)):
        yield 0, X
        return
    step = max(1, BLOCK_BYTES // (8 * X.shape[1]))
    for i in range(0, X.shape[0], step):
        yield i, X[i:i + step].toarray()


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


#: the layouts of ``scipy.sparse.save_npz`` read here -> the arrays holding their indices
_SPARSE_INDICES = {"csr": ("indices", "indptr"), "csc": ("indices", "indptr"),
                   "coo": ("row", "col")}


def _sparse_matrix(arrays, path):
    """The matrix of a file written by ``scipy.sparse.save_npz`` as a CSR matrix, built from its
    arrays (read without pickle, as every array here) after checking each of them: scipy's
    constructors trust index arrays, and an index out of range would read or write outside
    them later."""
    import numpy as np
    import scipy.sparse as sp

    raw = _array(arrays, "format", path)
    fmt = raw.item() if raw.ndim == 0 and raw.dtype.kind in "SU" else raw.tolist()
    fmt = fmt.decode("ascii", "replace") if isinstance(fmt, bytes) else fmt
    if not isinstance(fmt, str) or fmt not in _SPARSE_INDICES:
        raise CLIError(f"{path}: sparse format {str(fmt)[:40]!r} is not supported: save a CSR, "
                       "CSC or COO matrix with scipy.sparse.save_npz")
    keys = ("coords",) if fmt == "coo" and "coords" in arrays.files else _SPARSE_INDICES[fmt]
    missing = [k for k in ("shape", "data", *keys) if k not in arrays.files]
    if missing:
        raise CLIError(f"{path}: a {fmt} matrix needs the arrays shape, data, {', '.join(keys)} "
                       f"(missing: {', '.join(missing)})")
    shape = _array(arrays, "shape", path)
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or shape.min() < 0:
        raise CLIError(f"{path}: 'shape' must hold two integers >= 0, got {shape.tolist()!r}")
    n, d = (int(s) for s in shape)
    data = _array(arrays, "data", path)
    if data.dtype.kind not in "biuf":
        raise CLIError(f"{path}: features must be numeric, got dtype {data.dtype}")
    if data.ndim != 1:
        raise CLIError(f"{path}: 'data' must be 1-D, got shape {data.shape}")
    idx = {k: _array(arrays, k, path) for k in keys}
    for k, a in idx.items():
        if a.dtype.kind not in "iu":
            raise CLIError(f"{path}: '{k}' must hold integers, got dtype {a.dtype}")
    if fmt == "coo":
        coords = idx["coords"] if "coords" in idx else None
        if coords is not None and (coords.ndim != 2 or coords.shape[0] != 2):
            raise CLIError(f"{path}: 'coords' must have shape (2, nnz), got {coords.shape}")
        rows, cols = coords if coords is not None else (idx["row"], idx["col"])
        for k, a, size in (("row", rows, n), ("col", cols, d)):
            _check_indices(a, data.size, size, k, path)
        return sp.coo_matrix((data, (rows, cols)), shape=(n, d)).tocsr()
    major, minor = (n, d) if fmt == "csr" else (d, n)
    indices, indptr = idx["indices"], idx["indptr"]
    _check_indices(indices, data.size, minor, "indices", path)
    if indptr.shape != (major + 1,) or indptr[0] != 0 or indptr[-1] != data.size \
            or np.any(indptr[1:] < indptr[:-1]):
        raise CLIError(f"{path}: 'indptr' must rise from 0 to {data.size} (the number of "
                       f"values) in {major + 1} entries")
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    return cls((data, indices, indptr), shape=(n, d)).tocsr()


def _check_indices(a, nnz, size, key, path):
    import numpy as np

    if a.shape != (nnz,):
        raise CLIError(f"{path}: '{key}' must have one entry per value ({nnz}), got shape "
                       f"{a.shape}")
    if nnz and (np.min(a) < 0 or np.max(a) >= size):
        raise CLIError(f"{path}: '{key}' holds indices outside [0, {size}) (the matrix's shape)")


def _sparse_features(X, path):
    """:func:`_features` for a sparse ``X``: CSR of float64 with finite values."""
    import numpy as np

    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"{path}: features must be a non-empty 2-D array, got shape {X.shape}")
    X = X.tocsr().astype(np.float64)
    if not np.isfinite(X.data).all():
        first = int(np.argwhere(~np.isfinite(X.data))[0, 0])
        row = int(np.searchsorted(X.indptr, first, side="right")) - 1
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
