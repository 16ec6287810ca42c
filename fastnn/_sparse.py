"""Sparse input: a scipy.sparse matrix validated once into :class:`CSR`, the form the engine
reads in place (:mod:`fastnn.kernels.inputs`).

Memory stays bounded by the non-zeros: a CSR matrix's value and index arrays are used as they
are (no copy when the values already have the network's dtype, memory-mapped arrays included;
only the row pointers, one integer per row, are copied), CSC and COO are
converted to CSR once, and nothing ever densifies ``X``.  scipy itself is imported only by
:meth:`CSR.to_scipy`: the checks here read the arrays that a sparse matrix carries.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CSR", "is_sparse", "as_csr", "checked_csr"]

#: values checked for finiteness per slice of ``data`` (bounds the check's temporaries)
_CHUNK = 1 << 20


class CSR:
    """A validated CSR matrix, or a subset of its rows: row ``r`` holds the non-zeros
    ``starts[r]:ends[r]`` of ``data`` (the network's dtype) and ``indices`` (int32 or int64);
    ``starts`` and ``ends`` are fastnn's own arrays, ``data`` and ``indices`` may be the user's.
    Indices lie in ``[0, shape[1])`` and the values are finite; duplicates (summed) and
    unsorted indices are allowed.  Selecting rows (``X[rows]``: a validation split, a sample)
    shares ``data`` and ``indices`` and copies only the row bounds.
    """

    __slots__ = ("data", "indices", "starts", "ends", "shape")
    ndim = 2

    def __init__(self, data, indices, starts, ends, n_features):
        self.data, self.indices, self.starts, self.ends = data, indices, starts, ends
        self.shape = (int(starts.shape[0]), int(n_features))

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def arrays(self):
        """``(data, indices, starts, ends)``: the kernels' form (:mod:`fastnn.kernels.inputs`)."""
        return self.data, self.indices, self.starts, self.ends

    @property
    def nnz(self):
        return int(np.sum(self.ends - self.starts, dtype=np.int64))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        """The rows ``rows`` (a slice, an array of row indices or a boolean mask), sharing the
        value and index arrays."""
        index = np.arange(self.shape[0])[rows]
        if index.ndim != 1:
            raise IndexError("a CSR input is indexed by rows only")
        return CSR(self.data, self.indices, np.ascontiguousarray(self.starts[index]),
                   np.ascontiguousarray(self.ends[index]), self.shape[1])

    def to_scipy(self):
        """The rows as a ``scipy.sparse.csr_matrix`` (sharing the arrays when the rows are
        those of one CSR matrix, in order; else holding a copy of their non-zeros)."""
        import scipy.sparse as sp

        starts, ends = self.starts.astype(np.int64), self.ends.astype(np.int64)
        indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=indptr[1:])
        if self.shape[0] and np.array_equal(starts[1:], ends[:-1]):
            lo, hi = int(starts[0]), int(ends[-1])
            data, indices = self.data[lo:hi], self.indices[lo:hi]
        else:  # positions of the kept non-zeros: for each row, starts .. ends
            pos = np.repeat(starts - indptr[:-1], ends - starts) + np.arange(indptr[-1])
            data, indices = self.data[pos], self.indices[pos]
        return sp.csr_matrix((data, indices, indptr), shape=self.shape, copy=False)


def is_sparse(X) -> bool:
    """True for a scipy.sparse matrix or array (any format) and for a :class:`CSR`."""
    return isinstance(X, CSR) or (hasattr(X, "tocsr") and hasattr(X, "nnz")
                                  and hasattr(X, "format"))


def _index_array(a, name, what):
    a = np.asarray(a)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"{name}: its {what} must be a 1-D integer array, got {a.dtype} "
                         f"{a.shape}")
    if a.dtype not in (np.int32, np.int64):
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


def as_csr(X, n_features, dtype, name="X"):
    """``X`` (scipy.sparse, any format, or a :class:`CSR`) as a validated :class:`CSR` whose
    values have ``dtype``.  Raises ``ValueError`` naming ``name`` for a wrong number of
    features, malformed index arrays or values that are NaN, infinite or too large for
    ``dtype``; ``TypeError`` for non-numeric values."""
    if isinstance(X, CSR):  # (validated already)
        if X.shape[1] != n_features:
            raise ValueError(f"{name} has {X.shape[1]} features but the network expects "
                             f"{n_features}")
        if X.dtype == dtype:
            return X
        X = X.to_scipy()
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    n, d = X.shape
    if d != n_features:
        raise ValueError(f"{name} has {d} features but the network expects {n_features}")
    if X.format != "csr":
        X = checked_csr(X, name)
    data = _value_array(X.data, name)
    indices = _index_array(X.indices, name, "indices")
    # the row bounds are a copy (n + 1 integers, never the size of the non-zeros): changing
    # X.indptr while fastnn reads X (a fit callback, another thread) cannot move them outside
    # the arrays they were checked against
    indptr = np.array(_index_array(X.indptr, name, "indptr"))
    lo, hi = _check_compressed(indptr, indices, data, n, d, name, "column")
    if data.dtype != dtype:
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            data = data.astype(dtype)
    data = np.ascontiguousarray(data)
    _check_values(X.data, data, indptr, lo, hi, dtype, name)
    return CSR(data, indices, indptr[:-1], indptr[1:], d)


def _value_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: its values (data) must be a 1-D array, got shape {a.shape}")
    return a


def _check_compressed(indptr, indices, data, n_major, n_minor, name, what):
    """``(lo, hi)``, the span of ``indices``/``data`` that the ``n_major`` rows (CSR) or
    columns (CSC) of ``indptr`` cover, after checking that every one of them is in bounds."""
    if indptr.shape[0] != n_major + 1:
        raise ValueError(f"{name}: indptr has {indptr.shape[0]} entries for {n_major} "
                         f"{'rows' if what == 'column' else 'columns'}")
    lo, hi = (int(indptr[0]), int(indptr[-1])) if n_major else (0, 0)
    if n_major and (lo < 0 or np.any(np.diff(indptr) < 0)
                    or hi > min(indices.shape[0], data.shape[0])):
        raise ValueError(f"{name}: indptr must be non-decreasing within the index and value "
                         "arrays (a malformed sparse matrix)")
    if hi > lo and (int(indices[lo:hi].min()) < 0 or int(indices[lo:hi].max()) >= n_minor):
        raise ValueError(f"{name}: {what} indices must lie in [0, {n_minor})")
    return lo, hi


def checked_csr(X, name="X"):
    """A 2-D scipy.sparse matrix of a format other than CSR as a scipy CSR matrix, its index
    arrays checked before scipy converts it: scipy's compiled conversions (CSC and COO to CSR,
    BSR to CSR) index their output by the input's index arrays without bounds checks, so a
    malformed matrix would write outside them.  Raises ``ValueError`` naming ``name``."""
    n, d = X.shape
    if X.format == "csc":
        indices = _index_array(X.indices, name, "indices")
        indptr = _index_array(X.indptr, name, "indptr")
        lo, _ = _check_compressed(indptr, indices, _value_array(X.data, name), d, n, name, "row")
        if lo != 0:  # scipy converts the non-zeros 0:indptr[-1] but places only lo:indptr[-1]
            raise ValueError(f"{name}: a CSC matrix's indptr must start at 0, got {lo}")
        return X.tocsr()
    if X.format != "coo":  # BSR, DIA, LIL, DOK: scipy checks the COO it builds from them
        try:
            X = X.tocoo()
        except ValueError as exc:
            raise ValueError(f"{name}: a malformed {X.format.upper()} matrix ({exc})") from exc
    data = _value_array(X.data, name)
    coords = X.coords if hasattr(X, "coords") else (X.row, X.col)
    if len(coords) != 2:
        raise ValueError(f"{name}: a COO matrix needs 2 index arrays, got {len(coords)}")
    for axis, (a, size) in enumerate(zip(coords, (n, d))):
        a = _index_array(a, name, ("row", "col")[axis] + " indices")
        if a.shape[0] != data.shape[0]:
            raise ValueError(f"{name}: a COO matrix needs one row and column index per value "
                             f"({data.shape[0]}), got {a.shape[0]}")
        if a.shape[0] and (int(a.min()) < 0 or int(a.max()) >= size):
            raise ValueError(f"{name}: {('row', 'column')[axis]} indices must lie in "
                             f"[0, {size})")
    return X.tocsr()


def _check_values(source, data, indptr, lo, hi, dtype, name):
    """Every stored value of the rows is finite in ``dtype``, in slices of :data:`_CHUNK`."""
    for s in range(lo, hi, _CHUNK):
        part = data[s:min(hi, s + _CHUNK)]
        if data.dtype.kind != "f" or np.isfinite(part).all():
            continue
        p = s + int(np.argwhere(~np.isfinite(part))[0, 0])
        row = int(np.searchsorted(indptr, p, side="right")) - 1
        if np.isfinite(np.asarray(source[p])):  # e.g. 1e39 is finite in float64, inf in float32
            raise ValueError(f"{name} has values too large for the network's "
                             f"{np.dtype(dtype).name} (|x| > {np.finfo(dtype).max:.3g}; first in "
                             f"row {row}): scale the inputs")
        raise ValueError(f"{name} contains NaN or infinity (first in row {row})")
