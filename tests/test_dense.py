"""Dense layer kernels vs fastnn.reference and vs central finite differences (float64); the
direct BLAS gemm they use vs NumPy."""
import numpy as np
import pytest

from fastnn import reference
from fastnn.kernels import activations as act
from fastnn.kernels._blas import gemm
from fastnn.kernels.dense import (
    SMALL_BACKWARD, SMALL_FORWARD, dense_backward, dense_backward_sgd, dense_forward,
)

NAMES = ["identity", "logistic", "tanh", "relu", "leaky_relu"]
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

# (n, d_in, d_out): degenerate sides, tiny nets, both sides of the loop/BLAS threshold, large.
SHAPES = [
    (1, 1, 1), (1, 7, 5), (9, 1, 4), (9, 6, 1), (4, 2, 3), (32, 64, 10),
    (4, 4, 4), (4, 4, 5), (4, 8, 8), (4, 8, 9),  # both sides of the two loop/BLAS thresholds
    (1, 300, 200), (300, 1, 150), (200, 150, 1), (128, 784, 256),
]
assert 4 * 4 * 4 <= SMALL_FORWARD < 4 * 4 * 5
assert 4 * 8 * 8 <= SMALL_BACKWARD < 4 * 8 * 9


def _layer(shape, dtype, seed=0):
    n, d_in, d_out = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_in)).astype(dtype)
    w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    delta = rng.standard_normal((n, d_out)).astype(dtype)
    return x, w, b, delta


def _assert_close(actual, expected, scale, rtol):
    """``|actual - expected| <= rtol * scale`` elementwise, ``scale`` = the sum of the absolute
    terms (the natural error bound of a dot product; a plain rtol fails where terms cancel)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    err = np.abs(actual.astype(np.float64) - expected)
    bad = np.argwhere(~(err <= rtol * scale))
    assert bad.size == 0, [(tuple(i), actual[tuple(i)], expected[tuple(i)]) for i in bad[:3]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_reference(shape, dtype):
    x, w, b, _ = _layer(shape, dtype)
    scale = np.abs(x) @ np.abs(w) + np.abs(b)  # every activation here is 1-Lipschitz
    for name in NAMES:
        out = np.full((shape[0], shape[2]), np.nan, dtype=dtype)
        dense_forward(x, w, b, act.activation_code(name), out)
        _assert_close(out, reference.dense_forward(x, w, b, name), scale, RTOL[dtype])


def _derivative_terms(a, name):
    """Size of the terms of act'(a): 1 - a^2 and a - a^2 cancel near saturation (where the
    kernel's fused multiply-add is more exact than the reference's rounded a*a)."""
    if name == "tanh":
        return 1 + a.astype(np.float64) ** 2
    if name == "logistic":
        return np.abs(a) + a.astype(np.float64) ** 2
    return np.abs(reference.activation_derivative(a, name))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward_matches_reference(shape, dtype):
    z_prev, w, b, delta = _layer(shape, dtype)
    rtol = RTOL[dtype]
    for name in NAMES:
        a_prev = reference.activation(z_prev, name)
        dw = np.full_like(w, np.nan)
        db = np.full_like(b, np.nan)
        delta_prev = np.full_like(a_prev, np.nan)
        dense_backward(a_prev, w, delta, act.activation_code(name), dw, db, delta_prev)
        ref_dw, ref_db, ref_delta_prev = reference.dense_backward(a_prev, w, delta, name)
        _assert_close(dw, ref_dw, np.abs(a_prev).T @ np.abs(delta), rtol)
        _assert_close(db, ref_db, np.abs(delta).sum(axis=0), rtol)
        deriv = _derivative_terms(a_prev, name)
        _assert_close(delta_prev, ref_delta_prev, (np.abs(delta) @ np.abs(w).T) * deriv, rtol)


@pytest.mark.parametrize("shape", [(5, 4, 3), (40, 30, 33)], ids=str)  # loops, BLAS
def test_backward_without_delta_prev(shape):
    """A first layer passes zero rows for delta_prev: only dw and db are written."""
    x, w, _, delta = _layer(shape, np.float64)
    dw, db = np.empty_like(w), np.empty(shape[2])
    dense_backward(x, w, delta, act.IDENTITY, dw, db, np.empty((0, shape[1])))
    np.testing.assert_allclose(dw, x.T @ delta, rtol=1e-12)
    np.testing.assert_allclose(db, delta.sum(axis=0), rtol=1e-12)


def _numeric_grad(f, v, h=1e-6):
    """Central differences of the scalar ``f()`` with respect to every entry of ``v`` (a view)."""
    g = np.empty(v.shape)
    for i in np.ndindex(v.shape):
        old = v[i]
        v[i] = old + h
        up = f()
        v[i] = old - h
        down = f()
        v[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def _rel_err(analytic, numeric):
    """Largest error relative to the largest gradient entry."""
    return np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-300)


@pytest.mark.parametrize("prev_name", NAMES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 4, 5), (6, 8, 9), (2, 30, 700)], ids=str)
def test_gradients_match_finite_differences(shape, name, prev_name):
    """Loss L = sum(act(act_prev(z_prev) @ w + b) * G): dL/dw, dL/db and dL/dz_prev."""
    z_prev, w, b, G = _layer(shape, np.float64, seed=3)
    z_prev[np.abs(z_prev) < 1e-3] = 0.5  # keep relu/leaky kinks out of the difference stencil
    code, prev_code = act.activation_code(name), act.activation_code(prev_name)
    out = np.empty_like(G)

    def loss():
        a_prev = z_prev.copy()
        act.activation_forward(a_prev, prev_code)
        dense_forward(a_prev, w, b, code, out)
        return float(np.sum(out * G))

    loss()
    a_prev = z_prev.copy()
    act.activation_forward(a_prev, prev_code)
    delta = G.copy()
    act.activation_backward(out, delta, code)  # dL/dz of this layer, from its output
    dw, db, delta_prev = np.empty_like(w), np.empty_like(b), np.empty_like(z_prev)
    dense_backward(a_prev, w, delta, prev_code, dw, db, delta_prev)

    assert _rel_err(db, _numeric_grad(loss, b)) < 1e-6
    assert _rel_err(delta_prev, _numeric_grad(loss, z_prev)) < 1e-6
    if shape[2] > 100:  # a BLAS-sized layer: check three columns of w, not all 21000 entries
        assert _rel_err(dw[:, :3], _numeric_grad(loss, w[:, :3])) < 1e-6
    else:
        assert _rel_err(dw, _numeric_grad(loss, w)) < 1e-6


# --------------------------------------------------------------------------- _blas.gemm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transb", [False, True])
@pytest.mark.parametrize("transa", [False, True])
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (3, 4, 5), (65, 33, 17), (2, 3, 0), (0, 3, 2)])
def test_gemm_matches_numpy(m, n, k, transa, transb, dtype):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    product = (a.T if transa else a).astype(np.float64) @ (b.T if transb else b).astype(np.float64)
    expected = -0.5 * product + 2.0 * c
    gemm(transa, transb, -0.5, a, b, 2.0, c)
    scale = 0.5 * np.abs(a.T if transa else a) @ np.abs(b.T if transb else b) + 2.0 * np.abs(expected)
    _assert_close(c, expected.astype(dtype), scale + 1e-30, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_beta_zero_ignores_old_values(dtype):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    c = np.full((2, 2), np.nan, dtype=dtype)
    gemm(False, True, 1.0, a, a, 0.0, c)
    np.testing.assert_array_equal(c, a @ a.T)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 2, 3), (4, 8, 9), (64, 50, 40)], ids=str)
def test_backward_sgd_equals_backward_then_step(shape, dtype):
    """The fused SGD step: delta_prev from the old w, then w = w_scale w - lr dw, b -= lr db."""
    z_prev, w, b, delta = _layer(shape, dtype, seed=5)
    a_prev = reference.activation(z_prev, "tanh")
    lr, w_scale = 0.1, 0.999
    dw, db, delta_prev = np.empty_like(w), np.empty_like(b), np.empty_like(a_prev)
    dense_backward(a_prev, w, delta, act.TANH, dw, db, delta_prev)

    w2, b2 = w.copy(), b.copy()
    db2, delta_prev2 = np.full_like(b, np.nan), np.full_like(a_prev, np.nan)
    dense_backward_sgd(a_prev, w2, b2, delta, act.TANH, lr, w_scale, db2, delta_prev2)
    rtol = RTOL[dtype]
    np.testing.assert_array_equal(delta_prev2, delta_prev)
    _assert_close(db2, db, np.abs(db), rtol)
    _assert_close(w2, (w_scale * w.astype(np.float64) - lr * dw).astype(dtype),
                  np.abs(w) + lr * np.abs(a_prev).T @ np.abs(delta), rtol)
    _assert_close(b2, (b - lr * db.astype(np.float64)).astype(dtype), np.abs(b) + lr * np.abs(db), rtol)

    w3, b3 = w.copy(), b.copy()  # first layer: no delta_prev
    dense_backward_sgd(a_prev, w3, b3, delta, act.TANH, lr, w_scale, db2, np.empty((0, shape[1]), dtype))
    np.testing.assert_array_equal(w3, w2)
    np.testing.assert_array_equal(b3, b2)
