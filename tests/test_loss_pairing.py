"""Sigmoid outputs trained with squared error: kernel, Network, training, persistence.

The non-canonical pair keeps ``p (1 - p)`` in the output delta; it is checked against central
finite differences in float64 and against the NumPy reference, like the canonical pairs.
"""
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import reference as ref
from fastnn.kernels.losses import sigmoid_squared_error
from fastnn.network import Network


def _logits(n, k, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, k)) * scale).astype(dtype)
    y = rng.random((n, k)).astype(dtype)
    return z, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_matches_reference(dtype, weighted):
    z, y = _logits(9, 4, dtype)
    sw = np.random.default_rng(1).random(9).astype(dtype) if weighted else np.zeros(0, dtype)
    dz = np.empty_like(z)
    loss = sigmoid_squared_error(z, y, sw, dz)
    rloss, rdz = ref.sigmoid_squared_error(z, y, sw if weighted else None)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert loss == pytest.approx(rloss, rel=tol)
    np.testing.assert_allclose(dz, rdz, rtol=tol * 10, atol=tol * np.abs(rdz).max())
    # the delta is the chain rule through the squared error of the probabilities
    p = ref.sigmoid(z.astype(np.float64))
    w = np.ones(9) if not weighted else sw.astype(np.float64)
    want = (w / w.sum())[:, None] * (p - y) * p * (1 - p)
    np.testing.assert_allclose(dz, want, rtol=tol * 10, atol=tol * np.abs(want).max())


def test_kernel_matches_central_differences():
    z, y = _logits(5, 3, np.float64, seed=2)
    sw = np.array([1.0, 0.5, 2.0, 0.0, 1.5])
    dz = np.empty_like(z)
    sigmoid_squared_error(z, y, sw, dz)
    eps = 1e-6
    fd = np.empty_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        fd[idx] = (sigmoid_squared_error(zp, y, sw, np.empty_like(z))
                   - sigmoid_squared_error(zm, y, sw, np.empty_like(z))) / (2 * eps)
    np.testing.assert_allclose(dz, fd, rtol=1e-7, atol=1e-10)


def test_kernel_saturated_logits_stay_finite_and_the_delta_vanishes():
    z = np.array([[-800.0, 800.0, 0.0]])
    y = np.array([[1.0, 0.0, 1.0]])  # the two saturated outputs are maximally wrong
    dz = np.empty_like(z)
    loss = sigmoid_squared_error(z, y, np.zeros(0), dz)
    assert loss == pytest.approx((1 + 1 + 0.25) / 2)
    assert dz[0, 0] == 0 and dz[0, 1] == 0  # p (1 - p) underflows: no gradient at all
    assert dz[0, 2] == pytest.approx(-0.5 * 0.25)
    dz32 = np.empty((1, 3), np.float32)
    sigmoid_squared_error(z.astype(np.float32), y.astype(np.float32), np.zeros(0, np.float32),
                          dz32)
    assert np.all(np.isfinite(dz32))


def test_kernel_writes_in_place_over_z():
    z, y = _logits(6, 2, np.float64, seed=3)
    dz = np.empty_like(z)
    loss = sigmoid_squared_error(z, y, np.zeros(0), dz)
    zz = z.copy()
    assert sigmoid_squared_error(zz, y, np.zeros(0), zz) == loss
    np.testing.assert_array_equal(zz, dz)


def _net(dtype="float64", seed=0, act="tanh"):
    return Network([4, 6, 5, 3], activation=[act, "logistic"], output="sigmoid",
                   loss="squared_error", dtype=dtype, seed=seed)


def _data(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)), (rng.random((n, 3)) > 0.5).astype(float)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_network_matches_reference(dtype):
    net = _net(dtype)
    X, Y = _data()
    sw = np.random.default_rng(4).random(7) + 0.5
    loss, grad = net.loss_and_grad(X, Y, alpha=0.2, sample_weight=sw)
    rloss, dws, dbs = ref.reference_loss_and_grad(
        net.weights, net.biases, net.activations, "sigmoid", X.astype(dtype), Y.astype(dtype),
        0.2, sw.astype(dtype), loss="squared_error")
    rgrad = np.concatenate([np.concatenate([dw.ravel(), db]) for dw, db in zip(dws, dbs)])
    tol = 2e-5 if dtype == "float32" else 1e-12
    assert loss == pytest.approx(rloss, rel=tol)
    np.testing.assert_allclose(grad, rgrad, rtol=tol * 10, atol=tol * np.abs(rgrad).max())
    # not the binary cross-entropy pair: same weights, a different loss and gradient
    bce = Network.zeros(net.layer_sizes, list(net.activations), "sigmoid", dtype)
    bce.params[...] = net.params
    other_loss, _ = bce.loss_and_grad(X, Y)
    assert other_loss != pytest.approx(net.loss_and_grad(X, Y)[0], rel=1e-3)
    np.testing.assert_array_equal(bce.forward(X), net.forward(X))  # same outputs


def test_network_matches_central_differences():
    net = _net(seed=5)
    X, Y = _data(seed=5)
    report = fastnn.check_gradients(net, X, Y, alpha=0.1)
    assert max(max(layer.values()) for layer in report) < 1e-6, report


def test_fit_matches_the_reference_trainer():
    net = _net(seed=1)
    X, Y = _data(12, seed=1)
    W = [w.copy() for w in net.weights]
    b = [v.copy() for v in net.biases]
    opt = ref.ReferenceSGD(0.3, momentum=0.5)
    order = np.arange(12)
    for _ in range(3):
        ref.reference_train_epoch(W, b, net.activations, "sigmoid", X, Y, order, 4, opt,
                                  loss="squared_error")
    hist = fastnn.fit(net, X, Y, epochs=3, batch_size=4, shuffle=False,
                      optimizer=fastnn.SGD(0.3, momentum=0.5), validation_data=(X, Y))
    for l in range(net.n_layers):
        np.testing.assert_allclose(net.weights[l], W[l], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(net.biases[l], b[l], rtol=1e-10, atol=1e-12)
    # the validation loss is the loss the network is trained with
    assert hist.val_loss[-1] == pytest.approx(net.loss_and_grad(X, Y)[0], rel=1e-12)


def test_the_learners_zero_start_is_a_fixed_point_and_saturation_stalls():
    X, Y = np.eye(2), np.eye(2)
    net = Network([2, 3, 2], activation="sigmoid", output="sigmoid", loss="squared_error",
                  dtype="float64", seed=0)
    net.params[:] = 0
    fastnn.fit(net, X, Y, epochs=200, batch_size=2, optimizer=fastnn.SGD(0.5))
    np.testing.assert_array_equal(net.forward(X), np.full((2, 2), 0.5))
    # outputs saturated at the wrong end: squared error barely moves, cross-entropy recovers
    outs = {}
    for loss in ("squared_error", "binary_cross_entropy"):
        net = Network([2, 3, 2], activation="sigmoid", output="sigmoid", loss=loss,
                      dtype="float64", seed=0)
        net.biases[-1][:] = [-8.0, 8.0]
        fastnn.fit(net, X, Y, epochs=500, batch_size=2, optimizer=fastnn.SGD(0.5))
        outs[loss] = net.forward(X)
    assert outs["squared_error"][0, 0] < 0.01  # x1 should give [1, 0]: still ~0
    assert outs["binary_cross_entropy"][0, 0] > 0.9 and outs["binary_cross_entropy"][1, 1] > 0.9


def test_loss_names_are_validated_and_default_to_the_canonical_loss():
    assert Network([2, 2], output="softmax").loss == "cross_entropy"
    assert Network([2, 2], output="logistic").loss == "binary_cross_entropy"
    assert Network([2, 2], output="identity").loss == "squared_error"
    assert Network([2, 2], output="sigmoid", loss="binary_cross_entropy").loss \
        == "binary_cross_entropy"
    for output, loss in (("softmax", "squared_error"), ("identity", "cross_entropy"),
                         ("sigmoid", "mse"), ("sigmoid", 2)):
        with pytest.raises(ValueError, match="loss must be one of"):
            Network([2, 2], output=output, loss=loss)


def test_save_load_pickle_copy_and_repr_keep_the_loss(tmp_path):
    net = _net("float32", seed=2)
    X, Y = _data(seed=2)
    want = net.loss_and_grad(X, Y)
    path = tmp_path / "m.npz"
    net.save(path)
    for back in (fastnn.load(path), pickle.loads(pickle.dumps(net)), net.copy()):
        assert back.loss == "squared_error" and back.output == "sigmoid"
        got = back.loss_and_grad(X, Y)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
    assert "loss='squared_error'" in repr(net)
    assert "loss=" not in repr(Network([2, 2], output="sigmoid"))
