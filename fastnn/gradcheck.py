"""Finite-difference gradient check: a tool for users, not only for tests.

:func:`check_gradients` compares a gradient with float64 central differences, either of a
:class:`~fastnn.Network` on data or of any function ``f(params) -> (loss, grad)`` (your own
backprop).  A check where every gradient is ~0 proves nothing (zero against zero): it warns and
reports NaN instead of a perfect score.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = ["check_gradients", "GradientCheckWarning"]


class GradientCheckWarning(UserWarning):
    """Every gradient was ~0: the check compared zeros with zeros and proved nothing."""


def check_gradients(f, *args, eps=1e-6, alpha=0.0, sample_weight=None, max_checks=None,
                    seed=0):
    """Compare a gradient with float64 central differences, block by block.

    Two forms::

        check_gradients(net, X, y)        # a Network: Network.loss_and_grad on (X, y)
        check_gradients(f, params)        # your function: f(params) -> (loss, grad)

    The reference derivative of every checked entry is ``(L(p + eps) - L(p - eps)) / (2 eps)``.
    A network is checked on a float64 copy (so a float32 network is compared with exact-ish
    derivatives of the same function); a function gets float64 copies of ``params`` (it may
    modify them; yours are never touched).

    Parameters
    ----------
    f : Network, or callable ``f(params) -> (loss, grad)``
        ``loss`` a number; ``grad`` shaped like ``params`` (a dict with the same keys and
        shapes, a list/tuple of arrays, or one array).
    X, y : for a Network: data and targets as :meth:`Network.loss_and_grad` takes them (keep
        them small: each checked entry costs two loss evaluations).
    params : for a function: a dict of named arrays (e.g. ``{"W1": W1, "b1": b1}``), a list or
        tuple of arrays (named by position) or one array.
    eps : float — finite-difference step.
    alpha, sample_weight : for a Network, as :meth:`Network.loss_and_grad`.
    max_checks : None or int — check at most this many randomly chosen entries of each block
        (``None``: all of them).
    seed : int — chooses those entries.

    Returns
    -------
    Network: list of dict, one per layer, ``{"W": err_W, "b": err_b}``.  Function: dict
    ``{name: err}`` (names ``0, 1, ...`` for a list, ``"params"`` for one array).  Each
    ``err = max_i |g_i - d_i| / max(max_i |d_i|, 1e-12)`` over the checked entries of the block,
    ``g`` the analytic gradient and ``d`` the finite difference: the worst error relative to the
    scale of that block's gradient.  Around 1e-7 or less in float64 (1e-3 for a float32 network)
    means correct.  When every gradient is ~0, every ``err`` is NaN and a
    :class:`GradientCheckWarning` says why (a symmetric start such as all-zero weights).

    Raises
    ------
    TypeError naming ``f`` (neither a Network nor a callable), ``params`` or ``grad``;
    ValueError naming ``eps``, ``max_checks``, ``X`` (no rows) or a ``grad`` block of the wrong
    shape.
    """
    from fastnn.network import Network

    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if max_checks is not None and (isinstance(max_checks, bool)
                                   or not isinstance(max_checks, numbers.Integral)
                                   or max_checks < 1):
        raise ValueError(f"max_checks must be None or an int >= 1, got {max_checks!r}")
    rng = np.random.default_rng(seed)
    if isinstance(f, Network):
        if len(args) != 2:
            raise TypeError(f"check_gradients(net, X, y): expected X and y after the network, "
                            f"got {len(args)} positional arguments")
        return _check_network(f, *args, eps=float(eps), alpha=alpha, sample_weight=sample_weight,
                              max_checks=max_checks, rng=rng)
    if not callable(f):
        raise TypeError("f must be a fastnn.Network or a callable f(params) -> (loss, grad), "
                        f"got {type(f).__name__}")
    if len(args) != 1:
        raise TypeError(f"check_gradients(f, params): expected one params argument after the "
                        f"function, got {len(args)} positional arguments")
    return _check_function(f, args[0], eps=float(eps), max_checks=max_checks, rng=rng)


# --------------------------------------------------------------------------- shared
def _chosen(size, max_checks, rng):
    idx = np.arange(size)
    if max_checks is not None and size > max_checks:
        idx = np.sort(rng.choice(size, max_checks, replace=False))
    return idx


def _central_differences(loss_at, flat, idx, eps):
    """``(L(p + eps e_i) - L(p - eps e_i)) / (2 eps)`` for each ``i`` in ``idx``; ``flat`` is
    the float64 buffer ``loss_at()`` reads (restored after each entry)."""
    fd = np.empty(idx.shape[0])
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        up = loss_at()
        flat[i] = old - eps
        down = loss_at()
        flat[i] = old
        fd[j] = (up - down) / (2 * eps)
    return fd


def _relative_error(g, fd):
    scale = max(float(np.max(np.abs(fd), initial=0.0)), 1e-12)
    return float(np.max(np.abs(g - fd), initial=0.0)) / scale


def _all_zero(loss, grads, fds, dtype):
    """Every analytic gradient and every finite difference ~0 relative to the loss."""
    tol = max(1e-8, 64 * float(np.finfo(dtype).eps)) * max(1.0, abs(float(loss)))
    return (all(float(np.max(np.abs(g), initial=0.0)) <= tol for g in grads)
            and all(float(np.max(np.abs(d), initial=0.0)) <= tol for d in fds))


def _warn_all_zero(what):
    warnings.warn(
        f"every gradient of {what} is ~0, so the check compares zeros with zeros and proves "
        "nothing (reported as NaN). This is what a symmetric start gives, e.g. all-zero or "
        "constant initial weights on balanced data: every hidden unit computes the same thing "
        "and the averaged gradients cancel exactly. Initialise the weights randomly (and see "
        "fastnn.diagnose), then check again.", GradientCheckWarning, stacklevel=3)


# --------------------------------------------------------------------------- a Network
def _check_network(net, X, y, *, eps, alpha, sample_weight, max_checks, rng):
    if np.ndim(X) >= 1 and np.shape(X)[0] == 0:
        raise ValueError("X must have at least one row")
    loss, grad = net.loss_and_grad(X, y, alpha=alpha, sample_weight=sample_weight)
    ref = net.copy() if net.dtype == np.float64 else _as_float64(net)
    p = ref.params

    def loss_at():
        return ref.loss_and_grad(X, y, alpha=alpha, sample_weight=sample_weight)[0]

    report, grads, fds = [], [], []
    for l in range(net.n_layers):
        layer = {}
        for name, offsets, size in (
            ("W", ref.tables[1], ref.layer_sizes[l] * ref.layer_sizes[l + 1]),
            ("b", ref.tables[2], ref.layer_sizes[l + 1]),
        ):
            idx = _chosen(size, max_checks, rng) + offsets[l]
            fd = _central_differences(loss_at, p, idx, eps)
            g = grad[idx].astype(np.float64)
            layer[name] = _relative_error(g, fd)
            grads.append(g)
            fds.append(fd)
        report.append(layer)
    if _all_zero(loss, grads, fds, net.dtype):
        _warn_all_zero("the network")
        report = [{k: float("nan") for k in layer} for layer in report]
    return report


def _as_float64(net):
    ref = net.zeros_like("float64")
    ref.params[...] = net.params
    return ref


# --------------------------------------------------------------------------- a function
def _blocks(params, name="params"):
    """(names, float64 copies, rebuild) where ``rebuild(copies)`` gives the user's structure."""
    if isinstance(params, dict):
        names = list(params)
        arrays = [_float64_copy(params[k], f"{name}[{k!r}]") for k in names]
        return names, arrays, lambda arrs: dict(zip(names, arrs))
    if isinstance(params, (list, tuple)):
        names = list(range(len(params)))
        arrays = [_float64_copy(v, f"{name}[{i}]") for i, v in enumerate(params)]
        kind = type(params)
        return names, arrays, lambda arrs: kind(arrs)
    return ["params"], [_float64_copy(params, name)], lambda arrs: arrs[0]


def _float64_copy(value, name):
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: nothing to check")
    return np.array(a, dtype=np.float64)


def _call(f, structure):
    out = f(structure)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"f must return (loss, grad), got {type(out).__name__}")
    loss, grad = out
    try:
        loss = float(np.asarray(loss, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(f"f must return (loss, grad) with loss a number, got {loss!r}") from None
    return loss, grad


def _check_function(f, params, *, eps, max_checks, rng):
    names, arrays, rebuild = _blocks(params)
    loss, grad = _call(f, rebuild([a.copy() for a in arrays]))
    if not np.isfinite(loss):
        raise ValueError(f"f returned a non-finite loss {loss!r} at params")
    if isinstance(params, dict):
        if not isinstance(grad, dict) or set(grad) != set(names):
            raise TypeError(f"grad must be a dict with the keys of params {names}, got "
                            f"{sorted(grad) if isinstance(grad, dict) else type(grad).__name__}")
        g_blocks = [grad[k] for k in names]
    elif isinstance(params, (list, tuple)):
        if not isinstance(grad, (list, tuple)) or len(grad) != len(names):
            raise TypeError(f"grad must be a list of {len(names)} arrays like params, got "
                            f"{type(grad).__name__}")
        g_blocks = list(grad)
    else:
        g_blocks = [grad]
    g_blocks = [np.asarray(g, dtype=np.float64) for g in g_blocks]
    for name, g, a in zip(names, g_blocks, arrays):
        if g.shape != a.shape:
            raise ValueError(f"grad[{name!r}] has shape {g.shape} but params[{name!r}] has "
                             f"shape {a.shape}")
    current = [a.copy() for a in arrays]

    report, grads, fds = {}, [], []
    for b, name in enumerate(names):
        flat = current[b].reshape(-1)  # a view: perturbing it perturbs what f receives

        def loss_at():
            # f may modify what it gets: it receives copies of the perturbed arrays
            return _call(f, rebuild([c.copy() for c in current]))[0]

        idx = _chosen(flat.size, max_checks, rng)
        fd = _central_differences(loss_at, flat, idx, eps)
        g = g_blocks[b].reshape(-1)[idx]
        report[name] = _relative_error(g, fd)
        grads.append(g)
        fds.append(fd)
    if _all_zero(loss, grads, fds, np.float64):
        _warn_all_zero("f")
        report = {k: float("nan") for k in report}
    return report
