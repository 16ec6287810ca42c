"""Property tests (hypothesis) of softmax / log_softmax / the fused cross-entropy."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastnn
from fastnn import reference as ref

SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = st.sampled_from([np.float32, np.float64])


def eps(a):
    return float(np.finfo(a.dtype).eps)


def logits(dtype, bound, shape=None, **elements):
    shape = shape or st.tuples(st.integers(1, 12), st.integers(1, 40))
    return arrays(dtype, shape, elements=st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8,
                                                   **elements))


@st.composite
def finite_logits(draw, bound=None):
    dtype = draw(DTYPES)
    if bound is None:  # moderate up to the extreme magnitudes the kernels must handle
        bound = draw(st.sampled_from([30.0, 1e4] if dtype == np.float32 else [30.0, 1e300]))
    return draw(logits(dtype, bound))


@st.composite
def masked_logits(draw):
    z = draw(finite_logits())
    mask = draw(arrays(np.bool_, z.shape))
    return np.where(mask, -np.inf, z).astype(z.dtype)


@SETTINGS
@given(finite_logits())
def test_rows_are_probabilities_summing_to_one(z):
    p = fastnn.softmax(z)
    assert p.dtype == z.dtype
    assert np.all((p >= 0) & (p <= 1))
    k = z.shape[1]
    np.testing.assert_allclose(p.sum(axis=1, dtype=np.float64), 1, rtol=0, atol=4 * k * eps(z))


@SETTINGS
@given(finite_logits(bound=20.0), st.data())
def test_adding_a_constant_per_row_changes_nothing(z, data):
    c = data.draw(arrays(z.dtype, (z.shape[0], 1), elements=st.floats(-20, 20, width=32)))
    shifted = (z + c).astype(z.dtype)
    # z + c is rounded, so the exact logit differences move by ~eps * 40; p moves by that too
    tol = 200 * eps(z)
    np.testing.assert_allclose(fastnn.softmax(shifted), fastnn.softmax(z), rtol=tol, atol=tol)
    np.testing.assert_allclose(fastnn.log_softmax(shifted), fastnn.log_softmax(z),
                               rtol=tol, atol=tol)


@SETTINGS
@given(st.one_of(finite_logits(), masked_logits()))
def test_log_softmax_is_log_of_softmax_where_finite(z):
    p, lp = fastnn.softmax(z), fastnn.log_softmax(z)
    with np.errstate(divide="ignore"):
        logp = np.log(p.astype(np.float64))
    # p flushed to 0 below the smallest normal float: log_softmax stays finite there
    finite = p > 0
    np.testing.assert_allclose(lp[finite], logp[finite], rtol=4 * eps(z) * 8,
                               atol=8 * np.sqrt(z.shape[1]) * eps(z))
    assert np.all(lp[~finite] < np.log(np.finfo(z.dtype).tiny) + 1)


@SETTINGS
@given(st.one_of(finite_logits(), masked_logits()))
def test_extreme_and_masked_logits_match_the_float64_reference(z):
    z64 = z.astype(np.float64)
    want = ref.softmax(z64)
    tiny = np.finfo(z.dtype).tiny
    np.testing.assert_allclose(fastnn.softmax(z), want, rtol=1e-5 if z.dtype == np.float32 else 1e-12,
                               atol=4 * tiny)
    all_masked = np.all(np.isneginf(z), axis=1)
    np.testing.assert_array_equal(fastnn.softmax(z)[all_masked], z.dtype.type(1.0 / z.shape[1]))
    assert not np.isnan(fastnn.log_softmax(z)).any()


@SETTINGS
@given(st.one_of(finite_logits(), masked_logits()), st.data())
def test_fused_cross_entropy_matches_reference(z, data):
    n, k = z.shape
    labels = data.draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    loss, dz = fastnn.softmax_cross_entropy(z, labels)
    want_loss, want_dz = ref.softmax_cross_entropy(z.astype(np.float64), labels)
    rtol = 1e-5 if z.dtype == np.float32 else 1e-12
    if np.isinf(want_loss):  # a label on a masked logit
        assert loss == want_loss
    else:
        np.testing.assert_allclose(loss, want_loss, rtol=rtol, atol=rtol)
    assert np.all(np.isfinite(dz))
    np.testing.assert_allclose(dz, want_dz, rtol=rtol, atol=rtol / n)


@SETTINGS
@given(st.one_of(finite_logits(), masked_logits()), st.data())
def test_fused_cross_entropy_with_probability_targets_matches_reference(z, data):
    n, k = z.shape
    raw = data.draw(arrays(np.float64, (n, k), elements=st.floats(0, 1)))
    raw[:, 0] += 1e-3  # every row has some mass
    y = (raw / raw.sum(axis=1, keepdims=True)).astype(z.dtype)  # what the kernel sees
    loss, dz = fastnn.softmax_cross_entropy(z, y)
    want_loss, want_dz = ref.softmax_cross_entropy(z.astype(np.float64), y.astype(np.float64))
    rtol = 1e-5 if z.dtype == np.float32 else 1e-12
    if np.isinf(want_loss):  # mass on a masked logit
        assert loss == want_loss
    else:
        np.testing.assert_allclose(loss, want_loss, rtol=rtol, atol=rtol)
    assert np.all(np.isfinite(dz))
    np.testing.assert_allclose(dz, want_dz, rtol=rtol, atol=rtol / n)
