"""MLPRegressor(loss="poisson") in the compiled epoch, layer by layer.

1. The fused kernel ``poisson_deviance`` (exp output + half Poisson deviance) against
   scikit-learn's own ``poisson_loss`` and the gradient ``w (exp(z) - y) / sum w`` in NumPy, and
   against central finite differences of its own loss (float64).
2. ``run_epoch(..., _output="exp")`` (one compiled call per epoch) against the Python loop over
   minibatches it replaced, kept below as :func:`_loop_epoch`, step for step.
3. The estimator against scikit-learn's ``MLPRegressor(loss="poisson")``: same initial weights
   and batches from ``random_state``, so the same ``loss_curve_``.
"""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network._base import poisson_loss as sk_poisson_loss

from fastnn import SGD, Adam, Network, stream
from fastnn.kernels.losses import poisson_deviance
from fastnn.sklearn import MLPRegressor
from fastnn.sklearn import _solvers
from fastnn.train import NonFiniteLossError, run_epoch

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _kernel_case(dtype, weighted, n=37, k=3, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, k)).astype(dtype)
    y = rng.poisson(np.exp(rng.normal(0.0, 1.0, (n, k)))).astype(dtype)  # zeros included
    sw = rng.uniform(0.2, 2.0, n).astype(dtype) if weighted else np.zeros(0, dtype)
    return z, y, sw


def _reference(z, y, sw):
    """scikit-learn's loss and the canonical-link gradient, in float64 NumPy."""
    z, y = z.astype(np.float64), y.astype(np.float64)
    w = np.ones(z.shape[0]) if sw.shape[0] == 0 else sw.astype(np.float64)
    loss = sk_poisson_loss(y, np.exp(z), None if sw.shape[0] == 0 else w)
    return loss, (np.exp(z) - y) * w[:, None] / w.sum()


# --------------------------------------------------------------------------- kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_matches_scikit_learn_loss_and_numpy_gradient(dtype, weighted):
    z, y, sw = _kernel_case(dtype, weighted)
    dz = np.full_like(z, np.nan)
    loss = poisson_deviance(z, y, sw, dz)
    want_loss, want_dz = _reference(z, y, sw)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert loss == pytest.approx(want_loss, rel=tol)
    assert dz.dtype == dtype
    np.testing.assert_allclose(dz, want_dz, rtol=tol, atol=tol * np.abs(want_dz).max())
    inplace = z.copy()  # dz may be z itself
    assert poisson_deviance(inplace, y, sw, inplace) == loss
    np.testing.assert_array_equal(inplace, dz)


@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_gradient_matches_central_differences(weighted):
    z, y, sw = _kernel_case(np.float64, weighted, n=6, k=2, seed=1)
    dz = np.empty_like(z)
    poisson_deviance(z, y, sw, dz)
    scratch = np.empty_like(z)
    h = 1e-6
    num = np.empty_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        num[idx] = (poisson_deviance(zp, y, sw, scratch) - poisson_deviance(zm, y, sw, scratch)) / (2 * h)
    np.testing.assert_allclose(dz, num, rtol=1e-6, atol=1e-9)


def test_kernel_stable_where_exp_underflows_and_non_finite_where_it_overflows():
    y = np.array([[0.0, 2.0]])
    dz = np.empty_like(y)
    # exp(-800) is 0 in float64: no 0/0 or log(0); y log(y / mu) is taken as y (log y - z)
    loss = poisson_deviance(np.array([[-800.0, -800.0]]), y, np.zeros(0), dz)
    assert loss == pytest.approx(2.0 * (np.log(2.0) + 800.0) - 2.0, rel=1e-15)
    np.testing.assert_array_equal(dz, [[0.0, -2.0]])
    z32 = np.array([[-200.0, 3.0]], dtype=np.float32)
    assert np.isfinite(poisson_deviance(z32, y.astype(np.float32), np.zeros(0, np.float32),
                                        np.empty_like(z32)))
    for dtype, big in [(np.float64, 710.0), (np.float32, 89.0)]:  # exp overflows
        z = np.array([[big, 0.0]], dtype=dtype)
        assert poisson_deviance(z, y.astype(dtype), np.zeros(0, dtype), np.empty_like(z)) == np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_never_returns_a_finite_loss_with_a_non_finite_gradient(dtype):
    # the epoch stops on a non-finite loss, so a NaN/inf delta must never hide behind a finite one
    zs = [-np.inf, -1e4, -100.0, 0.0, 80.0, 88.8, 700.0, 710.0, 1e4, np.inf, np.nan]
    ys = [0.0, 1.0, 1e30, np.inf, np.nan]
    for zv in zs:
        for yv in ys:
            for w in (None, 0.0, 1.0):
                z = np.array([[zv, 0.5], [0.1, 0.2]], dtype=dtype)
                y = np.array([[yv, 1.0], [0.0, 3.0]], dtype=dtype)
                sw = np.zeros(0, dtype) if w is None else np.array([w, 1.0], dtype=dtype)
                dz = np.empty_like(z)
                with np.errstate(all="ignore"):
                    loss = poisson_deviance(z, y, sw, dz)
                if np.isfinite(loss):
                    assert np.isfinite(dz).all(), (zv, yv, w, loss, dz)
    nan_z = np.array([[np.nan]], dtype=dtype)
    assert np.isnan(poisson_deviance(nan_z, np.ones_like(nan_z), np.zeros(0, dtype), nan_z.copy()))


# --------------------------------------------------------------------------- one epoch
def _loop_loss_and_grad(net, X, y, alpha, sw):
    """The former ``_solvers.poisson_loss_and_grad``: the exact gradient from the identity
    output's squared error against the shifted target ``z - (exp(z) - y)``."""
    z = net.forward(X)
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = z - (np.exp(z) - y)
    if not np.isfinite(shifted).all():
        raise NonFiniteLossError("the Poisson loss overflowed")
    _, grad = net.loss_and_grad(X, np.ascontiguousarray(shifted, dtype=net.dtype), alpha, sw)
    sw_sum = X.shape[0] if sw is None else float(np.sum(sw))
    l2 = 0.5 * alpha * sum(float(np.dot(w.ravel(), w.ravel())) for w in net.weights) / sw_sum
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return sk_poisson_loss(y, np.exp(z), sw) + l2, grad


def _loop_epoch(net, X, y, optimizer, batch_size, order, alpha, sw):
    """The former ``_solvers.poisson_epoch``: a Python loop over minibatches."""
    total = 0.0
    for start in range(0, order.shape[0], batch_size):
        idx = order[start:start + batch_size]
        loss, grad = _loop_loss_and_grad(net, X[idx], y[idx], alpha, None if sw is None else sw[idx])
        optimizer.step(net.params, grad)
        total += loss * idx.shape[0]
    return total / order.shape[0]


def _poisson_data(n=83, d=5, k=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, d))
    y = rng.poisson(np.exp(X @ rng.uniform(-0.6, 0.6, (d, k)) + 0.3)).astype(float)
    return X.astype(dtype), y.astype(dtype)


OPTIMIZERS = {
    "sgd": lambda: SGD(lr=0.05, momentum=0.0),
    "sgd-nesterov": lambda: SGD(lr=0.02, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(lr=0.01),
}


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_epoch_equals_the_python_loop_step_for_step(opt, weighted):
    X, y = _poisson_data()
    sw = np.random.default_rng(1).uniform(0.2, 2.0, X.shape[0]) if weighted else None
    a = Network([5, 16, 7, 2], activation=["relu", "tanh"], output="identity", dtype="float64",
                seed=0)
    b = a.copy()
    opt_a, opt_b = OPTIMIZERS[opt](), OPTIMIZERS[opt]()
    rng = np.random.default_rng(2)
    for _ in range(4):  # batches of 10 and a last partial batch of 3
        order = rng.permutation(X.shape[0])
        got = run_epoch(a, X, y, opt_a, batch_size=10, order=order, alpha=1e-3, sample_weight=sw,
                        _output="exp")
        want = _loop_epoch(b, X, y, opt_b, 10, order, 1e-3, sw)
        assert got == pytest.approx(want, rel=1e-11)
        assert opt_a.t == opt_b.t
        np.testing.assert_allclose(a.params, b.params, rtol=1e-10, atol=1e-13)


def test_epoch_stops_at_the_batch_whose_exp_overflows():
    net = Network([1, 1], activation=[], output="identity", dtype="float64", seed=0)
    net.weights[0][...] = 1.0
    net.biases[0][...] = 0.0
    X = np.array([[0.0], [1.0], [2.0], [800.0], [0.5]])  # z = x: exp(800) overflows
    y = np.ones((5, 1))
    start = net.params.copy()
    opt = SGD(lr=1e-6, momentum=0.0)
    with pytest.raises(NonFiniteLossError, match="at minibatch 4 of the epoch"):
        run_epoch(net, X, y, opt, batch_size=1, order=np.arange(5), _output="exp")
    assert opt.t == 3  # the fourth update was not applied ...
    np.testing.assert_array_equal(net.params, start)  # ... and the epoch's start is restored


def test_private_output_needs_an_identity_network():
    net = Network([3, 2], activation=[], output="sigmoid", dtype="float64", seed=0)
    X, y = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(ValueError, match="_output must be None or 'exp' with an identity-output "
                                         "network, got _output='exp' for a sigmoid output"):
        run_epoch(net, X, y, Adam(), batch_size=2, order=np.arange(4), _output="exp")


def test_lbfgs_objective_equals_the_shifted_target_formulation():
    X, y = _poisson_data(n=40, seed=3)
    sw = np.random.default_rng(4).uniform(0.2, 2.0, X.shape[0])
    net = Network([5, 9, 2], activation="tanh", output="identity", dtype="float64", seed=1)
    for w in (None, sw):
        loss, grad = _solvers.poisson_loss_and_grad(net, X, y, 0.3, w)
        want_loss, want_grad = _loop_loss_and_grad(net, X, y, 0.3, w)
        assert loss == pytest.approx(want_loss, rel=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)
    net.biases[-1][...] = 800.0
    with pytest.raises(NonFiniteLossError, match="Poisson loss overflowed"):
        _solvers.poisson_loss_and_grad(net, X, y, 0.0)


# --------------------------------------------------------------------------- estimator
def _fit_pair(X, y, sw=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPRegressor(loss="poisson", **params).fit(X, y, sample_weight=sw)
        b = SkMLPRegressor(loss="poisson", **params).fit(X, y, sample_weight=sw)
    return a, b


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_curve_matches_scikit_learn(solver, dtype):
    X, y = _poisson_data(n=300, d=6, k=2, seed=5, dtype=dtype)
    sw = np.random.default_rng(6).uniform(0.5, 2.0, X.shape[0]) if solver == "sgd" else None
    kw = dict(hidden_layer_sizes=(12,), max_iter=25, tol=0.0, random_state=0, solver=solver,
              learning_rate_init=0.01, batch_size=32)
    a, b = _fit_pair(X, y, sw, **kw)
    assert a.n_iter_ == b.n_iter_ == 25 and a.coefs_[0].dtype == dtype
    rtol = 2e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=10 * rtol)


def test_divergence_raises_as_scikit_learn():
    X, y = _poisson_data(n=60, seed=7)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=50.0, max_iter=5,
              random_state=0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        MLPRegressor(loss="poisson", **kw).fit(X * 50, y)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="non-finite parameter weights"):
        SkMLPRegressor(loss="poisson", **kw).fit(X * 50, y)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_memmap_trains_as_in_memory(tmp_path, monkeypatch, solver):
    monkeypatch.setattr(stream, "DEFAULT_BLOCK_BYTES", 2048)  # several blocks of minibatches
    X, y = _poisson_data(n=250, d=6, k=1, seed=8)
    y = y.ravel()
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    kw = dict(hidden_layer_sizes=(10,), max_iter=15, random_state=0, solver=solver, batch_size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mem = MLPRegressor(loss="poisson", **kw).fit(X, y)
        mm = MLPRegressor(loss="poisson", **kw).fit(Xm, y)
    assert mm.n_iter_ == mem.n_iter_
    np.testing.assert_allclose(mm.loss_, mem.loss_, rtol=1e-9)
    for ca, cb in zip(mm.coefs_ + mm.intercepts_, mem.coefs_ + mem.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-7, atol=1e-10)
    if solver == "adam":  # early stopping keeps the training rows on disk (stream.RowSubset)
        es = MLPRegressor(loss="poisson", early_stopping=True, **kw).fit(Xm, y)
        assert np.isfinite(es.validation_scores_).all() and len(es.loss_curve_) == es.n_iter_
