"""Dense layer forward + backward: fastnn vs the NumPy reference vs the bare GEMMs, float32.

Each group times one layer step on the same data:
  * ``reference``: :func:`fastnn.reference.dense_forward` + :func:`~fastnn.reference.dense_backward`
    (NumPy, new arrays every call);
  * ``fastnn``: :func:`fastnn.kernels.dense.dense_forward` + ``dense_backward`` into preallocated
    buffers, as the training engine calls them (bias + activation, act' and db fused);
  * ``gemm``: only the layer's three matrix products (``x @ w``, ``a_prevᵀ δ``, ``δ wᵀ``) into the
    same buffers, in one compiled call, through the BLAS call fastnn uses
    (:func:`fastnn.kernels._blas.gemm`, SciPy's OpenBLAS): the floor, so ``fastnn / gemm`` is the
    overhead of everything that is not a GEMM (for the tiny layers it also includes one more
    Python-to-compiled call, ~0.2 us, as fastnn makes two calls).
Target (issue 2, 2 threads pinned by benchmarks/conftest.py): fastnn no slower than the
reference; the training engine wants fastnn within a few % of gemm.  The small configurations
are the layers of the 2-3-2 (batch 4) and 64-64-10 (batch 32) nets, where call overhead rules.
A plain ``pytest`` runs each case once, untimed, and checks the result.
"""
import numpy as np
import pytest

from fastnn import reference
from fastnn._jit import jit
from fastnn.kernels._blas import gemm
from fastnn.kernels.activations import activation_code
from fastnn.kernels.dense import dense_backward, dense_backward_sgd, dense_forward

DTYPE = np.float32
# (n, d_in, d_out, activation of this layer and of the previous one)
LAYERS = [
    (128, 784, 256, "relu"),
    (256, 1024, 1024, "relu"),
    (32, 64, 64, "logistic"),
    (4, 2, 3, "logistic"),
]
IMPLS = ["reference", "fastnn", "gemm"]


@jit
def _gemms(x, w, delta, out, dw, delta_prev):
    gemm(False, False, 1.0, x, w, 0.0, out)
    gemm(True, False, 1.0, x, delta, 0.0, dw)
    gemm(False, True, 1.0, delta, w, 0.0, delta_prev)


def layer_id(layer):
    n, d_in, d_out, act = layer
    return f"{n}x{d_in}->{d_out} {act}"


def problem(n, d_in, d_out, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d_in), dtype=DTYPE)  # an activation-like input: >= 0
    w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(DTYPE)
    b = (rng.standard_normal(d_out) * 0.1).astype(DTYPE)
    delta = rng.standard_normal((n, d_out)).astype(DTYPE)
    return x, w, b, delta


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layer", LAYERS, ids=layer_id)
def test_dense_forward_backward(benchmark, layer, impl):
    n, d_in, d_out, act = layer
    benchmark.group = f"dense fwd+bwd {layer_id(layer)} float32"
    x, w, b, delta = problem(n, d_in, d_out)
    code = activation_code(act)
    out, dw = np.empty((n, d_out), DTYPE), np.empty_like(w)
    db, delta_prev = np.empty_like(b), np.empty_like(x)

    if impl == "reference":
        def run():
            return reference.dense_forward(x, w, b, act), *reference.dense_backward(x, w, delta, act)
    elif impl == "fastnn":
        def run():
            dense_forward(x, w, b, code, out)
            dense_backward(x, w, delta, code, dw, db, delta_prev)
            return out, dw, db, delta_prev
    else:
        def run():
            _gemms(x, w, delta, out, dw, delta_prev)
            return out, dw, None, delta_prev

    run()  # load the compiled kernels before timing
    got = benchmark(run)
    if impl != "gemm":
        want = (reference.dense_forward(x, w, b, act), *reference.dense_backward(x, w, delta, act))
        for g, e in zip(got, want):
            assert g.dtype == DTYPE
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * np.abs(e).max())


@jit
def _sgd_step(w, dw, b, db, lr):
    for k in range(w.shape[0]):
        for j in range(w.shape[1]):
            w[k, j] -= lr * dw[k, j]
    for j in range(b.shape[0]):
        b[j] -= lr * db[j]


@pytest.mark.parametrize("impl", ["separate", "fused"])
@pytest.mark.parametrize("layer", LAYERS[:2], ids=layer_id)
def test_dense_backward_sgd(benchmark, layer, impl):
    """Backward + plain SGD step: ``dense_backward`` then an update pass over (w, dw), vs
    ``dense_backward_sgd``, whose weight-gradient GEMM accumulates into ``w`` directly."""
    n, d_in, d_out, act = layer
    benchmark.group = f"dense bwd+SGD {layer_id(layer)} float32"
    x, w, b, delta = problem(n, d_in, d_out)
    code, lr = activation_code(act), 1e-9  # tiny steps: the weights barely move
    dw, db, delta_prev = np.empty_like(w), np.empty_like(b), np.empty_like(x)
    w0, b0 = w.copy(), b.copy()

    if impl == "separate":
        def run():
            dense_backward(x, w, delta, code, dw, db, delta_prev)
            _sgd_step(w, dw, b, db, lr)
    else:
        def run():
            dense_backward_sgd(x, w, b, delta, code, lr, 1.0, db, delta_prev)

    run()
    benchmark(run)
    np.testing.assert_allclose(w, w0, atol=1e-3)
    np.testing.assert_allclose(b, b0, atol=1e-3)
