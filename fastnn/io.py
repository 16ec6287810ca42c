"""Save and load fastnn models as ``.npz`` files with JSON metadata.

A model file is an ordinary NumPy ``.npz`` archive (uncompressed, no pickle):

``__fastnn__``
    a 0-d unicode array holding JSON metadata: ``format`` (always ``"fastnn-model"``),
    ``format_version``, ``kind`` (``"Network"``, ``"MLPClassifier"`` or ``"MLPRegressor"``),
    ``layer_sizes``, ``activations``, ``output``, ``loss``, ``dtype``, ``n_params``, whether
    ``classes`` are stored, the names of the extra ``arrays``, an estimator's ``get_params()``
    and public fitted attributes, and any user ``metadata``.
``params``
    the network's flat parameter buffer, in its own dtype (so a round trip is bit-exact).
``classes``
    optional class labels (numbers, or strings stored as a unicode array, never objects).
``array/<name>``
    optional extra arrays (``feature_names_in_``, a CLI feature scaler, ...).

Loading treats the file as untrusted data (see docs/security.md): it rebuilds only the classes
in :data:`KINDS`, sets only the fitted attributes it knows after checking their types and
shapes against the network, reads only the members it knows through :mod:`fastnn._archive`
(sizes checked against the file before anything is allocated) and turns every problem into a
:class:`ValueError` naming the file and the problem.  A missing or unreadable path raises the
usual :class:`OSError`.
"""
from __future__ import annotations

import json
import numbers
import os

import numpy as np

from fastnn._archive import Archive, ArchiveError, _reason

__all__ = ["FORMAT", "FORMAT_VERSION", "KINDS", "save", "load", "load_model", "read_metadata"]

FORMAT = "fastnn-model"
#: Bumped whenever a reader of the previous version could misread a new file.
FORMAT_VERSION = 1
#: the only classes a model file can describe
KINDS = ("Network", "MLPClassifier", "MLPRegressor")

_META_KEY = "__fastnn__"
_ARRAY_PREFIX = "array/"
_ATTR_PREFIX = "attr/"
#: largest metadata entry read (UTF-32: 4 bytes per character)
_MAX_META_BYTES = 16 << 20
_NUMBER_KINDS, _LABEL_KINDS, _ARRAY_KINDS = "f", "biufUS", "biufcUS"


class _Invalid(Exception):
    """A problem with the file; the message continues ``'<path>' ...``."""


# --------------------------------------------------------------------------- save
def save(obj, path, *, classes=None, metadata=None, arrays=None):
    """Write a :class:`~fastnn.Network` or a fitted fastnn estimator to ``path`` (``.npz``).

    Parameters
    ----------
    obj : Network, or a fitted MLPClassifier / MLPRegressor
    path : str or os.PathLike
        Written exactly as given (NumPy's habit of appending ``.npz`` is not followed).
    classes : array-like of int, float or str, optional
        Class labels of the network's outputs, one per output (two for a single sigmoid
        output); estimators bring their own ``classes_``.
    metadata : dict, optional
        JSON-serialisable user metadata, returned by :func:`load_model` / :func:`read_metadata`.
    arrays : dict of str -> ndarray, optional
        Extra numeric or string arrays stored beside the parameters.
    """
    net, estimator = _split(obj)
    kind = "Network" if estimator is None else type(estimator).__name__
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastnn_version": _version(),
        "kind": kind,
        "layer_sizes": [int(s) for s in net.layer_sizes],
        "activations": [str(a) for a in net.activations],
        "output": str(net.output),
        "loss": str(net.loss),
        "dtype": np.dtype(net.dtype).name,
        "n_params": int(net.params.size),
        "metadata": _jsonable(metadata or {}, "metadata"),
    }
    store = {"params": np.ascontiguousarray(net.params)}
    extra = {str(k): _plain_array(v, f"arrays[{k!r}]") for k, v in (arrays or {}).items()}
    if estimator is not None:
        from fastnn import _estimator_file

        meta["estimator"], est_arrays = _estimator_file.state(estimator)
        extra.update(est_arrays)
        if classes is None and getattr(estimator, "classes_", None) is not None:
            classes = estimator.classes_
    if classes is not None:
        store["classes"] = _plain_array(classes, "classes")
        problem = _classes_problem(store["classes"], net, kind)
        if problem:
            raise ValueError(f"classes: {problem}")
    meta["has_classes"] = classes is not None
    meta["arrays"] = sorted(extra)
    for name, value in extra.items():
        store[_ARRAY_PREFIX + name] = value
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
    """(network, estimator or None) for a Network or a fitted estimator of :data:`KINDS`."""
    from fastnn.network import Network

    if isinstance(obj, Network):
        return obj, None
    name = type(obj).__name__
    if name not in KINDS or type(obj).__module__.split(".")[0] != "fastnn":
        raise TypeError(f"save() expects a fastnn Network, MLPClassifier or MLPRegressor, got "
                        f"{type(obj).__module__}.{name}")
    net = getattr(obj, "network_", None)
    if net is None:
        raise TypeError(f"save() expects a fitted estimator: this {name} is not fitted yet")
    return net, obj


def _plain_array(value, name):
    arr = np.asarray(value)
    if arr.dtype.kind == "O" and arr.size and all(isinstance(v, str) for v in arr.ravel()):
        arr = arr.astype(str)  # e.g. an object array of str labels: never pickle
    if arr.dtype.kind not in _ARRAY_KINDS:
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


def _classes_problem(classes, net, kind):
    """Why ``classes`` cannot label ``net``'s outputs (None when they can)."""
    k = net.layer_sizes[-1]
    if classes.ndim != 1 or classes.dtype.kind not in _LABEL_KINDS:
        return f"expected a 1-D array of labels, got {classes.dtype.str} {classes.shape}"
    if net.output == "identity":
        return "a regression network (identity output) has no classes"
    allowed = (1, 2) if net.output == "sigmoid" and k == 1 else (k,)
    if classes.shape[0] not in allowed:
        return (f"{classes.shape[0]} labels for the {k} {net.output} output(s) "
                f"(expected {' or '.join(map(str, allowed))})")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        return "labels must be finite"
    if kind == "MLPClassifier" and not np.array_equal(np.unique(classes), classes):
        return "an estimator's labels must be sorted and unique"
    return None


# --------------------------------------------------------------------------- load
def load(path):
    """Read a model written by :func:`save`: a :class:`~fastnn.Network` or a fitted estimator.

    Raises :class:`ValueError` naming the file and the problem for anything that is not a valid
    fastnn model file (nothing in the file is ever imported, called or unpickled), and
    :class:`OSError` (e.g. :class:`FileNotFoundError`) when the path cannot be opened.
    """
    return load_model(path)[0]


def load_model(path):
    """Like :func:`load`, but return ``(model, info)``.

    ``info`` holds the file's JSON metadata plus ``"classes"`` (ndarray or None) and ``"arrays"``
    (the extra arrays passed to :func:`save`).
    """
    return _with_file(path, _load)


def read_metadata(path):
    """The JSON metadata of a model file (validated like :func:`load`, weights not read)."""
    return _with_file(path, lambda archive: _read_meta(archive)[0])


def _with_file(path, fn):
    where = f"{os.fspath(path)!r}"
    with open(os.fspath(path), "rb") as fh:  # FileNotFoundError etc. propagate unchanged
        try:
            magic = fh.read(6)
            if magic == b"\x93NUMPY":
                raise _Invalid("is not a fastnn model file (a bare .npy array, not an .npz)")
            if magic[:2] != b"PK":
                raise _Invalid("is not a fastnn model file (not an .npz archive)")
            fh.seek(0)
            return fn(Archive(fh))
        except _Invalid as exc:
            raise ValueError(f"{where} {exc}") from None
        except ArchiveError as exc:
            raise ValueError(f"{where} is corrupted or truncated ({exc})") from None
        except Exception as exc:  # whatever a hostile file provokes, the caller sees ValueError
            raise ValueError(f"{where} is corrupted or truncated ({_reason(exc)})") from None


def _load(archive):
    from fastnn.network import Network

    meta, n_params = _read_meta(archive)
    try:
        net = Network.zeros(meta["layer_sizes"], list(meta["activations"]) or "identity",
                             meta["output"], meta["dtype"], meta.get("loss"))
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"holds an invalid network description: {exc}") from None
    archive.read("params", _NUMBER_KINDS, out=net.params)  # header checked by _read_meta
    kind = meta["kind"]
    classes = None
    if meta["has_classes"]:
        k = net.layer_sizes[-1]
        _, shape = archive.header("classes", _LABEL_KINDS)
        if len(shape) != 1 or shape[0] > max(k, 2):  # (checked in full below; bounds the read)
            raise _Invalid(f"has {shape} classes for {k} outputs")
        classes = archive.read("classes", _LABEL_KINDS)
        problem = _classes_problem(classes, net, kind)
        if problem:
            raise _Invalid(f"has inconsistent classes: {problem}")
    arrays = {}
    for name in meta["arrays"]:
        if _ARRAY_PREFIX + name not in archive:
            raise _Invalid(f"is corrupted: its array {name!r} is missing")
        arrays[name] = archive.read(_ARRAY_PREFIX + name, _ARRAY_KINDS)
    model = net
    if kind != "Network":
        from fastnn import _estimator_file

        attr_arrays = {k[len(_ATTR_PREFIX):]: arrays.pop(k) for k in list(arrays)
                       if k.startswith(_ATTR_PREFIX)}
        try:
            model = _estimator_file.rebuild(kind, meta["estimator"], net, classes, attr_arrays)
        except _estimator_file.Invalid as exc:
            raise _Invalid(str(exc)) from None
    elif "estimator" in meta:
        raise _Invalid("is corrupted: a Network file with an estimator entry")
    info = dict(meta)
    info["classes"] = classes
    info["arrays"] = arrays
    return model, info


def _read_meta(archive):
    """(validated metadata dict, number of parameters); the params header is checked too."""
    if _META_KEY not in archive:
        raise _Invalid(f"is not a fastnn model file (no {_META_KEY!r} metadata entry)")
    dtype, shape = archive.header(_META_KEY, "U")
    if shape != () or dtype.itemsize > _MAX_META_BYTES:
        raise _Invalid(f"has unreadable metadata (a {dtype.str} {shape} entry, expected one "
                       f"string of at most {_MAX_META_BYTES >> 22} Mi characters)")
    text = str(archive.read(_META_KEY, "U")[()])
    try:
        meta = json.loads(text)
    except Exception as exc:  # ValueError, RecursionError (deep nesting), MemoryError
        raise _Invalid(f"has unreadable metadata ({_reason(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Invalid("is not a fastnn model file (unknown format marker)")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise _Invalid(f"has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise _Invalid(
            f"was written by a newer fastnn ({str(meta.get('fastnn_version', '?'))[:40]}, model "
            f"format {version}); this fastnn ({_version()}) reads format {FORMAT_VERSION}: "
            "upgrade fastnn to load it")
    missing = [k for k in ("layer_sizes", "activations", "output", "dtype") if k not in meta]
    if missing:
        raise _Invalid(f"is corrupted: metadata lacks {', '.join(missing)}")
    sizes, dtype = meta["layer_sizes"], meta["dtype"]
    if not isinstance(sizes, list) or len(sizes) < 2 or \
            not all(_is_int(s) and s >= 1 for s in sizes):
        raise _Invalid(f"holds an invalid network description: layer_sizes {_short(sizes)}")
    if dtype not in ("float32", "float64") or not isinstance(meta["activations"], list):
        raise _Invalid(f"holds an invalid network description: dtype {_short(dtype)}, "
                       f"activations {_short(meta['activations'])}")
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))  # Python ints: no overflow
    if meta.get("n_params", n_params) != n_params:
        raise _Invalid(f"is corrupted: n_params {_short(meta['n_params'])} does not match "
                       f"layer_sizes {_short(sizes)} ({n_params})")
    _check_params_header(archive, n_params, dtype)
    meta.setdefault("kind", "Network")
    if meta["kind"] not in KINDS:
        raise _Invalid(f"describes a {_short(meta['kind'])}; fastnn rebuilds only "
                       f"{', '.join(KINDS)}")
    meta.setdefault("has_classes", False)
    meta.setdefault("metadata", {})
    if "arrays" not in meta:  # files written before the list was kept: every array member
        meta["arrays"] = [n[len(_ARRAY_PREFIX):] for n in archive.names()
                          if n.startswith(_ARRAY_PREFIX)]
    for key, ok in (("has_classes", isinstance(meta["has_classes"], bool)),
                    ("metadata", isinstance(meta["metadata"], dict)),
                    ("arrays", isinstance(meta["arrays"], list)
                     and all(isinstance(a, str) for a in meta["arrays"])
                     and len(set(meta["arrays"])) == len(meta["arrays"]))):
        if not ok:
            raise _Invalid(f"is corrupted: metadata {key!r} is {_short(meta[key])}")
    return meta, n_params


def _check_params_header(archive, n_params, dtype):
    want = f"{n_params} {dtype} parameters"
    if "params" not in archive:
        raise _Invalid(f"is corrupted: expected {want}, found none")
    got_dtype, shape = archive.header("params", _ARRAY_KINDS)
    if shape != (n_params,) or got_dtype != np.dtype(dtype):
        raise _Invalid(f"is corrupted: expected {want}, found {got_dtype.str} {shape}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
