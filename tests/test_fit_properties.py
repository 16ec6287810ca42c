"""Property tests (hypothesis) of ``fastnn.fit`` and the estimators' ``fit`` on careless input:
every call ends in a trained network (finite parameters that predict) or a ValueError /
TypeError, never another exception, a crash or a hang.  (A diverging learning rate ends in
:class:`fastnn.train.NonFiniteLossError`, a ValueError subclass is not promised there: it is a
FloatingPointError, and the network keeps usable weights.)"""
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastnn
from fastnn.train import NonFiniteLossError

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-310, 3e38, 1e39, 1e300]


def _values(dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            special = [dtype.type(v) for v in SPECIAL]
        return arrays(dtype, shape, elements=st.sampled_from(special) | st.floats(-10, 10,
                      width=8 * dtype.itemsize))
    if dtype.kind == "U":
        return arrays(dtype, shape, elements=st.text("ab1", max_size=2))
    return arrays(dtype, shape)


@st.composite
def inputs(draw):
    n = draw(st.sampled_from([0, 1, 5, 12]))
    d = draw(st.sampled_from([3, 2, 0]))  # the network takes 3 features
    x_dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.dtype("U2")]))
    X = draw(_values(x_dtype, (n, d)) if draw(st.booleans()) else st.just(
        np.random.default_rng(n).normal(size=(n, d))))
    if X.dtype.kind in "fi" and draw(st.booleans()):  # read-only memory (np.frombuffer)
        X = np.frombuffer(X.tobytes(), dtype=X.dtype).reshape(X.shape)
    y_kind = draw(st.sampled_from(["labels", "floats", "probs", "bad_shape", "strings"]))
    m = n if draw(st.integers(0, 4)) else max(0, n - 1)  # sometimes one row short
    if y_kind == "labels":
        y = draw(arrays(np.int64, (m,), elements=st.integers(-1, 3)))
    elif y_kind == "floats":
        y = draw(_values(np.float64, (m,)))
    elif y_kind == "probs":
        y = draw(_values(np.float64, (m, 3)))
    elif y_kind == "bad_shape":
        y = np.zeros((m, 2, 2))
    else:
        y = np.array(["a"] * m)
    weights = draw(st.sampled_from([None, "ones", "special"]))
    if weights == "ones":
        sw = np.ones(m)
    elif weights == "special":
        sw = draw(_values(np.float64, (m,)))
    else:
        sw = None
    batch = draw(st.sampled_from([1, 4, 100, 0, -3, 2.5]))
    lr = draw(st.sampled_from([1e-3, 0.5, 1e30]))
    return X, y, sw, batch, lr


def _usable(net):
    assert np.isfinite(net.params).all()
    p = net.predict_proba(np.zeros((2, net.layer_sizes[0])))
    assert np.isfinite(p).all()


@SETTINGS
@given(inputs(), st.sampled_from(["float32", "float64"]))
def test_fit_ends_in_a_network_or_a_clear_error(case, dtype):
    X, y, sw, batch, lr = case
    net = fastnn.Network([3, 4, 3], dtype=dtype, seed=0)
    try:
        fastnn.fit(net, X, y, epochs=2, batch_size=batch, optimizer=fastnn.SGD(lr),
                   sample_weight=sw, seed=0)
    except (ValueError, TypeError, NonFiniteLossError):
        pass
    _usable(net)  # after success or failure alike


@SETTINGS
@given(inputs())
def test_estimator_fit_ends_in_a_model_or_a_clear_error(case):
    from fastnn import MLPClassifier

    X, y, sw, batch, lr = case
    clf = MLPClassifier((4,), max_iter=3, random_state=0,
                        batch_size=batch if isinstance(batch, int) else "auto",
                        learning_rate_init=lr if lr < 1e10 else 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clf.fit(X, y, sample_weight=sw)
        except (ValueError, TypeError):
            return
    _usable(clf.network_)
