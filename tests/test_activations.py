"""Activation kernels vs fastnn.reference vs central finite differences; the vectorisable exp."""
import numba
import numpy as np
import pytest

from fastnn import reference
from fastnn.kernels import activations as act
from fastnn.kernels._math import exp, expm1

NAMES = ["identity", "logistic", "sigmoid", "tanh", "relu", "leaky_relu"]
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SHAPES = [(1, 1), (1, 17), (23, 1), (37, 19), (130, 257)]


def _z(shape, dtype, seed=0):
    """Normal values spread over several scales, plus 0, tiny and saturating entries."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * rng.choice([0.01, 1.0, 5.0, 30.0], size=shape)
    special = [0.0, 1e-9, -1e-9, 0.5, -0.5, 20.0, -20.0, 1000.0, -1000.0]
    flat = z.reshape(-1)
    flat[: min(len(special), flat.size)] = special[: flat.size]
    return z.astype(dtype)


def _atol(dtype):
    # The kernels flush results below the smallest normal float to 0 (module _math).
    return 1e4 * np.finfo(dtype).tiny


def test_codes_and_registry():
    assert (act.IDENTITY, act.LOGISTIC, act.TANH, act.RELU, act.LEAKY_RELU) == (0, 1, 2, 3, 4)
    assert act.LEAKY_SLOPE == reference.LEAKY_SLOPE == 0.01
    assert act.ACTIVATIONS["sigmoid"] == act.ACTIVATIONS["logistic"] == act.LOGISTIC
    assert set(act.ACTIVATIONS) == {"identity", "logistic", "sigmoid", "tanh", "relu", "leaky_relu"}
    for name, code in act.ACTIVATIONS.items():
        assert act.activation_code(name) == code


@pytest.mark.parametrize("bad", ["softplus", "ReLU", "", None, 3])
def test_activation_code_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match=r"activation must be one of 'identity', 'logistic', "
                                         r"'sigmoid', 'tanh', 'relu', 'leaky_relu'; got"):
        act.activation_code(bad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_reference(name, shape, dtype):
    z = _z(shape, dtype)
    a = z.copy()
    act.activation_forward(a, act.activation_code(name))
    assert a.dtype == dtype
    with np.errstate(over="ignore"):
        expected = reference.activation(z, name)
    np.testing.assert_allclose(a, expected, rtol=RTOL[dtype], atol=_atol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_reference(name, shape, dtype):
    code = act.activation_code(name)
    a = _z(shape, dtype)
    act.activation_forward(a, code)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    delta = g.copy()
    act.activation_backward(a, delta, code)
    expected = g * reference.activation_derivative(a, name)
    # Tolerance relative to the size of the terms: 1 - a*a and a*(1 - a) cancel near
    # saturation, where the kernel's fused multiply-add is more exact than the reference.
    scale = np.abs(g) * (1 + np.abs(a)) ** 2
    assert np.all(np.abs(delta - expected) <= RTOL[dtype] * scale)
    np.testing.assert_array_equal(np.isnan(delta), np.isnan(expected))


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(name):
    """act'(z) computed from the output a equals central differences of the forward kernel."""
    code = act.activation_code(name)
    z = np.linspace(-4.0, 4.0, 161).reshape(7, 23)
    z = z[np.abs(z) > 1e-3].reshape(1, -1)  # away from the relu kinks
    h = 1e-6

    def forward(v):
        out = v.copy()
        act.activation_forward(out, code)
        return out

    analytic = np.ones_like(z)
    act.activation_backward(forward(z), analytic, code)
    numeric = (forward(z + h) - forward(z - h)) / (2 * h)
    rel = np.abs(analytic - numeric) / np.maximum(np.abs(numeric), 1e-300)  # relu: 0 vs 0
    assert rel.max() < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturation_is_exact_and_nan_propagates(dtype):
    z = np.array([[1e4, -1e4, np.inf, -np.inf, np.nan]], dtype=dtype)
    expected = {
        "logistic": [1, 0, 1, 0, np.nan],
        "tanh": [1, -1, 1, -1, np.nan],
        "relu": [1e4, 0, np.inf, 0, np.nan],
        "leaky_relu": [1e4, -1e2, np.inf, -np.inf, np.nan],
        "identity": [1e4, -1e4, np.inf, -np.inf, np.nan],
    }
    for name, values in expected.items():
        a = z.copy()
        act.activation_forward(a, act.activation_code(name))
        np.testing.assert_array_equal(a[0], np.array(values, dtype=dtype), err_msg=name)


# --------------------------------------------------------------------------- _math.exp / expm1
@numba.njit
def _exp_array(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


@numba.njit
def _expm1_array(x, out):
    for i in range(x.shape[0]):
        out[i] = expm1(x[i])


@pytest.mark.parametrize("dtype, lo, rtol", [(np.float32, -86.0, 4e-7), (np.float64, -707.0, 2e-15)])
@pytest.mark.parametrize("kernel, oracle", [(_exp_array, np.exp), (_expm1_array, np.expm1)])
def test_exp_accuracy(kernel, oracle, dtype, lo, rtol):
    hi = float(np.log(np.finfo(dtype).max))
    x = np.concatenate([
        np.linspace(lo, hi * 0.999, 20001),
        np.linspace(-1.0, 1.0, 2001),
        np.geomspace(1e-30, 1e-2, 200),
        -np.geomspace(1e-30, 1e-2, 200),
    ]).astype(dtype)
    out = np.empty_like(x)
    kernel(x, out)
    assert out.dtype == dtype
    # relative to the exact value of the (rounded) float argument
    np.testing.assert_allclose(out, oracle(x.astype(np.float64)), rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(dtype):
    big = 2 * float(np.log(np.finfo(dtype).max))
    x = np.array([np.inf, -np.inf, np.nan, big, -big, 0.0], dtype=dtype)
    out = np.empty_like(x)
    _exp_array(x, out)
    np.testing.assert_array_equal(out, np.array([np.inf, 0, np.nan, np.inf, 0, 1], dtype=dtype))
    _expm1_array(x, out)
    np.testing.assert_array_equal(out, np.array([np.inf, -1, np.nan, np.inf, -1, 0], dtype=dtype))
