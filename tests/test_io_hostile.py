"""fastnn.load on hostile and damaged files: nothing runs, nothing is written, memory stays
bounded by the file, and every failure is a ValueError naming the file."""
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

import fastnn
from fastnn import io
from test_io import _rewrite  # the archive-rewriting helper (tests/ is on sys.path)

pytestmark = pytest.mark.smoke  # also run with the oldest declared dependencies (.ci/floor.txt)


def _meta(path):
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["__fastnn__"][()]))


def _with_meta(path, out, **updates):
    meta = _meta(path)
    for key, value in updates.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return _rewrite(path, out, __fastnn__=np.array(json.dumps(meta)))


def _tree(folder):
    """Every file below ``folder`` with its size and modification time."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.npz"
    fastnn.Network([4, 5, 3], activation="tanh", dtype="float64", seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def clf_file(tmp_path_factory):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, 60)]
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    path = tmp_path_factory.mktemp("clf") / "clf.npz"
    fastnn.save(clf, path)
    return path


# --------------------------------------------------------------------------- code execution
def _cli_attack(target):
    return {"class": "main", "module": "fastnn.cli", "attributes": {},
            "params": {"argv": ["predict", "--model", "m.npz", "--data", "d.csv",
                                "--output", str(target)]}}


@pytest.mark.parametrize("kind, entry", [
    ("main", lambda t: _cli_attack(t)),
    ("MLPClassifier", lambda t: _cli_attack(t)),
    ("MLPClassifier", lambda t: {**_cli_attack(t), "class": "MLPClassifier"}),
    ("main", lambda t: {**_cli_attack(t), "params": {"argv": ["--version"]}}),
    ("Popen", lambda t: {"class": "Popen", "module": "subprocess", "attributes": {},
                         "params": {"args": ["touch", str(t)]}}),
])
def test_a_crafted_file_runs_nothing_and_writes_nothing(tmp_path, net_file, kind, entry):
    target = tmp_path / "victim.csv"
    target.write_text("precious\n")
    bad = _with_meta(net_file, tmp_path / "evil.npz", kind=kind, estimator=entry(target))
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="evil.npz"):  # not SystemExit, not a rewritten file
        fastnn.load(bad)
    assert _tree(tmp_path) == before
    assert target.read_text() == "precious\n"


def test_estimator_attributes_and_parameters_come_from_an_allow_list(tmp_path, clf_file):
    est = _meta(clf_file)["estimator"]
    cases = {
        "attr_method": {**est, "attributes": {**est["attributes"], "predict": 1}},
        "attr_private": {**est, "attributes": {**est["attributes"], "_label_binarizer": 1}},
        "attr_type": {**est, "attributes": {**est["attributes"], "n_iter_": "many"}},
        "param_unknown": {**est, "params": {**est["params"], "__class__": "x"}},
        "param_value": {**est, "params": {**est["params"], "solver": "rm -rf"}},
        "param_nested": {**est, "params": {**est["params"], "alpha": {"a": [1, {"b": 2}]}}},
    }
    for name, entry in cases.items():
        bad = _with_meta(clf_file, tmp_path / f"{name}.npz", estimator=entry)
        with pytest.raises(ValueError, match=f"{name}.npz.* (unknown|invalid)"):
            fastnn.load(bad)
    # the untouched file still loads, and its methods are the class's
    back = fastnn.load(clf_file)
    assert type(back).predict is fastnn.MLPClassifier.predict and "predict" not in vars(back)


# --------------------------------------------------------------------------- memory bombs
def _raw_zip(path, members, repeat=None):
    """Write a zip by hand: ``members`` = [(name, method, payload, crc, uncompressed size)];
    the payload is written as given (already compressed for method 8).  ``repeat=(name, k)``
    lists that member k more times in the central directory (entries sharing its bytes)."""
    out, central, entries = bytearray(), bytearray(), len(members)
    for name, method, payload, crc, usize in members:
        name = name.encode()
        offset = len(out)
        out += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, method, 0, 33, crc,
                           len(payload), usize, len(name), 0) + name + payload
        entry = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 33,
                            crc, len(payload), usize, len(name), 0, 0, 0, 0, 0, offset) + name
        copies = 1 + (repeat[1] if repeat and repeat[0] == name.decode() else 0)
        central += entry * copies
        entries += copies - 1
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries,
                       len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


def _npy_header(dtype, shape):
    import io as _io

    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _deflated_zeros(header, n_mib):
    """(deflate stream, crc, size) of ``header`` followed by ``n_mib`` MiB of zero bytes,
    built from one compressed MiB repeated (a full flush makes the blocks identical)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = co.compress(header) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(n_mib):
        crc = zlib.crc32(zeros, crc)
    return first + block * n_mib + co.flush(zlib.Z_FINISH), crc, len(header) + (n_mib << 20)


def _meta_member(**meta):
    base = {"format": "fastnn-model", "format_version": 1, "kind": "Network",
            "activations": [], "output": "identity", "dtype": "float32", "has_classes": False,
            "metadata": {}}
    arr = np.array(json.dumps({**base, **meta}))
    import io as _io

    buf = _io.BytesIO()
    np.lib.format.write_array(buf, arr)
    data = buf.getvalue()
    return ("__fastnn__.npy", 0, data, zlib.crc32(data), len(data))


def _bombs(folder):
    """Files that an unguarded loader would inflate to gigabytes."""
    # 1. ~8 MB: two deflated members of 3.9 GiB of zeros each, one of them the parameters of
    #    a network that size, one unknown
    n_mib = 3900
    sizes = [n_mib << 18, 1]  # float32: (n_mib MiB) / 4 weights + 1 bias
    n = sizes[0] + 1
    head = _npy_header("<f4", (n,))
    params, crc, usize = _deflated_zeros(head, n_mib)
    junk, jcrc, jsize = _deflated_zeros(_npy_header("<f8", (n_mib << 17,)), n_mib)
    yield "deflated", _raw_zip(folder / "deflated.npz", [
        _meta_member(layer_sizes=sizes, n_params=n),
        ("params.npy", 8, params, crc, usize), ("junk.npy", 8, junk, jcrc, jsize)])
    # 2. 8 MB stored, the .npy header claiming 8 GiB
    data = _npy_header("<f4", ((1 << 31) + 2,)) + bytes(8 << 20)
    yield "header", _raw_zip(folder / "header.npz", [
        _meta_member(layer_sizes=[1 << 30, 2], n_params=(1 << 31) + 2),
        ("params.npy", 0, data, zlib.crc32(data), len(data))])
    # 3. huge layer sizes (no OverflowError, no MemoryError)
    small = _npy_header("<f4", (3,)) + bytes(12)
    for i, sizes in enumerate([[10 ** 6, 10 ** 6], [2 ** 70, 2], [2 ** 40] * 4]):
        n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        yield f"sizes{i}", _raw_zip(folder / f"sizes{i}.npz", [
            _meta_member(layer_sizes=sizes, n_params=n),
            ("params.npy", 0, small, zlib.crc32(small), len(small))])
    # 4. one 8 MB member listed 50 times in the directory
    blob = _npy_header("<f8", (1 << 20,)) + bytes(8 << 20)
    params = _npy_header("<f4", (6,)) + bytes(24)
    path = _raw_zip(folder / "overlap.npz", [
        _meta_member(layer_sizes=[2, 2], n_params=6, arrays=["a"]),
        ("params.npy", 0, params, zlib.crc32(params), len(params)),
        ("array/a.npy", 0, blob, zlib.crc32(blob), len(blob))], repeat=("array/a.npy", 49))
    yield "overlap", path


def test_bombs_fail_fast_within_200_mb(tmp_path):
    files = list(_bombs(tmp_path))
    assert 7e6 < os.path.getsize(tmp_path / "deflated.npz") < 9e6
    assert 7e6 < os.path.getsize(tmp_path / "header.npz") < 9e6
    script = textwrap.dedent("""
        import resource, sys, tracemalloc
        import fastnn.io, fastnn.network
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        for path in sys.argv[1:]:
            try:
                fastnn.io.load(path)
            except ValueError as exc:
                print("ValueError", str(exc).replace(chr(10), " "))
            else:
                print("loaded", path)
        peak = tracemalloc.get_traced_memory()[1]
        grow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print("PEAK", peak, grow * 1024)
    """)
    proc = subprocess.run([sys.executable, "-c", script, *[str(p) for _, p in files]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for (name, path), line in zip(files, lines):
        assert line.startswith("ValueError") and str(path) in line, (name, line)
    assert "compressed" in lines[0] and "header describes" in lines[1], lines
    assert "twice" in lines[-2], lines
    peak, grow = map(int, lines[-1].split()[1:])
    assert peak < 200e6 and grow < 200e6, (peak, grow)


# --------------------------------------------------------------------------- corrupt files
def test_every_single_bit_flip_is_a_value_error_or_the_same_model(tmp_path):
    path = tmp_path / "small.npz"
    net = fastnn.Network([2, 2], output="softmax", dtype="float32", seed=0)
    io.save(net, path, classes=np.array([3, 5]), arrays={"m": np.arange(2.0)})
    raw = path.read_bytes()
    bad = tmp_path / "flip.npz"
    same = 0
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 1 << (i % 8)
        bad.write_bytes(bytes(flipped))
        try:
            back, info = io.load_model(bad)
        except ValueError as exc:
            assert "flip.npz" in str(exc)
            continue
        same += 1  # a flip outside the checked bytes (a timestamp, ...): the same model
        assert back.params.tobytes() == net.params.tobytes()
        assert info["classes"].tolist() == [3, 5]
    assert same < len(raw) // 4


def test_compression_method_flip_and_deep_json_are_value_errors(tmp_path, net_file):
    raw = bytearray(net_file.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # first central directory entry: its method field
    raw[cd + 10] = 99
    bad = tmp_path / "method.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="method.npz.*compress"):
        fastnn.load(bad)
    deep = _rewrite(net_file, tmp_path / "deep.npz",
                    __fastnn__=np.array("[" * 100000 + "]" * 100000))
    with pytest.raises(ValueError, match="deep.npz' has unreadable metadata"):
        fastnn.load(deep)
    with zipfile.ZipFile(tmp_path / "zipped.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with np.load(net_file) as f:
            for key in f.files:
                with zf.open(key + ".npy", "w") as fh:
                    np.lib.format.write_array(fh, f[key])
    with pytest.raises(ValueError, match="is compressed"):
        fastnn.load(tmp_path / "zipped.npz")


# --------------------------------------------------------------------------- consistency
def test_inconsistent_estimator_files_are_refused(tmp_path, clf_file):
    est = _meta(clf_file)["estimator"]
    short = _rewrite(clf_file, tmp_path / "short.npz", classes=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="short.npz' has inconsistent classes: 2 labels"):
        fastnn.load(short)
    unsorted = _rewrite(clf_file, tmp_path / "unsorted.npz", classes=np.array(["c", "a", "b"]))
    with pytest.raises(ValueError, match="sorted and unique"):
        fastnn.load(unsorted)
    bogus = _with_meta(clf_file, tmp_path / "bogus.npz", estimator={
        **est, "attributes": {**est["attributes"], "out_activation_": "identity"}})
    with pytest.raises(ValueError, match="bogus.npz' is inconsistent: out_activation_"):
        fastnn.load(bogus)
    hidden = _with_meta(clf_file, tmp_path / "hidden.npz", estimator={
        **est, "params": {**est["params"], "hidden_layer_sizes": {"__tuple__": [7]}}})
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        fastnn.load(hidden)
    as_reg = _with_meta(clf_file, tmp_path / "as_reg.npz", kind="MLPRegressor")
    with pytest.raises(ValueError, match="as_reg.npz"):
        fastnn.load(as_reg)
    no_classes = _with_meta(clf_file, tmp_path / "nocls.npz", has_classes=False)
    with pytest.raises(ValueError, match="without classes"):
        fastnn.load(no_classes)


def test_network_classes_must_match_the_outputs(tmp_path):
    net = fastnn.Network([3, 4], output="softmax", dtype="float32", seed=0)
    with pytest.raises(ValueError, match="classes: 2 labels for the 4 softmax"):
        io.save(net, tmp_path / "x.npz", classes=["a", "b"])
    with pytest.raises(ValueError, match="no classes"):
        io.save(fastnn.Network([3, 1], output="identity", seed=0), tmp_path / "x.npz",
                classes=[0, 1])
    io.save(fastnn.Network([3, 1], output="sigmoid", seed=0), tmp_path / "b.npz",
            classes=["no", "yes"])
    assert io.load_model(tmp_path / "b.npz")[1]["classes"].tolist() == ["no", "yes"]
    assert not (tmp_path / "x.npz").exists()


def test_save_refuses_classes_fastnn_cannot_rebuild(tmp_path):
    sk = pytest.importorskip("sklearn.neural_network")
    clf = sk.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1)
    clf.network_ = fastnn.Network([2, 2, 2], seed=0)  # even when it looks like ours
    with pytest.raises(TypeError, match="sklearn.neural_network.*MLPClassifier"):
        fastnn.save(clf, tmp_path / "x.npz")
