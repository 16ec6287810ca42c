"""A smoke subset that CI also runs with the oldest declared dependency versions
(``.ci/floor.txt``): one fit per output type, save/load, the command line.

Everything is float64 and tiny, so the whole file compiles one set of epoch kernels; the CLI
subprocess loads them from numba's cache.
"""
import csv
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def iris():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Maximum iterations")
        return est.fit(X, y)


@pytest.mark.parametrize("target", ["multiclass", "binary", "regression"])
def test_fit_each_output_type_then_save_and_load(tmp_path, iris, target):
    X, y = iris
    kw = dict(hidden_layer_sizes=(16,), max_iter=150, learning_rate_init=0.01, random_state=0)
    if target == "regression":
        est, yy = fastnn.MLPRegressor(**kw), X[:, 2] + 0.5 * X[:, 3]
    else:
        est = fastnn.MLPClassifier(**kw)
        yy = y if target == "multiclass" else (y == 0).astype(int)
    _fit(est, X, yy)
    output = {"multiclass": "softmax", "binary": "sigmoid", "regression": "identity"}[target]
    assert est.network_.output == output
    assert est.score(X, yy) > 0.9  # separable classes / a linear target
    fastnn.save(est, tmp_path / "m.npz")
    back = fastnn.load(tmp_path / "m.npz")
    assert back.predict(X).tobytes() == est.predict(X).tobytes()


def test_network_fit(iris):
    X, y = iris
    net = fastnn.Network([4, 8, 3], activation="tanh", dtype="float64", seed=0)
    history = fastnn.fit(net, X, y, epochs=30, batch_size=16, optimizer=fastnn.Adam(0.01),
                         seed=0)
    assert history.train_loss[-1] < history.train_loss[0]
    assert np.mean(net.predict(X) == y) > 0.9


def test_command_line_train_and_predict(tmp_path, iris):
    X, y = iris
    data = tmp_path / "iris.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "c", "d", "kind"])
        w.writerows([[*map(repr, row), ["x", "y", "z"][k]] for row, k in zip(X.tolist(), y)])
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    model, preds = tmp_path / "m.npz", tmp_path / "p.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn", "train", "--data", str(data), "--target", "kind",
         "--hidden", "8", "--epochs", "30", "--batch-size", "16", "--lr", "0.02",
         "--dtype", "float64", "--save", str(model), "--quiet"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    acc = float(proc.stdout.split("held-out accuracy:")[1].split()[0])
    assert acc > 0.8
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn", "predict", "--model", str(model), "--data", str(data),
         "--output", str(preds)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(open(preds)))
    assert rows[0] == ["prediction"] and len(rows) == 151
    assert np.mean([r[0] == ["x", "y", "z"][k] for r, k in zip(rows[1:], y)]) > 0.8


def test_floor_pins_are_pyproject_floors():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    floors = {}
    for spec in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        name, _, version = spec.partition(">=")
        floors[name.split("[")[0].strip().lower()] = version.strip()
    with open(os.path.join(root, ".ci", "floor.txt")) as fh:
        pins = dict(line.strip().split("==") for line in fh
                    if line.strip() and not line.startswith("#"))
    for name in ("numpy", "numba", "scipy", "scikit-learn", "threadpoolctl", "tqdm"):
        assert name in pins, f".ci/floor.txt does not pin {name}"
    for name, version in pins.items():
        if name in floors:  # (llvmlite is numba's, pinned for a reproducible environment)
            assert floors[name] == version, (name, floors[name], version)
