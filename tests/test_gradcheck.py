"""check_gradients as a user tool: return type, subsets, float32 nets, argument errors."""
import numpy as np
import pytest

import fastnn
from fastnn.network import Network


def _data(n=6):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)), rng.integers(0, 2, size=n)


def test_report_shape_and_values():
    net = Network([3, 5, 4, 2], activation="tanh", dtype="float64", seed=0)
    X, y = _data()
    report = fastnn.check_gradients(net, X, y, alpha=0.1)
    assert isinstance(report, list) and len(report) == 3
    assert all(set(layer) == {"W", "b"} for layer in report)
    assert all(isinstance(v, float) and 0 <= v < 1e-7 for layer in report for v in layer.values())


def test_float32_network_is_checked_in_float64_and_not_modified():
    net = Network([3, 4, 2], activation="logistic", seed=0)
    before = net.params.copy()
    X, y = _data()
    report = fastnn.check_gradients(net, X, y)
    assert max(max(layer.values()) for layer in report) < 1e-3
    np.testing.assert_array_equal(net.params, before)


def test_max_checks_limits_the_work(monkeypatch):
    net = Network([3, 20, 2], dtype="float64", seed=0)
    X, y = _data()
    calls = []
    orig = Network.loss_and_grad
    monkeypatch.setattr(Network, "loss_and_grad",
                        lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    fastnn.check_gradients(net, X, y, max_checks=3)
    # 1 analytic call + 2 per checked entry: W0 3, b0 3, W1 3, b1 2 (only 2 entries)
    assert len(calls) == 1 + 2 * (3 + 3 + 3 + 2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=0), "eps"), (dict(max_checks=0), "max_checks"), (dict(alpha=-1), "alpha"),
])
def test_argument_errors(kwargs, match):
    net = Network([3, 2], seed=0)
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        fastnn.check_gradients(net, X, y, **kwargs)


# --------------------------------------------------------------------------- your own backprop
X2 = np.array([[1.0, 0.0], [0.0, 1.0]])
Y2 = np.eye(2)


def learner_backprop(params, bug=False):
    """A from-scratch 2-3-2 sigmoid network with squared error, L = sum ||p - y||^2 / (2n)."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n = X2.shape[0]
    a1 = 1 / (1 + np.exp(-(X2 @ W1 + b1)))
    p = 1 / (1 + np.exp(-(a1 @ W2 + b2)))
    loss = 0.5 * np.sum((p - Y2) ** 2) / n
    d2 = (p - Y2) * p * (1 - p) / n  # dL/dz at the output, one row per example
    d1 = (d2 @ W2.T) * a1 * (1 - a1)
    if bug:  # averaging before the outer product: only right when every a1 row is the same
        dW2 = np.outer(a1.mean(axis=0), d2.sum(axis=0))
    else:
        dW2 = a1.T @ d2
    grad = {"W1": X2.T @ d1, "b1": d1.sum(axis=0), "W2": dW2, "b2": d2.sum(axis=0)}
    return loss, grad


def _learner_params(seed=0, zero=False):
    rng = np.random.default_rng(seed)
    shapes = {"W1": (2, 3), "b1": (3,), "W2": (3, 2), "b2": (2,)}
    return {k: np.zeros(s) if zero else rng.uniform(-1, 1, s) for k, s in shapes.items()}


def test_a_users_backprop_passes_and_a_planted_bug_is_caught():
    params = _learner_params()
    before = {k: v.copy() for k, v in params.items()}
    good = fastnn.check_gradients(learner_backprop, params)
    assert set(good) == {"W1", "b1", "W2", "b2"}
    assert max(good.values()) < 1e-7, good
    bad = fastnn.check_gradients(lambda p: learner_backprop(p, bug=True), params)
    assert bad["W2"] > 0.1, bad  # the planted bug, in the block it lives in
    assert max(bad["W1"], bad["b1"], bad["b2"]) < 1e-7
    for k in params:  # the user's arrays are never touched
        np.testing.assert_array_equal(params[k], before[k])


def test_one_array_lists_float32_and_a_function_that_modifies_its_input():
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 7

    def quadratic(v):
        loss, g = 0.5 * float(np.sum(v ** 3)) / 3, 0.5 * v ** 2
        v *= 2  # a careless f: the check must not depend on what it does to its input
        return loss, g

    report = fastnn.check_gradients(quadratic, w)
    assert set(report) == {"params"} and report["params"] < 1e-8
    assert w[0, 1] == np.float32(1 / 7)
    pair = fastnn.check_gradients(lambda ps: (float(ps[0] @ ps[1]), [ps[1], ps[0]]),
                                  [np.ones(3), np.arange(3.0)], max_checks=2)
    assert set(pair) == {0, 1} and max(pair.values()) < 1e-8


def test_a_symmetric_start_warns_instead_of_a_perfect_score():
    with pytest.warns(fastnn.gradcheck.GradientCheckWarning, match="symmetric start"):
        report = fastnn.check_gradients(learner_backprop, _learner_params(zero=True))
    assert all(np.isnan(v) for v in report.values())
    net = Network([2, 3, 2], activation="sigmoid", output="softmax", dtype="float64", seed=0)
    net.params[:] = 0
    with pytest.warns(fastnn.gradcheck.GradientCheckWarning, match="zeros with zeros"):
        report = fastnn.check_gradients(net, X2, np.array([0, 1]))
    assert all(np.isnan(v) for layer in report for v in layer.values())


def test_bad_arguments_name_themselves():
    net = Network([2, 3, 2], dtype="float64", seed=0)
    with pytest.raises(TypeError, match="f must be a fastnn.Network or a callable"):
        fastnn.check_gradients("net", X2, [0, 1])
    with pytest.raises(ValueError, match="X must have at least one row"):
        fastnn.check_gradients(net, np.zeros((0, 2)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="X must have at least one row"):
        net.loss_and_grad(np.zeros((0, 2)), np.zeros(0, dtype=int))
    with pytest.raises(TypeError, match="expected X and y"):
        fastnn.check_gradients(net, X2)
    with pytest.raises(TypeError, match="expected one params argument"):
        fastnn.check_gradients(learner_backprop)
    with pytest.raises(TypeError, match="grad must be a dict with the keys"):
        fastnn.check_gradients(lambda p: (1.0, {"W1": p["W1"]}), _learner_params())
    with pytest.raises(ValueError, match=r"grad\['W'\] has shape \(3,\)"):
        fastnn.check_gradients(lambda p: (1.0, {"W": np.ones(3)}), {"W": np.ones(2)})
    with pytest.raises(TypeError, match="f must return"):
        fastnn.check_gradients(lambda p: 1.0, np.ones(2))
    with pytest.raises(TypeError, match=r"params\['W'\] must hold real numbers"):
        fastnn.check_gradients(lambda p: (1.0, p), {"W": np.array(["a"])})
