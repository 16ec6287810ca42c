"""The estimator part of a model file: what :func:`fastnn.save` writes, what :func:`fastnn.load`
accepts back.

Only :class:`fastnn.MLPClassifier` and :class:`fastnn.MLPRegressor` are rebuilt, from their own
constructor parameters (JSON values of plain types, then scikit-learn's parameter validation)
and the public fitted attributes in :data:`ATTRIBUTES`, each checked for its type and against
the network it describes.  Nothing named in the file is imported or called; an unknown
parameter or attribute is an error.  scikit-learn is imported only to rebuild an estimator.
"""
from __future__ import annotations

import json
import numbers

import numpy as np

__all__ = ["ATTRIBUTES", "Invalid", "state", "rebuild"]


class Invalid(Exception):
    """A problem with the estimator entry; the message continues ``'<path>' ...``."""


def _count(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _real_or_none(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _curve_or_none(v):
    return v is None or (isinstance(v, list) and all(_real_or_none(x) and x is not None
                                                       for x in v))


#: public fitted attribute -> check of its JSON value (the network-derived ones are also
#: compared with the network; ``classes_``, ``network_``, ``coefs_``, ``intercepts_`` come
#: from the network and the classes member, ``feature_names_in_`` from an array member)
ATTRIBUTES = {
    "n_features_in_": _count, "n_outputs_": _count, "n_layers_": _count,
    "n_iter_": _count, "t_": _count,
    "out_activation_": lambda v: isinstance(v, str),
    "loss_": _real_or_none, "best_loss_": _real_or_none, "best_validation_score_": _real_or_none,
    "loss_curve_": _curve_or_none, "validation_scores_": _curve_or_none,
    "validation_loss_curve_": _curve_or_none,
}
_ARRAY_ATTRIBUTES = ("feature_names_in_",)


# --------------------------------------------------------------------------- save
def state(est):
    """(JSON entry, ``{"attr/<name>": array}``) for a fitted estimator."""
    params = {key: _encode(value) for key, value in est.get_params(deep=False).items()}
    attrs, arrays = {}, {}
    for key in ATTRIBUTES:
        if key in vars(est):
            value = vars(est)[key]
            attrs[key] = value.item() if isinstance(value, np.generic) else value
    for key in _ARRAY_ATTRIBUTES:
        if isinstance(vars(est).get(key), np.ndarray):
            arrays["attr/" + key] = np.asarray(vars(est)[key]).astype(str)
    attrs = json.loads(json.dumps(attrs, default=_plain))  # np.float64 in lists -> float
    return {"class": type(est).__name__, "module": type(est).__module__,
            "params": params, "attributes": attrs}, arrays


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _encode(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, dict):  # class_weight: keep the keys' types (JSON keys are strings)
        return {"__items__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        # e.g. a RandomState instance: the fitted weights are stored, so only refitting changes.
        return None
    return value


# --------------------------------------------------------------------------- load
def _scalar(v):
    return v is None or isinstance(v, (bool, int, float, str))


def _decode(key, v):
    if _scalar(v):
        return v
    if isinstance(v, list) and all(_scalar(x) for x in v):
        return v
    if isinstance(v, dict) and set(v) == {"__tuple__"} and isinstance(v["__tuple__"], list) \
            and all(_scalar(x) for x in v["__tuple__"]):
        return tuple(v["__tuple__"])
    if isinstance(v, dict) and set(v) == {"__items__"} and isinstance(v["__items__"], list) \
            and all(isinstance(p, list) and len(p) == 2 and _scalar(p[0]) and _scalar(p[1])
                    for p in v["__items__"]):
        return {k: w for k, w in v["__items__"]}
    if isinstance(v, dict) and all(_scalar(w) for w in v.values()):
        return dict(v)
    raise Invalid(f"has an invalid estimator parameter {key}={_short(v)}")


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def rebuild(kind, info, net, classes, arrays):
    """A fitted ``kind`` estimator around ``net`` from the file's estimator entry ``info``."""
    if not isinstance(info, dict) or info.get("class") != kind:
        raise Invalid(f"is corrupted: its estimator entry does not describe a {kind}")
    for key in ("params", "attributes"):
        if not isinstance(info.get(key), dict):
            raise Invalid(f"is corrupted: its estimator entry has no {key!r} table")
    try:
        from fastnn.sklearn import MLPClassifier, MLPRegressor
    except ImportError:
        raise Invalid(f"holds a fitted {kind}, which needs scikit-learn: "
                      "pip install fastnn[sklearn]") from None
    cls = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}[kind]
    known = set(cls._get_param_names())
    unknown = sorted(set(info["params"]) - known)
    if unknown:
        raise Invalid(f"has unknown {kind} parameters {_short(unknown)}")
    est = cls(**{k: _decode(k, v) for k, v in info["params"].items()})
    try:
        est._validate_params()  # scikit-learn's own parameter table
    except (TypeError, ValueError) as exc:
        raise Invalid(f"has invalid {kind} parameters: {str(exc).splitlines()[0]}") from None
    _check_architecture(est, net)
    attrs = info["attributes"]
    for key, value in attrs.items():
        check = ATTRIBUTES.get(key)
        if check is None:
            raise Invalid(f"has an unknown {kind} attribute {_short(key)}")
        if not check(value):
            raise Invalid(f"has an invalid {kind} attribute {key}={_short(value)}")
    derived = {"n_features_in_": net.layer_sizes[0], "n_outputs_": net.layer_sizes[-1],
               "n_layers_": len(net.layer_sizes), "out_activation_": _out_activation(est, net)}
    for key, value in derived.items():
        if attrs.get(key, value) != value:
            raise Invalid(f"is inconsistent: {key}={_short(attrs[key])} but the network "
                          f"gives {value!r}")
    unknown = sorted(set(arrays) - set(_ARRAY_ATTRIBUTES))
    if unknown:
        raise Invalid(f"has unknown {kind} array attributes {_short(unknown)}")
    names = arrays.get("feature_names_in_")
    if names is not None and (names.dtype.kind != "U" or names.shape != (net.layer_sizes[0],)):
        raise Invalid(f"has invalid feature_names_in_ ({names.dtype.str} {names.shape} for "
                      f"{net.layer_sizes[0]} features)")
    if (kind == "MLPClassifier") != (classes is not None):
        raise Invalid(f"is inconsistent: a {kind} file " +
                      ("without classes" if classes is None else "with classes"))
    for key, value in {**attrs, **derived}.items():
        setattr(est, key, value)
    if names is not None:
        est.feature_names_in_ = names.astype(object)  # as scikit-learn sets it
    if classes is not None:
        est.classes_ = classes
    est.network_ = net
    est._restore_from_network()
    return est


def _out_activation(est, net):
    """scikit-learn's ``out_activation_`` for this estimator and network, or Invalid."""
    from fastnn.network import LOSSES

    if getattr(net, "loss", None) not in (None, LOSSES[net.output][0]):
        raise Invalid(f"is inconsistent: an estimator's {net.output} output trained with "
                      f"{net.loss}")
    if type(est).__name__ == "MLPClassifier":
        table = {"softmax": "softmax", "sigmoid": "logistic"}
        if net.output not in table:
            raise Invalid(f"is inconsistent: a classifier with a {net.output} output layer")
        return table[net.output]
    if net.output != "identity":
        raise Invalid(f"is inconsistent: a regressor with a {net.output} output layer")
    return "exp" if est.loss == "poisson" else "identity"


def _check_architecture(est, net):
    hidden = est.hidden_layer_sizes
    hidden = list(hidden) if hasattr(hidden, "__iter__") and not isinstance(hidden, str) \
        else [hidden]
    if not all(isinstance(h, int) and not isinstance(h, bool) for h in hidden) \
            or hidden != list(net.layer_sizes[1:-1]):
        raise Invalid(f"is inconsistent: hidden_layer_sizes={_short(est.hidden_layer_sizes)} "
                      f"but the network has layer sizes {list(net.layer_sizes)}")
    if any(a != est.activation for a in net.activations):
        raise Invalid(f"is inconsistent: activation={est.activation!r} but the network's "
                      f"hidden layers use {list(net.activations)}")
