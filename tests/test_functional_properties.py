"""Property tests (hypothesis) of the functional API on any input: each call ends in a result or
a ValueError/TypeError, never another exception; results have the documented shape and dtype
and, for finite input of any magnitude, agree with a float64 NumPy oracle."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastnn

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FLOATS = [np.float32, np.float64]
DTYPES = st.sampled_from(FLOATS + [np.float16, np.int8, np.int64, np.bool_, np.complex64,
                                   np.dtype("U3"), np.dtype(object)])
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-310, 1e-40, 3e38, 1e39, 1e300]


def _values(dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "U":
        return arrays(dtype, shape, elements=st.text("ab1.", max_size=3))
    if dtype.kind == "O":
        return arrays(dtype, shape, elements=st.sampled_from([1, "a", None, 2.5]))
    if dtype.kind in "fc":
        with warnings.catch_warnings():  # 1e39 -> inf in float32 is one of the cases
            warnings.simplefilter("ignore")
            special = [dtype.type(v) for v in SPECIAL]
        return arrays(dtype, shape, elements=st.sampled_from(special)
                      | st.floats(-1e3, 1e3, width=min(64, 8 * dtype.itemsize)))
    return arrays(dtype, shape)


@st.composite
def any_array(draw, shape=None):
    shape = draw(st.sampled_from([(), (0,), (3,), (0, 3), (2, 0), (2, 3), (4, 1), (2, 2, 2)])
                 if shape is None else st.just(shape))
    return draw(_values(draw(DTYPES), shape))


FUNCTIONS = {
    "softmax": lambda a, b, w: fastnn.softmax(a),
    "log_softmax": lambda a, b, w: fastnn.log_softmax(a),
    "softmax_backward": lambda a, b, w: fastnn.softmax_backward(a, b),
    "softmax_cross_entropy": lambda a, b, w: fastnn.softmax_cross_entropy(a, b, w),
    "sigmoid_cross_entropy": lambda a, b, w: fastnn.sigmoid_cross_entropy(a, b, w),
    "squared_error": lambda a, b, w: fastnn.squared_error(a, b, w),
}


@settings(SETTINGS, max_examples=200)
@given(st.sampled_from(sorted(FUNCTIONS)), any_array(), st.data())
def test_any_input_gives_a_result_or_a_value_or_type_error(name, a, data):
    same = data.draw(st.booleans())
    b = data.draw(any_array(a.shape if same else None))
    labels = data.draw(st.booleans()) and a.ndim == 2
    if labels:  # integer class labels, maybe out of range
        b = data.draw(arrays(np.int64, (a.shape[0],), elements=st.integers(-1, 4)))
    w = data.draw(st.none() | any_array((a.shape[0],) if a.ndim else (1,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's own casting warnings are not the question
        try:
            out = FUNCTIONS[name](a, b, w)
        except (ValueError, TypeError):
            return
    value = out[1] if isinstance(out, tuple) else out
    assert isinstance(value, np.ndarray) and value.shape == np.shape(a)
    want = np.float32 if a.dtype == np.float32 and (name != "softmax_backward"
                                                    or b.dtype == np.float32) else np.float64
    assert value.dtype == want
    if isinstance(out, tuple):
        assert isinstance(out[0], float)


# --------------------------------------------------------------------------- oracle
def _magnitude(dtype):
    return st.sampled_from([1.0, 30.0, 1e4, 1e30] if dtype == np.float32
                           else [1.0, 30.0, 1e4, 1e300])


@st.composite
def logits_case(draw):
    dtype = draw(st.sampled_from(FLOATS))
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    scale = draw(_magnitude(dtype))
    z = draw(arrays(np.float64, (n, k), elements=st.floats(-1, 1))) * scale
    weights = draw(st.none() | arrays(np.float64, (n,),
                                      elements=st.just(0.0) | st.floats(1e-3, 4.0)))
    if weights is not None and not weights.sum() > 0:
        weights = None
    return z.astype(dtype), weights


def _tol(dtype):
    return (1e-4, 1e-6) if dtype == np.float32 else (1e-11, 1e-12)


def _log_softmax64(z):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _close(got, want, dtype, scale=1.0):
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol,
                               atol=atol * scale + 4 * float(np.finfo(dtype).tiny))


@SETTINGS
@given(logits_case())
def test_softmax_and_log_softmax_match_the_float64_oracle(case):
    z, _ = case
    log_p = _log_softmax64(z)
    p, lp = fastnn.softmax(z), fastnn.log_softmax(z)
    assert p.dtype == lp.dtype == z.dtype
    _close(p, np.exp(log_p), z.dtype)
    _close(lp, log_p, z.dtype, scale=max(1.0, float(np.abs(z).max())))
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(lp))


def _weights(w, n):
    w = np.ones(n) if w is None else w
    return w / w.sum()


@SETTINGS
@given(logits_case(), st.data())
def test_cross_entropies_match_the_float64_oracle(case, data):
    z, w = case
    n, k = z.shape
    ww = _weights(w, n)
    scale = max(1.0, float(np.abs(z).max()))
    labels = data.draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    loss, dz = fastnn.softmax_cross_entropy(z, labels, w)
    log_p = _log_softmax64(z)
    onehot = np.eye(k)[labels]
    assert np.isfinite(loss) and dz.dtype == z.dtype
    _close(loss, -(ww * log_p[np.arange(n), labels]).sum(), z.dtype, scale)
    _close(dz, ww[:, None] * (np.exp(log_p) - onehot), z.dtype)
    y = data.draw(arrays(np.float64, (n, k), elements=st.floats(0.01, 1.0)))
    y = (y / y.sum(axis=1, keepdims=True)).astype(z.dtype)
    loss, dz = fastnn.softmax_cross_entropy(z, y, w)
    yy = y.astype(np.float64)
    _close(loss, -(ww * (yy * log_p).sum(axis=1)).sum(), z.dtype, scale)
    _close(dz, ww[:, None] * (np.exp(log_p) - yy), z.dtype)
    t = data.draw(arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0))).astype(z.dtype)
    loss, dz = fastnn.sigmoid_cross_entropy(z, t, w)
    zz, tt = z.astype(np.float64), t.astype(np.float64)
    with np.errstate(all="ignore"):  # (np.where evaluates both branches)
        rows = (np.maximum(zz, 0) - zz * tt + np.log1p(np.exp(-np.abs(zz)))).sum(axis=1)
        sig = np.where(zz >= 0, 1 / (1 + np.exp(-zz)), np.exp(zz) / (1 + np.exp(zz)))
    _close(loss, (ww * rows).sum(), z.dtype, scale)
    _close(dz, ww[:, None] * (sig - tt), z.dtype)


@SETTINGS
@given(logits_case(), st.data())
def test_squared_error_and_softmax_backward_match_the_float64_oracle(case, data):
    z, w = case
    n, k = z.shape
    ww = _weights(w, n)
    y = data.draw(arrays(np.float64, (n, k), elements=st.floats(-1, 1))).astype(z.dtype)
    loss, dp = fastnn.squared_error(z, y, w)
    r = z.astype(np.float64) - y.astype(np.float64)
    scale = max(1.0, float(np.abs(r).max()))
    with np.errstate(over="ignore", invalid="ignore"):
        want = (ww * (r * r).sum(axis=1)).sum() / 2
    if np.isfinite(want):  # accumulated in float64 even where float32 r * r overflows
        _close(loss, want, z.dtype, scale * scale)
    else:  # beyond float64 itself (a zero weight times inf is NaN in both)
        np.testing.assert_equal(loss, want)
    _close(dp, ww[:, None] * r, z.dtype, scale)
    p = fastnn.softmax(z)
    g = data.draw(arrays(np.float64, (n, k), elements=st.floats(-1, 1))).astype(z.dtype)
    pp, gg = p.astype(np.float64), g.astype(np.float64)
    want = pp * (gg - (gg * pp).sum(axis=1, keepdims=True))
    got = fastnn.softmax_backward(p, g)
    assert got.dtype == z.dtype
    _close(got, want, z.dtype, scale=k)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_squared_error_refuses_targets_that_are_not_finite_in_the_dtype_of_pred(bad):
    pred = np.zeros((2, 2), dtype=np.float32)
    targets = np.array([[0.0, 1.0], [bad, 0.0]])  # 1e39: finite in float64, inf in float32
    with pytest.raises(ValueError, match="targets: values must be finite in float32"):
        fastnn.squared_error(pred, targets)
    if np.isfinite(bad):
        loss, grad = fastnn.squared_error(pred.astype(np.float64), targets)
        assert np.isfinite(loss) and np.isfinite(grad).all()
