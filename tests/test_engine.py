"""fastnn._engine.run_epochs: several epochs per compiled call, on one thread or two.

1. Every kernel ("one"; "rows": minibatch rows split between two threads; "units": hidden units
   split) against the NumPy reference trainer, epoch for epoch: outputs, optimizers, weights,
   L2, partial / one-row minibatches, half-zero-weight minibatches, the Poisson output kind.
2. The two-thread kernels are deterministic; the rows kernel's replica equals the parameters.
3. A non-finite loss: the failing minibatch is reported, its update not applied, parameters
   finite (restored to the epoch's start when they were not).
4. scikit-learn's stopping rule and schedules run inside the kernel: the estimators' block path
   equals their per-epoch Python path bit for bit; the two-thread kernels apply them as the
   one-thread kernel does.
5. Two threads chosen automatically on digits keep scikit-learn's accuracy and loss curve.
6. ``use_two_threads`` decisions; 7. the handshake falls back to one thread when the two prange
   iterations do not run at the same time; 8. the ``_sync`` barrier orders memory.
"""
import contextlib
import warnings

import numba
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network._base import poisson_loss as sk_poisson_loss

import fastnn
from fastnn import _engine
from fastnn import reference as ref
from fastnn._jit import jit
from fastnn.kernels import _sync
from fastnn.kernels import epoch_units as kunits
from fastnn.kernels import epochs as kepochs
from fastnn.kernels.epoch import OUT_POISSON
from fastnn.kernels.softmax import PARALLEL_MIN_SIZE
from fastnn.network import Network
from fastnn.train import _FUSE_MIN, NonFiniteLossError, prepare_targets, run_epoch
from test_train import OPTIMIZERS  # the optimizers and their NumPy twins (tests/ is on sys.path)

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                               reason="numba's pool has a single thread")
MODES = ["one", pytest.param("rows", marks=needs_two), pytest.param("units", marks=needs_two)]
TWO_MODES = [pytest.param("rows", marks=needs_two), pytest.param("units", marks=needs_two)]

OUTPUTS = ["softmax", "softmax-proba", "sigmoid", "identity", "poisson"]
N, BATCH, EPOCHS = 43, 8, 3  # 5 full minibatches and a partial one of 3 rows per epoch


@contextlib.contextmanager
def forced(mode):
    """``run_epochs`` trains with ``mode``; a two-thread mode must really have run on two
    threads (the fallback to one thread would make the comparison vacuous)."""
    broken = list(_engine._broken)
    _engine._broken.clear()
    _engine.force.append(mode)
    try:
        yield
        assert not _engine._broken, f"the {mode!r} kernel's two threads did not run together"
    finally:
        _engine.force.pop()
        _engine._broken[:] = broken


@contextlib.contextmanager
def numba_threads(n):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


# --------------------------------------------------------------------------- problems
def _net(mode, output, dtype, hidden=None):
    out = {"softmax-proba": "softmax", "poisson": "identity"}.get(output, output)
    if hidden is None:
        hidden = (9, 7) if mode == "rows" else (33,)  # units: 17 + 16 units, an uneven split
    acts = ["tanh", "relu"][-len(hidden):] if len(hidden) <= 2 else "relu"
    return Network([5, *hidden, 3], activation=acts, output=out, dtype=dtype, seed=0)


def _data(output, dtype, n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if output == "softmax":
        return X.astype(dtype), rng.integers(0, 3, size=n)
    if output == "softmax-proba":
        y = rng.dirichlet(np.ones(3), size=n)
    elif output == "sigmoid":
        y = (rng.random((n, 3)) > 0.5).astype(float)
    elif output == "poisson":
        y = rng.poisson(np.exp(0.3 * X[:, :3])).astype(float)
    else:
        y = rng.normal(size=(n, 3))
    return X.astype(dtype), y.astype(dtype)


def _weights(orders, dtype, batch=BATCH, n=N, seed=1):
    """Random weights; in the first epoch minibatch 2 has its first half (thread 0's rows in
    the rows kernel) all zero and minibatch 3 its second half."""
    sw = np.random.default_rng(seed).uniform(0.5, 2.0, n)
    h = kepochs.half_rows(batch)
    sw[orders[0][batch:batch + h]] = 0.0
    sw[orders[0][2 * batch + h:3 * batch]] = 0.0
    return sw.astype(dtype)


def _ref_poisson_epoch(W, B, acts, X, y, order, batch_size, optimizer, alpha=0.0, sw=None):
    """reference_train_epoch for the exp output and half Poisson deviance: the gradient is the
    identity output's squared-error gradient against the target ``z - (exp(z) - y)``."""
    total = 0.0
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x, t = X[idx], y[idx]
        w = None if sw is None else sw[idx]
        z = ref.reference_forward(W, B, acts, "identity", x)[-1]
        shifted = z - (np.exp(z) - t)
        _, dws, dbs = ref.reference_loss_and_grad(W, B, acts, "identity", x, shifted, alpha, w)
        wsum = len(idx) if w is None else float(np.sum(w))
        l2 = 0.5 * alpha * sum(float(np.sum(m.astype(np.float64) ** 2)) for m in W) / wsum
        loss = sk_poisson_loss(t.astype(np.float64), np.exp(z.astype(np.float64)), w) + l2
        optimizer.step(list(W) + list(B), dws + dbs)
        total += loss * len(idx)
    return total / len(order)


def _ref_epoch(W, B, net, output, X, y, order, batch_size, optimizer, alpha, sw):
    if output == "poisson":
        return _ref_poisson_epoch(W, B, net.activations, X, y, order, batch_size, optimizer,
                                  alpha, sw)
    return ref.reference_train_epoch(W, B, net.activations, net.output, X, y, order,
                                     batch_size, optimizer, alpha=alpha, sample_weight=sw)


def _run(mode, net, X, y, optimizer, orders, batch_size, output="softmax", alpha=0.0, sw=None,
         fuse_min=_FUSE_MIN, stop=None):
    labels, targets, swe = _engine.engine_arrays(net, prepare_targets(net, y), sw)
    with forced(mode):
        return _engine.run_epochs(net, X, labels, targets, swe, optimizer, batch_size=batch_size,
                                  orders=orders, alpha=alpha, fuse_min=fuse_min, stop=stop,
                                  out_kind=OUT_POISSON if output == "poisson" else None)


def _check_against_reference(mode, output, opt, dtype, weighted, *, hidden=None, n=N,
                             batch=BATCH, epochs=EPOCHS, alpha=0.01, fuse_min=_FUSE_MIN):
    net = _net(mode, output, dtype, hidden)
    X, y = _data(output, dtype, n)
    rng = np.random.default_rng(2)
    orders = np.stack([rng.permutation(n) for _ in range(epochs)])
    sw = _weights(orders, dtype, batch, n) if weighted else None
    W, B = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    one = net.copy()
    make, make_ref = OPTIMIZERS[opt]
    optimizer, roptimizer, opt_one = make(), make_ref(), make()
    losses, stopped, failed, restored = _run(mode, net, X, y, optimizer, orders, batch, output,
                                             alpha, sw, fuse_min)
    want = [_ref_epoch(W, B, net, output, X, y, orders[e], batch, roptimizer, alpha, sw)
            for e in range(epochs)]
    tol = 1e-4 if dtype == "float32" else 1e-9
    assert (stopped, failed, restored) == (False, 0, False)
    assert optimizer.t == epochs * -(-n // batch)
    np.testing.assert_allclose(losses, want, rtol=tol)
    for a, b in zip(net.weights + net.biases, W + B):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    if mode != "one":  # the same losses as the one-thread kernel, epoch by epoch
        losses_one, *_ = _run("one", one, X, y, opt_one, orders, batch, output, alpha, sw,
                              fuse_min)
        np.testing.assert_allclose(losses, losses_one, rtol=tol)
        np.testing.assert_allclose(net.params, one.params, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- 1. vs reference
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("mode", MODES)
def test_epochs_equal_the_reference_trainer(mode, output, opt):
    _check_against_reference(mode, output, opt, "float64", weighted=True)
    _check_against_reference(mode, output, opt, "float64", weighted=False)
    _check_against_reference(mode, output, opt, "float32", weighted=True)


@needs_two
@pytest.mark.parametrize("output", ["softmax", "softmax-proba", "sigmoid"])
@pytest.mark.parametrize("opt", ["adam", "momentum"])
def test_units_kernel_transposes_x_or_the_hidden_product(opt, output):
    # 5 inputs: 33 units (17 + 16 per thread) transpose x; 5 units (3 + 2) transpose x on
    # thread 0 (5 <= 2 * 3) and the hidden product on thread 1 (5 > 2 * 2); 3 units: both
    for hidden in [(33,), (5,), (3,)]:
        _check_against_reference("units", output, opt, "float64", weighted=True, hidden=hidden)
        _check_against_reference("units", output, opt, "float32", weighted=False, hidden=hidden)


@needs_two
@pytest.mark.parametrize("output", ["softmax", "identity"])
@pytest.mark.parametrize("opt", ["adam", "nesterov"])
def test_rows_kernel_with_one_hidden_layer(opt, output):
    _check_against_reference("rows", output, opt, "float64", weighted=True, hidden=(33,))


@pytest.mark.parametrize("opt", ["adam", "momentum"])
@pytest.mark.parametrize("mode", MODES)
def test_minibatches_of_one_row(mode, opt):
    # batch size 1 (in the rows kernel thread 1 never gets a row) ...
    _check_against_reference(mode, "softmax", opt, "float64", weighted=False, n=7, batch=1,
                             epochs=2)
    _check_against_reference(mode, "sigmoid", opt, "float32", weighted=False, n=7, batch=1,
                             epochs=2)
    # ... and a last minibatch of one row (43 = 7 * 6 + 1)
    _check_against_reference(mode, "identity", opt, "float64", weighted=True, batch=6)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov"])
def test_sgd_fused_into_the_weight_gemm(opt):
    # fuse_min=0 folds plain/momentum SGD into every layer's weight GEMM (one-thread kernel)
    _check_against_reference("one", "softmax", opt, "float64", weighted=True, fuse_min=0)
    _check_against_reference("one", "identity", opt, "float32", weighted=False, fuse_min=0)


# --------------------------------------------------------------------------- 2. determinism
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", TWO_MODES)
def test_two_thread_kernels_are_deterministic(mode, dtype):
    base = _net(mode, "softmax", dtype)
    X, y = _data("softmax", dtype, n=300)
    rng = np.random.default_rng(3)
    orders = np.stack([rng.permutation(300) for _ in range(4)])
    sw = rng.uniform(0.5, 2.0, 300).astype(dtype)
    runs = []
    for _ in range(2):
        net, opt = base.copy(), fastnn.Adam(0.01)
        losses, *_ = _run(mode, net, X, y, opt, orders, 32, alpha=1e-3, sw=sw)
        runs.append((net, opt, losses))
    (a, opt_a, la), (b, opt_b, lb) = runs
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(a.params, b.params)
    for s, t in zip(opt_a._states[:2], opt_b._states[:2]):
        np.testing.assert_array_equal(s, t)
    assert not np.array_equal(a.params, base.params)
    if mode == "rows":  # thread 1 trained a replica: bit-identical to thread 0's parameters
        keys = [k for k in a._workspaces if k[:2] == ("epochs", "rows")]
        assert len(keys) == 1
        replica = a._workspaces[keys[0]][1][1]
        p = a.params.shape[0]
        np.testing.assert_array_equal(replica[0, :p], a.params)
        np.testing.assert_array_equal(replica[1, :p], opt_a._states[0])
        np.testing.assert_array_equal(replica[2, :p], opt_a._states[1])


# --------------------------------------------------------------------------- 3. non-finite
@pytest.mark.parametrize("mode", MODES)
def test_diverging_learning_rate_restores_the_epoch_start(mode):
    # lr * (bias gradient ~ -100) overflows: the parameters are inf after step 1 and the loss
    # of minibatch 2 is not finite
    net = _net(mode, "identity", "float64")
    X, y = _data("identity", "float64")
    y = y + 100.0
    start = net.params.copy()
    orders = np.stack([np.arange(N)] * 2)
    opt = fastnn.SGD(lr=1e308)
    losses, stopped, failed, restored = _run(mode, net, X, y, opt, orders, BATCH)
    assert len(losses) == 0 and not stopped
    assert failed == 2 and restored
    assert opt.t == 1
    np.testing.assert_array_equal(net.params, start)
    opt = fastnn.SGD(lr=1e308)
    with forced(mode), pytest.raises(NonFiniteLossError,
                                     match=r"at minibatch 2 of the epoch .*start of the epoch"):
        run_epoch(net, X, prepare_targets(net, y), opt, batch_size=BATCH, order=orders[0])
    np.testing.assert_array_equal(net.params, start)
    assert opt.t == 1


@pytest.mark.parametrize("mode", MODES)
def test_snapshot_is_the_start_of_the_failing_epoch(mode):
    # epoch 1 trains; minibatch 2 of epoch 2 holds an infinite row (non-finite logits): the
    # kernel's snapshot (what run_epochs restores when the parameters are not finite) must be
    # the parameters after epoch 1, not the call's start
    net = _net(mode, "softmax", "float64", hidden=(33,))
    X, y = _data("softmax", "float64", n=N + 1)
    X[N] = np.inf
    rng = np.random.default_rng(5)
    first, second = rng.permutation(N), rng.permutation(N)
    second[BATCH + 2] = N
    after_one = net.copy()
    _run(mode, after_one, X, y, fastnn.Adam(1e-2), first[None], BATCH)
    losses, stopped, failed, restored = _run(mode, net, X, y, fastnn.Adam(1e-2),
                                             np.stack([first, second]), BATCH)
    assert len(losses) == 1 and failed == 2 and not restored and not stopped
    (snapshot,) = [b[-1] for k, b in net._workspaces.items() if k[:2] == ("epochs", mode)]
    np.testing.assert_array_equal(snapshot, after_one.params)


@pytest.mark.parametrize("mode", MODES)
def test_poisson_exp_overflow_stops_at_its_minibatch(mode):
    net = _net(mode, "poisson", "float64", hidden=(33,))  # relu: the logits grow with x
    X, y = _data("poisson", "float64", n=N + 1)
    bad = N
    X[bad] = 1e4  # exp(z) overflows on this row
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(net.logits(X[bad:bad + 1]))).all()  # (precondition)
    rng = np.random.default_rng(4)
    first = rng.permutation(N)  # epoch 1 does not visit the bad row ...
    second = rng.permutation(N)
    second[2 * BATCH + 1] = bad  # ... epoch 2 visits it in minibatch 3
    orders = np.stack([first, second, first])
    start = net.copy()
    W, B = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    make = lambda: fastnn.SGD(lr=1e-3, momentum=0.9)  # noqa: E731
    opt, ropt = make(), ref.ReferenceSGD(lr=1e-3, momentum=0.9)
    losses, stopped, failed, restored = _run(mode, net, X, y, opt, orders, BATCH, "poisson")
    want = _ref_poisson_epoch(W, B, net.activations, X, y, first, BATCH, ropt)
    _ref_poisson_epoch(W, B, net.activations, X, y, second[:2 * BATCH], BATCH, ropt)
    assert failed == 3 and not restored and not stopped
    np.testing.assert_allclose(losses, [want], rtol=1e-9)
    assert opt.t == -(-N // BATCH) + 2  # epoch 1 and two minibatches: the third not applied
    assert np.isfinite(net.params).all()
    for a, b in zip(net.weights + net.biases, W + B):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    net, opt = start, make()
    with forced(mode), pytest.raises(NonFiniteLossError, match="at minibatch 3 of the epoch"):
        run_epoch(net, X, prepare_targets(net, y), opt, batch_size=BATCH, order=second,
                  _output="exp")
    assert opt.t == 2 and np.isfinite(net.params).all()


# --------------------------------------------------------------------------- 4. blocks of epochs
def _iris():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _regression():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(150, 4))
    return X, np.c_[X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])]


def _poisson():
    rng = np.random.default_rng(6)
    X = rng.uniform(-1.0, 1.0, (150, 4))
    return X, rng.poisson(np.exp(X @ rng.uniform(-0.6, 0.6, (4, 2)) + 0.3)).astype(float)


BLOCK_CASES = {
    "adam-tol-stops": ("clf", dict(solver="adam", tol=1e-2, n_iter_no_change=3,
                                   learning_rate_init=0.01, max_iter=300)),
    "sgd-constant": ("clf", dict(solver="sgd", learning_rate_init=0.05, max_iter=300)),
    "sgd-invscaling": ("clf", dict(solver="sgd", learning_rate="invscaling", momentum=0.0,
                                   learning_rate_init=0.5, max_iter=300)),
    "sgd-adaptive": ("clf", dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05,
                                 tol=1e-2, n_iter_no_change=2, max_iter=60)),
    "adam-max-iter": ("reg", dict(solver="adam", max_iter=25, alpha=1e-3)),
    "sgd-poisson": ("poisson", dict(solver="sgd", learning_rate_init=0.01, tol=1e-3,
                                    n_iter_no_change=4, max_iter=200, loss="poisson")),
}


def _fit_recorded(make, X, y, verbose, calls, monkeypatch, warm=False):
    """Fit with force "one"; returns (estimator, ConvergenceWarning messages, epochs per
    run_epochs call)."""
    real = _engine.run_epochs
    calls.clear()

    def spy(*args, **kw):
        calls.append(len(kw["orders"]))
        return real(*args, **kw)

    monkeypatch.setattr(_engine, "run_epochs", spy)
    est = make(verbose=verbose, warm_start=warm)
    with forced("one"), warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(X, y)
        if warm:
            est.set_params(max_iter=est.max_iter + 7)
            est.fit(X, y)
    monkeypatch.setattr(_engine, "run_epochs", real)
    return est, [str(w.message) for w in ws if issubclass(w.category, ConvergenceWarning)]


def _assert_bitwise_same_fit(a, b):
    assert a.loss_curve_ == b.loss_curve_
    assert (a.n_iter_, a.t_, a.loss_) == (b.n_iter_, b.t_, b.loss_)
    assert a.best_loss_ == b.best_loss_
    assert a._no_improvement_count == b._no_improvement_count
    assert a._optimizer.learning_rate == b._optimizer.learning_rate
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(ca, cb)
    sa, sb = a._random_state.get_state(), b._random_state.get_state()
    assert sa[0] == sb[0] and sa[2:] == sb[2:]
    np.testing.assert_array_equal(sa[1], sb[1])


@pytest.mark.parametrize("mode", MODES)
def test_parameters_and_workspaces_start_on_a_cache_line(mode):
    # (a buffer at 32 mod 64 splits every 64-byte vector load across two cache lines: a digits
    # fit ran ~5% slower)
    net = _net(mode, "softmax", "float32")
    X, y = _data("softmax", "float32")
    _run(mode, net, X, y, fastnn.Adam(1e-3), np.stack([np.arange(N)] * 2), BATCH)
    arrays = [net.params]
    for bufs in net._workspaces.values():
        for b in bufs:
            arrays += list(b) if isinstance(b, tuple) else [b]
    floats = [a for a in arrays if a.dtype.kind == "f" and a.size]
    assert len(floats) >= 3
    assert all(a.ctypes.data % 64 == 0 for a in floats)
    assert not np.shares_memory(floats[0], floats[1])


def test_a_repeated_fit_sizes_its_first_block_from_the_last_one(monkeypatch):
    # the first fit of a shape times a short first block; the next one runs its epochs in one
    # block of ~BLOCK_SECONDS, with the same result
    from fastnn.sklearn import MLPClassifier, _stochastic

    X, y = _iris()
    make = lambda **kw: MLPClassifier(hidden_layer_sizes=(8,), batch_size=20,  # noqa: E731
                                      random_state=0, max_iter=30, tol=0.0, **kw)
    monkeypatch.setattr(_stochastic, "_epoch_seconds", {})
    calls = []
    first, _ = _fit_recorded(make, X, y, False, calls, monkeypatch)
    assert calls[0] < 30 and len(calls) > 1
    second, _ = _fit_recorded(make, X, y, False, calls, monkeypatch)
    assert calls == [30]
    _assert_bitwise_same_fit(first, second)


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("case", list(BLOCK_CASES))
def test_blocks_of_epochs_equal_the_per_epoch_path(case, warm, capsys, monkeypatch):
    from fastnn.sklearn import MLPClassifier, MLPRegressor

    kind, params = BLOCK_CASES[case]
    X, y = {"clf": _iris, "reg": _regression, "poisson": _poisson}[kind]()
    cls = MLPClassifier if kind == "clf" else MLPRegressor
    make = lambda **kw: cls(hidden_layer_sizes=(8,), batch_size=20, random_state=0,  # noqa: E731
                            **params, **kw)
    calls = []
    a, warn_a = _fit_recorded(make, X, y, False, calls, monkeypatch, warm)
    assert max(calls) > 1  # the block path: several epochs per compiled call
    capsys.readouterr()
    b, warn_b = _fit_recorded(make, X, y, True, calls, monkeypatch, warm)
    assert set(calls) == {1} and "Iteration 1, loss = " in capsys.readouterr().out
    _assert_bitwise_same_fit(a, b)
    assert warn_a == warn_b
    max_iter = params["max_iter"] + (7 if warm else 0)
    if case in ("adam-tol-stops", "sgd-poisson"):
        assert a.n_iter_ < max_iter and not warn_a  # stopped by the tol rule, inside a block
    if case == "sgd-adaptive":  # the rate was divided by 5 (at least once) and training went on
        ratio = np.log(params["learning_rate_init"] / a._optimizer.learning_rate) / np.log(5)
        assert ratio >= 1 and ratio == pytest.approx(round(ratio), abs=1e-9)
    if case == "adam-max-iter":
        assert a.n_iter_ == max_iter and len(warn_a) == 1 + warm


@pytest.mark.parametrize("schedule", ["adaptive", "invscaling"])
@pytest.mark.parametrize("mode", TWO_MODES)
def test_stopping_rule_and_schedule_in_two_thread_kernels(mode, schedule):
    # the two-thread kernels apply scikit-learn's end of epoch as the one-thread kernel does
    X, y = _data("softmax", "float64", n=200)
    rng = np.random.default_rng(7)
    orders = np.stack([rng.permutation(200) for _ in range(60)])
    results = []
    for m in (mode, "one"):
        net, opt = _net(mode, "softmax", "float64"), fastnn.SGD(lr=0.2, momentum=0.9)
        patience = 2 if schedule == "adaptive" else 100  # (invscaling: all 60 epochs)
        stop = _engine.stop_state(1e-2, patience, np.inf, 0, schedule, 0.2, 0.5, 0)
        losses, stopped, failed, _ = _run(m, net, X, y, opt, orders, 16, stop=stop)
        results.append((net, opt, stop, losses, stopped, failed))
    (a, opt_a, stop_a, la, sa, fa), (b, opt_b, stop_b, lb, sb, fb) = results
    if mode == "rows":  # thread 1 must use the same learning rate as thread 0 at every step
        key = next(k for k in a._workspaces if k[:2] == ("epochs", "rows"))
        np.testing.assert_array_equal(a._workspaces[key][1][1][0, :a.params.shape[0]], a.params)
    assert (sa, fa) == (sb, fb) == (schedule == "adaptive", 0)
    assert len(la) == len(lb) and opt_a.t == opt_b.t == len(la) * 13
    np.testing.assert_allclose(la, lb, rtol=1e-9)
    np.testing.assert_allclose(stop_a, stop_b, rtol=1e-9)
    assert opt_a.lr == pytest.approx(opt_b.lr, rel=1e-9)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-7, atol=1e-9)
    if schedule == "adaptive":  # divided by 5 until <= 1e-6, then stopped
        assert len(la) < 60 and opt_a.lr <= 1e-6 and opt_a.lr == pytest.approx(0.2 / 5 ** 8)
    else:
        assert opt_a.lr == pytest.approx(0.2 / (60 * 200 + 1) ** 0.5, rel=1e-12)


# --------------------------------------------------------------------------- 5. digits parity
@needs_two
def test_digits_on_two_threads_match_scikit_learn(monkeypatch):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    from fastnn.sklearn import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.3, random_state=0,
                                              stratify=y)
    real, modes = _engine.use_two_threads, []

    def spy(*args):
        modes.append(real(*args))
        return modes[-1]

    monkeypatch.setattr(_engine, "use_two_threads", spy)
    broken = list(_engine._broken)
    _engine._broken.clear()
    kw = dict(hidden_layer_sizes=(100,), max_iter=50, random_state=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a = MLPClassifier(**kw).fit(X_tr, y_tr)
            b = SkMLPClassifier(**kw).fit(X_tr, y_tr)
        assert not _engine._broken
    finally:
        _engine._broken[:] = broken
    assert set(modes) - {"one"}, modes  # some epochs ran on two threads
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=2e-3)
    assert abs(a.score(X_te, y_te) - b.score(X_te, y_te)) <= 0.02


# --------------------------------------------------------------------------- 6. decisions
@contextlib.contextmanager
def automatic():
    """No forced kernel, no memory of a failed handshake."""
    force, broken = list(_engine.force), list(_engine._broken)
    _engine.force.clear()
    _engine._broken.clear()
    try:
        yield
    finally:
        _engine.force[:] = force
        _engine._broken[:] = broken


@needs_two
def test_use_two_threads_decisions():
    decide = _engine.use_two_threads
    many = 1000
    with automatic(), numba_threads(2):
        assert decide([784, 256, 10], 128, many) == "units"
        assert decide([64, 100, 10], 200, many) == "units"  # digits
        # more logits per minibatch than parameters: rows exchange less
        assert decide([8, 32, 100], 200, many) == "rows"
        assert decide([64, 100, 50, 10], 200, many) == "rows"
        assert decide([64, 30, 10], 400, many) == "rows"  # too few hidden units to split
        assert decide([64, 100, 10], 200, _engine.TWO_THREADS_MIN_STEPS - 1) == "one"
        assert decide([4, 10, 3], 32, many) == "one"  # tiny: the barriers would cost more
        assert decide([784, 512, 256, 10], 128, many) == "one"  # large, not one hidden layer
        k = -(-PARALLEL_MIN_SIZE // 128)
        assert decide([784, 256, k], 128, many) == "one"  # the parallel softmax's size
        assert decide([784, 256, k - 1], 128, many) == "units"
        _engine._broken.append(True)  # a failed handshake: one thread from then on
        assert decide([784, 256, 10], 128, many) == "one"
        _engine._broken.clear()
        with numba_threads(1):
            assert decide([784, 256, 10], 128, many) == "one"
            assert decide([64, 100, 10], 200, many) == "one"
        _engine.force.append("units")
        assert decide([4, 10, 3], 1, 1) == "units"


def test_more_than_two_threads_leave_large_products_to_blas(monkeypatch):
    # the two-thread kernels use two threads; with more, BLAS threads large products over all
    # of them, while small networks (one-thread BLAS) still gain from splitting rows
    monkeypatch.setattr(_engine.numba, "get_num_threads", lambda: 8)
    with automatic():
        assert _engine.use_two_threads([784, 256, 10], 128, 1000) == "one"
        assert _engine.use_two_threads([64, 100, 10], 200, 1000) == "units"
        assert _engine.use_two_threads([64, 100, 50, 10], 200, 1000) == "rows"


# --------------------------------------------------------------------------- 7. fallback
def _kernel_call(mode, net, X, y, opt, orders, batch):
    """Call a two-thread kernel directly, with the arguments run_epochs builds."""
    labels, targets, sw = _engine.engine_arrays(net, prepare_targets(net, y), None)
    s1, s2 = opt._buffers(net.params)
    hp = opt._hparams()
    args = (X, labels, targets, sw, orders, batch, net._sizes, net._w_off, net._b_off, net._codes,
            net._out_kind, net.params)
    stop, losses = np.zeros(0), np.zeros(orders.shape[0])
    if mode == "units":
        ws, (own, parts), lb, tb, wb, snapshot = _engine._buffers(net, batch, labels, targets, sw,
                                                                  "units")
        return kunits.train_epochs_units(*args, opt.kind, hp, s1, s2, opt.t, 0.0, own, ws, lb, tb,
                                         wb, parts, 1.0, stop, losses, snapshot)
    ws, (grads, replica), lb, tb, wb, snapshot = _engine._buffers(net, batch, labels, targets,
                                                                  sw, "rows")
    return kepochs.train_epochs_2(*args, grads, opt.kind, hp, s1, s2, opt.t, 0.0, ws, lb, tb, wb,
                                  1.0, stop, losses, snapshot, replica)


@pytest.mark.parametrize("mode", ["rows", "units"])
def test_handshake_gives_up_when_the_iterations_run_one_after_the_other(mode):
    net = _net(mode, "softmax", "float64")
    X, y = _data("softmax", "float64")
    orders = np.stack([np.arange(N)] * 2)
    start = net.params.copy()
    opt = fastnn.Adam(0.01)
    with numba_threads(1):
        epochs, steps, finite, stopped, ran = _kernel_call(mode, net, X, y, opt, orders, BATCH)
    assert not ran
    np.testing.assert_array_equal(net.params, start)
    assert not opt._states[0].any() and not opt._states[1].any()
    # run_epochs then trains on one thread, as the one-thread kernel, and keeps trying two
    # threads later (a single-thread pool is no broken threading layer)
    one, opt_one = net.copy(), fastnn.Adam(0.01)
    with numba_threads(1):
        got = _run(mode, net, X, y, opt, orders, BATCH)  # (forced: asserts _broken stays empty)
    want = _run("one", one, X, y, opt_one, orders, BATCH)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:] and opt.t == opt_one.t == 2 * 6
    np.testing.assert_array_equal(net.params, one.params)


# --------------------------------------------------------------------------- 8. _sync
@jit(parallel=True)
def _barrier_rounds(rounds, flags, cells, out):
    """Two prange iterations pass ``rounds`` barriers; before barrier ``k`` each writes ``k``
    into its cell of parity ``k % 2``; after it each reads the partner's.  ``out[me]`` =
    (handshake result, mismatches)."""
    for me in numba.prange(2):
        ok = _sync.handshake(flags, me)
        out[me, 0] = 1 if ok else 0
        if ok:
            bad = 0
            for k in range(1, rounds + 1):
                cells[me, k % 2] = k
                _sync.arrive_and_wait(flags, me, k)
                if cells[1 - me, k % 2] != k:
                    bad += 1
            out[me, 1] = bad


@needs_two
def test_barrier_orders_memory_between_the_two_threads():
    with numba_threads(2):
        for _ in range(3):
            flags = np.zeros(3 * _sync.LINE, dtype=np.int64)
            cells = np.zeros((2, 2), dtype=np.int64)
            out = np.full((2, 2), -1, dtype=np.int64)
            _barrier_rounds(10_000, flags, cells, out)
            np.testing.assert_array_equal(out, [[1, 0], [1, 0]])
            assert flags[0] == flags[_sync.LINE] == 10_000
    with numba_threads(1):  # one after the other: both give up, neither passes a barrier
        out = np.full((2, 2), -1, dtype=np.int64)
        _barrier_rounds(10, np.zeros(3 * _sync.LINE, dtype=np.int64), np.zeros((2, 2), np.int64),
                        out)
        np.testing.assert_array_equal(out, [[0, -1], [0, -1]])


@needs_two
@pytest.mark.parametrize("layer", ["omp", "workqueue"])
def test_concurrent_fits_from_python_threads_equal_sequential_ones(layer, monkeypatch):
    # two Python threads training at once each launch a two-thread kernel; under the workqueue
    # layer (no concurrent launches) fastnn serialises them; the weights equal sequential fits
    import threading

    if layer == "workqueue":  # the real layer stays omp; only the serialising path is taken
        monkeypatch.setattr(_engine.numba, "threading_layer", lambda: "workqueue")
    rng = np.random.default_rng(0)
    X = rng.random((600, 64), dtype=np.float32)
    y = rng.integers(0, 10, 600)
    orders = np.stack([rng.permutation(600) for _ in range(6)])

    def train(seed, out):
        net = Network([64, 100, 10], seed=seed)
        labels, targets, sw = _engine.engine_arrays(net, prepare_targets(net, y), None)
        _engine.run_epochs(net, X, labels, targets, sw, fastnn.Adam(1e-3), batch_size=100,
                           orders=orders)
        out[seed] = net.params.copy()

    with automatic():
        assert _engine.use_two_threads([64, 100, 10], 100, 6 * 6) == "units"  # two threads
        alone = {}
        for seed in (1, 2):
            train(seed, alone)
        together = {}
        threads = [threading.Thread(target=train, args=(seed, together)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not _engine._broken
    for seed in (1, 2):
        np.testing.assert_array_equal(together[seed], alone[seed])
