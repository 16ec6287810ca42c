"""Why is my network not learning?  :func:`diagnose` (public as ``fastnn.diagnose``) measures
the usual reasons.  (The module is ``diagnosis``: a submodule named ``diagnose`` would replace
the function ``fastnn.diagnose`` once imported.)

``diagnose(net, X, y)`` runs the network on (a sample of) the data without changing a weight and
returns a :class:`Diagnosis`: a list of :class:`Finding` objects, each with a stable ``code``, a
``severity`` (``"problem"`` when it explains poor training, ``"note"`` for what a healthy network
may also show), the layer and units concerned, the measured evidence and what to do.
``print(diagnosis)`` reads as a short explanation; ``bool(diagnosis)`` is True when there is no
problem.  The measurements use only the network's public methods (:meth:`Network.layer_outputs`,
:meth:`Network.loss_and_grad`) and are explained in docs/softmax.md.

Layers are numbered as in ``net.layer_sizes``: layer 0 is the input, layer ``l`` the output of
``net.weights[l - 1]``, the last one the output layer.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np

__all__ = ["diagnose", "Diagnosis", "Finding", "CODES", "collapse_hint", "label_targets"]

#: every finding code, in the order findings are reported (symptoms, then causes)
CODES = ("output_collapse", "loss_at_chance", "identical_inputs", "symmetric_units",
         "identical_activations", "dead_units", "saturated_units", "cancelling_gradients",
         "vanishing_gradient", "exploding_gradient", "non_finite_weights")
#: rows used for outputs, activations and the loss (a random sample of larger data)
MAX_ROWS = 2000
#: rows whose gradients are computed one by one (cancelling_gradients)
PER_EXAMPLE_ROWS = 64
#: outputs whose range over the inputs is below this (probabilities; for identity outputs,
#: relative to the targets' standard deviation) count as collapsed
COLLAPSE = 0.01
#: a unit is saturated when its derivative is below 0.0099 (sigmoid output within 0.01 of 0 or
#: 1, |tanh| above 0.99) on this fraction of the inputs
SATURATED_FRACTION = 0.95


@dataclass(frozen=True)
class Finding:
    """One measured reason (or remark) about a network on some data.

    Attributes
    ----------
    code : str — one of :data:`CODES`, stable across versions.
    severity : {"problem", "note"}
    layer : int or None — index into ``net.layer_sizes`` (None: the whole network).
    units : tuple of int — the units of that layer concerned (empty: all or not applicable).
    evidence : str — what was measured, in words and numbers.
    advice : str — what to do about it.
    values : dict — the measured numbers, for programs.
    """

    code: str
    severity: str
    layer: int | None
    units: tuple
    evidence: str
    advice: str
    values: dict = field(default_factory=dict, compare=False)

    def __str__(self):
        where = "" if self.layer is None else f", layer {self.layer}"
        head = f"{self.code} ({self.severity}{where})"
        body = textwrap.fill(self.evidence, 96, initial_indent="  ", subsequent_indent="  ")
        todo = textwrap.fill("What to do: " + self.advice, 96, initial_indent="  ",
                             subsequent_indent="  ")
        return f"{head}\n{body}\n{todo}"


class Diagnosis:
    """What :func:`diagnose` found: ``findings`` (a list of :class:`Finding`), ``summary`` (the
    measured loss, the loss of always predicting the mean target, rows used); ``bool()`` is True
    when no finding is a problem."""

    def __init__(self, findings, summary, header):
        order = {c: i for i, c in enumerate(CODES)}
        self.findings = sorted(findings, key=lambda f: (f.severity != "problem",
                                                        order.get(f.code, len(order))))
        self.summary = summary
        self._header = header

    @property
    def problems(self):
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def codes(self):
        """The codes of all findings, problems first."""
        return [f.code for f in self.findings]

    def __bool__(self):
        return not self.problems

    def __iter__(self):
        return iter(self.findings)

    def __len__(self):
        return len(self.findings)

    def __str__(self):
        lines = [textwrap.fill(self._header, 96, subsequent_indent="  ")]
        n_prob = len(self.problems)
        n_note = len(self.findings) - n_prob
        if n_prob:
            lines.append(f"{n_prob} problem{'s' * (n_prob != 1)}"
                         + (f" and {n_note} note{'s' * (n_note != 1)}:" if n_note else ":"))
        else:
            lines.append("No problem found: nothing here explains poor training."
                         + (f" {n_note} note{'s' * (n_note != 1)}:" if n_note else ""))
        lines += [str(f) for f in self.findings]
        return "\n".join(lines)

    def __repr__(self):
        return f"Diagnosis(problems={[f.code for f in self.problems]}, codes={self.codes})"


# --------------------------------------------------------------------------- helpers
def _vec(v, n=6):
    v = np.asarray(v, dtype=np.float64).ravel()
    text = ", ".join(f"{x:.3g}" for x in v[:n])
    return f"[{text}{', ...' if v.size > n else ''}]"


def _units(idx, n=8):
    idx = [int(i) for i in idx]
    return ", ".join(map(str, idx[:n])) + (f" and {len(idx) - n} more" if len(idx) > n else "")


def _targets_vary(t):
    return np.unique(t).size > 1 if t.ndim == 1 else bool(np.any(np.ptp(t, axis=0) > 0))


def output_spread(net, P, t):
    """How much the outputs ``P`` vary over the inputs: the largest range of an output unit
    (identity outputs: relative to the targets' standard deviation).  Below :data:`COLLAPSE`
    the network answers every input alike."""
    rng = np.ptp(P.astype(np.float64), axis=0) if P.shape[0] else np.zeros(P.shape[1])
    if net.output != "identity":
        return float(rng.max())
    std = np.std(t.astype(np.float64), axis=0)
    return float(np.max(rng[std > 0] / std[std > 0], initial=0.0))


def _chance_loss(net, t):
    """The loss of the best constant prediction (the mean target), in the network's loss."""
    if net.loss == "squared_error":
        tt = t.astype(np.float64)
        return 0.5 * float(np.sum(np.var(tt, axis=0)))
    if net.output == "softmax":
        k = net.layer_sizes[-1]
        Y = np.eye(k)[t] if t.ndim == 1 else t.astype(np.float64)
        q = Y.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.sum(np.where(Y > 0, Y * np.log(q), 0.0)) / Y.shape[0])
    tt = t.astype(np.float64)
    q = tt.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(tt > 0, tt * np.log(q), 0.0) + np.where(tt < 1, (1 - tt) * np.log1p(-q), 0.0)
    return float(-ll.sum() / tt.shape[0])


def _sample(X, t, rows, rng):
    """At most ``rows`` random rows of ``X`` and ``t`` (read by row index: a memory-mapped or
    out-of-core ``X`` is never read whole), as in-memory arrays (a sparse ``X`` stays sparse)."""
    from fastnn._sparse import is_sparse

    keep = (lambda a: a) if is_sparse(X) else np.asarray
    n = X.shape[0]
    if n <= rows:
        return keep(X[:n]), np.asarray(t[:n])
    idx = np.sort(rng.choice(n, rows, replace=False))
    return keep(X[idx]), np.asarray(t[idx])


def collapse_hint(net, X, y):
    """One line pointing to :func:`diagnose` when ``net`` answers every input of ``X`` alike
    although the targets ``y`` differ (both as :func:`fastnn.fit` accepts them, validated);
    else None.  ``fit(..., verbose=True)`` prints it after training."""
    from fastnn.train import prepare_targets

    Xs, t = _sample(X, y, 1000, np.random.default_rng(0))
    t = prepare_targets(net, t)
    if Xs.shape[0] < 2 or not _targets_vary(t) or not np.all(np.isfinite(net.params)):
        return None
    P = net.forward(Xs)
    if output_spread(net, P, t) >= COLLAPSE:
        return None
    return (f"fastnn.fit: the network gives nearly the same output for every input (about "
            f"{_vec(P.mean(axis=0))}); fastnn.diagnose(net, X, y) measures why.")


def label_targets(net, y, classes, where="y"):
    """Class labels ``y`` as ``net``'s targets, given the labels of its outputs (``classes``, as a
    model file stores them): output indices, or a 0/1 column for a one-output binary
    classifier.  ``y`` is returned unchanged without ``classes`` or for identity outputs.
    Raises ValueError naming ``where`` for a label the model does not know."""
    if classes is None or net.output == "identity":
        return y
    y = np.asarray(y)
    numeric = classes.dtype.kind in "biuf" and y.dtype.kind in "biuf"
    known, seen = (classes, y) if numeric else (classes.astype(str), y.astype(str))
    missing = np.setdiff1d(seen, known)
    if missing.size:
        raise ValueError(f"{where}: labels {missing[:5].tolist()} are not among the model's "
                         f"classes {known[:10].tolist()}")
    order = np.argsort(known, kind="stable")
    idx = order[np.searchsorted(known, seen, sorter=order)]
    if net.output == "sigmoid" and net.layer_sizes[-1] == 1:
        return idx.reshape(-1, 1).astype(np.float64)
    return idx


# --------------------------------------------------------------------------- diagnose
def diagnose(net, X, y, *, optimizer=None, batch_size=None):
    """Measure why ``net`` may not learn from ``(X, y)``; the weights are not changed.

    Parameters
    ----------
    net : Network
    X, y : data and targets as :func:`fastnn.fit` takes them; larger data is sampled
        (:data:`MAX_ROWS` rows for outputs and loss, :data:`PER_EXAMPLE_ROWS` for per-example
        gradients), with a fixed seed.
    optimizer : None or fastnn.SGD / Adam / AdamW — the one you train with: with SGD, the size
        of one step relative to the weights is measured (exploding_gradient).
    batch_size : None or int >= 1 — the minibatch size you train with (None: full batch), over
        which the per-example gradients are averaged (cancelling_gradients).

    Returns
    -------
    Diagnosis
    """
    from fastnn.network import Network
    from fastnn.optim import _Optimizer
    from fastnn.train import prepare_targets

    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastnn.Network, got {type(net).__name__}")
    if optimizer is not None and not isinstance(optimizer, _Optimizer):
        raise TypeError(f"optimizer must be None or fastnn.SGD, Adam or AdamW, got {optimizer!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be None or an int >= 1, got {batch_size!r}")
    from fastnn import _sparse

    if _sparse.is_sparse(X):  # sampled by rows, never densified
        X = _sparse.as_csr(X, net.layer_sizes[0], net.dtype)
    elif not isinstance(X, np.ndarray):
        X = np.asarray(X)  # (a memmap is only read by rows)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a 2-D array with at least one row, got shape {X.shape}")
    t = prepare_targets(net, y)
    if t.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {t.shape[0]}")
    rng = np.random.default_rng(0)
    Xs, ts = _sample(X, t, MAX_ROWS, rng)
    from fastnn import _diagnosis_checks as checks

    return checks.run(net, Xs, ts, X.shape[0], optimizer, batch_size, rng)
