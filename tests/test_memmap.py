"""Data larger than memory (fastnn.stream): memmap training equals in-memory training through the
same block path, validation and prediction stream, anonymous memory stays bounded."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn import stream
from fastnn.train import NonFiniteLossError, prepare_targets, run_epoch


def _data(n=1000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


def _memmap(tmp_path, a, name="X.npy"):
    path = tmp_path / name
    np.save(path, a)
    return np.load(path, mmap_mode="r")


# --------------------------------------------------------------------------- detection / blocks
def test_is_out_of_core(tmp_path):
    X, _ = _data(50)
    m = _memmap(tmp_path, X)
    raw = np.memmap(tmp_path / "raw.bin", dtype=np.float32, mode="w+", shape=(4, 3))
    assert stream.is_out_of_core(m) and stream.is_out_of_core(raw)
    assert stream.is_out_of_core(np.asarray(m))  # what check_array returns for a memmap
    assert stream.is_out_of_core(m[10:20])
    assert not stream.is_out_of_core(X) and not stream.is_out_of_core(X[5:])
    assert not stream.is_out_of_core([[1.0, 2.0]])


def test_block_rows_multiple_of_batch():
    assert stream.block_rows(10, np.float32, block_bytes=4000, batch_size=32) == 96
    assert stream.block_rows(10, np.float32, block_bytes=40, batch_size=32) == 32
    assert stream.block_rows(4, np.float64) == stream.DEFAULT_BLOCK_BYTES // 32
    with pytest.raises(ValueError, match="block_bytes must be an int >= 1"):
        stream.block_rows(4, np.float32, block_bytes=0)


def test_iter_blocks_visits_every_row_once_deterministically():
    n, rows = 1003, 100
    a = list(stream.iter_blocks(n, rows, np.random.default_rng(3)))
    b = list(stream.iter_blocks(n, rows, np.random.default_rng(3)))
    assert len(a) == 11
    assert all(x[0] == y[0] and np.array_equal(x[2], y[2]) for x, y in zip(a, b))
    starts = [s for s, _, _ in a]
    assert sorted(starts) == list(range(0, n, rows)) and starts != sorted(starts)
    seen = np.concatenate([s + o for s, _, o in a])
    assert np.array_equal(np.sort(seen), np.arange(n))
    for s, e, o in a:  # rows are shuffled within, never across, blocks
        assert o.dtype == np.int64 and np.array_equal(np.sort(o), np.arange(e - s))
    plain = list(stream.iter_blocks(n, rows, shuffle=False))
    assert np.array_equal(np.concatenate([s + o for s, _, o in plain]), np.arange(n))


# --------------------------------------------------------------------------- training
def _train_blocks(X, y, epochs=3, seed=1, block_bytes=32 * 8 * 4 * 5, **kw):
    net = fastnn.Network([8, 16, 3], seed=0)
    opt = fastnn.Adam(1e-2)
    X, t, sw = stream.prepare_inputs(net, X, y, **kw)
    rng = np.random.default_rng(seed)
    losses = [stream.run_epoch_blocks(net, X, t, opt, batch_size=32, rng=rng,
                                      sample_weight=sw, block_bytes=block_bytes)
              for _ in range(epochs)]
    return net, losses


def test_memmap_training_equals_in_memory_block_path(tmp_path):
    X, y = _data()
    a, la = _train_blocks(_memmap(tmp_path, X), y)
    b, lb = _train_blocks(X, y)
    assert la == lb and np.array_equal(a.params, b.params)
    assert np.mean(a.predict(X) == y) > 0.85


def test_on_block_is_called_once_per_block(tmp_path):
    X, y = _data()
    net = fastnn.Network([8, 4, 3], seed=0)
    Xm, t, _ = stream.prepare_inputs(net, _memmap(tmp_path, X), y)
    calls = []
    stream.run_epoch_blocks(net, Xm, t, fastnn.SGD(0.1), batch_size=32,
                            rng=np.random.default_rng(0),
                            block_bytes=32 * 8 * 4 * 5, on_block=calls.append)
    assert len(calls) == 7 and sum(calls) == 1000 and sorted(calls)[0] == 40


def test_block_path_is_run_epoch_over_each_block_in_order(tmp_path):
    """The precise in-memory equivalent: run_epoch on each block, in iter_blocks' order."""
    X, y = _data()
    a, la = _train_blocks(_memmap(tmp_path, X), y, epochs=2)
    net = fastnn.Network([8, 16, 3], seed=0)
    opt = fastnn.Adam(1e-2)
    rng = np.random.default_rng(1)
    rows = stream.block_rows(8, np.float32, 32 * 8 * 4 * 5, 32)
    for epoch in range(2):
        total = 0.0
        for s, e, order in stream.iter_blocks(len(X), rows, rng):
            loss = run_epoch(net, X[s:e].copy(), y[s:e], opt, batch_size=32, order=order)
            total += loss * (e - s)
        assert total / len(X) == la[epoch]
    assert np.array_equal(net.params, a.params)


def test_memmap_targets_dtype_conversion_and_weights(tmp_path):
    X, y = _data()
    sw = np.linspace(0.5, 2.0, len(X))
    a, _ = _train_blocks(_memmap(tmp_path, X.astype(np.float64)), _memmap(tmp_path, y, "y.npy"),
                         sample_weight=sw)
    b, _ = _train_blocks(X, y, sample_weight=sw)
    assert np.array_equal(a.params, b.params)


def test_row_subset_trains_like_the_selected_rows_in_memory(tmp_path):
    X, y = _data()
    keep = np.random.default_rng(5).permutation(len(X))[:700]
    sub = stream.RowSubset(_memmap(tmp_path, X), keep)
    assert stream.is_out_of_core(sub) and sub.shape == (700, 8) and len(sub) == 700
    idx = np.sort(keep)
    np.testing.assert_array_equal(sub[10:20], X[idx[10:20]])
    a, la = _train_blocks(sub, y[idx])
    b, lb = _train_blocks(X[idx], y[idx])
    assert la == lb and np.array_equal(a.params, b.params)


def test_split_rows_is_train_test_split_without_the_copy(tmp_path):
    from sklearn.model_selection import train_test_split

    from fastnn.sklearn._solvers import split_rows

    X, y = _data()
    sw = np.linspace(0.1, 1.0, len(X))
    opts = dict(test_size=0.1, stratify=y)
    want = train_test_split(X, y, sw, random_state=np.random.RandomState(0), **opts)
    got = split_rows(_memmap(tmp_path, X), y, sw, random_state=np.random.RandomState(0),
                            **opts)
    assert isinstance(got[0], stream.RowSubset)
    for i in (1, 3, 5):  # validation parts: identical, same order
        np.testing.assert_array_equal(got[i], want[i])
    rows = got[0][0:len(got[0])]  # training parts: the same rows, in file order
    for g, w in ((rows, want[0]), (got[2], want[2]), (got[4], want[4])):
        np.testing.assert_array_equal(np.sort(g, axis=0), np.sort(w, axis=0))
    np.testing.assert_array_equal(y[got[0].index], got[2])


def test_streaming_validation_names_the_argument(tmp_path):
    X, y = _data()
    net = fastnn.Network([8, 4, 3])
    bad = X.copy()
    bad[777, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        stream.prepare_inputs(net, _memmap(tmp_path, bad), y, block_bytes=1024)
    with pytest.raises(ValueError, match="y has labels out of range"):
        stream.prepare_inputs(net, _memmap(tmp_path, X), _memmap(tmp_path, y + 1, "y.npy"),
                              block_bytes=1024)
    with pytest.raises(ValueError, match="X has 7 features but the network expects 8"):
        stream.prepare_inputs(net, _memmap(tmp_path, X[:, :7].copy()), y)
    with pytest.raises(ValueError, match="X has 1000 rows but y has 999"):
        stream.prepare_inputs(net, _memmap(tmp_path, X), y[:-1])
    huge = np.full((4, 8), 3e38, dtype=np.float32)  # finite values whose sum overflows
    stream.check_finite(huge)
    wide = X.astype(np.float64)
    wide[777, 3] = -1e39  # finite in the file, -inf once read into the float32 network
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        stream.prepare_inputs(net, _memmap(tmp_path, wide), y, block_bytes=1024)
    stream.check_finite(wide)  # no dtype: only the file's own values


def test_non_finite_loss_in_a_block_raises(tmp_path):
    X, y = _data()
    net = fastnn.Network([8, 16, 3], seed=0)
    X, t, _ = stream.prepare_inputs(net, _memmap(tmp_path, X * 1e30), y)
    with pytest.raises(NonFiniteLossError):
        stream.run_epoch_blocks(net, X, t, fastnn.SGD(10.0), batch_size=32,
                                rng=np.random.default_rng(0), block_bytes=4096)
    assert np.isfinite(net.params).all()


def test_full_batch_loss_and_grad_over_blocks(tmp_path):
    X, y = _data()
    net = fastnn.Network([8, 16, 3], dtype="float64", seed=0)
    sw = np.linspace(0.1, 1.0, len(X))
    want = net.loss_and_grad(X, y, alpha=0.3, sample_weight=sw)
    got = stream.loss_and_grad(net, _memmap(tmp_path, X), prepare_targets(net, y), alpha=0.3,
                               sample_weight=sw, block_bytes=20000)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- prediction
def test_forward_blocks_into_a_memmap(tmp_path):
    X, y = _data()
    net, _ = _train_blocks(X, y, epochs=1)
    m = _memmap(tmp_path, X)
    out = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float32,
                                    shape=(len(X), 3))
    got = stream.forward(net, m, out=out, block_bytes=4096)
    assert got is out
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), net.forward(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stream.forward(net, m), net.forward(X), rtol=1e-5, atol=1e-6)
    # Network itself streams a memmap (one reused buffer, no read-only specialisation)
    np.testing.assert_allclose(net.predict_proba(m), net.forward(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.logits(m), net.logits(X), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"out must be a writeable array of shape \(1000, 3\)"):
        stream.forward(net, m, out=np.empty((10, 3), np.float32))


def test_forward_on_memmaps_from_two_threads(tmp_path):
    import threading

    net = fastnn.Network([32, 256, 256, 10], seed=0)
    rng = np.random.default_rng(0)
    maps = [_memmap(tmp_path, rng.normal(size=(2000, 32)).astype(np.float32), f"X{i}.npy")
            for i in range(2)]
    expected = [net.forward(np.asarray(m).copy()) for m in maps]
    bad = []

    def work(m, want):
        for _ in range(30):
            if not np.array_equal(net.predict_proba(m), want):
                bad.append(1)

    threads = [threading.Thread(target=work, args=a) for a in zip(maps, expected)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# --------------------------------------------------------------------------- fastnn.fit
def _fit(X, y, **kw):
    net = fastnn.Network([8, 16, 3], seed=0)
    hist = fastnn.fit(net, X, y, epochs=3, batch_size=32, optimizer=fastnn.Adam(1e-2), seed=4,
                      **kw)
    return net, hist


def test_fit_on_a_memmap_equals_fit_in_memory_with_the_same_blocks(tmp_path):
    X, y = _data()
    a, ha = _fit(_memmap(tmp_path, X), _memmap(tmp_path, y, "y.npy"), block_bytes=5120)
    b, hb = _fit(X, y, block_bytes=5120)
    assert ha.train_loss == hb.train_loss and np.array_equal(a.params, b.params)
    c, hc = _fit(X, y)  # the in-memory path shuffles all rows at once: a different order
    assert hc.train_loss != ha.train_loss
    assert abs(np.mean(a.predict(X) == y) - np.mean(c.predict(X) == y)) < 0.05


def test_a_file_that_fits_in_one_block_trains_exactly_as_in_memory(tmp_path):
    X, y = _data()
    a, ha = _fit(_memmap(tmp_path, X), y, sample_weight=np.linspace(1, 2, len(X)), alpha=1e-3)
    b, hb = _fit(X, y, sample_weight=np.linspace(1, 2, len(X)), alpha=1e-3)
    assert ha.train_loss == hb.train_loss and np.array_equal(a.params, b.params)


def test_without_shuffling_blocks_train_exactly_as_in_memory(tmp_path):
    X, y = _data()
    a, ha = _fit(_memmap(tmp_path, X), y, shuffle=False, block_bytes=5120)  # 7 blocks
    b, hb = _fit(X, y, shuffle=False)
    np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=1e-12)
    assert np.array_equal(a.params, b.params)


def test_fit_on_a_memmap_validates_and_shows_a_bar(tmp_path, capsys):
    X, y = _data()
    bad = X.copy()
    bad[5, 5] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(_memmap(tmp_path, bad, "bad.npy"), y)
    with pytest.raises(ValueError, match="block_bytes must be an int >= 1"):
        _fit(X, y, block_bytes=-1)
    _, hist = _fit(_memmap(tmp_path, X), y, verbose=True, block_bytes=5120)
    assert hist.epochs == 3
    assert "fastnn.fit" in capsys.readouterr().err


# --------------------------------------------------------------------------- estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_classifier_on_a_memmap(tmp_path, solver, monkeypatch):
    from fastnn import MLPClassifier

    monkeypatch.setattr(stream, "DEFAULT_BLOCK_BYTES", 4096)  # several blocks
    X, y = _data()
    Xm = _memmap(tmp_path, X)
    params = dict(hidden_layer_sizes=(16,), solver=solver, max_iter=30, random_state=0)
    mem = MLPClassifier(**params).fit(X, y)
    mm = MLPClassifier(**params).fit(Xm, y)
    assert mm.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(mm.predict_proba(Xm), mm.predict_proba(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mm.predict_log_proba(Xm), mm.predict_log_proba(X), rtol=1e-5,
                               atol=1e-5)
    assert abs(mm.score(Xm, y) - mem.score(X, y)) < 0.03
    if solver == "lbfgs":  # the same full-batch objective, summed block by block
        assert mm.loss_ == pytest.approx(mem.loss_, rel=1e-3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_on_a_memmap_with_early_stopping(tmp_path, monkeypatch):
    from fastnn import MLPClassifier, MLPRegressor

    monkeypatch.setattr(stream, "DEFAULT_BLOCK_BYTES", 4096)
    X, y = _data()
    Xm = _memmap(tmp_path, X)
    params = dict(hidden_layer_sizes=(16,), early_stopping=True, max_iter=40,
                  learning_rate_init=0.01, random_state=0)
    clf = MLPClassifier(**params).fit(Xm, y)
    mem = MLPClassifier(**params).fit(X, y)  # the same validation split, another batch order
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ > 0.85
    assert abs(clf.best_validation_score_ - mem.best_validation_score_) < 0.05
    target = X[:, 0] - 2 * X[:, 1]
    params = dict(hidden_layer_sizes=(16,), max_iter=40, learning_rate_init=0.01, random_state=0)
    r2 = MLPRegressor(**params).fit(Xm, target).score(Xm, target)
    assert r2 > 0.95
    assert abs(r2 - MLPRegressor(**params).fit(X, target).score(X, target)) < 0.03


# --------------------------------------------------------------------------- bounded memory
_RSS_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import fastnn
    from fastnn import stream

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for s in range(0, n, 4096):  # write in chunks: the file never sits in anonymous memory
        X[s:s + 4096] = rng.normal(size=(min(4096, n - s), d))
    X.flush()
    del X
    X = np.load(path, mmap_mode="r")
    y = (np.asarray(X[:, 0]) > 0).astype(np.int64)
    from fastnn import MLPClassifier
    stream.DEFAULT_BLOCK_BYTES = 1 << 20  # what the estimators use
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=1).fit(X[:256], y[:256]).score(X[:256], y[:256])
    net = fastnn.Network([d, 8, 2], seed=0)
    opt = fastnn.SGD(0.05)
    stream.run_epoch_blocks(net, X[:512], y[:512], opt, batch_size=64,   # compile first
                            rng=np.random.default_rng(0), block_bytes=1 << 20)
    base = peak = rss_anon()
    done = False
    def poll():
        global peak
        while not done:
            peak = max(peak, rss_anon())
            time.sleep(0.002)
    t = threading.Thread(target=poll)
    t.start()
    Xc, yc, sw = stream.prepare_inputs(net, X, y, block_bytes=1 << 20)
    for epoch in range(2):
        stream.run_epoch_blocks(net, Xc, yc, opt, batch_size=64, rng=np.random.default_rng(epoch),
                                block_bytes=1 << 20)
    p = stream.forward(net, X, block_bytes=1 << 20)
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_size=64, max_iter=2, tol=0).fit(X, y)
    acc_clf = clf.score(X, y)
    done = True
    t.join()
    peak = max(peak, rss_anon())
    print(peak - base, X.nbytes, float(np.mean(np.argmax(p, 1) == y)), acc_clf)
""")


@pytest.mark.slow
def test_anonymous_memory_stays_bounded(tmp_path):
    n, d = 100_000, 256  # a 102 MB file, read through a 1 MiB block buffer
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT)
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "big.npy"), str(n), str(d)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stderr
    grew, file_bytes, acc, acc_clf = res.stdout.split()
    # only n-sized arrays (labels, predictions, the estimator's encoded targets) and the
    # block buffer stay in anonymous memory, never anything of the size of the file
    assert int(grew) < 16 << 20 < int(file_bytes) // 6
    assert float(acc) > 0.9 and float(acc_clf) > 0.9


@pytest.mark.slow
def test_memmap_fit_example(tmp_path):
    """examples/memmap_fit.py at a small size: it trains on the memmap and deletes its files."""
    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "memmap_fit.py")
    res = subprocess.run([sys.executable, example, "--gigabytes", "0.02", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if l.strip().startswith("memmap:"))
    grew = float(line.split("peak RssAnon +")[1].split(" MB")[0])
    assert grew < 200  # a 20 MB file: the block buffer and bounded workspaces only
    assert float(line.split("train accuracy ")[1].split(",")[0]) > 0.6
    assert list(tmp_path.iterdir()) == []
