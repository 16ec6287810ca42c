"""Network: layout, initialisation, forward/predict and loss_and_grad vs the NumPy reference."""
import itertools
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import reference as ref
from fastnn.network import Network

ACTS = ["identity", "logistic", "tanh", "relu", "leaky_relu"]
OUTPUTS = ["softmax", "sigmoid", "identity"]
# every activation x output pair; hidden-layer count and batch size cycle through 1-3 and 1/7/64
CASES = [(act, out, 1 + i % 3, (1, 7, 64)[(i // 3 + i) % 3])
         for i, (act, out) in enumerate(itertools.product(ACTS, OUTPUTS))]


def _data(net, n, seed=0, probs=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.layer_sizes[0]))
    k = net.layer_sizes[-1]
    if net.output == "softmax":
        if probs:
            y = rng.dirichlet(np.ones(k), size=n)
        else:
            y = rng.integers(0, k, size=n)
    elif net.output == "sigmoid":
        y = (rng.random((n, k)) > 0.5).astype(float)
    else:
        y = rng.normal(size=(n, k))
    return X, y


def _reference(net, X, y, alpha=0.0, sw=None):
    X = X.astype(net.dtype)
    yy = y if (net.output == "softmax" and y.ndim == 1) else y.astype(net.dtype)
    loss, dws, dbs = ref.reference_loss_and_grad(net.weights, net.biases, net.activations,
                                                 net.output, X, yy, alpha,
                                                 None if sw is None else sw.astype(net.dtype))
    flat = np.concatenate([np.concatenate([dw.ravel(), db]) for dw, db in zip(dws, dbs)])
    return loss, flat


def _net(act, out, n_hidden, dtype, seed=0):
    sizes = [5] + [6, 4, 7][:n_hidden] + [3]
    return Network(sizes, activation=act, output=out, dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act,out,n_hidden,batch", CASES)
def test_loss_and_grad_matches_reference(act, out, n_hidden, batch, dtype):
    net = _net(act, out, n_hidden, dtype)
    X, y = _data(net, batch)
    alpha = 0.3 if batch == 7 else 0.0
    loss, grad = net.loss_and_grad(X, y, alpha=alpha)
    rloss, rgrad = _reference(net, X, y, alpha)
    tol = 2e-5 if dtype == "float32" else 1e-11
    assert grad.dtype == net.dtype and grad.shape == net.params.shape
    assert loss == pytest.approx(rloss, rel=tol, abs=tol)
    np.testing.assert_allclose(grad, rgrad, rtol=tol * 10, atol=tol * np.abs(rgrad).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act,out,n_hidden,batch", CASES)
def test_loss_and_grad_matches_finite_differences(act, out, n_hidden, batch, dtype):
    net = _net(act, out, n_hidden, dtype, seed=1)
    X, y = _data(net, batch, seed=1)
    report = fastnn.check_gradients(net, X, y, alpha=0.1, max_checks=12)
    tol = 3e-3 if dtype == "float32" else 1e-6
    assert len(report) == net.n_layers
    for layer in report:
        assert layer["W"] < tol and layer["b"] < tol, report


def test_probability_targets_and_sample_weights_match_reference():
    net = _net(["tanh", "relu"], "softmax", 2, "float64")
    X, y = _data(net, 9, probs=True)
    sw = np.random.default_rng(3).random(9) * 2
    loss, grad = net.loss_and_grad(X, y, alpha=0.2, sample_weight=sw)
    rloss, rgrad = _reference(net, X, y, 0.2, sw)
    assert loss == pytest.approx(rloss, rel=1e-12)
    np.testing.assert_allclose(grad, rgrad, rtol=1e-10, atol=1e-14)


def test_sample_weights_follow_scikit_learn_normalisation():
    # scikit-learn 1.9: deltas * w; (a^T delta + alpha W) / sum(w); loss += alpha ||W||^2 / (2 sum w)
    net = Network([3, 4, 2], activation="tanh", output="softmax", dtype="float64", seed=0)
    X, y = _data(net, 6)
    sw = np.array([1.0, 2.0, 0.0, 1.0, 3.0, 1.0])
    rep = np.repeat(np.arange(6), sw.astype(int))  # integer weights == repeated rows
    a = net.loss_and_grad(X, y, alpha=0.5, sample_weight=sw)
    b = net.loss_and_grad(X[rep], y[rep], alpha=0.5)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-14)


def test_layout_views_and_init():
    net = Network([4, 3, 2], activation="sigmoid", output="softmax", seed=0)
    assert net.layer_sizes == (4, 3, 2) and net.activations == ("logistic",)
    assert net.params.dtype == np.float32 and net.params.shape == (4 * 3 + 3 + 3 * 2 + 2,)
    assert net.n_layers == 2 and net.n_params == 23
    for w in net.weights:
        assert w.flags.c_contiguous and np.shares_memory(w, net.params)
    net.weights[1][0, 0] = 42.0
    assert net.params[15] == 42.0
    # scikit-learn's _init_coef: W then b per layer from RandomState(seed), sqrt(2/...) if logistic
    rs = np.random.RandomState(0)
    bound = np.sqrt(2.0 / 7)
    np.testing.assert_array_equal(net.weights[0], rs.uniform(-bound, bound, (4, 3)).astype(np.float32))
    np.testing.assert_array_equal(net.biases[0], rs.uniform(-bound, bound, 3).astype(np.float32))
    relu = Network([10, 20, 3], seed=1)
    assert np.abs(relu.weights[0]).max() <= np.sqrt(6.0 / 30)


def test_forward_predict_and_chunking():
    net = Network([5, 8, 4], activation="relu", output="softmax", dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(5000, 5))
    p = net.forward(X)
    rp = ref.reference_predict_proba(net.weights, net.biases, net.activations, "softmax", X)
    np.testing.assert_allclose(p, rp, rtol=1e-12)
    np.testing.assert_array_equal(net.predict(X), p.argmax(axis=1))
    np.testing.assert_array_equal(net.predict_proba(X), p)
    import fastnn.network as nw
    old = nw._FORWARD_ELEMENTS
    nw._FORWARD_ELEMENTS = 64  # force many small chunks
    try:
        np.testing.assert_allclose(net.forward(X), p, rtol=1e-13)
    finally:
        nw._FORWARD_ELEMENTS = old
    assert net.forward(X[:0]).shape == (0, 4)
    sig = Network([5, 3], output="sigmoid", dtype="float64", seed=0)
    assert set(np.unique(sig.predict(X))) <= {0, 1} and sig.predict(X).shape == (5000, 3)
    reg = Network([5, 3, 2], activation="tanh", output="identity", dtype="float64", seed=0)
    np.testing.assert_allclose(reg.predict(X), ref.reference_predict_proba(
        reg.weights, reg.biases, reg.activations, "identity", X), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out", OUTPUTS)
def test_logits_match_reference_and_give_log_probabilities(out, dtype):
    net = Network([5, 8, 6, 4], activation=["tanh", "relu"], output=out, dtype=dtype, seed=0)
    X = np.random.default_rng(0).normal(size=(300, 5))
    z = net.logits(X)
    assert z.dtype == net.dtype and z.shape == (300, 4)
    rz = ref.reference_forward(net.weights, net.biases, net.activations, out, X.astype(dtype))[-1]
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(z, rz, rtol=tol, atol=tol)
    import fastnn.network as nw
    old = nw._FORWARD_ELEMENTS
    nw._FORWARD_ELEMENTS = 16  # many small chunks give the same values
    try:
        np.testing.assert_array_equal(net.logits(X), z)
    finally:
        nw._FORWARD_ELEMENTS = old
    p = net.forward(X)
    if out == "softmax":
        np.testing.assert_allclose(fastnn.log_softmax(z), np.log(p), rtol=tol * 10, atol=tol)
    elif out == "sigmoid":
        np.testing.assert_allclose(-np.logaddexp(0, -z), np.log(p), rtol=tol * 10, atol=tol)
    else:
        np.testing.assert_array_equal(z, p)
    assert net.logits(X[:0]).shape == (0, 4)
    with pytest.raises(ValueError, match="X has 3 features but the network expects 5"):
        net.logits(np.ones((2, 3)))


def test_logits_stay_finite_where_probabilities_underflow():
    net = Network([3, 4], activation=[], output="softmax", dtype="float32", seed=0)
    net.weights[0][...] = np.array([[300, 0, -300, 0]] * 3, dtype=np.float32)
    X = np.ones((2, 3), dtype=np.float32)  # logits (900, 0, -900, 0): p = (1, 0, 0, 0)
    p = net.forward(X)
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(p)).any()
    logp = fastnn.log_softmax(net.logits(X))
    assert np.isfinite(logp).all()
    z = net.weights[0].sum(axis=0) + net.biases[0]
    np.testing.assert_allclose(logp, np.tile(z - z.max(), (2, 1)), rtol=1e-6)


def test_copy_pickle_and_per_layer_activations():
    net = Network([3, 4, 5, 2], activation=["tanh", "sigmoid"], output="sigmoid", seed=0)
    assert net.activations == ("tanh", "logistic")
    c = net.copy()
    assert not np.shares_memory(c.params, net.params)
    np.testing.assert_array_equal(c.params, net.params)
    c.params[0] += 1
    assert c.params[0] != net.params[0]
    back = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(back.params, net.params)
    assert np.shares_memory(back.weights[0], back.params)
    X = np.ones((2, 3))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))


@pytest.mark.parametrize("kwargs,match", [
    (dict(layer_sizes=[3]), "layer_sizes"),
    (dict(layer_sizes=[3, 0, 2]), "layer_sizes"),
    (dict(layer_sizes=[3, 4, 2], activation="softplus"), "activation"),
    (dict(layer_sizes=[3, 4, 2], activation=["relu", "tanh"]), "activation"),
    (dict(layer_sizes=[3, 4, 2], output="softmin"), "output"),
    (dict(layer_sizes=[3, 4, 2], dtype="float16"), "dtype"),
    (dict(layer_sizes=[3, 4, 2], seed=-5), "seed must be None or an int in"),
    (dict(layer_sizes=[2 ** 70, 2]), r"layer_sizes .* need 2,361,183,241,434,822,606,850 "),
    (dict(layer_sizes=[64, 10 ** 5, 10 ** 5, 10]), r"GiB\); this machine has .* GiB of memory"),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Network(**kwargs)


def test_input_errors():
    net = Network([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match="X has 2 features"):
        net.forward(np.ones((4, 2)))
    with pytest.raises(ValueError, match="X must be a 2-D"):
        net.forward(np.ones(3))
    with pytest.raises(ValueError, match="X contains NaN"):
        net.loss_and_grad(np.full((2, 3), np.nan), [0, 1])
    with pytest.raises(ValueError, match="y has labels out of range"):
        net.loss_and_grad(np.ones((2, 3)), [0, 2])
    with pytest.raises(ValueError, match="alpha"):
        net.loss_and_grad(np.ones((2, 3)), [0, 1], alpha=-1)
    with pytest.raises(ValueError, match="sample_weight"):
        net.loss_and_grad(np.ones((2, 3)), [0, 1], sample_weight=[1.0])
    with pytest.raises(ValueError, match="X must have at least one row"):
        net.loss_and_grad(np.ones((0, 3)), np.zeros(0, dtype=int))


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    net = Network([3, 4, 2], activation="tanh", dtype="float64", seed=0)
    X, y = _data(net, 5)
    good = fastnn.check_gradients(net, X, y)
    assert max(max(layer.values()) for layer in good) < 1e-7
    orig = Network.loss_and_grad

    def wrong(self, *a, **k):
        loss, g = orig(self, *a, **k)
        g[self.tables[2][1]] += 0.1
        return loss, g
    monkeypatch.setattr(Network, "loss_and_grad", wrong)
    bad = fastnn.check_gradients(net, X, y)
    assert bad[1]["b"] > 0.1 and bad[0]["W"] < 1e-7


def test_forward_converts_large_inputs_in_chunks():
    net = Network([5, 8, 3], activation="tanh", output="sigmoid", seed=0)  # float32
    X = np.random.default_rng(1).normal(size=(40000, 5))  # float64: converted chunk by chunk
    np.testing.assert_array_equal(net.forward(X), net.forward(X.astype(np.float32)))
    Xf = np.asfortranarray(X[:100])
    np.testing.assert_array_equal(net.forward(Xf), net.forward(X[:100]))


def test_predict_proba_is_thread_safe():
    import threading

    net = Network([32, 256, 256, 10], seed=0)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(n, 32)).astype(np.float32) for n in (300, 500)]
    expected = [net.predict_proba(X) for X in inputs]
    bad = []

    def work(X, want):
        for _ in range(40):
            if not np.array_equal(net.predict_proba(X), want):
                bad.append(1)

    threads = [threading.Thread(target=work, args=(X, e)) for X, e in zip(inputs, expected)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_loss_and_grad_keeps_no_dataset_sized_workspace():
    net = Network([20, 64, 3], seed=0)
    X, y = _data(net, 5000)
    loss, grad = net.loss_and_grad(X, y)
    assert np.isfinite(loss) and grad.shape == net.params.shape
    held = [a for v in net.scratch.values()
            for a in (v if isinstance(v, tuple) else (v,)) if isinstance(a, np.ndarray)]
    assert sum(a.size for a in held) < X.shape[0]
    np.testing.assert_array_equal(net.loss_and_grad(X, y)[1], grad)  # same result again


@pytest.mark.parametrize("sizes", [[2.9, 3, 2], [2, 3.0, 2], [True, 3, 2], ["2", 3], 5, "23"])
def test_layer_sizes_must_be_integers(sizes):
    with pytest.raises(TypeError, match="layer_sizes must be a sequence of ints"):
        Network(sizes)
    assert Network(np.array([2, 3, 2])).layer_sizes == (2, 3, 2)  # numpy ints are fine


def test_zero_dimensional_inputs_raise_value_errors_naming_them():
    net = Network([3, 4, 2], dtype="float64", seed=0)
    with pytest.raises(ValueError, match="X must be a 2-D"):
        net.loss_and_grad(np.float64(1.0), [0])
    with pytest.raises(ValueError, match=r"y must have shape \(n_samples, 2\)"):
        net.loss_and_grad(np.ones((1, 3)), np.float64(0.5))
    with pytest.raises(ValueError, match="X must be a 2-D"):
        fastnn.fit(net, np.float64(1.0), [0], epochs=1, batch_size=1, optimizer=fastnn.SGD())


def test_blank_network_is_validated_and_has_zero_parameters():
    # loading, the estimators and gradcheck set every parameter themselves: no random draws
    net = Network.zeros([3, 5, 2], "tanh", "sigmoid", "float64")
    assert net.params.dtype == np.float64 and not net.params.any()
    assert list(net.activations) == ["tanh"]
    assert net.output == "sigmoid" and net.weights[0].shape == (3, 5)
    with pytest.raises(ValueError, match="layer_sizes must have at least 2 entries"):
        Network.zeros([3])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_outputs_match_reference(dtype):
    net = Network([5, 6, 4, 3], activation=["relu", "logistic"], output="softmax", dtype=dtype,
                  seed=0)
    X = np.random.default_rng(0).normal(size=(9, 5))
    outs = net.layer_outputs(X)
    want = ref.reference_forward(net.weights, net.biases, net.activations, net.output,
                                 X.astype(dtype))
    assert [o.shape for o in outs] == [(9, 6), (9, 4), (9, 3)]
    tol = 1e-5 if dtype == "float32" else 1e-13
    for got, exp in zip(outs[:-1], want[:-1]):
        assert got.dtype == net.dtype
        np.testing.assert_allclose(got, exp, rtol=tol, atol=tol)
    np.testing.assert_array_equal(outs[-1], net.forward(X))
    assert len(Network([5, 3], seed=0).layer_outputs(X)) == 1  # no hidden layer


def test_activation_none_is_a_clear_type_error():
    with pytest.raises(TypeError, match="activation must be a name such as 'relu' or a "
                       "sequence of names, got None"):
        Network([3, 4, 2], activation=None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", OUTPUTS)
def test_predictions_on_non_finite_input_raise(output, dtype):
    net = Network([3, 4, 2], output=output, dtype=dtype, seed=0)
    methods = [net.predict, net.predict_proba, net.forward, net.logits, net.layer_outputs]
    for bad in (np.nan, np.inf, -np.inf):
        for X in (np.array([[0.0, 1.0, 2.0], [bad, 0.0, 0.0]]),
                  np.array([[0.0, 1.0, 2.0], [bad, 0.0, 0.0]], dtype=dtype)):
            for method in methods:
                with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first in "
                                   r"row 1\)"):
                    method(X)
    big = np.array([[0.0, 1.0, 2.0], [1e39, 0.0, 0.0]])  # finite in float64, inf in float32
    for method in methods:
        if dtype == "float32":
            with pytest.raises(ValueError, match="too large for the network's float32"):
                method(big)
        else:
            assert np.isfinite(np.asarray(method(big)[-1])).all()
