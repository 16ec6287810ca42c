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
