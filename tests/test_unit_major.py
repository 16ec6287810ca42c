"""The pieces of the hidden-unit-split epoch kernel (fastnn.kernels.epoch_units) that have no
row-major twin elsewhere, against NumPy and the row kernels, and the compiled epoch shuffles
(fastnn.kernels.mt19937) against NumPy's own stream.

The whole kernel is compared with the NumPy reference trainer in test_engine.py.
"""
import numpy as np
import pytest
from sklearn.utils import shuffle

from fastnn.kernels import epoch_units as ku
from fastnn.kernels import softmax as ks
from fastnn.kernels.epoch import OUT_SIGMOID, OUT_SOFTMAX
from fastnn.kernels.mt19937 import draw_orders
from fastnn.kernels.transpose import transpose
from fastnn.sklearn._solvers import shuffled_block

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


# --------------------------------------------------------------------------- transpose
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(200, 64), (16, 16), (8, 8), (37, 64), (1, 5), (33, 17),
                                   (128, 784), (0, 3), (5, 0), (15, 15), (17, 33)])
def test_transpose_equals_numpy(shape, dtype):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = np.full(shape[::-1], np.nan, dtype=dtype)
    transpose(a, out)
    np.testing.assert_array_equal(out, a.T)


def test_transpose_of_views_into_a_larger_buffer():
    # the kernel's blocks are views of one workspace: nothing outside ``out`` is written
    buf = np.full(3 * 40 * 24, -1.0, dtype=np.float32)
    a = buf[:40 * 24].reshape(40, 24)
    a[:] = np.arange(40 * 24).reshape(40, 24)
    out = buf[40 * 24:2 * 40 * 24].reshape(24, 40)
    transpose(a, out)
    np.testing.assert_array_equal(out, a.T)
    assert (buf[2 * 40 * 24:] == -1.0).all()


# --------------------------------------------------------------------------- unit-major loss
def _logits(n, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, k)) * 4).astype(dtype)
    labels = rng.integers(0, k, n)
    w = (rng.random(n) + 0.1).astype(dtype)
    return z, labels, w


def _unit_major(z, labels, sw, out_kind=OUT_SOFTMAX, targets=None):
    """``_loss_t`` on ``zᵀ``; returns the loss and ``dz`` back in row-major order."""
    n, k = z.shape
    zt = np.ascontiguousarray(z.T)
    dzt = np.full_like(zt, np.nan)
    zs, dzs = np.empty_like(z), np.empty_like(z)
    mx, s = np.empty(n, z.dtype), np.empty(n, z.dtype)
    targets = np.zeros((0, k), z.dtype) if targets is None else targets
    loss = ku._loss_t(zt, dzt, zs, dzs, mx, s, labels, targets, sw, out_kind)
    return loss, dzt.T


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, k", [(1, 1), (1, 10), (37, 10), (200, 10), (300, 3), (130, 64),
                                  (5, 10_001)])
def test_unit_major_cross_entropy_equals_the_row_kernel(n, k, dtype, weighted):
    # (k >= 10,000 takes one log per row instead of the log of row products)
    z, labels, w = _logits(n, k, dtype)
    sw = w if weighted else np.zeros(0, dtype)
    dz = np.empty_like(z)
    expected = ks.softmax_cross_entropy_labels(z, labels, sw, dz)
    loss, dzt = _unit_major(z, labels, sw)
    # each row's sum of k exponentials runs class by class here, in SIMD partial sums in the
    # row kernel: float32 rounding grows with sqrt(k)
    rtol = RTOL[dtype] * (np.sqrt(k) if dtype == np.float32 else 1.0)
    np.testing.assert_allclose(loss, expected, rtol=rtol)
    np.testing.assert_allclose(dzt, dz, rtol=rtol, atol=rtol * np.abs(dz).max())


def test_unit_major_cross_entropy_of_a_product_that_would_overflow():
    # 2,000 rows whose row sums are all ~k: the product of all of them overflows float64, the
    # product of 64 does not
    n, k = 2000, 1000
    z = np.zeros((n, k))
    labels = np.arange(n) % k
    dz = np.empty_like(z)
    expected = ks.softmax_cross_entropy_labels(z, labels, np.zeros(0), dz)
    loss, dzt = _unit_major(z, labels, np.zeros(0))
    np.testing.assert_allclose(loss, np.log(k), rtol=1e-13)
    np.testing.assert_allclose(loss, expected, rtol=1e-13)
    np.testing.assert_allclose(dzt, dz, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("bad", [np.nan, np.inf, "all -inf"])
def test_unit_major_cross_entropy_hands_non_finite_rows_to_the_row_kernel(bad):
    z, labels, _ = _logits(30, 10, np.float64)
    if bad == "all -inf":
        z[7] = -np.inf
    else:
        z[7, 3] = bad
    zt = np.ascontiguousarray(z.T)
    ok, _ = ku._ce_labels_t(zt, labels, np.zeros(0), np.empty_like(zt), np.empty(30),
                            np.empty(30))
    assert not ok
    dz = np.empty_like(z)
    expected = ks.softmax_cross_entropy_labels(z, labels, np.zeros(0), dz)
    loss, dzt = _unit_major(z, labels, np.zeros(0))
    np.testing.assert_array_equal(np.isnan(dzt), np.isnan(dz))
    if np.isfinite(expected):
        np.testing.assert_allclose(loss, expected, rtol=1e-13)
    else:
        assert not np.isfinite(loss)


def test_other_outputs_go_through_the_row_kernels():
    z, _, w = _logits(40, 6, np.float64)
    y = (np.random.default_rng(1).random((40, 6)) > 0.5).astype(np.float64)
    dz = np.empty_like(z)
    expected = ks.sigmoid_cross_entropy(z, y, w, dz)
    loss, dzt = _unit_major(z, np.zeros(0, np.int64), w, OUT_SIGMOID, y)
    np.testing.assert_allclose(loss, expected, rtol=1e-13)
    np.testing.assert_allclose(dzt, dz, rtol=1e-12)


# --------------------------------------------------------------------------- shuffles
def _sklearn_orders(rs, sample_idx, epochs):
    out = []
    for _ in range(epochs):
        sample_idx = shuffle(sample_idx, random_state=rs)
        out.append(sample_idx)
    return np.array(out, dtype=np.int64).reshape(epochs, len(sample_idx))


@pytest.mark.parametrize("n, epochs", [(1437, 30), (1, 3), (2, 5), (3, 400), (700, 7),
                                       (100_000, 2), (5, 0)])
def test_compiled_shuffles_are_numpys(n, epochs):
    seed = n + epochs
    a, b = np.random.RandomState(seed), np.random.RandomState(seed)
    a.standard_normal(), b.standard_normal()  # a cached Gaussian is carried over untouched
    start = np.random.default_rng(seed).permutation(n)  # any starting order
    expected = _sklearn_orders(a, start, epochs)
    orders, last = draw_orders(b, start, epochs)
    np.testing.assert_array_equal(orders, expected)
    np.testing.assert_array_equal(last, expected[-1] if epochs else start)
    sa, sb = a.get_state(), b.get_state()
    np.testing.assert_array_equal(sa[1], sb[1])
    assert sa[2:] == sb[2:]
    assert a.standard_normal() == b.standard_normal() and a.randint(1 << 30) == b.randint(1 << 30)


def test_compiled_shuffles_continue_from_any_position():
    a, b = np.random.RandomState(3), np.random.RandomState(3)
    for draws in (1, 100, 623, 624, 625, 2000):  # positions inside and at the end of a block
        a.randint(10, size=draws), b.randint(10, size=draws)
        np.testing.assert_array_equal(draw_orders(b, np.arange(50), 4)[0],
                                      _sklearn_orders(a, np.arange(50), 4))


def test_a_random_state_of_another_bit_generator_is_shuffled_by_numpy():
    a = np.random.RandomState(np.random.PCG64(5))
    b = np.random.RandomState(np.random.PCG64(5))
    orders, last = shuffled_block(np.arange(20), b, 3)
    np.testing.assert_array_equal(orders, _sklearn_orders(a, np.arange(20), 3))
    assert a.randint(1 << 30) == b.randint(1 << 30)
