"""Sparse input is never densified, and a CSR matrix whose arrays are memory-mapped trains
without reading the matrix into memory: the same result as in memory, bounded anonymous
memory."""
import mmap
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from test_sparse import OPTIMIZERS, TOL, sparse_problem  # (tests/ is on sys.path)

import fastnn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
SPARSE_CLASSES = (sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.csc_array, sp.coo_matrix,
                  sp.coo_array)


def refuse_densifying(monkeypatch):
    """Make every way of densifying a scipy sparse matrix raise: ``toarray`` and ``todense`` on
    every class that defines them, and ``np.asarray``/``np.array`` (``__array__``)."""
    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"{type(self).__name__}.{name}() called: sparse X densified")
        return method

    bases = {c for cls in SPARSE_CLASSES for c in cls.__mro__ if c.__module__.startswith("scipy")}
    for cls in bases:
        for name in ("toarray", "todense", "__array__"):
            if name in vars(cls) or (name == "__array__" and cls.__name__ == "_spbase"):
                monkeypatch.setattr(cls, name, refuse(name), raising=False)
    X = sp.random(3, 4, density=0.5, format="csr", random_state=0)
    for form in ("csr", "csc", "coo"):  # the patch is in force
        for densify in (lambda A: A.toarray(), lambda A: A.todense(), np.asarray):
            with pytest.raises(AssertionError, match="densified"):
                densify(X.asformat(form))


def _fit(X, y, opt, **kw):
    net = fastnn.Network([X.shape[1], 16, 3], activation="tanh", dtype="float64", seed=0)
    hist = fastnn.fit(net, X, y, epochs=3, batch_size=16, optimizer=OPTIMIZERS[opt](), seed=3,
                      **kw)
    return net, hist


def test_fit_and_network_never_densify(monkeypatch):
    X, y = sparse_problem()
    Xv, yv = sparse_problem(n=40, seed=5)
    D, Dv = X.toarray(), Xv.toarray()
    want = {opt: _fit(D, y, opt, alpha=a, validation_data=(Dv, yv))
            for opt, a in (("sgd", 0.0), ("adam", 1e-3))}
    net = want["adam"][0]
    outputs = [net.forward(D), net.logits(D), net.predict(D), net.loss_and_grad(D, y, alpha=0.1)]
    refuse_densifying(monkeypatch)
    for opt, a in (("sgd", 0.0), ("adam", 1e-3)):
        got, hist = _fit(X, y, opt, alpha=a, validation_data=(Xv, yv))
        np.testing.assert_allclose(got.params, want[opt][0].params, **TOL["float64"])
        np.testing.assert_allclose(hist.val_loss, want[opt][1].val_loss, rtol=1e-12)
    _fit(X.tocsc(), y, "sgd")  # conversion to CSR does not densify either
    _fit(X.tocoo(), y, "sgd", verbose=True)
    np.testing.assert_allclose(net.forward(X), outputs[0], **TOL["float64"])
    np.testing.assert_allclose(net.logits(X.tocsc()), outputs[1], **TOL["float64"])
    np.testing.assert_array_equal(net.predict(X), outputs[2])
    loss, grad = net.loss_and_grad(X, y, alpha=0.1)
    assert loss == pytest.approx(outputs[3][0], rel=1e-12)
    np.testing.assert_allclose(grad, outputs[3][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("est", ["clf-adam", "clf-sgd-early-stopping", "clf-lbfgs", "reg-adam"])
def test_estimators_never_densify(monkeypatch, est):
    from fastnn import MLPClassifier, MLPRegressor

    X, y = sparse_problem()
    kind, solver, *rest = est.split("-", 2)
    params = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0, solver=solver,
                  early_stopping=bool(rest), learning_rate_init=0.02)
    make = (lambda: MLPClassifier(**params)) if kind == "clf" else (lambda: MLPRegressor(**params))
    t = y if kind == "clf" else np.asarray(X @ np.linspace(-1, 1, X.shape[1])).ravel()
    want = make().fit(X.toarray(), t)
    want_out = [want.predict(X.toarray()), want.score(X.toarray(), t)]
    refuse_densifying(monkeypatch)
    got = make().fit(X, t)
    for a, b in zip(got.coefs_, want.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.predict(X), want_out[0], rtol=1e-10, atol=1e-12)
    assert got.score(X.tocsc(), t) == pytest.approx(want_out[1], rel=1e-12)
    if kind == "clf":
        got.predict_proba(X)
        got.predict_log_proba(X)
        if solver != "lbfgs" and not rest:
            got.partial_fit(X, t)


# --------------------------------------------------------------------------- memory-mapped CSR
def is_mapped(a):
    """True when ``a``'s memory is a file mapping (its ``.base`` chain ends in one)."""
    for _ in range(64):
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
        if a is None:
            return False
    return False


def memmapped_csr(folder, X, cls=sp.csr_matrix):
    """``X`` saved as three .npy files and rebuilt from ``np.load(..., mmap_mode="r")`` without
    a copy (scipy keeps the arrays as views of the mappings)."""
    arrays = []
    for name in ("data", "indices", "indptr"):
        np.save(folder / f"{name}.npy", getattr(X, name))
        arrays.append(np.load(folder / f"{name}.npy", mmap_mode="r"))
    M = cls(tuple(arrays), shape=X.shape, copy=False)
    for name in ("data", "indices", "indptr"):
        a = getattr(M, name)
        assert is_mapped(a) and not a.flags.writeable and a.dtype == getattr(X, name).dtype
    return M


@pytest.mark.parametrize("cls,index_dtype", [(sp.csr_matrix, np.int32),
                                             (sp.csr_array, np.int64)])
def test_fit_on_a_memory_mapped_csr_equals_fit_in_memory(tmp_path, cls, index_dtype):
    X, y = sparse_problem()
    X = cls(X)
    X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    M = memmapped_csr(tmp_path, X, cls)
    a, ha = _fit(M, y, "adam", alpha=1e-3, validation_data=(M, y))
    b, hb = _fit(X, y, "adam", alpha=1e-3, validation_data=(X, y))
    assert ha.train_loss == hb.train_loss and ha.val_loss == hb.val_loss
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.forward(M), a.forward(X))
    c, _ = _fit(M, y, "sgd")  # the lazy update of plain SGD, on read-only arrays
    d, _ = _fit(X, y, "sgd")
    np.testing.assert_array_equal(c.params, d.params)


def test_estimator_on_a_memory_mapped_csr_equals_in_memory(tmp_path):
    from fastnn import MLPClassifier

    X, y = sparse_problem(n=300, dtype=np.float32)
    M = memmapped_csr(tmp_path, X)
    for params in (dict(solver="adam"), dict(solver="sgd", early_stopping=True),
                   dict(solver="lbfgs")):
        params |= dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
        a = MLPClassifier(**params).fit(M, y)
        b = MLPClassifier(**params).fit(X, y)
        assert a.n_iter_ == b.n_iter_ and a.coefs_[0].dtype == np.float32
        assert getattr(a, "loss_curve_", None) == getattr(b, "loss_curve_", None)
        for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
            np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(a.predict_proba(M), b.predict_proba(X))
        assert a.score(M, y) == b.score(X, y)


_RSS_SCRIPT = textwrap.dedent("""
    import mmap, sys, threading, time
    from pathlib import Path
    import numpy as np
    import scipy.sparse as sp
    import fastnn
    from fastnn import MLPClassifier

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    def guard(toarray):  # a densified X would need gigabytes: fail instead of taking them
        def checked(self, *args, **kwargs):
            if self.shape[0] * self.shape[1] > 1 << 22:
                raise MemoryError(f"{type(self).__name__}.toarray() of shape {self.shape}")
            return toarray(self, *args, **kwargs)
        return checked

    for cls in {c for k in (sp.csr_matrix, sp.coo_matrix) for c in k.__mro__}:
        if "toarray" in vars(cls):
            cls.toarray = guard(vars(cls)["toarray"])

    folder, n, d, k = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = np.lib.format.open_memmap(folder / "data.npy", "w+", np.float32, (n * k,))
    indices = np.lib.format.open_memmap(folder / "indices.npy", "w+", np.int32, (n * k,))
    np.save(folder / "indptr.npy", np.arange(0, n * k + 1, k, dtype=np.int32))
    rng = np.random.default_rng(0)
    sign = rng.choice([-1.0, 1.0], d)
    y = np.empty(n, dtype=np.int64)
    stride = d // k
    for s in range(0, n, 4096):  # written in chunks: the file never sits in anonymous memory
        r = min(4096, n - s)
        idx = np.arange(k) * stride + rng.integers(0, stride, size=(r, k))  # sorted, unique
        val = rng.uniform(0.1, 1.0, size=(r, k)).astype(np.float32)
        indices[s * k:(s + r) * k] = idx.ravel()
        data[s * k:(s + r) * k] = val.ravel()
        y[s:s + r] = (val * sign[idx]).sum(axis=1) > 0
    data.flush(), indices.flush()
    del data, indices
    arrays = [np.load(folder / f"{a}.npy", mmap_mode="r") for a in ("data", "indices", "indptr")]
    file_bytes = sum(a.nbytes for a in arrays)
    X = sp.csr_matrix(tuple(arrays), shape=(n, d), copy=False)
    def mapped(a):  # the .base chain ends in the file mapping: scipy made no copy
        while a is not None and not isinstance(a, (np.memmap, mmap.mmap)):
            a = getattr(a, "base", None)
        return a is not None
    assert all(mapped(a) for a in (X.data, X.indices, X.indptr))
    # compile everything first, on a small CSR of the same (read-only, memory-mapped) types
    m = 2048
    small = sp.csr_matrix((arrays[0][:m * k], arrays[1][:m * k], arrays[2][:m + 1]),
                          shape=(m, d), copy=False)
    warm = fastnn.Network([d, 8, 2], seed=0)
    fastnn.fit(warm, small, y[:m], epochs=1, batch_size=64, optimizer=fastnn.SGD(0.1), seed=0)
    warm.predict_proba(small)
    for es in (False, True):
        MLPClassifier((8,), batch_size=64, max_iter=1, early_stopping=es).fit(
            small, y[:m]).score(small, y[:m])
    del warm, small

    base = peak = rss_anon()
    done = False
    def poll():
        global peak
        while not done:
            peak = max(peak, rss_anon())
            time.sleep(0.002)
    t = threading.Thread(target=poll)
    t.start()
    try:
        net = fastnn.Network([d, 8, 2], seed=0)
        fastnn.fit(net, X, y, epochs=2, batch_size=64, optimizer=fastnn.SGD(0.1), seed=0)
        acc = float(np.mean(np.argmax(net.predict_proba(X), axis=1) == y))
        clf = MLPClassifier((8,), batch_size=64, max_iter=2, tol=0, random_state=0).fit(X, y)
        acc_clf = clf.score(X, y)
        peak_plain = max(peak, rss_anon())
        clf = MLPClassifier((8,), batch_size=64, max_iter=2, tol=0, random_state=0,
                            early_stopping=True).fit(X, y)
        acc_es = clf.best_validation_score_
    finally:
        done = True
        t.join()
    peak = max(peak, rss_anon())
    print(peak_plain - base, peak - base, file_bytes, acc, acc_clf, acc_es)
""")


@pytest.mark.slow
def test_memory_mapped_csr_trains_with_bounded_anonymous_memory(tmp_path):
    """A 120 MB CSR (15M non-zeros of float32 data and int32 indices; 9.6 GB dense): fastnn.fit,
    predict_proba and MLPClassifier read it in place.  With early stopping the validation rows
    (10 %) may be read into memory, as for a dense memmap, but not the training rows."""
    n, d, k = 120_000, 20_000, 125
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT)
    res = subprocess.run([sys.executable, str(script), str(tmp_path), str(n), str(d), str(k)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stderr[-3000:]
    grew_plain, grew, file_bytes, acc, acc_clf, acc_es = res.stdout.split()
    assert int(file_bytes) > 110e6
    # only n-sized arrays (labels, shuffled orders, predictions) and the model's buffers, never
    # anything of the size of the non-zeros
    assert int(grew_plain) < 16 << 20 < int(file_bytes) // 6, "fit / predict / MLPClassifier"
    assert int(grew) < int(file_bytes) // 4, "MLPClassifier(early_stopping=True)"
    # measured 0.933, 0.956 and 0.897 (scikit-learn's MLPClassifier: 0.956 and 0.897)
    assert float(acc) > 0.85 and float(acc_clf) > 0.85 and float(acc_es) > 0.85
