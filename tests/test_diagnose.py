"""fastnn.diagnose: every finding code from a constructed case, a healthy net has no problem,
the weights are never changed; the fit(verbose=True) hint and the CLI subcommand."""
import numpy as np
import pytest

import fastnn
from fastnn.cli import main
from fastnn.diagnosis import CODES, MAX_ROWS, collapse_hint
from fastnn.network import Network

X2 = np.eye(2)  # the learner's two examples: x1 -> [1, 0], x2 -> [0, 1]
Y2 = np.eye(2)


def _learner(output="sigmoid", loss="squared_error", zero=True):
    net = Network([2, 3, 2], activation="sigmoid", output=output,
                  loss=loss if output == "sigmoid" else None, dtype="float64", seed=0)
    if zero:
        net.params[:] = 0
    return net


def _diagnose(net, X, y, **kw):
    """diagnose, checking on the way that it leaves every weight as it was."""
    before = net.params.copy()
    d = fastnn.diagnose(net, X, y, **kw)
    np.testing.assert_array_equal(net.params, before)
    for f in d.findings:
        assert f.code in CODES and f.severity in ("problem", "note")
        assert f.evidence and f.advice and f.evidence in " ".join(str(d).split())
    return d


def _find(d, code):
    found = [f for f in d.findings if f.code == code]
    assert found, (code, d.codes)
    return found[0]


@pytest.fixture(scope="module")
def digits_net():
    sklearn = pytest.importorskip("sklearn.datasets")
    X, y = sklearn.load_digits(return_X_y=True)
    X = X / 16
    order = np.random.default_rng(0).permutation(len(X))
    tr, te = order[:1400], order[1400:]
    net = Network([64, 64, 10], activation="relu", seed=0)
    fastnn.fit(net, X[tr], y[tr], epochs=40, batch_size=32, optimizer=fastnn.Adam(1e-3), seed=0)
    assert np.mean(net.predict(X[te]) == y[te]) >= 0.97
    return net, X, y


def test_the_learners_zero_start_names_symmetry_identical_activations_and_cancelling():
    net = _learner()
    fastnn.fit(net, X2, Y2, epochs=300, batch_size=2, optimizer=fastnn.SGD(0.5))
    np.testing.assert_array_equal(net.forward(X2), np.full((2, 2), 0.5))
    d = _diagnose(net, X2, Y2, optimizer=fastnn.SGD(0.5))
    assert not d and {"output_collapse", "loss_at_chance", "symmetric_units",
                      "identical_activations", "cancelling_gradients"} <= set(d.codes)
    sym = _find(d, "symmetric_units")
    assert sym.layer == 1 and sym.units == (0, 1, 2) and sym.values["distinct_units"] == 1
    assert _find(d, "identical_activations").layer == 1
    assert _find(d, "cancelling_gradients").values["ratio"] < 1e-12
    assert _find(d, "loss_at_chance").values["chance_loss"] == pytest.approx(0.25)
    text = str(d)
    assert "act as 1" in text and "Start from random weights" in text
    assert text.index("output_collapse") < text.index("symmetric_units")
    # softmax + cross-entropy from the same zero start: the same fixed point, the same causes
    d = _diagnose(_learner("softmax"), X2, [0, 1])
    assert {"symmetric_units", "identical_activations", "cancelling_gradients"} <= set(d.codes)
    assert "log 2 for 2 balanced classes" in _find(d, "loss_at_chance").evidence


def test_per_example_updates_do_not_cancel():
    d = _diagnose(_learner(), X2, Y2, batch_size=1)
    assert "cancelling_gradients" not in d.codes and "symmetric_units" in d.codes


def test_saturated_output_biases():
    net = _learner(zero=False)
    net.biases[-1][:] = [-8.0, 8.0]
    d = _diagnose(net, X2, Y2)
    sat = _find(d, "saturated_units")
    assert sat.severity == "problem" and sat.layer == 2 and sat.units == (0, 1)
    assert "(p - y) p (1 - p)" in sat.evidence
    net = _learner("sigmoid", "binary_cross_entropy", zero=False)
    net.biases[-1][:] = [-8.0, 8.0]
    assert _find(_diagnose(net, X2, Y2), "saturated_units").severity == "note"


def _blobs(n=200, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def test_saturated_hidden_units():
    X, y = _blobs()
    net = Network([8, 32, 2], activation="tanh", dtype="float64", seed=0)
    sat = _find(_diagnose(net, X * 1000, y), "saturated_units")  # unscaled inputs
    assert sat.layer == 1 and sat.severity == "problem" and len(sat.units) >= 16


def test_relu_biases_of_minus_ten_kill_every_unit():
    X, y = _blobs()
    net = Network([8, 32, 2], activation="relu", dtype="float64", seed=0)
    net.biases[0][:] = -10
    d = _diagnose(net, X, y)
    dead = _find(d, "dead_units")
    assert dead.severity == "problem" and dead.units == tuple(range(32))
    assert "identical_activations" in d.codes
    assert "vanishing_gradient" not in d.codes  # no gradient at all is reported as dead units


def test_vanishing_gradient_in_a_deep_sigmoid_stack():
    X, y = _blobs()
    net = Network([8] + [32] * 8 + [2], activation="sigmoid", dtype="float64", seed=0)
    van = _find(_diagnose(net, X, y), "vanishing_gradient")
    assert van.layer == 1
    norms = van.values["gradient_norms"]
    assert norms[0] < 1e-4 * max(norms)


def test_exploding_gradient():
    X, y = _blobs()
    net = Network([8, 32, 32, 2], activation="relu", dtype="float64", seed=0)
    assert "exploding_gradient" not in _diagnose(net, X, y, optimizer=fastnn.SGD(0.01)).codes
    ex = _find(_diagnose(net, X * 100, y, optimizer=fastnn.SGD(1.0)), "exploding_gradient")
    assert ex.values["step_ratio"] > 1 and "learning rate 1" in ex.evidence
    # without an optimizer: a gradient 1000 times the weights
    reg = Network([1, 1], output="identity", dtype="float64", seed=0)
    reg.params[:] = 0.001
    ex = _find(_diagnose(reg, [[1e4], [2e4]], [[1e4], [3e4]]), "exploding_gradient")
    assert ex.layer == 1


def test_identical_inputs_and_learning_rate_too_small():
    X, y = _blobs(10)
    d = _diagnose(Network([8, 4, 2], dtype="float64", seed=0), np.ones((10, 8)), y)
    assert {"identical_inputs", "output_collapse"} <= set(d.codes)
    assert "identical_activations" not in d.codes  # the data's fault, said once
    net = _learner("softmax", zero=False)
    fastnn.fit(net, X2, [0, 1], epochs=500, batch_size=2, optimizer=fastnn.SGD(0.001))
    d = _diagnose(net, X2, [0, 1], optimizer=fastnn.SGD(0.001))
    assert d.codes == ["output_collapse", "loss_at_chance"]
    assert "No cause was measured" in d.findings[0].advice
    assert "larger learning rate" in d.findings[0].advice


def test_non_finite_weights():
    net = _learner(zero=False)
    net.params[3] = np.nan
    d = _diagnose(net, X2, Y2)
    assert d.codes == ["non_finite_weights"] and not d


def test_a_healthy_digits_net_has_no_problem(digits_net):
    net, X, y = digits_net
    d = _diagnose(net, X, y, optimizer=fastnn.Adam(1e-3), batch_size=32)
    assert d, str(d)
    assert all(f.severity == "note" for f in d.findings)
    assert d.summary["rows"] == X.shape[0] and d.summary["loss"] < 0.2
    assert collapse_hint(net, X, y) is None


def test_large_and_memory_mapped_data_are_sampled(tmp_path, digits_net):
    net, X, y = digits_net
    big = np.concatenate([X] * 3)
    path = tmp_path / "X.npy"
    np.save(path, big)
    d = _diagnose(net, np.load(path, mmap_mode="r"), np.concatenate([y] * 3))
    assert d.summary["rows"] == MAX_ROWS and d.summary["rows_total"] == big.shape[0]


def test_bad_arguments_name_themselves():
    net = _learner(zero=False)
    with pytest.raises(TypeError, match="net must be a fastnn.Network"):
        fastnn.diagnose("net", X2, Y2)
    with pytest.raises(ValueError, match="X must be a 2-D array with at least one row"):
        fastnn.diagnose(net, np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(TypeError, match="optimizer"):
        fastnn.diagnose(net, X2, Y2, optimizer="sgd")
    with pytest.raises(ValueError, match="batch_size"):
        fastnn.diagnose(net, X2, Y2, batch_size=0)
    with pytest.raises(ValueError, match="X has 2 rows but y has 1"):
        fastnn.diagnose(net, X2, Y2[:1])
    with pytest.raises(ValueError, match="X contains NaN"):
        fastnn.diagnose(net, [[np.nan, 0.0], [0.0, 1.0]], Y2)


def test_fit_verbose_prints_a_hint_when_outputs_collapse(capsys):
    net = _learner("softmax")
    fastnn.fit(net, X2, [0, 1], epochs=5, batch_size=2, optimizer=fastnn.SGD(0.5), verbose=True)
    out = capsys.readouterr().out
    assert "nearly the same output for every input" in out and "fastnn.diagnose(net, X, y)" in out
    net = _learner("softmax", zero=False)
    fastnn.fit(net, X2, [0, 1], epochs=300, batch_size=2, optimizer=fastnn.SGD(0.5), verbose=True)
    assert "fastnn.diagnose" not in capsys.readouterr().out
    net = _learner("softmax")
    fastnn.fit(net, X2, [0, 1], epochs=5, batch_size=2, optimizer=fastnn.SGD(0.5))
    assert "fastnn.diagnose" not in capsys.readouterr().out  # only with verbose=True


def test_cli_diagnose(tmp_path, capsys, digits_net):
    net, X, y = digits_net
    labels = np.array(["zero", "one"])
    stuck = _learner("softmax")
    fastnn.save(stuck, tmp_path / "stuck.npz", classes=labels)
    np.savez(tmp_path / "two.npz", X=X2, y=np.array(["zero", "one"]))
    assert main(["diagnose", "--model", str(tmp_path / "stuck.npz"),
                 "--data", str(tmp_path / "two.npz"), "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "symmetric_units" in out and "cancelling_gradients" in out
    np.savez(tmp_path / "bad.npz", X=X2, y=np.array(["zero", "two"]))
    assert main(["diagnose", "--model", str(tmp_path / "stuck.npz"),
                 "--data", str(tmp_path / "bad.npz")]) == 1
    assert "labels ['two'] are not among the model's classes" in capsys.readouterr().err
    fastnn.save(net, tmp_path / "digits.npz", classes=np.arange(10))
    np.savez(tmp_path / "digits_data.npz", X=X, y=y)
    assert main(["diagnose", "--model", str(tmp_path / "digits.npz"),
                 "--data", str(tmp_path / "digits_data.npz")]) == 0
    assert "No problem found" in capsys.readouterr().out
