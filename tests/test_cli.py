"""The `fastnn` command line, end to end in subprocesses (small data, few epochs)."""
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest


def run(*args, cwd=None):
    """Run ``python -m fastnn ARGS``; return the CompletedProcess (text mode)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "fastnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three separable blobs with string labels, as .csv, .npz and an .npy pair."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    y = np.repeat(np.arange(3), 40)
    X = centers[y] + rng.standard_normal((120, 3))
    names = np.array(["ant", "bee", "cat"])[y]
    with open(d / "blobs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["f1", "f2", "f3", "kind"])
        w.writerows([[*map(repr, row), lab] for row, lab in zip(X.tolist(), names)])
    np.savez(d / "blobs.npz", X=X, y=y)
    np.save(d / "X_blobs.npy", X)
    np.save(d / "y_blobs.npy", y)
    return d


def assert_one_line_error(proc, *fragments, status=1):
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# --------------------------------------------------------------------------- happy paths
def test_train_save_predict_csv(data, tmp_path):
    model, curve, preds = tmp_path / "m.npz", tmp_path / "c.png", tmp_path / "p.csv"
    proc = run("train", "--data", data / "blobs.csv", "--target", "kind", "--hidden", "16,8",
               "--epochs", "15", "--batch-size", "16", "--lr", "0.01", "--seed", "1",
               "--save", model, "--plot", curve, "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    acc = float(next(l for l in lines if l.startswith("held-out accuracy:")).split()[2])
    assert acc >= 0.9  # three well-separated blobs
    assert any(l.startswith("wall time:") for l in lines)
    assert not any(l.startswith("epoch ") for l in lines)  # --quiet: summary only
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from fastnn import io

    net, info = io.load_model(model)
    assert net.layer_sizes == (3, 16, 8, 3)
    assert info["classes"].tolist() == ["ant", "bee", "cat"]
    assert info["metadata"]["feature_names"] == ["f1", "f2", "f3"]

    proc = run("predict", "--model", model, "--data", data / "blobs.csv", "--output", preds,
               "--proba")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(open(preds)))
    assert rows[0] == ["prediction", "p_ant", "p_bee", "p_cat"]
    assert len(rows) == 121 and {r[0] for r in rows[1:]} <= {"ant", "bee", "cat"}
    assert abs(sum(map(float, rows[1][1:])) - 1) < 1e-4
    truth = [r[3] for r in csv.reader(open(data / "blobs.csv"))][1:]
    agree = np.mean([p[0] == t for p, t in zip(rows[1:], truth)])
    assert agree >= 0.9
    assert f"accuracy: {agree:.4f}" in proc.stderr  # labels present -> scored on stderr

    # the same model on the feature-only .npy, predictions to stdout
    proc = run("predict", "--model", model, "--data", data / "X_blobs.npy")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "prediction" and [r for r in out[1:]] == [r[0] for r in rows[1:]]


@pytest.mark.parametrize("output,dtype", [("identity", "float64"), ("sigmoid", "float32"),
                                          ("sigmoid", "float64")])
def test_predict_with_a_one_output_network(data, tmp_path, output, dtype):
    import fastnn

    net = fastnn.Network([3, 4, 1], activation="tanh", output=output, dtype=dtype, seed=0)
    fastnn.save(net, tmp_path / "one.npz")
    # a csv with a label column too: no "accuracy" for a regression network
    proc = run("predict", "--model", tmp_path / "one.npz", "--data", data / "blobs.csv",
               "--target", "kind")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(proc.stdout.splitlines()))
    assert rows[0] == ["prediction"] and len(rows) == 121
    got = np.array([float(r[0]) for r in rows[1:]])  # plain numbers, one per row
    want = net.predict(np.load(data / "X_blobs.npy"))[:, 0]  # the csv's features
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if output == "identity":
        assert "accuracy" not in proc.stderr


def test_train_npz_and_npy_pair(data, tmp_path):
    for source in (["--data", data / "blobs.npz", "--solver", "sgd"],
                   ["--data", data / "X_blobs.npy"],
                   ["--data", data / "X_blobs.npy", "--labels", data / "y_blobs.npy"]):
        proc = run("train", *source, "--epochs", "2", "--hidden", "4", "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert "held-out accuracy" in proc.stdout


def test_default_digits_run_prints_epochs_and_bar(tmp_path):
    pytest.importorskip("sklearn")
    proc = run("train", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "scikit-learn digits: 1797 samples, 64 features, 10 classes" in out
    assert "epoch 1/2  loss" in out and "val_accuracy" in out and "epoch 2/2" in out
    assert "held-out accuracy" in out and "wall time" in out
    # the tqdm bar moves within epochs (over minibatches) and ends on the last epoch
    assert "fastnn.fit" in proc.stderr and "epoch=2" in proc.stderr


def test_help_version_and_light_import():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("fastnn ")
    proc = run()
    assert proc.returncode == 2
    assert all(c in proc.stderr for c in ("train", "predict", "bench", "warmup")), proc.stderr
    code = ("import sys, fastnn.cli; fastnn.cli.build_parser(); "
            "print(sorted(m for m in ('numpy', 'numba', 'sklearn', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out


@pytest.mark.slow
def test_bench_prints_a_table():
    proc = run("bench", "--budget", "0.01", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    rows = [l for l in proc.stdout.splitlines() if l.rstrip().endswith("x")]
    assert len(rows) == 5, proc.stdout
    assert "softmax 4096x1000" in rows[0] and "train step 784-256-10" in rows[-1]


@pytest.mark.slow  # ~1 s from the cache, tens of seconds on a cold one
def test_warmup_reports_the_total_time():
    proc = run("warmup", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"fastnn warmup: \d+\.\d+ s for float32\b", proc.stdout), proc.stdout
    assert "float64" not in proc.stdout  # --dtype reaches fastnn.warmup


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad(data):
    d = data
    (d / "text.csv").write_text("f1,f2,kind\n1,2,a\n3,oops,b\n")
    (d / "ragged.csv").write_text("f1,f2,kind\n1,2,a\n3,4\n")
    (d / "nan.csv").write_text("f1,f2,kind\n1,2,a\n3,nan,b\n")
    (d / "one.csv").write_text("f1,kind\n1,a\n2,a\n3,a\n")
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00\x01garbage\x00")
    (d / "empty.csv").write_text("")
    (d / "data.txt").write_text("1,2,3\n")
    (d / "notzip.npz").write_text("I am text")
    np.savez(d / "noX.npz", a=np.arange(3))
    np.savez(d / "noY.npz", X=np.ones((4, 3)))
    np.savez(d / "strX.npz", X=np.array([["a", "b"]]), y=np.array([0]))
    np.save(d / "X_alone.npy", np.ones((4, 2)))
    raw = (d / "blobs.npz").read_bytes()
    (d / "cut.npz").write_bytes(raw[: len(raw) // 2])
    (d / "dup.csv").write_text("a,a,kind\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    (d / "huge.csv").write_text("f1,f2,f3,kind\n1,2,3,ant\n1e300,2,3,bee\n")
    return d


@pytest.mark.parametrize("args, fragments", [
    (["--data", "missing.csv", "--target", "y"], ["missing.csv: no such file"]),
    (["--data", "blobs.csv", "--target", "colour"], ["no column 'colour'", "f1, f2, f3, kind"]),
    (["--data", "blobs.csv"], ["--target COLUMN"]),
    (["--data", "text.csv", "--target", "kind"], ["column 'f2' is not numeric", "'oops'"]),
    (["--data", "ragged.csv", "--target", "kind"], ["row 3 has 2 fields"]),
    (["--data", "nan.csv", "--target", "kind"], ["NaN or infinity"]),
    (["--data", "one.csv", "--target", "kind"], ["single class"]),
    (["--data", "binary.csv", "--target", "kind"], ["not a UTF-8 text CSV"]),
    (["--data", "empty.csv", "--target", "kind"], ["needs a header row"]),
    (["--data", "data.txt"], ["unsupported file type '.txt'"]),
    (["--data", "."], ["is a directory"]),
    (["--data", "notzip.npz"], ["not a .npz file"]),
    (["--data", "noX.npz"], ["expected arrays 'X' and 'y'", "found: a"]),
    (["--data", "noY.npz"], ["needs an array 'y'"]),
    (["--data", "strX.npz"], ["features must be numeric"]),
    (["--data", "cut.npz"], ["cut.npz"]),
    (["--data", "X_alone.npy"], ["no labels", "y_alone.npy"]),
    (["--data", "X_blobs.npy", "--labels", "nope.npy"], ["nope.npy: no such file"]),
    (["--hidden", "12,x"], ["--hidden", "'12,x'"]),
    (["--data", "dup.csv", "--target", "kind"], ["dup.csv: duplicate column name(s) 'a'"]),
    (["--data", "blobs.csv", "--target", "kind", "--hidden", "100000,100000"],
     ["--hidden 100000,100000: a 3-100000-100000-3 network has 10,000,800,003 parameters",
      "GiB of memory"]),
    (["--data", "blobs.csv", "--target", "kind", "--lr", "1e30", "--solver", "sgd"],
     ["training diverged", "learning rate 1e+30: lower --lr"]),
    (["--data", "blobs.csv", "--target", "kind", "--save", "."],
     [".: is a directory; give a file name"]),
])
def test_train_bad_input(bad, args, fragments):
    before = sorted(os.listdir(bad))
    proc = run("train", *args, "--epochs", "1", "--quiet", cwd=bad)
    assert_one_line_error(proc, "fastnn train: error:", *fragments)
    assert sorted(os.listdir(bad)) == before  # nothing written, not even a temporary file
    if "--save" in args:
        assert "held-out accuracy" not in proc.stdout  # refused before training


def test_usage_errors_are_one_line(bad):
    assert_one_line_error(run("train", "--epochs", "0"), "--epochs: must be >= 1", status=2)
    assert_one_line_error(run("frobnicate"), "invalid choice", status=2)
    for value in ("nan", "-1", "inf", "0"):
        assert_one_line_error(run("bench", "--budget", value),
                              f"--budget: must be a finite number > 0, got {value}", status=2)
        assert_one_line_error(run("train", "--lr", value), "--lr: must be a finite number > 0",
                              status=2)


@pytest.fixture(scope="module")
def model(bad):
    path = bad / "model.npz"
    proc = run("train", "--data", bad / "blobs.csv", "--target", "kind", "--hidden", "4",
               "--epochs", "1", "--quiet", "--save", path)
    assert proc.returncode == 0, proc.stderr
    raw = path.read_bytes()
    (bad / "model_cut.npz").write_bytes(raw[: len(raw) - 100])
    with np.load(path) as f:
        entries = {k: f[k] for k in f.files}
    meta = json.loads(str(entries["__fastnn__"][()]))
    meta["format_version"] = 99
    entries["__fastnn__"] = np.array(json.dumps(meta))
    np.savez(bad / "model_future.npz", **entries)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"PK\x01\x02") + 10] = 99  # the compression method of the first member
    (bad / "model_method.npz").write_bytes(bytes(raw))
    meta["format_version"] = 1
    for name, argv in (("evil_version", ["--version"]),
                       ("evil_write", ["predict", "--model", str(path), "--data",
                                       str(bad / "blobs.csv"), "--output",
                                       str(bad / "blobs.csv")])):
        meta["kind"] = "main"
        meta["estimator"] = {"class": "main", "module": "fastnn.cli", "attributes": {},
                             "params": {"argv": argv}}
        entries["__fastnn__"] = np.array(json.dumps(meta))
        np.savez(bad / f"{name}.npz", **entries)
    return path


@pytest.mark.parametrize("args, fragments", [
    (["--model", "nope.npz", "--data", "blobs.csv"], ["nope.npz: no such file"]),
    (["--model", "model_cut.npz", "--data", "blobs.csv"], ["model_cut.npz", "truncated"]),
    (["--model", "notzip.npz", "--data", "blobs.csv"], ["not a fastnn model file"]),
    (["--model", "noX.npz", "--data", "blobs.csv"], ["not a fastnn model file"]),
    (["--model", "blobs.npz", "--data", "blobs.csv"], ["not a fastnn model file"]),
    (["--model", "model_future.npz", "--data", "blobs.csv"], ["newer fastnn", "format 99"]),
    (["--model", "model.npz", "--data", "text.csv"], ["missing feature column(s) 'f3'"]),
    (["--model", "model.npz", "--data", "missing.csv"], ["missing.csv: no such file"]),
    (["--model", "model.npz", "--data", "noX.npz"], ["expected arrays 'X'"]),
    (["--model", "model.npz", "--data", "X_alone.npy"], ["2 features, the model expects 3"]),
    (["--model", "model.npz", "--data", "blobs.csv", "--output", "no/such/dir/p.csv"],
     ["does not exist"]),
    (["--model", "model.npz", "--data", "huge.csv", "--output", "p.csv"],
     ["huge.csv: features too large for the model's float32 after scaling", "row 1"]),
    (["--model", "model_method.npz", "--data", "blobs.csv"], ["model_method.npz", "method 99"]),
    (["--model", "evil_version.npz", "--data", "blobs.csv"], ["evil_version.npz", "'main'"]),
    (["--model", "evil_write.npz", "--data", "blobs.csv", "--output", "p.csv"],
     ["evil_write.npz", "fastnn rebuilds only"]),
])
def test_predict_bad_input(model, bad, args, fragments):
    before = {name: (bad / name).read_bytes() for name in os.listdir(bad)}
    proc = run("predict", *args, cwd=bad)
    assert_one_line_error(proc, "fastnn predict: error:", *fragments)
    assert {name: (bad / name).read_bytes() for name in os.listdir(bad)} == before
