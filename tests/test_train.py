"""fit / run_epoch: step-for-step equality with the NumPy reference trainer, learning, errors."""
import numpy as np
import pytest

import fastnn
from fastnn import reference as ref
from fastnn.network import Network
from fastnn.optim import Adaptive, InvScaling
from fastnn.train import NonFiniteLossError, prepare_targets, run_epoch

OPTIMIZERS = {
    "sgd": (lambda: fastnn.SGD(lr=0.1), lambda: ref.ReferenceSGD(lr=0.1)),
    "momentum": (lambda: fastnn.SGD(lr=0.05, momentum=0.9),
                 lambda: ref.ReferenceSGD(lr=0.05, momentum=0.9)),
    "nesterov": (lambda: fastnn.SGD(lr=0.05, momentum=0.9, nesterov=True),
                 lambda: ref.ReferenceSGD(lr=0.05, momentum=0.9, nesterov=True)),
    "adam": (lambda: fastnn.Adam(lr=0.01), lambda: ref.ReferenceAdam(lr=0.01)),
    "adamw": (lambda: fastnn.AdamW(lr=0.01, weight_decay=0.1),
              lambda: ref.ReferenceAdam(lr=0.01, weight_decay=0.1)),
}


def _problem(output, dtype, n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(dtype)
    if output == "softmax":
        y = rng.integers(0, 3, size=n)
    elif output == "sigmoid":
        y = (rng.random((n, 3)) > 0.5).astype(dtype)
    else:
        y = rng.normal(size=(n, 3)).astype(dtype)
    return X, y


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("output,dtype,weighted", [
    ("softmax", "float64", False), ("sigmoid", "float64", True), ("identity", "float64", False),
    ("softmax", "float32", True),
])
def test_epoch_equals_reference_trainer_step_for_step(opt, output, dtype, weighted):
    net = Network([4, 6, 5, 3], activation=["tanh", "relu"], output=output, dtype=dtype, seed=0)
    X, y = _problem(output, dtype)
    sw = np.random.default_rng(1).random(30).astype(dtype) + 0.5 if weighted else None
    W = [w.copy() for w in net.weights]
    B = [b.copy() for b in net.biases]
    make, make_ref = OPTIMIZERS[opt]
    optimizer, roptimizer = make(), make_ref()
    yt = prepare_targets(net, y)
    order = np.random.default_rng(2).permutation(30)
    for epoch in range(2):
        loss = run_epoch(net, X, yt, optimizer, batch_size=7, order=order, alpha=0.01,
                         sample_weight=sw)
        rloss = ref.reference_train_epoch(W, B, net.activations, output, X, y, order, 7,
                                          roptimizer, alpha=0.01, sample_weight=sw)
        tol = 1e-4 if dtype == "float32" else 1e-10
        assert loss == pytest.approx(rloss, rel=tol)
        for a, b in zip(net.weights + net.biases, W + B):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert optimizer.t == 2 * 5  # 30 rows in batches of 7: 4 full + 1 partial, twice



def test_fit_matches_run_epoch_and_records_history():
    X, y = _problem("softmax", "float64", n=50)
    a = Network([4, 8, 3], dtype="float64", seed=0)
    b = a.copy()
    hist = fastnn.fit(a, X, y, epochs=3, batch_size=16, optimizer=fastnn.Adam(0.01), seed=5,
                      validation_data=(X[:10], y[:10]))
    opt = fastnn.Adam(0.01)
    rng = np.random.default_rng(5)
    losses = [run_epoch(b, X, y, opt, batch_size=16, order=rng.permutation(50)) for _ in range(3)]
    np.testing.assert_array_equal(a.params, b.params)
    assert hist.train_loss == losses and hist.epochs == len(hist) == 3
    assert len(hist.seconds) == 3 and all(s >= 0 for s in hist.seconds)
    assert all(0 <= acc <= 1 for acc in hist.val_accuracy) and hist.val_r2 == [None] * 3
    p = a.forward(X[:10])
    assert hist.val_loss[-1] == pytest.approx(-np.mean(np.log(p[np.arange(10), y[:10]])), rel=1e-9)
    assert hist.val_accuracy[-1] == np.mean(p.argmax(1) == y[:10])


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_validation_loss_of_a_saturated_wrong_prediction_is_not_clipped(output):
    # logits of +-200: the probability of the true class underflows to 0 in float32, where a
    # loss from clipped probabilities reads -log(tiny) = 87.3 per output instead of 400
    net = Network([1, 2], activation="identity", output=output, dtype="float32", seed=0)
    net.weights[0][...] = [[200.0, -200.0]]
    net.biases[0][...] = 0.0
    X = np.ones((1, 1), dtype=np.float32)
    y = np.array([1]) if output == "softmax" else np.array([[0.0, 1.0]])
    loss, acc, _ = fastnn.train._validation_metrics(net, X, prepare_targets(net, y))
    # softmax: 200 - (-200); sigmoid: two wrong outputs of -log(sigmoid(-200)) = 200 each, summed
    assert loss == pytest.approx(400.0, rel=1e-5) and acc == 0.0


def test_the_seed_case_two_examples_are_learned():
    # the learner's problem: x1 -> [1, 0], x2 -> [0, 1], sigmoid hidden layers, softmax output
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    net = Network([2, 3, 2], activation="sigmoid", output="softmax", seed=0)
    fastnn.fit(net, X, y, epochs=500, batch_size=2, optimizer=fastnn.SGD(lr=0.5, momentum=0.9),
               seed=0)
    p = net.predict_proba(X)
    assert p[0, 0] > 0.95 and p[1, 1] > 0.95, p


def test_xor_is_learned():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    net = Network([2, 8, 2], activation="tanh", output="softmax", seed=1)
    fastnn.fit(net, X, y, epochs=300, batch_size=4, optimizer=fastnn.Adam(0.05), seed=0)
    np.testing.assert_array_equal(net.predict(X), y)


def test_digits_reach_97_percent():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    net = Network([64, 64, 10], activation="relu", output="softmax", seed=0)
    hist = fastnn.fit(net, Xtr, ytr, epochs=40, batch_size=32, optimizer=fastnn.Adam(2e-3),
                      seed=0, alpha=1e-4, validation_data=(Xte, yte))
    acc = np.mean(net.predict(Xte) == yte)
    assert acc >= 0.97, acc
    assert hist.val_accuracy[-1] == pytest.approx(acc)


def test_regression_and_multilabel_train():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.c_[X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])]
    net = Network([3, 16, 2], activation="tanh", output="identity", dtype="float64", seed=0)
    hist = fastnn.fit(net, X, Y, epochs=100, batch_size=20, optimizer=fastnn.Adam(0.01),
                      seed=0, validation_data=(X, Y))
    assert hist.val_r2[-1] > 0.95 and hist.val_accuracy[-1] is None
    Ym = (np.c_[X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(float)
    net = Network([3, 16, 2], activation="relu", output="sigmoid", seed=0)
    hist = fastnn.fit(net, X, Ym, epochs=60, batch_size=20, optimizer=fastnn.Adam(0.02),
                      seed=0, validation_data=(X, Ym))
    assert hist.val_accuracy[-1] > 0.9


def test_same_seed_same_threads_identical_weights():
    X, y = _problem("softmax", "float32", n=300)
    nets = []
    for _ in range(2):
        net = Network([4, 32, 3], seed=3)
        fastnn.fit(net, X, y, epochs=3, batch_size=16, optimizer=fastnn.SGD(0.1, 0.9), seed=7)
        nets.append(net)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    other = Network([4, 32, 3], seed=3)
    fastnn.fit(other, X, y, epochs=3, batch_size=16, optimizer=fastnn.SGD(0.1, 0.9), seed=8)
    assert not np.array_equal(other.params, nets[0].params)


def test_non_finite_loss_raises_and_keeps_finite_weights():
    X, y = _problem("identity", "float64", n=40)
    net = Network([4, 8, 3], output="identity", dtype="float64", seed=0)
    with pytest.raises(NonFiniteLossError, match="NaN or infinite"):
        fastnn.fit(net, X * 1e3, y, epochs=50, batch_size=4, optimizer=fastnn.SGD(lr=10.0),
                   seed=0)
    assert np.isfinite(net.params).all()
    assert issubclass(NonFiniteLossError, FloatingPointError)


def test_non_finite_step_is_not_applied():
    net = Network([2, 2], output="identity", dtype="float64", seed=0)
    before = net.params.copy()
    X = np.array([[1.0, 1e200], [1.0, 1.0]])
    y = np.zeros((2, 2))
    with pytest.raises(NonFiniteLossError, match="minibatch 1"):
        run_epoch(net, X, y, fastnn.SGD(0.1), batch_size=1, order=np.array([0, 1]))
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("kwargs,match", [
    (dict(X=np.full((4, 2), np.nan)), "X contains NaN"),
    (dict(X=np.full((4, 2), np.inf)), "X contains NaN or infinity"),
    (dict(y=np.array([0.0, 1.0, np.nan, 1.0])), "y contains NaN"),
    (dict(X=np.ones((4, 3))), "X has 3 features"),
    (dict(X=np.ones(4)), "X must be a 2-D"),
    (dict(y=np.array([0, 1, 0])), "X has 4 rows but y has 3"),
    (dict(y=np.array([0, 1, 2, 1])), "y has labels out of range"),
    (dict(y=np.array([0, -1, 0, 1])), "y has labels out of range"),
    (dict(batch_size=0), "batch_size must be an int >= 1"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(epochs=0), "epochs must be an int >= 1"),
    (dict(alpha=-1.0), "alpha"),
    (dict(sample_weight=np.ones(3)), "sample_weight"),
    (dict(sample_weight=np.array([1.0, np.nan, 1.0, 1.0])), "sample_weight contains NaN"),
    (dict(validation_data=(np.ones((2, 2)),)), "validation_data"),
    (dict(validation_data=(np.ones((2, 2)), np.array([0, 5]))), r"validation_data\[1\]"),
    (dict(lr_schedule="cosine"), "lr_schedule"),
    # checked after the cast to the network's float32: 1e39 becomes inf there
    (dict(X=np.full((4, 2), 1e39)), "X contains NaN or infinity"),
    (dict(sample_weight=np.array([1.0, 1e39, 1.0, 1.0])), "sample_weight contains NaN"),
    (dict(y=np.full((4, 2), 0.25)), r"y: probability rows must sum to 1 \(row 0 sums to 0.5\)"),
    (dict(y=np.array([[0.5, 0.5]] * 3 + [[1.5, -0.5]])), "y: probabilities must be"),
])
def test_fit_validates_arguments(kwargs, match):
    args = dict(X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]), epochs=1, batch_size=2)
    args.update(kwargs)
    net = Network([2, 3, 2], seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match=match):
        fastnn.fit(net, args.pop("X"), args.pop("y"), optimizer=fastnn.SGD(), **args)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_dense_targets_are_checked_after_the_cast(output):
    net = Network([2, 3, 2], output=output, seed=0)  # float32
    y = np.zeros((4, 2))
    y[1, 0] = 1e39 if output == "identity" else np.nan
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        net.loss_and_grad(np.ones((4, 2)), y)
    # probability rows that sum to 1 are accepted, within float32 rounding
    soft = Network([2, 3, 3], seed=0)
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=4)
    assert np.isfinite(soft.loss_and_grad(np.ones((4, 2)), p)[0])


def test_fit_type_errors():
    net = Network([2, 3, 2], seed=0)
    with pytest.raises(TypeError, match="optimizer"):
        fastnn.fit(net, np.ones((2, 2)), [0, 1], epochs=1, batch_size=1, optimizer="adam")
    with pytest.raises(TypeError, match="X must be a C-contiguous 2-D float32"):
        run_epoch(net, np.ones((2, 2)), np.array([0, 1]), fastnn.SGD(), batch_size=1,
                  order=np.arange(2))


def test_callbacks_stop_training():
    X, y = _problem("softmax", "float64", n=20)
    seen = []

    def cb(epoch, history):
        seen.append((epoch, len(history)))
        return epoch == 3

    class Obj:
        def on_epoch_end(self, epoch, history):
            if epoch == 2:
                raise StopIteration

    net = Network([4, 5, 3], dtype="float64", seed=0)
    h = fastnn.fit(net, X, y, epochs=10, batch_size=5, optimizer=fastnn.SGD(), callbacks=[cb])
    assert seen == [(1, 1), (2, 2), (3, 3)] and h.epochs == 3 and h.stop_reason == "callback"
    h = fastnn.fit(net, X, y, epochs=10, batch_size=5, optimizer=fastnn.SGD(), callbacks=[Obj()])
    assert h.epochs == 2 and h.stop_reason == "callback"


def test_lr_schedules_follow_scikit_learn():
    X, y = _problem("softmax", "float64", n=20)
    net = Network([4, 5, 3], dtype="float64", seed=0)
    opt = fastnn.SGD(lr=0.1)
    h = fastnn.fit(net, X, y, epochs=3, batch_size=5, optimizer=opt, lr_schedule="invscaling",
                   power_t=0.5)
    assert h.lr == [0.1, 0.1 / 21 ** 0.5, 0.1 / 41 ** 0.5]
    assert opt.lr == pytest.approx(0.1 / 61 ** 0.5)
    sched = Adaptive(tol=10.0, n_iter_no_change=1)  # never "improves": lr / 5 every 2 epochs
    opt = fastnn.SGD(lr=0.1)
    h = fastnn.fit(net, X, y, epochs=6, batch_size=5, optimizer=opt, lr_schedule=sched)
    assert h.lr == pytest.approx([0.1, 0.1, 0.1, 0.02, 0.02, 0.004])
    opt = fastnn.SGD(lr=1e-6)
    h = fastnn.fit(net, X, y, epochs=50, batch_size=5, optimizer=opt, lr_schedule=sched)
    assert h.stop_reason == "schedule" and h.epochs == 3
    assert isinstance(InvScaling(), fastnn.optim.Constant)


def test_verbose_progress_bar(capsys):
    X, y = _problem("softmax", "float64", n=20)
    net = Network([4, 5, 3], dtype="float64", seed=0)
    fastnn.fit(net, X, y, epochs=2, batch_size=5, optimizer=fastnn.SGD(), verbose=True)
    assert "fastnn.fit" in capsys.readouterr().err


def test_history_plot_delegates(tmp_path, monkeypatch):
    import fastnn.plot

    calls = []
    monkeypatch.setattr(fastnn.plot, "plot_history", lambda h, p: calls.append((h, p)) or p)
    h = fastnn.train.History()
    assert h.plot(tmp_path / "x.png") == tmp_path / "x.png" and calls[0][0] is h


def test_set_num_threads_controls_numba_and_blas():
    from threadpoolctl import threadpool_info

    before = fastnn.get_num_threads()
    try:
        assert fastnn.set_num_threads(1) == 1 and fastnn.get_num_threads() == 1
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
        X, y = _problem("softmax", "float32", n=512)
        runs = []
        for _ in range(2):  # same seed + same thread count -> identical weights
            net = Network([4, 256, 3], seed=0)  # large enough for BLAS and the fused update
            fastnn.fit(net, X, y, epochs=2, batch_size=128, optimizer=fastnn.Adam(), seed=1)
            runs.append(net.params)
        np.testing.assert_array_equal(runs[0], runs[1])
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            fastnn.set_num_threads(0)
    finally:
        fastnn.set_num_threads(before)
    assert fastnn.get_num_threads() == before


def test_data_loss_scale_changes_the_reported_loss_only():
    X, y = _problem("identity", "float64", n=20)
    a = Network([4, 5, 3], output="identity", dtype="float64", seed=0)
    b = a.copy()
    order = np.arange(20)
    la = run_epoch(a, X, y, fastnn.SGD(0.1), batch_size=20, order=order, alpha=0.5)
    lb = run_epoch(b, X, y, fastnn.SGD(0.1), batch_size=20, order=order, alpha=0.5,
                   data_loss_scale=1 / 3)
    np.testing.assert_array_equal(a.params, b.params)
    l2 = 0.25 * sum(float(np.sum(w ** 2)) for w in Network([4, 5, 3], output="identity",
                                                            dtype="float64", seed=0).weights) / 20
    assert lb - l2 == pytest.approx((la - l2) / 3, rel=1e-12)


def test_verbose_splits_epochs_without_changing_the_result(capsys):
    X, y = _problem("softmax", "float64", n=103)
    a = Network([4, 5, 3], dtype="float64", seed=0)
    b = a.copy()
    ha = fastnn.fit(a, X, y, epochs=2, batch_size=4, optimizer=fastnn.Adam(0.01), seed=3)
    hb = fastnn.fit(b, X, y, epochs=2, batch_size=4, optimizer=fastnn.Adam(0.01), seed=3,
                    verbose=True)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=1e-12)
    assert "fastnn.fit" in capsys.readouterr().err


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_consecutive_batches_read_in_place_equal_gathered_batches(output):
    # batches of consecutive rows are read from X in place (no copy); the same batches reached
    # through a descending order on a reversed copy of X are gathered: same updates, same loss
    X, y = _problem(output, "float64", n=30)
    sw = np.random.default_rng(1).random(30) + 0.5
    a = Network([4, 6, 3], output=output, dtype="float64", seed=0)
    b = a.copy()
    order = np.concatenate([np.arange(14), [20, 15, 16], np.arange(17, 20), np.arange(21, 30)])
    la = run_epoch(a, X, prepare_targets(a, y), fastnn.SGD(0.1), batch_size=7, order=order,
                   sample_weight=sw)
    rev = X.shape[0] - 1 - order  # row i of X is row n - 1 - i of the reversed copy
    lb = run_epoch(b, X[::-1].copy(), prepare_targets(b, y[::-1].copy()), fastnn.SGD(0.1),
                   batch_size=7, order=rev, sample_weight=sw[::-1].copy())
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)
    assert la == pytest.approx(lb, rel=1e-12)


def test_epoch_restores_the_fp_mode_and_blas_threads():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    X, y = _problem("softmax", "float32", n=256)
    net = Network([4, 64, 3], seed=0)  # 128 x 4 x 64 weight GEMM: below BLAS_SERIAL_WGRAD
    run_epoch(net, X, prepare_targets(net, y), fastnn.Adam(), batch_size=128,
              order=np.arange(256))
    assert blas_threads() == before
    tiny = np.array([np.finfo(np.float32).tiny], dtype=np.float32)
    assert (tiny / np.float32(4))[0] > 0  # subnormals are back outside the epoch


def test_epoch_flushes_subnormal_optimizer_state():
    # hidden unit 0 is dead (relu of a very negative pre-activation): its parameters get a zero
    # gradient, so Adam's m decays by beta1 per step; a subnormal m is flushed to zero inside
    # the epoch instead of costing ~100 cycles per operation
    X, y = _problem("softmax", "float32", n=64)
    net = Network([4, 8, 3], seed=0)
    net.weights[0][:, 0] = 0.0
    net.biases[0][0] = -100.0
    opt = fastnn.Adam()
    m, v = opt.buffers(net.params)
    dead = np.concatenate([np.arange(4) * 8, [net.tables[2][0]], net.tables[1][1] + np.arange(3)])
    m[dead] = 1e-39  # subnormal in float32
    v[dead] = 1.0
    run_epoch(net, X, prepare_targets(net, y), opt, batch_size=64, order=np.arange(64))
    assert (m[dead] == 0).all()
    assert np.isfinite(net.params).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transa,transb", [(False, False), (False, True), (True, False),
                                           (True, True)])
@pytest.mark.parametrize("m,n,k", [(200, 100, 64), (64, 100, 200), (37, 300, 199)])
def test_gemm_in_row_chunks_matches_numpy(m, n, k, transa, transb, dtype):
    # products between SPLIT_MIN and SPLIT_MAX multiply-adds run as several BLAS calls
    from fastnn.kernels._blas import SPLIT_MAX, SPLIT_MIN, gemm

    assert SPLIT_MIN < m * n * k <= SPLIT_MAX
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transb else (k, n)).astype(dtype)
    opa, opb = (a.T if transa else a), (b.T if transb else b)
    expected = -0.5 * (opa.astype(np.float64) @ opb.astype(np.float64))
    tol = 1e-4 if dtype == np.float32 else 1e-11
    c = np.full((m, n), np.nan, dtype=dtype)  # beta = 0 ignores the old values, even NaN
    gemm(transa, transb, -0.5, a, b, 0.0, c)
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * np.abs(expected).max())
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    gemm(transa, transb, -0.5, a, b, 2.0, c)
    np.testing.assert_allclose(c, expected + 2.0 * c0, rtol=tol,
                               atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transa,transb", [(False, False), (False, True), (True, False),
                                           (True, True)])
@pytest.mark.parametrize("m,n,k", [(200, 100, 64), (64, 100, 200), (37, 300, 199), (3, 2, 4)])
def test_flat_gemm_on_offsets_matches_numpy(m, n, k, transa, transb, dtype):
    # the engine's products: blocks at offsets in flat buffers, row strides wider than the
    # blocks, beta 0 and 1; sizes below, inside and above the chunked range
    from fastnn.kernels._blas import gemm_flat

    rng = np.random.default_rng(m * n + k)
    ra, ca = (k, m) if transa else (m, k)
    rb, cb = (n, k) if transb else (k, n)
    a = rng.standard_normal(5 + ra * (ca + 3)).astype(dtype)
    b = rng.standard_normal(7 + rb * (cb + 1)).astype(dtype)
    A = a[5:].reshape(ra, ca + 3)[:, :ca]
    B = b[7:].reshape(rb, cb + 1)[:, :cb]
    opa, opb = (A.T if transa else A), (B.T if transb else B)
    expected = opa.astype(np.float64) @ opb.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for beta in (0.0, 1.0):
        c = np.full(11 + m * (n + 2), np.nan if beta == 0 else 0.5, dtype=dtype)
        gemm_flat(transa, transb, m, n, k, -0.5, a, 5, ca + 3, b, 7, cb + 1, beta, c, 11, n + 2)
        C = c[11:].reshape(m, n + 2)
        want = -0.5 * expected + (0.5 if beta else 0.0)
        np.testing.assert_allclose(C[:, :n], want, rtol=tol, atol=tol * np.abs(want).max())
        outside = np.concatenate([c[:11], C[:, n:].ravel()])
        assert (np.isnan(outside) if beta == 0 else outside == 0.5).all()


@pytest.mark.slow  # two subprocesses, the first compiles
def test_verbose_fit_says_when_kernels_compile(tmp_path):
    import os
    import subprocess
    import sys

    code = ("import numpy as np, fastnn; X = np.random.default_rng(0).normal(size=(30, 3)); "
            "net = fastnn.Network([3, 4, 2], dtype='float64', seed=0); "
            "fastnn.fit(net, X, np.arange(30) % 2, epochs=2, batch_size=8, "
            "optimizer=fastnn.SGD(0.1), verbose=True)")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    first, second = (r.stdout + r.stderr for r in runs)
    assert "compiling kernels for this machine (first run only" in first
    assert "compiling" not in second  # the second process loads them
