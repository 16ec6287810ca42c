"""Input validation shared by every public entry point (the bottom of the package: it imports
nothing from fastnn but the engine's output codes).  Each check raises ``ValueError`` or
``TypeError`` naming the argument."""
from __future__ import annotations

import numbers
import os

import numpy as np

__all__ = ["check_input", "all_finite", "check_finite", "non_finite_message", "memory_problem",
           "prepare_targets", "prepare_inputs", "prepare_weights", "check_int", "cast"]


def check_input(X, n_features, name="X"):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the network expects {n_features}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    return X


def all_finite(a, rows=1 << 14):
    """``np.isfinite(a).all()`` without an ``a``-sized boolean temporary."""
    if a.dtype.kind != "f":
        return True
    if a.ndim == 0:
        return bool(np.isfinite(a))
    return all(np.isfinite(a[i:i + rows]).all() for i in range(0, max(a.shape[0], 1), rows))


def non_finite_message(source, converted, offset, dtype, name="X"):
    """Why ``converted`` (``source`` cast to ``dtype``, rows from ``offset``) is not finite."""
    row = offset + int(np.argwhere(~np.isfinite(converted))[0, 0])
    if all_finite(source):  # e.g. 1e39 is finite in float64, inf in float32
        limit = np.finfo(dtype).max
        return (f"{name} has values too large for the network's {np.dtype(dtype).name} "
                f"(|x| > {limit:.3g}; first in row {row}): scale the inputs")
    return f"{name} contains NaN or infinity (first in row {row}); predictions need finite input"


def memory_problem(nbytes):
    """Why ``nbytes`` of arrays cannot be held (more than the machine's memory), or None."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): let NumPy decide
        return None
    if nbytes > total:
        return f"this machine has {total / 2 ** 30:.3g} GiB of memory"
    return None


def check_finite(a, name):
    if not all_finite(a):
        raise ValueError(f"{name} contains NaN or infinity")


def prepare_targets(net, y, name="y"):
    """Targets in the engine's form: ``int64[n]`` labels (softmax; probability rows
    ``float[n, k]`` also allowed) or C-contiguous ``float[n, k]`` of ``net.dtype``
    (sigmoid, identity; a 1-D ``y`` is accepted when ``k == 1``).  Validates values."""
    _not_sparse(y, name)
    y = np.asarray(y)
    k = net.layer_sizes[-1]
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {y.dtype}")
    if net.output == "softmax" and y.ndim == 1:
        check_finite(y, name)
        if y.dtype.kind == "f" and not np.array_equal(y, np.floor(y)):
            raise ValueError(f"{name} must hold integer class labels for a softmax output")
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"{name} has labels out of range: they must be in [0, {k - 1}] for "
                             f"{k} outputs, got min {y.min()} and max {y.max()}")
        return np.ascontiguousarray(y, dtype=np.int64)
    if y.ndim == 1 and k == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != k:
        want = "labels int[n] or probability rows" if net.output == "softmax" else "values"
        raise ValueError(f"{name} must have shape (n_samples, {k}) ({want}), got {y.shape}")
    y = cast(y, net.dtype)
    check_finite(y, name)
    if net.output == "softmax":  # the fused gradient p - y needs rows summing to 1
        from fastnn.functional import _probabilities

        _probabilities(y, y, name)
    elif net.output == "sigmoid" and y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] for a {net.output} output")
    return y


def cast(a, dtype):
    """``a`` as C-contiguous ``dtype``; values out of its range become inf (no warning), for
    the finite check that follows."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(a, dtype=dtype)


def prepare_inputs(net, X, y, sample_weight, alpha, xname="X", yname="y"):
    """Validated ``(X, targets, sw)`` ready for the kernels (``sw``: float[0] for None); a
    sparse ``X`` becomes a :class:`fastnn._sparse.CSR` (never densified)."""
    from fastnn import _sparse

    if _sparse.is_sparse(X):
        X = _sparse.as_csr(X, net.layer_sizes[0], net.dtype, xname)
    else:
        X = cast(check_input(X, net.layer_sizes[0], xname), net.dtype)
        check_finite(X, xname)  # after the cast: a float64 1e39 is inf in a float32 network
    t = prepare_targets(net, y, yname)
    if t.shape[0] != X.shape[0]:
        raise ValueError(f"{xname} has {X.shape[0]} rows but {yname} has {t.shape[0]}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0 \
            or not np.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    sw = prepare_weights(sample_weight, X.shape[0], net.dtype)
    return X, t, sw


def prepare_weights(sample_weight, n, dtype):
    if sample_weight is None:
        return np.zeros(0, dtype=dtype)
    _not_sparse(sample_weight, "sample_weight")
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf" or sw.shape != (n,):
        raise ValueError(f"sample_weight must be a 1-D array of {n} numbers, got shape {sw.shape}")
    sw = cast(sw, dtype)
    check_finite(sw, "sample_weight")
    if sw.size and sw.min() < 0:
        raise ValueError(f"sample_weight must be >= 0, got a minimum of {float(sw.min())!r}")
    if sw.size and not sw.sum() > 0:
        raise ValueError("sample_weight: the weights sum to zero; give some samples a positive "
                         "weight")
    return sw


def _not_sparse(a, name):
    """Targets and weights are dense: a scipy.sparse one would become a 0-d object array."""
    from fastnn._sparse import is_sparse

    if is_sparse(a):
        raise TypeError(f"{name} must be a dense array, got a scipy.sparse matrix (only X may be "
                        f"sparse): pass {name}.toarray()")


def check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


