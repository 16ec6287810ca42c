"""Property tests (hypothesis) of fastnn.load on damaged and made-up files: random truncations,
bit flips, metadata rewritten with random JSON, random sets of archive members.  Every load
ends in a model that predicts, or a ValueError naming the file -- never another exception."""
import io as _io
import json
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastnn
from fastnn import io

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
X = np.random.default_rng(0).standard_normal((5, 4))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{kind: bytes of a good file} and a scratch path for the mutants."""
    folder = tmp_path_factory.mktemp("props")
    out = {}
    net = fastnn.Network([4, 3, 2], activation="tanh", output="sigmoid", dtype="float32", seed=0)
    io.save(net, folder / "net.npz", classes=None, metadata={"note": [1, 2]},
                   arrays={"x_mean": np.zeros(4)})
    out["net"] = (folder / "net.npz").read_bytes()
    if pytest.importorskip("sklearn"):  # (skips the whole module without scikit-learn)
        y = np.array(["a", "b", "c", "a", "b"])
        clf = fastnn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        fastnn.save(clf, folder / "clf.npz")
        out["clf"] = (folder / "clf.npz").read_bytes()
    return out, folder / "mutant.npz"


def _check(path):
    """Load ``path``: a ValueError naming it, or a model whose predict works."""
    try:
        model = fastnn.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return None
    out = model.predict(X)
    assert len(out) == len(X)
    return model


def _members(raw):
    with zipfile.ZipFile(_io.BytesIO(raw)) as zf:
        return {name[:-4]: np.lib.format.read_array(_io.BytesIO(zf.read(name)))
                for name in zf.namelist()}


def _write(path, members):
    with open(path, "wb") as fh:
        np.savez(fh, **members)


KINDS = st.sampled_from(["net", "clf"])


@SETTINGS
@given(KINDS, st.data())
def test_truncations(files, kind, data):
    good, path = files
    raw = good[kind]
    cut = data.draw(st.integers(0, len(raw)))
    path.write_bytes(raw[:cut])
    model = _check(path)
    assert model is not None or cut < len(raw)


@SETTINGS
@given(KINDS, st.data())
def test_bit_flips(files, kind, data):
    good, path = files
    raw = bytearray(good[kind])
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path.write_bytes(bytes(raw))
    _check(path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=12)


def _paths(value, prefix=()):
    """Every key path into nested dicts and lists."""
    yield prefix
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


@SETTINGS
@given(KINDS, st.data())
def test_metadata_rewritten_with_random_json(files, kind, data):
    good, path = files
    members = _members(good[kind])
    meta = json.loads(str(members["__fastnn__"][()]))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(list(_paths(meta))[1:]))
        node = meta
        for key in where[:-1]:
            node = node[key]
        if data.draw(st.booleans()) and isinstance(node, dict):
            del node[where[-1]]
        else:
            node[where[-1]] = data.draw(JSON)
    if data.draw(st.booleans()):
        meta[data.draw(st.text(max_size=6))] = data.draw(JSON)
    members["__fastnn__"] = np.array(json.dumps(meta))
    _write(path, members)
    _check(path)


@SETTINGS
@given(st.data())
def test_metadata_replaced_by_random_json(files, data):
    good, path = files
    members = _members(good["net"])
    members["__fastnn__"] = np.array(json.dumps(data.draw(JSON)))
    _write(path, members)
    assert _check(path) is None


MEMBER_ARRAYS = st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex128,
                                 np.dtype("U4")]).flatmap(
    lambda dt: arrays(dt, st.sampled_from([(), (0,), (3,), (2, 2), (12,)])))


@SETTINGS
@given(KINDS, st.data())
def test_random_member_sets(files, kind, data):
    good, path = files
    members = _members(good[kind])
    keep = data.draw(st.lists(st.sampled_from(sorted(members)), unique=True))
    chosen = {k: members[k] for k in keep}
    names = st.sampled_from(["params", "classes", "__fastnn__", "array/x_mean",
                             "array/attr/feature_names_in_", "array/attr/evil"]) | st.text(
        "abc/_", min_size=1, max_size=6)
    for name in data.draw(st.lists(names, max_size=3, unique=True)):
        chosen[name] = data.draw(MEMBER_ARRAYS)
    if data.draw(st.booleans()):
        chosen[data.draw(names)] = np.array([{"a": 1}], dtype=object)  # a pickle
    _write(path, chosen)
    model = _check(path)
    assert model is None or "params" in chosen
