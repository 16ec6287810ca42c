"""fastnn.kernels.softmax against fastnn.reference and against central finite differences."""
import numpy as np
import pytest

from fastnn import reference as ref
from fastnn.kernels import losses as L
from fastnn.kernels import softmax as K

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
# Values below the smallest normal float are flushed to 0 by the kernels.
ATOL = {np.float32: 1e-37, np.float64: 1e-306}
# log-probabilities near 0 (a dominant class) carry the absolute rounding error of log(sum exp),
# a few eps in either implementation, so they are compared with an absolute tolerance too.
LOG_ATOL = {np.float32: 2e-6, np.float64: 4e-15}
# 1x1, 1xn, nx1, small, and two large shapes.
SHAPES = [(1, 1), (1, 17), (23, 1), (7, 3), (64, 10), (2100, 130), (8000, 37)]


def close(actual, desired, dtype, atol=None):
    atol = ATOL[dtype] if atol is None else atol
    np.testing.assert_allclose(actual, desired, rtol=RTOL[dtype], atol=atol)


def close_grad(actual, desired, dtype):
    """Gradients ``c (p - y)`` are differences: their error is relative to the row scale ``c``,
    so entries are compared with ``rtol`` plus ``rtol`` times the largest entry."""
    np.testing.assert_allclose(actual, desired, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * np.nanmax(np.abs(desired)))


def make(shape, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(shape) * scale).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    y = rng.random(shape).astype(dtype)
    y /= y.sum(axis=1, keepdims=True)
    w = (rng.random(shape[0]) + 0.1).astype(dtype)
    return z, labels, y, w


def unweighted(dtype):
    return np.empty(0, dtype=dtype)


# --------------------------------------------------------------------------- vs reference
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_and_log_softmax_match_reference(shape, dtype):
    z, *_ = make(shape, dtype)
    out = np.full_like(z, np.nan)
    K.softmax(z, out)
    close(out, ref.softmax(z), dtype)
    K.log_softmax(z, out)
    close(out, ref.log_softmax(z), dtype, atol=LOG_ATOL[dtype])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy_matches_reference(shape, dtype, weighted):
    z, labels, y, w = make(shape, dtype)
    sw = w if weighted else unweighted(dtype)
    dz = np.empty_like(z)
    for targets, kernel in [(labels, K.softmax_cross_entropy_labels),
                            (y, K.softmax_cross_entropy_probs)]:
        loss = kernel(z, targets, sw, dz)
        want_loss, want_dz = ref.softmax_cross_entropy(z, targets, w if weighted else None)
        assert isinstance(loss, float)
        np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
        close_grad(dz, want_dz, dtype)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_ce_and_squared_error_match_reference(shape, dtype, weighted):
    z, _, y, w = make(shape, dtype)
    sw = w if weighted else unweighted(dtype)
    dz = np.empty_like(z)
    for kernel, oracle in [(L.sigmoid_cross_entropy, ref.sigmoid_cross_entropy),
                           (L.squared_error, ref.squared_error)]:
        loss = kernel(z, y, sw, dz)
        want_loss, want_dz = oracle(z, y, w if weighted else None)
        np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
        close_grad(dz, want_dz, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_backward_matches_reference(shape, dtype):
    z, _, _, _ = make(shape, dtype)
    p = ref.softmax(z)
    g = make(shape, dtype, seed=1)[0]
    out = np.empty_like(p)
    K.softmax_backward(p, g, out)
    close_grad(out, ref.softmax_backward(p, g), dtype)


# --------------------------------------------------------------------------- in place
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (2100, 130)])
def test_outputs_may_alias_inputs(shape, dtype):
    z, labels, y, w = make(shape, dtype)
    for kernel, oracle in [(K.softmax, ref.softmax), (K.log_softmax, ref.log_softmax)]:
        buf = z.copy()
        kernel(buf, buf)
        close(buf, oracle(z), dtype, atol=LOG_ATOL[dtype])
    cases = [(K.softmax_cross_entropy_labels, labels, ref.softmax_cross_entropy),
             (K.softmax_cross_entropy_probs, y, ref.softmax_cross_entropy),
             (L.sigmoid_cross_entropy, y, ref.sigmoid_cross_entropy),
             (L.squared_error, y, ref.squared_error)]
    for kernel, targets, oracle in cases:
        buf = z.copy()
        loss = kernel(buf, targets, w, buf)  # the training engine computes dz over the logits
        want_loss, want_dz = oracle(z, targets, w)
        np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
        close_grad(buf, want_dz, dtype)
    p, g = ref.softmax(z), make(shape, dtype, seed=1)[0]
    want = ref.softmax_backward(p, g)
    for which in ("p", "g"):
        pp, gg = p.copy(), g.copy()
        K.softmax_backward(pp, gg, pp if which == "p" else gg)
        close_grad(pp if which == "p" else gg, want, dtype)


# --------------------------------------------------------------------------- finite differences
def central_differences(f, z, h=1e-6):
    grad = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        grad[idx] = (f(zp) - f(zm)) / (2 * h)
    return grad


def max_rel_err(actual, desired):
    return np.max(np.abs(actual - desired)) / np.max(np.abs(desired))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (6, 4)])
def test_fused_loss_gradients_match_finite_differences(shape):
    z, labels, y, w = make(shape, np.float64, seed=3, scale=1.0)
    for sw in (unweighted(np.float64), w):
        cases = [(K.softmax_cross_entropy_labels, labels), (K.softmax_cross_entropy_probs, y),
                 (L.sigmoid_cross_entropy, y), (L.squared_error, y)]
        for kernel, targets in cases:
            dz = np.empty_like(z)
            kernel(z, targets, sw, dz)

            def loss(zz):
                return kernel(zz, targets, sw, np.empty_like(zz))

            fd = central_differences(loss, z)
            if np.all(fd == 0):  # e.g. softmax CE with one class: constant loss
                np.testing.assert_allclose(dz, 0, atol=1e-15)
            else:
                assert max_rel_err(dz, fd) < 1e-6, kernel.__name__


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 4)])
def test_softmax_backward_matches_finite_differences(shape):
    z, _, _, _ = make(shape, np.float64, seed=4, scale=1.0)
    g = make(shape, np.float64, seed=5)[0]
    p = np.empty_like(z)
    K.softmax(z, p)
    out = np.empty_like(z)
    K.softmax_backward(p, g, out)

    def objective(zz):  # L(z) = <g, softmax(z)>, so dL/dz = J^T g
        pz = np.empty_like(zz)
        K.softmax(zz, pz)
        return float(np.sum(g * pz))

    fd = central_differences(objective, z)
    if shape[1] == 1:
        np.testing.assert_allclose(out, 0, atol=1e-15)
        np.testing.assert_allclose(fd, 0, atol=1e-9)
    else:
        assert max_rel_err(out, fd) < 1e-6


# --------------------------------------------------------------------------- special values
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_stay_finite_and_exact(dtype):
    big = 1e4 if dtype == np.float32 else 1e300
    rng = np.random.default_rng(7)
    z = (rng.uniform(-1, 1, (50, 9)) * big).astype(dtype)
    z[:, 0] = big  # every row holds the extreme value
    labels = rng.integers(0, 9, 50)
    z64 = z.astype(np.float64) if dtype == np.float32 else z
    out = np.empty_like(z)
    K.softmax(z, out)
    assert np.all(np.isfinite(out))
    close(out, ref.softmax(z64), dtype)
    K.log_softmax(z, out)
    ok = np.isfinite(ref.log_softmax(z64))
    assert np.all(np.isfinite(out[ok]))
    close(out, ref.log_softmax(z64), dtype)
    loss = K.softmax_cross_entropy_labels(z, labels, unweighted(dtype), out)
    want_loss, want_dz = ref.softmax_cross_entropy(z64, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(out))
    np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
    close_grad(out, want_dz, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_nan_and_all_masked_rows(dtype):
    z = np.array([[1.0, -np.inf, 2.0, -np.inf],   # masked entries: probability 0
                  [-np.inf] * 4,                   # all masked: uniform, log k
                  [1.0, np.nan, 2.0, 3.0],         # NaN: NaN row
                  [0.5, 0.25, 0.0, -1.0]], dtype=dtype)
    p, lp = np.empty_like(z), np.empty_like(z)
    K.softmax(z, p)
    K.log_softmax(z, lp)
    np.testing.assert_array_equal(p[0, [1, 3]], 0)
    np.testing.assert_array_equal(lp[0, [1, 3]], -np.inf)
    np.testing.assert_allclose(p[1], 0.25, rtol=RTOL[dtype])
    np.testing.assert_allclose(lp[1], -np.log(4), rtol=RTOL[dtype])
    assert np.all(np.isnan(p[2])) and np.all(np.isnan(lp[2]))
    for row in (0, 1, 3):
        close(p[row], ref.softmax(z[row:row + 1])[0], dtype)
        close(lp[row], ref.log_softmax(z[row:row + 1])[0], dtype)
    clean = z[[0, 1, 3]]
    labels = np.array([2, 1, 0])
    dz = np.empty_like(clean)
    loss = K.softmax_cross_entropy_labels(clean, labels, unweighted(dtype), dz)
    want_loss, want_dz = ref.softmax_cross_entropy(clean, labels)
    np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
    close_grad(dz, want_dz, dtype)
    y = np.full(clean.shape, 0.25, dtype=dtype)
    y[0] = [0.5, 0, 0.5, 0]  # zero targets on masked logits contribute 0, not NaN
    loss = K.softmax_cross_entropy_probs(clean, y, unweighted(dtype), dz)
    want_loss, want_dz = ref.softmax_cross_entropy(clean, y)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
    close_grad(dz, want_dz, dtype)
    # a NaN logit gives a NaN loss and NaN gradient row, nothing raises
    assert np.isnan(K.softmax_cross_entropy_labels(z, np.zeros(4, np.int64),
                                                   unweighted(dtype), np.empty_like(z)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_label_on_a_masked_logit_gives_infinite_loss(dtype):
    z = np.array([[-np.inf, 0.0, 1.0]], dtype=dtype)
    dz = np.empty_like(z)
    assert K.softmax_cross_entropy_labels(z, np.array([0]), unweighted(dtype), dz) == np.inf
    assert np.all(np.isfinite(dz))


@pytest.mark.parametrize("dtype", DTYPES)
def test_underflow_flushes_to_zero_not_subnormal(dtype):
    z = np.array([[0.0, -200.0 if dtype == np.float32 else -1000.0]], dtype=dtype)
    p = np.empty_like(z)
    K.softmax(z, p)
    assert p[0, 1] == 0 and p[0, 0] == 1
    # exp(z - m) is normal but p = exp(z - m) / sum, and c p in the gradient, would be subnormal
    deep = -85.5 if dtype == np.float32 else -706.0
    z = np.zeros((3, 1000), dtype=dtype)
    z[:, 1:500] = np.linspace(deep, 0, 499)
    tiny = np.finfo(dtype).tiny
    p = np.empty_like(z)
    K.softmax(z, p)
    assert np.any(ref.softmax(z) < tiny) and np.all((p == 0) | (p >= tiny))
    close(p, ref.softmax(z), dtype)
    for kernel, targets in [(K.softmax_cross_entropy_labels, np.array([0, 1, 2])),
                            (K.softmax_cross_entropy_probs, np.full(z.shape, 1 / 1000, dtype))]:
        kernel(z, targets, unweighted(dtype), p)
        assert np.all((p == 0) | (np.abs(p) >= tiny))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tied_huge_logits_keep_log_sum_exp_exact(dtype):
    # (z - m) - log s must not become z - (m + log s): log 2 would be lost against m
    big = dtype(512.0 if dtype == np.float32 else 1e300)
    z = np.array([[big, big], [big, -big]], dtype=dtype)
    out = np.empty_like(z)
    K.log_softmax(z, out)
    np.testing.assert_allclose(out[0], -np.log(2), rtol=RTOL[dtype])
    assert out[1, 0] == 0
    loss = K.softmax_cross_entropy_labels(z, np.array([0, 0]), unweighted(dtype), out)
    np.testing.assert_allclose(loss, np.log(2) / 2, rtol=RTOL[dtype])
    y = np.array([[0.5, 0.5], [1.0, 0.0]], dtype=dtype)
    loss = K.softmax_cross_entropy_probs(z, y, unweighted(dtype), out)
    np.testing.assert_allclose(loss, np.log(2) / 2, rtol=RTOL[dtype])
