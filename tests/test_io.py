"""fastnn.save / fastnn.load: bit-exact round trips and clear errors for bad files."""
import json
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import io

OUTPUTS = ["softmax", "sigmoid", "identity"]
DTYPES = ["float32", "float64"]


def _net(output, dtype, sizes=(5, 7, 4, 3), activation=("tanh", "logistic")):
    net = fastnn.Network(list(sizes), activation=list(activation), output=output, dtype=dtype,
                         seed=3)
    # Make every bit pattern count: random values of full precision, incl. subnormal and -0.0.
    rng = np.random.default_rng(1)
    net.params[...] = rng.standard_normal(net.params.size).astype(dtype)
    net.params[:2] = [np.finfo(dtype).smallest_subnormal, -0.0]
    return net


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_network_round_trip_is_bit_exact(tmp_path, output, dtype):
    net = _net(output, dtype)
    path = tmp_path / "net.npz"
    net.save(path)
    back = fastnn.load(path)
    assert isinstance(back, fastnn.Network)
    assert back.layer_sizes == net.layer_sizes
    assert back.activations == net.activations == ("tanh", "logistic")
    assert back.output == output and back.dtype == np.dtype(dtype)
    assert back.params.dtype == net.params.dtype
    assert back.params.tobytes() == net.params.tobytes()
    X = np.random.default_rng(2).standard_normal((6, 5)).astype(dtype)
    assert net.forward(X).tobytes() == back.forward(X).tobytes()
    # the views still point into the loaded flat buffer
    back.weights[0][0, 0] = 42
    assert back.params[0] == 42


def test_network_without_hidden_layers_round_trips(tmp_path):
    net = fastnn.Network([3, 2], output="identity", dtype="float64", seed=0)
    fastnn.save(net, tmp_path / "lin.npz")
    back = fastnn.load(tmp_path / "lin.npz")
    assert back.layer_sizes == (3, 2) and back.activations == ()
    assert back.params.tobytes() == net.params.tobytes()


@pytest.mark.parametrize("classes", [np.array(["cat", "dog", "émeu"]), np.array([3, 7, 11]),
                                     np.array([0.5, 1.5, 2.5])])
def test_metadata_classes_and_arrays(tmp_path, classes):
    net = _net("softmax", "float32")
    path = tmp_path / "m.npz"
    io.save(net, path, classes=classes, metadata={"feature_names": list("abcde")},
            arrays={"x_mean": np.arange(5.0)})
    model, info = io.load_model(path)
    assert info["classes"].dtype == classes.dtype
    np.testing.assert_array_equal(info["classes"], classes)
    assert info["metadata"] == {"feature_names": list("abcde")}
    np.testing.assert_array_equal(info["arrays"]["x_mean"], np.arange(5.0))
    meta = io.read_metadata(path)
    assert meta["format_version"] == io.FORMAT_VERSION
    assert meta["layer_sizes"] == [5, 7, 4, 3] and meta["dtype"] == "float32"
    # nothing in the file needs pickle
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype.kind != "O" for k in f.files)


def test_object_string_classes_are_stored_as_unicode(tmp_path):
    path = tmp_path / "m.npz"
    io.save(_net("softmax", "float64"), path, classes=np.array(["a", "bb", "c"], dtype=object))
    _, info = io.load_model(path)
    assert info["classes"].dtype.kind == "U"
    assert info["classes"].tolist() == ["a", "bb", "c"]


def test_save_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="expects a fastnn Network"):
        fastnn.save({"not": "a model"}, tmp_path / "x.npz")


# --------------------------------------------------------------------------- bad files
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.npz"
    _net("softmax", "float32").save(path)
    return path


def _rewrite(path, out, **changes):
    """Copy an .npz, replacing or dropping entries (value None drops)."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    with open(out, "wb") as fh:
        np.savez(fh, **data)
    return out


def test_truncated_file(tmp_path, good_file):
    raw = good_file.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="not a fastnn model file|corrupted or truncated"):
            fastnn.load(bad)


def test_corrupted_bytes(tmp_path, good_file):
    raw = bytearray(good_file.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 64] = b"\x00" * 64  # inside the stored parameters
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted|not a fastnn model file"):
        fastnn.load(bad)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, I am not a model\n")
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fastnn.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(ValueError, match="no '__fastnn__' metadata"):
        fastnn.load(other)
    bare = tmp_path / "bare.npy"
    np.save(bare, np.arange(3))
    with pytest.raises(ValueError, match="bare .npy array"):
        fastnn.load(bare)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"__fastnn__": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="corrupted or truncated|not a fastnn"):
        fastnn.load(pickled)
    zipped = tmp_path / "z.npz"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("readme.txt", "x")
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fastnn.load(zipped)


def _meta(path):
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["__fastnn__"][()]))


def test_future_format_version(tmp_path, good_file):
    meta = _meta(good_file)
    meta["format_version"] = io.FORMAT_VERSION + 1
    bad = _rewrite(good_file, tmp_path / "future.npz", __fastnn__=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="newer fastnn .*upgrade fastnn"):
        fastnn.load(bad)


@pytest.mark.parametrize("change, message", [
    ({"__fastnn__": np.array("{not json")}, "unreadable metadata"),
    ({"__fastnn__": np.array('{"format": "other"}')}, "unknown format marker"),
    ({"params": np.zeros(3, dtype=np.float32)}, "corrupted: expected"),
    ({"params": None}, "corrupted: expected"),
])
def test_inconsistent_contents(tmp_path, good_file, change, message):
    bad = _rewrite(good_file, tmp_path / "bad.npz", **change)
    with pytest.raises(ValueError, match=message):
        fastnn.load(bad)


def test_wrong_dtype_and_bad_description(tmp_path, good_file):
    with np.load(good_file) as f:
        params64 = f["params"].astype(np.float64)
    bad = _rewrite(good_file, tmp_path / "dt.npz", params=params64)
    with pytest.raises(ValueError, match="expected .* float32 parameters"):
        fastnn.load(bad)
    meta = _meta(good_file)
    meta["activations"] = ["swish", "relu"]
    bad = _rewrite(good_file, tmp_path / "act.npz", __fastnn__=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="invalid network description"):
        fastnn.load(bad)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "nope.npz")


# --------------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def iris():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", ["strings", "binary", "multilabel", "regression"])
def test_estimator_round_trip(tmp_path, iris, target, dtype):
    X, y = iris
    X = X.astype(dtype)
    if target == "regression":
        est = fastnn.MLPRegressor(hidden_layer_sizes=(8, 4), max_iter=5, random_state=0)
        yy = X[:, :2] * 2
    else:
        est = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
        yy = {"strings": np.array(["setosa", "versicolor", "virginica"])[y],
              "binary": (y == 1).astype(int),
              "multilabel": np.stack([y == 1, y == 2], axis=1).astype(int)}[target]
    est.fit(X, yy)
    path = tmp_path / "est.npz"
    fastnn.save(est, path)
    back = fastnn.load(path)
    assert type(back) is type(est)
    assert back.get_params() == est.get_params()
    assert back.network_.params.tobytes() == est.network_.params.tobytes()
    assert back.network_.dtype == est.network_.dtype
    assert back.predict(X).tobytes() == est.predict(X).tobytes()
    assert back.n_features_in_ == 4 and back.n_iter_ == est.n_iter_
    assert back.loss_curve_ == est.loss_curve_
    if target != "regression":
        np.testing.assert_array_equal(back.classes_, est.classes_)
        assert back.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
        assert back.score(X, yy) == est.score(X, yy)
    for a, b in zip(back.coefs_, est.coefs_):
        assert a.tobytes() == b.tobytes()


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    pytest.importorskip("sklearn")
    with pytest.raises(TypeError, match="not fitted yet"):
        fastnn.save(fastnn.MLPClassifier(), tmp_path / "x.npz")


def test_estimator_file_cannot_import_other_modules(tmp_path, good_file):
    meta = _meta(good_file)
    meta["estimator"] = {"class": "Popen", "module": "subprocess", "params": {}, "attributes": {}}
    bad = _rewrite(good_file, tmp_path / "evil.npz", __fastnn__=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="a Network file with an estimator entry"):
        fastnn.load(bad)
    meta["kind"] = "Popen"
    bad = _rewrite(good_file, tmp_path / "evil.npz", __fastnn__=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="describes a 'Popen'; fastnn rebuilds only Network, "
                       "MLPClassifier, MLPRegressor"):
        fastnn.load(bad)


def test_files_without_an_arrays_list_still_load_their_arrays(tmp_path):
    path = tmp_path / "m.npz"
    io.save(_net("softmax", "float64"), path, arrays={"x_mean": np.arange(5.0)})
    meta = _meta(path)
    assert meta["arrays"] == ["x_mean"]
    del meta["arrays"]  # as written before the list was kept
    old = _rewrite(path, tmp_path / "old.npz", __fastnn__=np.array(json.dumps(meta)))
    np.testing.assert_array_equal(io.load_model(old)[1]["arrays"]["x_mean"], np.arange(5.0))
    meta["arrays"] = ["x_mean", "gone"]
    bad = _rewrite(path, tmp_path / "bad.npz", __fastnn__=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="its array 'gone' is missing"):
        fastnn.load(bad)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_class_weight_keys_keep_their_type(tmp_path, iris):
    X, y = iris
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                               class_weight={0: 1.0, 1: 3.0, 2: 1.0}).fit(X, y)
    fastnn.save(clf, tmp_path / "cw.npz")
    back = fastnn.load(tmp_path / "cw.npz")
    assert back.class_weight == {0: 1.0, 1: 3.0, 2: 1.0}
    assert back.fit(X, y).network_.params.tobytes() == clf.fit(X, y).network_.params.tobytes()
