"""Save and load fastnn models as ``.npz`` files with JSON metadata.

A model file is an ordinary NumPy ``.npz`` archive, read back with ``allow_pickle=False``:

``__fastnn__``
    a 0-d unicode array holding JSON metadata: ``format`` (always ``"fastnn-model"``),
    ``format_version``, ``kind`` (``"Network"`` or the estimator class name), ``layer_sizes``,
    ``activations``, ``output``, ``loss``, ``dtype``, ``n_params``, whether ``classes`` are stored, the
    estimator's ``get_params()`` and fitted attributes, and any user ``metadata``.
``params``
    the network's flat parameter buffer, in its own dtype (so a round trip is bit-exact).
``classes``
    optional class labels (numbers, or strings stored as a unicode array, never objects).
``array/<name>``
    optional extra arrays (fitted estimator attributes, a CLI feature scaler, ...).

Anything that is not such a file (truncated, corrupted, another program's ``.npz``, a pickle, a
file written by a newer fastnn) raises :class:`ValueError` with the path and the reason.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "save", "load", "load_model", "read_metadata"]

FORMAT = "fastnn-model"
#: Bumped whenever a reader of the previous version could misread a new file.
FORMAT_VERSION = 1

_META_KEY = "__fastnn__"
_ARRAY_PREFIX = "array/"


# --------------------------------------------------------------------------- save
def save(obj, path, *, classes=None, metadata=None, arrays=None):
    """Write a :class:`~fastnn.Network` or a fitted fastnn estimator to ``path`` (``.npz``).

    Parameters
    ----------
    obj : Network, or a fitted MLPClassifier / MLPRegressor (anything with ``network_``)
    path : str or os.PathLike
        Written exactly as given (NumPy's habit of appending ``.npz`` is not followed).
    classes : array-like of int, float or str, optional
        Class labels of the network's outputs (a bare Network has none; estimators bring
        their own ``classes_``).
    metadata : dict, optional
        JSON-serialisable user metadata, returned by :func:`load_model` / :func:`read_metadata`.
    arrays : dict of str -> ndarray, optional
        Extra numeric or string arrays stored beside the parameters.
    """
    net, estimator = _split(obj)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastnn_version": _version(),
        "kind": "Network" if estimator is None else type(estimator).__name__,
        "layer_sizes": [int(s) for s in net.layer_sizes],
        "activations": [str(a) for a in net.activations],
        "output": str(net.output),
        "loss": str(net.loss),
        "dtype": np.dtype(net.dtype).name,
        "n_params": int(net.params.size),
        "metadata": _jsonable(metadata or {}, "metadata"),
    }
    store = {"params": np.ascontiguousarray(net.params)}
    extra = dict(arrays or {})
    if estimator is not None:
        meta["estimator"], est_arrays = _estimator_state(estimator)
        extra.update(est_arrays)
        if classes is None and getattr(estimator, "classes_", None) is not None:
            classes = estimator.classes_
    if classes is not None:
        store["classes"] = _plain_array(classes, "classes")
    meta["has_classes"] = classes is not None
    for name, value in extra.items():
        store[_ARRAY_PREFIX + str(name)] = _plain_array(value, f"arrays[{name!r}]")
    store[_META_KEY] = np.array(json.dumps(meta))
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"  # write, then rename: never a half-written model file
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **store)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _split(obj):
    """(network, estimator or None) for a Network or a fitted estimator."""
    if hasattr(obj, "params") and hasattr(obj, "layer_sizes"):
        return obj, None
    net = getattr(obj, "network_", None)
    if net is None:
        raise TypeError(
            f"save() expects a fastnn Network or a fitted fastnn estimator, got "
            f"{type(obj).__name__}" + (" (not fitted yet)" if hasattr(obj, "get_params") else "")
        )
    return net, obj


def _plain_array(value, name):
    arr = np.asarray(value)
    if _all_str(arr):  # e.g. an object array of str labels: store as unicode, never pickle
        arr = arr.astype(str)
    if arr.dtype.kind not in "biufcUS":
        raise TypeError(f"{name} must hold numbers or strings, got dtype {arr.dtype}")
    return arr


def _jsonable(value, name):
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} is not JSON-serialisable: {exc}") from None
    return value


def _version():
    from fastnn import __version__

    return __version__


# --------------------------------------------------------------------------- estimators
# Fitted attributes rebuilt from the network on load, never stored twice.
_FROM_NETWORK = {"network_", "coefs_", "intercepts_", "classes_"}


def _estimator_state(est):
    """JSON state and extra arrays for a fitted estimator's params and trailing-underscore attrs."""
    params = {}
    for key, value in est.get_params(deep=False).items():
        params[key] = _encode_param(value)
    attrs, arrays = {}, {}
    for key, value in vars(est).items():
        if not key.endswith("_") or key.startswith("_") or key in _FROM_NETWORK:
            continue
        if isinstance(value, np.ndarray):  # e.g. feature_names_in_
            if value.dtype.kind in "biufcUS" or _all_str(value):
                arrays["attr/" + key] = _plain_array(value, key)
            continue
        if isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue  # not restorable without pickle; predictions never depend on these
        attrs[key] = value
    return {"class": type(est).__name__, "module": type(est).__module__,
            "params": params, "attributes": attrs}, arrays


def _all_str(arr):
    return arr.dtype.kind == "O" and arr.size > 0 and all(isinstance(v, str) for v in arr.ravel())


def _encode_param(value):
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_param(v) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        # e.g. a RandomState instance: the fitted weights are stored, so only refitting changes.
        return None
    return value


def _decode_param(value):
    if isinstance(value, dict) and set(value) == {"__tuple__"}:
        return tuple(_decode_param(v) for v in value["__tuple__"])
    return value


def _rebuild_estimator(meta, net, classes, arrays):
    import importlib

    info = meta["estimator"]
    if not str(info["module"]).startswith("fastnn."):  # never import what a file names
        raise TypeError(f"estimator class {info['module']}.{info['class']} is not fastnn's")
    module = importlib.import_module(info["module"])
    cls = getattr(module, info["class"])
    est = cls(**{k: _decode_param(v) for k, v in info["params"].items()})
    for key, value in info["attributes"].items():
        setattr(est, key, value)
    for key in [k for k in arrays if k.startswith("attr/")]:
        setattr(est, key[len("attr/"):], arrays.pop(key))
    if classes is not None:
        est.classes_ = classes
    est.network_ = net
    if hasattr(cls, "_restore_from_network"):  # estimator-specific derived state, if any
        est._restore_from_network()
    else:
        _set_if_plain_attr(est, "coefs_", list(net.weights))
        _set_if_plain_attr(est, "intercepts_", list(net.biases))
    return est


def _set_if_plain_attr(est, name, value):
    if not isinstance(getattr(type(est), name, None), property):
        setattr(est, name, value)


# --------------------------------------------------------------------------- load
def load(path):
    """Read a model written by :func:`save`: a :class:`~fastnn.Network` or a fitted estimator."""
    return load_model(path)[0]


def load_model(path):
    """Like :func:`load`, but return ``(model, info)``.

    ``info`` holds the file's JSON metadata plus ``"classes"`` (ndarray or None) and ``"arrays"``
    (the extra arrays passed to :func:`save`).
    """
    meta, data = _read(path)
    from fastnn.network import Network

    where = f"{os.fspath(path)!r}"
    try:
        net = Network._blank(meta["layer_sizes"], list(meta["activations"]) or "identity",
                             meta["output"], meta["dtype"], meta.get("loss"))
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{where} holds an invalid network description: {exc}") from None
    params = data.get("params")
    if (params is None or params.ndim != 1 or params.dtype != net.params.dtype
            or params.size != net.params.size):
        raise ValueError(
            f"{where} is corrupted: expected {net.params.size} {net.params.dtype} parameters, "
            f"found {None if params is None else (params.shape, str(params.dtype))}"
        )
    net.params[...] = params
    classes = data.get("classes") if meta.get("has_classes") else None
    arrays = {k[len(_ARRAY_PREFIX):]: v for k, v in data.items() if k.startswith(_ARRAY_PREFIX)}
    model = net
    if meta.get("estimator"):
        try:
            model = _rebuild_estimator(meta, net, classes, arrays)
        except (ImportError, AttributeError, TypeError, KeyError) as exc:
            raise ValueError(f"{where}: cannot rebuild the estimator: {exc}") from None
    info = dict(meta)
    info["classes"] = classes
    info["arrays"] = arrays
    return model, info


def read_metadata(path):
    """The JSON metadata of a model file (validated like :func:`load`, weights not rebuilt)."""
    return _read(path)[0]


def _read(path):
    """(metadata dict, {name: ndarray}) with every array read and checked, or ValueError."""
    where = f"{os.fspath(path)!r}"
    with open(os.fspath(path), "rb") as fh:  # FileNotFoundError etc. propagate unchanged
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise ValueError(f"{where} is not a fastnn model file (a bare .npy array, not an .npz)")
    if magic[:2] != b"PK":
        raise ValueError(f"{where} is not a fastnn model file (not an .npz archive)")
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{where} is corrupted or truncated ({_reason(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{where} is not a fastnn model file (a bare .npy array, not an .npz)")
    try:
        with archive:
            data = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{where} is corrupted or truncated ({_reason(exc)})") from None
    raw = data.pop(_META_KEY, None)
    if raw is None:
        raise ValueError(f"{where} is not a fastnn model file (no {_META_KEY!r} metadata entry)")
    try:
        meta = json.loads(str(raw[()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{where} has unreadable metadata ({_reason(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not a fastnn model file (unknown format marker)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{where} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where} was written by a newer fastnn ({meta.get('fastnn_version', '?')}, model "
            f"format {version}); this fastnn ({_version()}) reads format {FORMAT_VERSION}: "
            "upgrade fastnn to load it"
        )
    missing = [k for k in ("layer_sizes", "activations", "output", "dtype") if k not in meta]
    if missing:
        raise ValueError(f"{where} is corrupted: metadata lacks {', '.join(missing)}")
    return meta, data


def _reason(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
