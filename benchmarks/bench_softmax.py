"""Softmax and the fused softmax + cross-entropy: fastnn vs the NumPy reference, float32.

Each group times, on the same data:
  * ``reference``: :mod:`fastnn.reference` (plain NumPy; for the loss: log_softmax + NLL +
    ``(p - onehot) / n``);
  * ``fastnn``: the public function (validation + allocation of the result + kernel);
  * ``kernel``: the compiled kernel writing into a preallocated buffer, as the training engine
    calls it.
Targets (2 threads): softmax 4096x1000 >= 1.5x the reference; fused softmax-CE
forward + backward >= 2x.  A plain ``pytest`` runs each case once, untimed, and checks it.
"""
import numpy as np
import pytest

import fastnn
from fastnn import reference
from fastnn.kernels import softmax as kernels

SHAPES = [(32, 10), (1024, 100), (4096, 1000)]
IMPLS = ["reference", "fastnn", "kernel"]
DTYPE = np.float32


def problem(n, k, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, k)) * 3).astype(DTYPE)
    labels = rng.integers(0, k, n)
    return z, labels


def shape_id(shape):
    return f"{shape[0]}x{shape[1]}"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_softmax(benchmark, shape, impl):
    benchmark.group = f"softmax {shape_id(shape)} float32"
    z, _ = problem(*shape)
    if impl == "kernel":
        out = np.empty_like(z)

        def run(z):
            kernels.softmax(z, out)
            return out
    else:
        run = reference.softmax if impl == "reference" else fastnn.softmax
    run(z)  # load the compiled kernel before timing
    p = benchmark(run, z)
    assert p.dtype == DTYPE
    np.testing.assert_allclose(p, reference.softmax(z), rtol=1e-5, atol=1e-37)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_softmax_cross_entropy(benchmark, shape, impl):
    """Forward (mean loss) and backward (dL/dlogits) together."""
    benchmark.group = f"softmax-CE fwd+bwd {shape_id(shape)} float32"
    z, labels = problem(*shape)
    if impl == "kernel":
        dz, unweighted = np.empty_like(z), np.empty(0, DTYPE)

        def run(z, labels):
            return kernels.softmax_cross_entropy_labels(z, labels, unweighted, dz), dz
    else:
        run = reference.softmax_cross_entropy if impl == "reference" else fastnn.softmax_cross_entropy
    run(z, labels)
    loss, grad = benchmark(run, z, labels)
    want_loss, want_grad = reference.softmax_cross_entropy(z, labels)
    assert grad.dtype == DTYPE
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-5 * np.abs(want_grad).max())
