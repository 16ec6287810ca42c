"""The measurements behind :func:`fastnn.diagnose`: one function per finding code.

Every check reads the context built by :func:`run` (outputs of every layer, the loss and its
gradient on a sample of rows) and returns a list of findings.  Thresholds are module constants
of :mod:`fastnn.diagnosis`; the words say what was measured and why it matters.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from fastnn.diagnosis import (
    COLLAPSE, SATURATED_FRACTION, PER_EXAMPLE_ROWS, Diagnosis, Finding, _chance_loss,
    _targets_vary, _units, _vec, output_spread,
)
from fastnn.optim import SGD

#: codes that explain a collapse (output_collapse / loss_at_chance name them as the cause)
_CAUSES = ("identical_inputs", "symmetric_units", "identical_activations", "dead_units",
           "saturated_units", "cancelling_gradients", "vanishing_gradient", "exploding_gradient")


def run(net, X, t, n_total, optimizer, batch_size, rng):
    m = X.shape[0]
    header = (f"fastnn.diagnose: {net!r} on {m}" + (f" of {n_total}" if n_total > m else "")
              + " rows.")
    if not np.all(np.isfinite(net.params)):
        bad = int(np.count_nonzero(~np.isfinite(net.params)))
        return Diagnosis([Finding(
            "non_finite_weights", "problem", None, (),
            f"{bad} of the {net.n_params} parameters are NaN or infinite, so every output is "
            "meaningless.",
            "Training diverged: retrain from fresh weights with a smaller learning rate, and "
            "check the data for NaN or huge values.", {"non_finite": bad})], {}, header)
    loss, grad = net.loss_and_grad(X, t)  # also validates the sampled X and t
    outs = net.layer_outputs(X)
    chance = _chance_loss(net, t)
    vary = _targets_vary(t)
    c = SimpleNamespace(
        net=net, X=X, t=t, m=m, outs=outs, P=outs[-1], loss=loss, grad=grad, chance=chance,
        vary=vary, high=vary and chance > 0 and loss > 0.5 * chance, rng=rng,
        x_same=m > 1 and _rows_identical(X), optimizer=optimizer,
        batch_size=batch_size, sgd=isinstance(optimizer, SGD))
    c.gnorm, c.wnorm = _layer_norms(net, grad)
    findings = []
    for check in (_collapse, _at_chance, _identical_inputs, _symmetric, _identical, _dead,
                  _saturated, _cancelling, _gradients):
        findings += check(c)
    causes = [f.code for f in findings if f.code in _CAUSES and f.severity == "problem"]
    findings = [_with_cause(f, causes) for f in findings]
    header += (f" Loss {loss:.4g}; always predicting the mean target would give {chance:.4g}.")
    return Diagnosis(findings, {"loss": loss, "chance_loss": chance, "rows": m,
                                "rows_total": n_total}, header)


def _rows_identical(X):
    """Every row of ``X`` (dense, or a :class:`fastnn._sparse.CSR`) is the same."""
    if isinstance(X, np.ndarray):
        return not np.any(np.ptp(X, axis=0) > 0)
    S = X.to_scipy()  # column extremes, implicit zeros included: 1 x d, not X densified
    return not np.any(S.max(axis=0).toarray() > S.min(axis=0).toarray())


def _with_cause(f, causes):
    if f.code not in ("output_collapse", "loss_at_chance"):
        return f
    if causes:
        advice = ("The cause is measured in the other findings (" + ", ".join(causes)
                  + "): fix that first.")
    else:
        advice = ("No cause was measured: the weights have probably barely moved from their "
                  "start. Train longer or with a larger learning rate, and standardise the "
                  "features.")
    return Finding(f.code, f.severity, f.layer, f.units, f.evidence, advice, f.values)


def _layer_norms(net, grad):
    """Gradient and parameter norms per weight layer (W and b together), from the documented
    layout of ``params``: W[0], b[0], W[1], b[1], ..."""
    gn, wn, off = [], [], 0
    for l in range(net.n_layers):
        size = net.layer_sizes[l] * net.layer_sizes[l + 1] + net.layer_sizes[l + 1]
        gn.append(float(np.linalg.norm(grad[off:off + size].astype(np.float64))))
        wn.append(float(np.linalg.norm(net.params[off:off + size].astype(np.float64))))
        off += size
    return np.array(gn), np.array(wn)


def _hidden(c):
    """(layer number, activation name, activations) of every hidden layer."""
    return [(l + 1, c.net.activations[l], c.outs[l]) for l in range(c.net.n_layers - 1)]


# --------------------------------------------------------------------------- symptoms
def _collapse(c):
    if c.m < 2 or not c.vary:
        return []
    spread = output_spread(c.net, c.P, c.t)
    if spread >= COLLAPSE:
        return []
    rel = " relative to the targets' spread" if c.net.output == "identity" else ""
    ev = (f"Every input gets nearly the same output, about {_vec(c.P.mean(axis=0))}: over the "
          f"{c.m} inputs no output varies by more than {spread:.2g}{rel}, although the targets "
          "differ.")
    if c.sgd and np.all(c.wnorm > 0):
        step = c.optimizer.lr * c.gnorm / c.wnorm
        ev += (f" One SGD step of learning rate {c.optimizer.lr:g} changes the weights by at "
               f"most {100 * step.max():.2g}% of their size.")
    return [Finding("output_collapse", "problem", c.net.n_layers, (), ev, "", {"spread": spread})]


def _at_chance(c):
    if not c.vary or c.chance <= 0 or c.loss < 0.95 * c.chance:
        return []
    k = c.net.layer_sizes[-1]
    extra = ""
    if c.net.output == "softmax" and abs(c.chance - math.log(k)) < 1e-3 * math.log(k):
        extra = f", which is log {k} for {k} balanced classes"
    than = "worse than" if c.loss > 1.05 * c.chance else "no better than"
    ev = (f"The loss {c.loss:.4g} is {than} always predicting the mean target "
          f"({c.chance:.4g}{extra}): the network makes no use of the inputs.")
    return [Finding("loss_at_chance", "problem", None, (), ev, "",
                    {"loss": c.loss, "chance_loss": c.chance})]


# --------------------------------------------------------------------------- causes
def _identical_inputs(c):
    if not (c.x_same and c.vary):
        return []
    return [Finding(
        "identical_inputs", "problem", 0, (),
        f"All {c.m} input rows are identical, yet their targets differ: no network can tell "
        "them apart, and the best it can output is the average target.",
        "Check the data pipeline: every row scaled to the same vector, a constant feature "
        "matrix, or one example repeated.")]


def _symmetric(c):
    out, net = [], c.net
    for l in range(1, net.n_layers):
        W_in, b, W_out = net.weights[l - 1], net.biases[l - 1], net.weights[l]
        rows = np.hstack([W_in.T, b[:, None], W_out])  # one row per unit
        _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        inverse = np.ravel(inverse)
        dup = np.flatnonzero(counts[inverse] > 1)
        if dup.size == 0:
            continue
        distinct = np.unique(rows, axis=0).shape[0]
        zero = " (all zero)" if not np.any(rows[dup]) else ""
        out.append(Finding(
            "symmetric_units", "problem", l, tuple(int(u) for u in dup),
            f"Units {_units(dup)} of layer {l} have identical incoming weights, bias and "
            f"outgoing weights{zero}. Identical units compute the same value for every input "
            "and receive the same gradient, so gradient descent keeps them copies of each "
            f"other: the layer's {rows.shape[0]} units act as {distinct}.",
            "Start from random weights: Network(..., seed=0) draws them uniformly, scaled to the "
            "layer sizes. Do not set the weights to zero or to one constant.",
            {"distinct_units": distinct}))
    return out


def _identical(c):
    if c.x_same or c.m < 2:
        return []
    for l, act, H in _hidden(c):
        spread = float(np.ptp(H.astype(np.float64), axis=0).max())
        if spread <= 1e-6 * max(1.0, float(np.abs(H).max())):
            return [Finding(
                "identical_activations", "problem", l, (),
                f"Every input gives the same activations in layer {l} ({act}, {H.shape[1]} "
                f"units), {_vec(H[0])}: the layers above see one and the same input, so the "
                "output cannot depend on the input.",
                "Look at the weights into this layer: zero or constant weights "
                "(symmetric_units), or every unit dead or saturated (dead_units, "
                "saturated_units). Softmax and cross-entropy do not fix this.",
                {"spread": spread})]
    return []


def _dead(c):
    out = []
    for l, act, H in _hidden(c):
        if act != "relu":
            continue
        dead = np.flatnonzero(H.max(axis=0) <= 0)
        if dead.size == 0:
            continue
        h = H.shape[1]
        many = dead.size >= h / 2
        out.append(Finding(
            "dead_units", "problem" if many else "note", l, tuple(int(u) for u in dead),
            f"{dead.size} of {h} units of layer {l} (relu) output 0 for every one of the "
            f"{c.m} inputs (units {_units(dead)}): no gradient flows through them, so they "
            "never recover.",
            ("So many dead units cripple the layer: lower the learning rate (one large step "
             "often kills them), standardise the inputs, avoid strongly negative biases, or "
             "use leaky_relu." if many else
             "A few dead units are normal in a trained ReLU network."),
            {"fraction": dead.size / h}))
    return out


def _saturated(c):
    out = []
    for l, act, H in _hidden(c):
        if act not in ("logistic", "tanh"):
            continue
        d = H * (1 - H) if act == "logistic" else 1 - H * H
        cut = 0.0099 if act == "logistic" else 0.0199  # output within 0.01 of its limits
        units = np.flatnonzero(np.mean(d < cut, axis=0) >= SATURATED_FRACTION)
        if units.size == 0:
            continue
        h = H.shape[1]
        many = units.size >= h / 2
        deriv = "a(1 - a)" if act == "logistic" else "1 - a^2"
        out.append(Finding(
            "saturated_units", "problem" if many else "note", l, tuple(int(u) for u in units),
            f"{units.size} of {h} units of layer {l} ({act}) are saturated: their output stays "
            f"within 0.01 of its limits for at least {SATURATED_FRACTION:.0%} of the inputs "
            f"(units {_units(units)}), where the derivative {deriv} is below 0.01 and almost "
            "no gradient passes.",
            "Standardise the inputs (mean 0, standard deviation 1), start from smaller weights "
            "(the Network's own initialisation), or lower the learning rate; relu does not "
            "saturate.", {"fraction": units.size / h}))
    if c.net.output == "sigmoid":
        p = c.P.astype(np.float64)
        pinned = np.mean(p * (1 - p) < 0.0099, axis=0) >= SATURATED_FRACTION
        wrong = np.mean(np.abs(p - c.t) > 0.5, axis=0)
        units = np.flatnonzero(pinned & (wrong >= 0.1))
        if units.size:
            se = c.net.loss == "squared_error"
            ev = (f"Output units {_units(units)} are saturated at the wrong value: p(1 - p) < "
                  f"0.01 on at least {SATURATED_FRACTION:.0%} of the inputs while "
                  f"{wrong[units].max():.0%} of the inputs are on the wrong side of 0.5.")
            if se:
                ev += (" With squared error the output delta is (p - y) p (1 - p), so these "
                       "large errors produce almost no gradient and training stalls.")
                advice = ("Use cross-entropy: Network(..., output='sigmoid') without loss=, or "
                          "a softmax output. Their delta p - y stays large exactly when an "
                          "output is confidently wrong. Smaller initial output biases and "
                          "weights also avoid the saturation.")
            else:
                ev += " With binary cross-entropy the delta p - y stays large, so they can recover."
                advice = "If they stay saturated, lower the learning rate."
            out.append(Finding("saturated_units", "problem" if se else "note",
                               c.net.n_layers, tuple(int(u) for u in units), ev, advice,
                               {"wrong_fraction": float(wrong[units].max())}))
    return out


# --------------------------------------------------------------------------- gradients
def _cancelling(c):
    if not c.high or c.m < 2:
        return []
    r = min(c.m, PER_EXAMPLE_ROWS)
    rows = np.sort(c.rng.choice(c.m, r, replace=False))
    B = min(c.batch_size or c.m, r)
    if B < 2:  # one example per step: nothing is averaged, nothing cancels
        return []
    norms = np.array([np.linalg.norm(c.net.loss_and_grad(c.X[i:i + 1], c.t[i:i + 1])[1]
                                     .astype(np.float64)) for i in rows])
    mean_norm = float(norms.mean())
    if mean_norm <= 1e-12 * (1 + abs(c.loss)):
        return []
    ratios = []
    for g in range(0, r - B + 1, B):
        idx = rows[g:g + B]
        typical = norms[g:g + B].mean()
        if typical > 0:
            _, gb = c.net.loss_and_grad(c.X[idx], c.t[idx])
            ratios.append(np.linalg.norm(gb.astype(np.float64)) / typical)
    ratio = float(np.mean(ratios))
    if ratio >= 0.05:
        return []
    over = "the whole batch" if B >= c.m else f"minibatches of {B}"
    return [Finding(
        "cancelling_gradients", "problem", None, (),
        f"Averaged over {over}, the per-example gradients cancel: the norm of their average is "
        f"{ratio:.1%} of their typical norm ({mean_norm:.3g}), although the loss {c.loss:.4g} "
        "is still high. The examples pull the weights in opposite directions and the averaged "
        "step goes nowhere.",
        "Averaging is not the bug: at a good minimum the per-example gradients cancel by "
        "design. Here they cancel far from one because the network sees the inputs alike (see "
        "the other findings). Random initial weights remove that cause; per-example or "
        "shuffled minibatch updates (batch_size=1) do not cancel and may escape.",
        {"ratio": ratio, "mean_norm": mean_norm, "batch": B})]


def _gradients(c):
    gn, wn, L = c.gnorm, c.wnorm, c.net.n_layers
    norms = _vec(gn, L)
    if not np.all(np.isfinite(c.grad)):
        l = int(np.flatnonzero(~np.isfinite(gn))[0]) + 1 if not np.all(np.isfinite(gn)) else None
        return [Finding("exploding_gradient", "problem", l, (),
                        "The gradient is not finite (NaN or infinite).",
                        "Lower the learning rate and standardise the inputs.")]
    out = []
    if c.sgd:
        step = c.optimizer.lr * gn / np.maximum(wn, 1e-12)
        big = np.flatnonzero(step > 1)
        if big.size:
            l = int(big[np.argmax(step[big])])
            out.append(Finding(
                "exploding_gradient", "problem", l + 1, (),
                f"One SGD step of learning rate {c.optimizer.lr:g} would change the weights "
                f"of layer {l + 1} by {step[l]:.0%} of their size (gradient norm {gn[l]:.3g}, "
                f"weight norm {wn[l]:.3g}): training jumps around or diverges.",
                "Lower the learning rate (a step should change the weights by well under 1%), "
                "standardise the inputs, or use Adam.", {"step_ratio": float(step[l])}))
    else:
        big = np.flatnonzero(gn > 1e3 * np.maximum(wn, 1.0))
        if big.size:
            l = int(big[0])
            out.append(Finding(
                "exploding_gradient", "problem", l + 1, (),
                f"The gradient of layer {l + 1} (norm {gn[l]:.3g}) is over 1000 times the size "
                f"of its weights (norm {wn[l]:.3g}); gradient norms per layer: {norms}.",
                "Lower the learning rate, standardise the inputs, or start from smaller "
                "weights.", {"gradient_norms": gn.tolist()}))
    if not out and L > 1 and gn[-1] > 0 and gn[0] > 1e4 * gn[-1]:
        out.append(Finding(
            "exploding_gradient", "problem", 1, (),
            f"The gradient grows 10,000-fold on its way back to layer 1 (norms per layer: "
            f"{norms}).", "Start from smaller weights and standardise the inputs.",
            {"gradient_norms": gn.tolist()}))
    top = gn.max()
    if c.high and top > 0 and L > 1:
        # (exactly 0 is no gradient at all: dead or symmetric units, reported as such)
        low = np.flatnonzero((gn[:-1] < 1e-4 * top) & (gn[:-1] > 0))
        if low.size:
            l = int(low[0])
            out.append(Finding(
                "vanishing_gradient", "problem", l + 1, (),
                f"The gradient reaching layer {l + 1} is {gn[l] / top:.1e} times that of the "
                f"layer with the largest (norms per layer: {norms}), although the loss is "
                "still high: the early layers hardly learn.",
                "Sigmoid and tanh layers multiply the gradient by at most 0.25 and 1 per layer: "
                "use relu, fewer layers or standardised inputs, or Adam (which rescales every "
                "parameter's step).", {"gradient_norms": gn.tolist()}))
    return out
