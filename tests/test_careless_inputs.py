"""Careless inputs end in a clear error naming the argument, before anything changes."""
import warnings

import numpy as np
import pytest

import fastnn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 4))
Y = RNG.integers(0, 3, 60)


def _fit(net, **kw):
    args = dict(epochs=1, batch_size=8, optimizer=fastnn.Adam(0.01))
    return fastnn.fit(net, X, Y, **{**args, **kw})


@pytest.mark.parametrize("kw, match", [
    (dict(seed=-5), r"seed must be None or an int >= 0, got -5"),
    (dict(seed=1.5), r"seed must be None or an int >= 0"),
    (dict(validation_data=(X[:0], Y[:0])), r"validation_data\[0\] must have at least one row"),
    (dict(sample_weight=np.zeros(60)), "sample_weight: the weights sum to zero"),
    (dict(sample_weight=-np.ones(60)), r"sample_weight must be >= 0, got a minimum of -1.0"),
])
def test_fit_rejects_before_training(kw, match):
    net = fastnn.Network([4, 5, 3], dtype="float64", seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match=match):
        _fit(net, **kw)
    assert net.params.tobytes() == before.tobytes()  # nothing trained


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Maximum iterations")
        yield


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("cw, sw, match", [
    ({0: -1.0, 1: 1.0, 2: 1.0}, None, "class_weight must map classes to finite weights >= 0, "
     "got -1.0 for class 0"),
    ({0: np.nan, 1: 1.0, 2: 1.0}, None, "class_weight must map .* got nan for class 0"),
    ({0: 0.0, 1: 0.0, 2: 0.0}, None, "class_weight: the weights sum to zero"),
    ({0: 1.0, 1: 1.0, 2: 0.0}, (Y == 2) * 1.0, "sample_weight times class_weight: the weights "
     "sum to zero"),
    (None, -np.ones(60), "sample_weight must be >= 0"),
    (None, np.zeros(60), "(?i)sample.weights? .*(non-zero|sum to zero)"),
])
def test_estimator_weights_are_checked(solver, cw, sw, match):
    pytest.importorskip("sklearn")
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, solver=solver,
                               class_weight=cw, random_state=0)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, Y, sample_weight=sw)
    assert not hasattr(clf, "network_") or clf.n_iter_ == 0


@pytest.mark.parametrize("make", [
    lambda: fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0),
    lambda: fastnn.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0),
])
def test_estimator_predictions_on_values_beyond_float32_raise(make):
    pytest.importorskip("sklearn")
    est = make().fit(X.astype(np.float32), Y)
    assert est.network_.dtype == np.float32
    big = np.vstack([X[:3], [[1e39, 0.0, 0.0, 0.0]]])  # finite in float64: passes validation
    methods = [est.predict] + [getattr(est, m) for m in ("predict_proba", "predict_log_proba")
                               if hasattr(est, m)]
    for method in methods:
        with pytest.raises(ValueError, match=r"too large for the network's float32 .*row 3"):
            method(big)
    with pytest.raises(ValueError, match="too large"):
        est.score(big, Y[:4])
    with pytest.raises(ValueError, match="NaN"):
        est.predict(np.vstack([X[:3], [[np.nan, 0.0, 0.0, 0.0]]]))
