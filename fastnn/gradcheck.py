"""Finite-difference gradient check: a tool for users, not only for tests."""
from __future__ import annotations

import numpy as np

__all__ = ["check_gradients"]


def check_gradients(net, X, y, eps=1e-6, alpha=0.0, sample_weight=None, max_checks=None,
                    seed=0):
    """Compare :meth:`Network.loss_and_grad` with float64 central differences.

    The reference derivative of every checked parameter is
    ``(L(p + eps) - L(p - eps)) / (2 eps)``, evaluated on a float64 copy of ``net`` (so a float32
    network is checked against exact-ish derivatives of the same function).

    Parameters
    ----------
    net : Network — not modified.
    X, y : data and targets as :meth:`Network.loss_and_grad` takes them (keep them small: each
        checked parameter costs two loss evaluations).
    eps : float — finite-difference step.
    alpha, sample_weight : as :meth:`Network.loss_and_grad`.
    max_checks : None or int — check at most this many randomly chosen entries of each ``W``
        and each ``b`` (``None``: all of them).
    seed : int — chooses those entries.

    Returns
    -------
    list of dict, one per layer: ``{"W": err_W, "b": err_b}`` with
    ``err = max_i |g_i - d_i| / max(max_i |d_i|, 1e-12)`` over the checked entries, ``g`` the
    analytic gradient and ``d`` the finite difference: the worst error relative to the scale of
    that layer's gradient.  Around 1e-7 or less in float64 (1e-3 in float32) means correct.
    """
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if max_checks is not None and (not isinstance(max_checks, int) or max_checks < 1):
        raise ValueError(f"max_checks must be None or an int >= 1, got {max_checks!r}")
    _, grad = net.loss_and_grad(X, y, alpha=alpha, sample_weight=sample_weight)
    ref = net.copy() if net.dtype == np.float64 else _as_float64(net)
    p = ref.params
    rng = np.random.default_rng(seed)
    report = []
    for l in range(net.n_layers):
        layer = {}
        for name, offsets, size in (
            ("W", ref.tables[1], ref.layer_sizes[l] * ref.layer_sizes[l + 1]),
            ("b", ref.tables[2], ref.layer_sizes[l + 1]),
        ):
            idx = np.arange(size)
            if max_checks is not None and size > max_checks:
                idx = np.sort(rng.choice(size, max_checks, replace=False))
            idx = idx + offsets[l]
            fd = np.empty(idx.shape[0])
            for j, i in enumerate(idx):
                old = p[i]
                p[i] = old + eps
                up, _ = ref.loss_and_grad(X, y, alpha=alpha, sample_weight=sample_weight)
                p[i] = old - eps
                down, _ = ref.loss_and_grad(X, y, alpha=alpha, sample_weight=sample_weight)
                p[i] = old
                fd[j] = (up - down) / (2 * eps)
            g = grad[idx].astype(np.float64)
            scale = max(float(np.max(np.abs(fd), initial=0.0)), 1e-12)
            layer[name] = float(np.max(np.abs(g - fd), initial=0.0)) / scale
        report.append(layer)
    return report


def _as_float64(net):
    ref = net._like("float64")
    ref.params[...] = net.params
    return ref
