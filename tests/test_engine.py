"""fastnn._engine.run_epochs: blocks of epochs in one compiled call (fastnn.kernels.engine).

1. The engine against the NumPy reference trainer, epoch for epoch: outputs, optimizers (plain
   SGD folded into the weight GEMM for larger layers), weights, L2, partial / one-row
   minibatches, zero-weight minibatches, the Poisson output kind.
2. Determinism.
3. A non-finite loss: the failing minibatch is reported and the parameters are those of the
   start of the failing epoch.
4. scikit-learn's stopping rule and schedules run inside the kernel: the estimators' block path
   equals their per-epoch Python path bit for bit.
5. Only the loss a call uses is compiled, and the compiled code is cached.
"""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network._base import poisson_loss as sk_poisson_loss

import fastnn
from fastnn import _engine
from fastnn import reference as ref
from fastnn.network import Network
from fastnn.train import NonFiniteLossError, prepare_targets, run_epoch
from test_train import OPTIMIZERS  # the optimizers and their NumPy twins (tests/ is on sys.path)

OUTPUTS = ["softmax", "softmax-proba", "sigmoid", "identity", "poisson"]
N, BATCH, EPOCHS = 43, 8, 3  # 5 full minibatches and a partial one of 3 rows per epoch
OUT_POISSON = _engine.OUT_POISSON


# --------------------------------------------------------------------------- problems
def _net(output, dtype, hidden=(9, 7)):
    out = {"softmax-proba": "softmax", "poisson": "identity"}.get(output, output)
    acts = ["tanh", "relu"][2 - len(hidden):] if len(hidden) <= 2 else "relu"
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
    """Random weights; in the first epoch minibatch 2 has its first half all zero and minibatch
    3 its second half."""
    sw = np.random.default_rng(seed).uniform(0.5, 2.0, n)
    h = (batch + 1) // 2
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


def _run(net, X, y, optimizer, orders, batch_size, output="softmax", alpha=0.0, sw=None,
         stop=None):
    return _engine.run_epochs(net, X, prepare_targets(net, y),
                              _engine.weights_array(sw, net.dtype), optimizer,
                              batch_size=batch_size, orders=orders, alpha=alpha, stop=stop,
                              out_kind=OUT_POISSON if output == "poisson" else None)


def _check_against_reference(output, opt, dtype, weighted, *, hidden=(9, 7), n=N,
                             batch=BATCH, epochs=EPOCHS, alpha=0.01):
    net = _net(output, dtype, hidden)
    X, y = _data(output, dtype, n)
    rng = np.random.default_rng(2)
    orders = np.stack([rng.permutation(n) for _ in range(epochs)])
    sw = _weights(orders, dtype, batch, n) if weighted else None
    W, B = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    make, make_ref = OPTIMIZERS[opt]
    optimizer, roptimizer = make(), make_ref()
    losses, stopped, failed = _run(net, X, y, optimizer, orders, batch, output, alpha, sw)
    want = [_ref_epoch(W, B, net, output, X, y, orders[e], batch, roptimizer, alpha, sw)
            for e in range(epochs)]
    tol = 1e-4 if dtype == "float32" else 1e-9
    assert (stopped, failed) == (False, 0)
    assert optimizer.t == epochs * -(-n // batch)
    np.testing.assert_allclose(losses, want, rtol=tol)
    for a, b in zip(net.weights + net.biases, W + B):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- 1. vs reference
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("output", OUTPUTS)
def test_epochs_equal_the_reference_trainer(output, opt):
    # (9, 7) hidden units, batch 8: plain SGD is folded into the weight GEMM of the first two
    # layers (8 * 5 * 9 and 8 * 9 * 7 multiply-adds > SMALL_MACS), not of the last one
    _check_against_reference(output, opt, "float64", weighted=True)
    _check_against_reference(output, opt, "float64", weighted=False)
    _check_against_reference(output, opt, "float32", weighted=True)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_one_hidden_layer_and_no_hidden_layer(opt):
    _check_against_reference("softmax", opt, "float64", weighted=True, hidden=(33,))
    _check_against_reference("identity", opt, "float64", weighted=False, hidden=())


@pytest.mark.parametrize("opt", ["adam", "momentum"])
def test_minibatches_of_one_row(opt):
    _check_against_reference("softmax", opt, "float64", weighted=False, n=7, batch=1, epochs=2)
    _check_against_reference("sigmoid", opt, "float32", weighted=False, n=7, batch=1, epochs=2)
    # ... and a last minibatch of one row (43 = 7 * 6 + 1)
    _check_against_reference("identity", opt, "float64", weighted=True, batch=6)


def test_zero_weight_minibatch_is_skipped():
    net = _net("softmax", "float64")
    X, y = _data("softmax", "float64", n=16)
    sw = np.ones(16)
    sw[8:] = 0.0  # the second minibatch has no weight: no gradient, no step
    opt = fastnn.SGD(0.1)
    losses, stopped, failed = _run(net, X, y, opt, np.arange(16)[None], 8, sw=sw)
    assert failed == 0 and opt.t == 1 and np.isfinite(losses).all()
    W, B = [w.copy() for w in _net("softmax", "float64").weights], \
        [b.copy() for b in _net("softmax", "float64").biases]
    ref.reference_train_epoch(W, B, net.activations, "softmax", X[:8], y[:8], np.arange(8), 8,
                              ref.ReferenceSGD(lr=0.1))
    for a, b in zip(net.weights + net.biases, W + B):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- 2. determinism
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epochs_are_deterministic(dtype):
    base = _net("softmax", dtype)
    X, y = _data("softmax", dtype, n=300)
    rng = np.random.default_rng(3)
    orders = np.stack([rng.permutation(300) for _ in range(4)])
    sw = rng.uniform(0.5, 2.0, 300).astype(dtype)
    runs = []
    for _ in range(2):
        net, opt = base.copy(), fastnn.Adam(0.01)
        losses, *_ = _run(net, X, y, opt, orders, 32, alpha=1e-3, sw=sw)
        runs.append((net, opt, losses))
    (a, opt_a, la), (b, opt_b, lb) = runs
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(a.params, b.params)
    for s, t in zip(opt_a._states[:2], opt_b._states[:2]):
        np.testing.assert_array_equal(s, t)
    assert not np.array_equal(a.params, base.params)


# --------------------------------------------------------------------------- 3. non-finite
def test_diverging_learning_rate_restores_the_epoch_start():
    # lr * (bias gradient ~ -100) overflows: the parameters are inf after step 1 and the loss
    # of minibatch 2 is not finite
    net = _net("identity", "float64")
    X, y = _data("identity", "float64")
    y = y + 100.0
    start = net.params.copy()
    orders = np.stack([np.arange(N)] * 2)
    opt = fastnn.SGD(lr=1e308)
    losses, stopped, failed = _run(net, X, y, opt, orders, BATCH)
    assert len(losses) == 0 and not stopped
    assert failed == 2
    assert opt.t == 1
    np.testing.assert_array_equal(net.params, start)
    opt = fastnn.SGD(lr=1e308)
    with pytest.raises(NonFiniteLossError,
                                     match=r"at minibatch 2 of the epoch .*start of an epoch"):
        run_epoch(net, X, prepare_targets(net, y), opt, batch_size=BATCH, order=orders[0])
    np.testing.assert_array_equal(net.params, start)
    assert opt.t == 1


def test_a_failing_epoch_restores_its_start_not_the_call_start():
    # epoch 1 trains; minibatch 2 of epoch 2 holds an infinite row (non-finite logits): the
    # parameters are those after epoch 1
    net = _net("softmax", "float64", hidden=(33,))
    X, y = _data("softmax", "float64", n=N + 1)
    X[N] = np.inf
    rng = np.random.default_rng(5)
    first, second = rng.permutation(N), rng.permutation(N)
    second[BATCH + 2] = N
    after_one = net.copy()
    _run(after_one, X, y, fastnn.Adam(1e-2), first[None], BATCH)
    losses, stopped, failed = _run(net, X, y, fastnn.Adam(1e-2), np.stack([first, second]),
                                   BATCH)
    assert len(losses) == 1 and failed == 2 and not stopped
    np.testing.assert_array_equal(net.params, after_one.params)


def test_an_update_that_overflows_the_weights_fails_at_the_end_of_its_epoch():
    # the last update of the only epoch makes a weight infinite (loss still finite before it):
    # reported, and the network keeps its start
    net = _net("identity", "float64")
    X, y = _data("identity", "float64", n=8)
    start = net.params.copy()
    losses, stopped, failed = _run(net, X, y * 1e150, fastnn.SGD(lr=1e200), np.arange(8)[None],
                                   8)
    assert failed and len(losses) == 0
    np.testing.assert_array_equal(net.params, start)
    assert np.isfinite(net.predict(X)).all()


def test_poisson_exp_overflow_stops_at_its_minibatch():
    net = _net("poisson", "float64", hidden=(33,))  # relu: the logits grow with x
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
    losses, stopped, failed = _run(net, X, y, opt, orders, BATCH, "poisson")
    want = _ref_poisson_epoch(W, B, net.activations, X, y, first, BATCH, ropt)
    assert failed == 3 and not stopped
    np.testing.assert_allclose(losses, [want], rtol=1e-9)
    assert opt.t == -(-N // BATCH) + 2  # epoch 1 and two minibatches: the third not applied
    for a, b in zip(net.weights + net.biases, W + B):  # the start of epoch 2
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    net, opt = start, make()
    with pytest.raises(NonFiniteLossError, match="at minibatch 3 of the epoch"):
        run_epoch(net, X, prepare_targets(net, y), opt, batch_size=BATCH, order=second,
                  _output="exp")
    np.testing.assert_array_equal(net.params, start.params)


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
    """Fit; returns (estimator, ConvergenceWarning messages); ``calls`` gets the epochs of each
    run_epochs call."""
    real = _engine.run_epochs
    calls.clear()

    def spy(*args, **kw):
        calls.append(len(kw["orders"]))
        return real(*args, **kw)

    monkeypatch.setattr(_engine, "run_epochs", spy)
    est = make(verbose=verbose, warm_start=warm)
    with warnings.catch_warnings(record=True) as ws:
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


def test_parameters_and_workspaces_start_on_a_cache_line():
    # (a buffer at 32 mod 64 splits every 64-byte vector load across two cache lines)
    net = _net("softmax", "float32")
    X, y = _data("softmax", "float32")
    _run(net, X, y, fastnn.Adam(1e-3), np.stack([np.arange(N)] * 2), BATCH)
    ws, grad, (snapshots, _) = _engine._buffers(net, BATCH)
    floats = [net.params, ws, grad, snapshots]
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


# --------------------------------------------------------------------------- 5. compilation
def test_a_call_compiles_only_its_loss_and_a_new_process_loads_it(tmp_path):
    code = """
import numpy as np, fastnn
from fastnn.kernels import engine, losses, softmax
X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
net = fastnn.Network([3, 4, 2], dtype="float32", seed=0)
fastnn.fit(net, X, np.arange(20) % 2, epochs=1, batch_size=8, optimizer=fastnn.Adam())
print(len(softmax.ce_labels_block.signatures), len(losses._sigmoid_ce_row.signatures),
      len(losses._squared_row.signatures), engine.train_epochs.stats.cache_hits.total()
      if hasattr(engine.train_epochs.stats.cache_hits, "total")
      else sum(engine.train_epochs.stats.cache_hits.values()))
"""
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=600) for _ in range(2)]
    for out in outs:
        assert out.returncode == 0, out.stderr
    assert outs[0].stdout.split() == ["1", "0", "0", "0"]  # the label cross-entropy only
    assert outs[1].stdout.split()[3] == "1"  # the second process loads the epoch kernel


# --------------------------------------------------------------------------- 6. misuse
def test_read_only_input_trains():
    X, y = _data("softmax", "float32", n=40)
    X = np.frombuffer(X.tobytes(), dtype=np.float32).reshape(40, 5)  # read-only, C-contiguous
    assert not X.flags.writeable
    a, b = _net("softmax", "float32"), _net("softmax", "float32")
    fastnn.fit(a, X, y, epochs=2, batch_size=8, optimizer=fastnn.Adam(0.01), seed=0)
    fastnn.fit(b, X.copy(), y, epochs=2, batch_size=8, optimizer=fastnn.Adam(0.01), seed=0)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_run_epoch_rejects_rows_out_of_range():
    net = _net("softmax", "float64")
    X, y = _data("softmax", "float64", n=10)
    for bad in ([0, 10], [-1, 2]):
        with pytest.raises(ValueError, match=r"order must hold row indices in \[0, 10\)"):
            run_epoch(net, X, prepare_targets(net, y), fastnn.SGD(0.1), batch_size=2,
                      order=np.array(bad))


def test_divergence_leaves_a_network_that_predicts_and_trains_again():
    net = _net("softmax", "float64")
    X, y = _data("softmax", "float64", n=64)
    start = net.params.copy()
    with pytest.raises(NonFiniteLossError, match="start of an epoch"):
        fastnn.fit(net, X, y, epochs=3, batch_size=8, optimizer=fastnn.SGD(1e200), seed=0)
    np.testing.assert_array_equal(net.params, start)
    assert np.isfinite(net.predict_proba(X)).all()
    fastnn.fit(net, X, y, epochs=3, batch_size=8, optimizer=fastnn.SGD(0.1), seed=0)
    assert np.isfinite(net.params).all()


def test_two_threads_training_one_network_take_turns():
    import threading

    X, y = _data("softmax", "float64", n=4000)
    t = None
    net, ref_net = _net("softmax", "float64"), _net("softmax", "float64")
    t = prepare_targets(net, y)
    order = np.random.default_rng(0).permutation(4000)  # every epoch the same order: any
    errors = []                                         # sequence of whole epochs is the same

    def train(n, opt):
        try:
            for _ in range(5):
                run_epoch(n, X, t, opt, batch_size=8, order=order)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(net, fastnn.SGD(0.01))) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    train(ref_net, fastnn.SGD(0.01))  # ten whole epochs one after the other
    train(ref_net, fastnn.SGD(0.01))
    np.testing.assert_array_equal(net.params, ref_net.params)


def test_weights_made_useless_by_the_last_epoch_are_not_kept():
    # float32, SGD(1e30), one row: epoch 1's update leaves finite weights whose logits are not
    # finite, so epoch 2 fails at its first minibatch; the network goes back to the start of
    # epoch 1 (the last weights that gave a finite loss) and still predicts
    net = fastnn.Network([3, 4, 3], dtype="float32", seed=0)
    start = net.params.copy()
    X = np.array([[0.3, 0.8, 0.3]], np.float32)
    with pytest.raises(NonFiniteLossError, match="at minibatch 1"):
        fastnn.fit(net, X, [1], epochs=2, batch_size=1, optimizer=fastnn.SGD(1e30), seed=0)
    np.testing.assert_array_equal(net.params, start)
    assert np.isfinite(net.predict_proba(X)).all()
