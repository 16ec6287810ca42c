"""The public softmax/loss functions: dtypes, shapes, results, and every documented error."""
import numpy as np
import pytest

import fastnn
from fastnn import reference as ref

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def data(dtype=np.float64, n=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)).astype(dtype)
    labels = rng.integers(0, k, n)
    y = rng.random((n, k)).astype(dtype)
    y /= y.sum(axis=1, keepdims=True)
    w = rng.random(n).astype(dtype) + 0.5
    return z, labels, y, w


def grad_close(actual, desired, dtype):
    np.testing.assert_allclose(actual, desired, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * np.abs(desired).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_match_reference_and_keep_dtype(dtype):
    z, labels, y, w = data(dtype)
    before = z.copy()
    for fn, oracle in [(fastnn.softmax, ref.softmax), (fastnn.log_softmax, ref.log_softmax)]:
        out = fn(z)
        assert out.dtype == dtype and out.shape == z.shape
        np.testing.assert_allclose(out, oracle(z), rtol=RTOL[dtype], atol=1e-6 * RTOL[dtype])
    p, g = ref.softmax(z), y
    out = fastnn.softmax_backward(p, g)
    assert out.dtype == dtype
    grad_close(out, ref.softmax_backward(p, g), dtype)
    cases = [(fastnn.softmax_cross_entropy, labels, ref.softmax_cross_entropy),
             (fastnn.softmax_cross_entropy, y, ref.softmax_cross_entropy),
             (fastnn.sigmoid_cross_entropy, y, ref.sigmoid_cross_entropy),
             (fastnn.squared_error, y, ref.squared_error)]
    for fn, targets, oracle in cases:
        for sw in (None, w):
            loss, grad = fn(z, targets, sample_weight=sw)
            want_loss, want_grad = oracle(z, targets, sw)
            assert isinstance(loss, float) and grad.dtype == dtype and grad.shape == z.shape
            np.testing.assert_allclose(loss, want_loss, rtol=RTOL[dtype])
            grad_close(grad, want_grad, dtype)
    np.testing.assert_array_equal(z, before)  # inputs are never written


def test_array_likes_and_integer_input_become_float64():
    assert fastnn.softmax([[1, 2], [3, 4]]).dtype == np.float64
    assert fastnn.log_softmax(np.array([[1, 2]], dtype=np.int8)).dtype == np.float64
    assert fastnn.softmax(np.ones((2, 2), dtype=np.float16)).dtype == np.float64
    np.testing.assert_allclose(fastnn.softmax([[1, 2, 3]]), ref.softmax([[1, 2, 3]]), rtol=1e-12)
    loss, grad = fastnn.softmax_cross_entropy([[0, 0], [0, 0]], [0, 1])
    assert grad.dtype == np.float64
    np.testing.assert_allclose(loss, np.log(2), rtol=1e-15)
    # float32 logits with float64 weights/targets stay float32
    z, labels, y, w = data(np.float32)
    assert fastnn.softmax_cross_entropy(z, y.astype(np.float64), w.astype(np.float64))[1].dtype \
        == np.float32
    # softmax_backward: float32 only when both inputs are float32
    assert fastnn.softmax_backward(z, y).dtype == np.float32
    assert fastnn.softmax_backward(z, y.astype(np.float64)).dtype == np.float64


def test_non_contiguous_input_is_accepted():
    z, labels, *_ = data(np.float64, n=5, k=8)
    zt = np.asfortranarray(z)[:, ::2]
    np.testing.assert_allclose(fastnn.softmax(zt), ref.softmax(z[:, ::2]), rtol=1e-12)
    loss, grad = fastnn.softmax_cross_entropy(zt, labels % 4)
    want_loss, want_grad = ref.softmax_cross_entropy(np.ascontiguousarray(z[:, ::2]), labels % 4)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    grad_close(grad, want_grad, np.float64)


def test_one_dimensional_input_is_one_row():
    v = np.array([1.0, 2.0, 3.0])
    for fn, oracle in [(fastnn.softmax, ref.softmax), (fastnn.log_softmax, ref.log_softmax)]:
        out = fn(v)
        assert out.shape == (3,)
        np.testing.assert_allclose(out, oracle(v[None])[0], rtol=1e-12)
    p, g = fastnn.softmax(v), np.array([1.0, -1.0, 0.5])
    out = fastnn.softmax_backward(p, g)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, ref.softmax_backward(p[None], g[None])[0], rtol=1e-12)


def test_single_output_targets_may_be_one_dimensional():
    z = np.array([[0.5], [-1.0], [2.0]])
    y = np.array([1.0, 0.0, 1.0])
    for fn, oracle in [(fastnn.sigmoid_cross_entropy, ref.sigmoid_cross_entropy),
                       (fastnn.squared_error, ref.squared_error)]:
        loss, grad = fn(z, y)
        want_loss, want_grad = oracle(z, y[:, None])
        np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_special_rows_through_the_public_functions():
    z = np.array([[-np.inf, -np.inf], [np.nan, 1.0], [1e300, -1e300]])
    p = fastnn.softmax(z)
    np.testing.assert_array_equal(p[0], [0.5, 0.5])
    assert np.isnan(p[1]).all()
    np.testing.assert_array_equal(p[2], [1.0, 0.0])
    np.testing.assert_allclose(fastnn.log_softmax(z)[0], -np.log(2), rtol=1e-15)


Z = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]

BAD = [
    # (function, args, kwargs, error type, message regex)
    ("softmax", (3.0,), {}, ValueError, r"z: expected a 1-D or 2-D array, got 0-D"),
    ("softmax", (np.ones((2, 2, 2)),), {}, ValueError, r"z: expected a 1-D or 2-D array, got 3-D"),
    ("log_softmax", (np.ones((2, 0)),), {}, ValueError, r"z: needs at least one column"),
    ("softmax", ([["a", "b"]],), {}, TypeError, r"z: expected real numbers, got dtype <U1"),
    ("softmax", (np.ones((2, 2), complex),), {}, TypeError, r"z: expected real numbers"),
    ("softmax_backward", (np.ones((2, 3)), np.ones((3, 2))), {}, ValueError,
     r"grad_p: shape \(3, 2\) does not match the shape \(2, 3\) of p"),
    ("softmax_backward", (np.ones(3), [["x"] * 3]), {}, TypeError, r"grad_p: expected real"),
    ("softmax_cross_entropy", ([1.0, 2.0], [0]), {}, ValueError,
     r"logits: expected a 2-D array \(n_samples, n_outputs\), got 1-D"),
    ("softmax_cross_entropy", (np.ones((0, 3)), np.zeros(0, int)), {}, ValueError,
     r"logits: needs at least one sample"),
    ("softmax_cross_entropy", (Z, [0, 3]), {}, ValueError, r"targets: label 3 out of range \[0, 3\)"),
    ("softmax_cross_entropy", (Z, [-1, 0]), {}, ValueError, r"targets: label -1 out of range \[0, 3\)"),
    ("softmax_cross_entropy", (Z, [0.0, 1.0]), {}, TypeError,
     r"targets: class labels must be integers, got dtype float64"),
    ("softmax_cross_entropy", (Z, [True, False]), {}, TypeError,
     r"targets: class labels must be integers, got dtype bool"),
    ("softmax_cross_entropy", (Z, [0, 1, 2]), {}, ValueError, r"targets: got 3 labels for 2 rows"),
    ("softmax_cross_entropy", (Z, np.zeros((2, 3, 1))), {}, ValueError,
     r"targets: expected class labels of shape \(2,\) or probability rows of shape \(2, 3\)"),
    ("softmax_cross_entropy", (Z, np.full((2, 2), 0.5)), {}, ValueError,
     r"targets: shape \(2, 2\) does not match the shape \(2, 3\)"),
    ("softmax_cross_entropy", (Z, [[0.5, 0.5, 0.0], [0.2, 0.2, 0.2]]), {}, ValueError,
     r"targets: probability rows must sum to 1 \(row 1 sums to 0.6\)"),
    ("softmax_cross_entropy", (Z, [[1.5, -0.5, 0.0], [1, 0, 0]]), {}, ValueError,
     r"targets: probabilities must be finite and non-negative \(row 0\)"),
    ("softmax_cross_entropy", (Z, [[np.nan, 0.5, 0.5], [1, 0, 0]]), {}, ValueError,
     r"targets: probabilities must be finite and non-negative \(row 0\)"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": [1.0]}, ValueError,
     r"sample_weight: expected shape \(2,\), one weight per sample, got \(1,\)"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": [[1.0, 1.0]]}, ValueError,
     r"sample_weight: expected shape \(2,\)"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": [1.0, -1.0]}, ValueError,
     r"sample_weight: weights must be non-negative"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": [1.0, np.inf]}, ValueError,
     r"sample_weight: weights must be finite"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": [np.nan, 1.0]}, ValueError,
     r"sample_weight: weights must be finite"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": [0.0, 0.0]}, ValueError,
     r"sample_weight: weights must have a positive sum"),
    ("softmax_cross_entropy", (Z, [0, 1]), {"sample_weight": ["a", "b"]}, TypeError,
     r"sample_weight: expected real numbers"),
    ("sigmoid_cross_entropy", (Z, [[0, 1, 2], [0, 0, 0]]), {}, ValueError,
     r"targets: values must lie in \[0, 1\]"),
    ("sigmoid_cross_entropy", (Z, [0, 1]), {}, ValueError,
     r"targets: shape \(2,\) does not match the shape \(2, 3\)"),
    ("sigmoid_cross_entropy", (Z, np.zeros((2, 3))), {"sample_weight": [1, 2, 3]}, ValueError,
     r"sample_weight: expected shape \(2,\)"),
    ("squared_error", ([1.0, 2.0], [1.0, 2.0]), {}, ValueError,
     r"pred: expected a 2-D array \(n_samples, n_outputs\), got 1-D"),
    ("squared_error", (Z, np.zeros((3, 3))), {}, ValueError,
     r"targets: shape \(3, 3\) does not match the shape \(2, 3\)"),
    ("squared_error", (Z, [["a"] * 3] * 2), {}, TypeError, r"targets: expected real numbers"),
]


@pytest.mark.parametrize("name, args, kwargs, error, match", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_raises_a_named_error(name, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(fastnn, name)(*args, **kwargs)
