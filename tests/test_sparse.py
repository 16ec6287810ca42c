"""Sparse (scipy.sparse) input through fastnn.fit and Network: the same numbers as the densified
matrix, every CSR form and oddity scipy allows, and clear errors.

Float64 networks are compared tightly: sparse and dense differ only in the order of the sums of
the first layer (measured by permuting the columns of a dense fit: ~1e-15 relative after five
epochs in float64, ~3e-4 relative / 3e-6 absolute for float32 Adam).  The data helpers here are
shared with the other tests/test_sparse_*.py files.
"""
import numpy as np
import pytest
import scipy.sparse as sp

import fastnn

N, D, K = 120, 300, 3
UNUSED = np.arange(D - 20, D)  # columns that no row uses: all-empty matrix columns
EMPTY_ROWS = (3, 50)
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=2e-5)}
LOSS_TOL = {"float64": 1e-12, "float32": 1e-5}


def sparse_problem(n=N, d=D, density=0.05, seed=0, dtype=np.float64, k=K):
    """A TF-IDF-like canonical CSR (positive values, sorted unique int32 indices) with empty
    rows ``EMPTY_ROWS`` and the last 20 columns never used, and labels with signal:
    ``argmax(X @ W_true)``."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(density * d, size=n)
    counts[[r for r in EMPTY_ROWS if r < n]] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = np.concatenate([np.sort(rng.choice(d - 20, c, replace=False)) for c in counts])
    data = rng.uniform(0.1, 1.0, indptr[-1]).astype(dtype)
    X = sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(n, d))
    assert X.has_canonical_format and X.nnz == indptr[-1]
    y = np.argmax(X @ rng.normal(size=(d, k)), axis=1)
    return X, y


def non_canonical(X, seed=1):
    """``X`` as scipy allows it without ``sum_duplicates``: every third entry split into two
    duplicates, an explicit zero added per row, indices shuffled within each row.  Returns
    ``(Xn, dense)``: ``dense`` is scipy's own reading of ``Xn`` (duplicates summed)."""
    rng = np.random.default_rng(seed)
    data, indices, indptr = [], [], [0]
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        c, v = list(X.indices[lo:hi]), list(X.data[lo:hi])
        for j in range(0, hi - lo, 3):  # v = 0.25 v + 0.75 v
            c.append(c[j])
            v.append(0.75 * v[j])
            v[j] = 0.25 * v[j]
        c.append(rng.integers(X.shape[1]))
        v.append(0.0)
        p = rng.permutation(len(c))
        indices += [c[q] for q in p]
        data += [v[q] for q in p]
        indptr.append(len(indices))
    Xn = sp.csr_matrix((np.array(data, X.dtype), np.array(indices, np.int32),
                        np.array(indptr, np.int32)), shape=X.shape)
    assert not Xn.has_sorted_indices and Xn.nnz > X.nnz + X.shape[0]
    dense = Xn.toarray()
    np.testing.assert_allclose(dense, X.toarray(), rtol=1e-15)
    return Xn, dense


def with_index_dtype(X, dtype):
    """A copy of CSR ``X`` whose ``indices`` and ``indptr`` are ``dtype`` (scipy's constructor
    would shrink int64 to int32 when the values fit, so they are set afterwards)."""
    X = X.copy()
    X.indices = X.indices.astype(dtype)
    X.indptr = X.indptr.astype(dtype)
    assert X.indices.dtype == dtype and X.indptr.dtype == dtype
    return X


def assert_same_net(a, b, dtype="float64"):
    np.testing.assert_allclose(a.params, b.params, **TOL[np.dtype(dtype).name])


def make_net(dtype="float64", output="softmax", sizes=(D, 16, K), seed=0):
    return fastnn.Network(list(sizes), activation="tanh", output=output, dtype=dtype, seed=seed)


def _fit(X, y, make_opt, dtype="float64", output="softmax", epochs=4, **kw):
    net = make_net(dtype, output, sizes=(X.shape[1], 16, np.shape(y)[1] if np.ndim(y) == 2 else K))
    hist = fastnn.fit(net, X, y, epochs=epochs, batch_size=16, optimizer=make_opt(), seed=3, **kw)
    return net, hist


OPTIMIZERS = {
    "sgd": lambda: fastnn.SGD(0.3),
    "momentum": lambda: fastnn.SGD(0.05, momentum=0.9),
    "nesterov": lambda: fastnn.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: fastnn.Adam(0.01),
    "adamw": lambda: fastnn.AdamW(0.01, weight_decay=0.1),
}
FIT_CASES = [(o, a, "float64") for o in OPTIMIZERS for a in (0.0, 0.01)] + [
    ("sgd", 0.0, "float32"), ("sgd", 0.01, "float32"), ("adam", 0.01, "float32")]


# --------------------------------------------------------------------------- fastnn.fit
@pytest.mark.parametrize("opt,alpha,dtype", FIT_CASES)
def test_fit_on_csr_equals_fit_on_the_dense_matrix(opt, alpha, dtype):
    X, y = sparse_problem()
    a, ha = _fit(X, y, OPTIMIZERS[opt], dtype, alpha=alpha)
    b, hb = _fit(X.toarray(), y, OPTIMIZERS[opt], dtype, alpha=alpha)
    np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=LOSS_TOL[dtype])
    assert_same_net(a, b, dtype)
    assert ha.train_loss[-1] < 0.7 * ha.train_loss[0]  # it learned something


def test_fit_with_sample_weights_and_sparse_validation_data():
    X, y = sparse_problem()
    Xv, yv = sparse_problem(n=40, seed=5)
    sw = np.random.default_rng(2).uniform(0.2, 2.0, N)
    kw = dict(alpha=1e-3, sample_weight=sw)
    a, ha = _fit(X, y, OPTIMIZERS["adam"], validation_data=(Xv, yv), **kw)
    b, hb = _fit(X.toarray(), y, OPTIMIZERS["adam"], validation_data=(Xv.toarray(), yv), **kw)
    assert_same_net(a, b)
    np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=1e-12)
    np.testing.assert_allclose(ha.val_loss, hb.val_loss, rtol=1e-12)
    assert ha.val_accuracy == hb.val_accuracy
    c, _ = _fit(X, y, OPTIMIZERS["adam"], alpha=1e-3)  # the weights do matter
    assert np.abs(c.params - a.params).max() > 1e-3


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_fit_other_outputs_on_csr_equals_dense(output):
    X, y = sparse_problem()
    if output == "sigmoid":
        t = np.eye(K)[y]
    else:
        t = np.asarray(X @ np.linspace(-1, 1, D)).reshape(-1, 1)
    a, ha = _fit(X, t, OPTIMIZERS["adam"], output=output, alpha=1e-3)
    b, hb = _fit(X.toarray(), t, OPTIMIZERS["adam"], output=output, alpha=1e-3)
    np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=1e-12)
    assert_same_net(a, b)
    assert ha.train_loss[-1] < 0.7 * ha.train_loss[0]


def test_fit_verbose_on_csr(capsys):
    X, y = sparse_problem()
    a, _ = _fit(X, y, OPTIMIZERS["sgd"], epochs=2, verbose=True)
    b, _ = _fit(X.toarray(), y, OPTIMIZERS["sgd"], epochs=2)
    assert_same_net(a, b)
    assert "fastnn.fit" in capsys.readouterr().err


@pytest.mark.parametrize("opt,alpha", [("sgd", 0.0), ("sgd", 0.01), ("momentum", 0.0),
                                       ("adam", 0.01), ("adamw", 0.0)])
def test_first_layer_of_several_update_blocks(opt, alpha):
    """A wide first layer (1000 x 40: the optimizer walks W[0] in blocks of a few thousand
    elements, the last one partial) and a hidden width that is not a power of two."""
    X, y = sparse_problem(d=1000, density=0.012, seed=6)
    nets = []
    for inp in (X, X.toarray()):
        net = make_net(sizes=(1000, 40, K), seed=2)
        hist = fastnn.fit(net, inp, y, epochs=3, batch_size=8, optimizer=OPTIMIZERS[opt](),
                          seed=1, alpha=alpha)
        nets.append((net, hist.train_loss))
    np.testing.assert_allclose(nets[0][1], nets[1][1], rtol=1e-12)
    assert_same_net(nets[0][0], nets[1][0])


def test_divergence_on_csr_raises_and_keeps_the_last_finite_weights():
    from fastnn.train import NonFiniteLossError

    X, y = sparse_problem()
    X = X * 1e30
    nets = []
    for inp in (X, X.toarray()):
        net = fastnn.Network([D, 16, K], seed=0)  # relu: nothing saturates
        with pytest.raises(NonFiniteLossError):
            fastnn.fit(net, inp, y, epochs=3, batch_size=16, optimizer=fastnn.SGD(10.0), seed=0)
        assert np.isfinite(net.params).all()
        nets.append(net)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)


# --------------------------------------------------------------------------- Network
@pytest.mark.parametrize("output,dtype", [("softmax", "float64"), ("softmax", "float32"),
                                          ("sigmoid", "float64"), ("identity", "float64")])
def test_network_methods_on_csr_equal_dense(output, dtype):
    X, y = sparse_problem()
    net = make_net(dtype, output)
    dense = X.toarray()
    tol = TOL[dtype]
    for method in ("forward", "logits", "predict_proba"):
        got, want = getattr(net, method)(X), getattr(net, method)(dense)
        assert got.dtype == want.dtype and got.shape == want.shape == (N, K)
        np.testing.assert_allclose(got, want, **tol)
    for got, want in zip(net.layer_outputs(X), net.layer_outputs(dense)):
        np.testing.assert_allclose(got, want, **tol)
    got, want = net.predict(X), net.predict(dense)
    if output == "identity":
        np.testing.assert_allclose(got, want, **tol)
    else:
        np.testing.assert_array_equal(got, want)
    t = y if output == "softmax" else np.eye(K)[y] if output == "sigmoid" else dense[:, :K]
    sw = np.linspace(0.5, 1.5, N)
    for alpha, weights in ((0.0, None), (0.3, sw)):
        (la, ga), (lb, gb) = (net.loss_and_grad(x, t, alpha=alpha, sample_weight=weights)
                              for x in (X, dense))
        assert la == pytest.approx(lb, rel=LOSS_TOL[dtype])
        assert ga.dtype == gb.dtype and ga.shape == net.params.shape
        np.testing.assert_allclose(ga, gb, rtol=tol["rtol"], atol=tol["atol"] * 10)


def test_forward_on_csr_in_several_chunks(monkeypatch):
    from fastnn import network

    monkeypatch.setattr(network, "_FORWARD_ELEMENTS", 256 * 16)  # 256-row chunks
    X, _ = sparse_problem(n=700, seed=4)
    net = make_net()
    np.testing.assert_allclose(net.forward(X), net.forward(X.toarray()), **TOL["float64"])
    np.testing.assert_allclose(net.logits(X), net.logits(X.toarray()), **TOL["float64"])


def test_rows_without_non_zeros_and_zero_rows():
    net = make_net()
    X, _ = sparse_problem()
    out = net.logits(X)
    bias_only = net.logits(np.zeros((1, D)))[0]
    for r in EMPTY_ROWS:  # an empty row is a row of zeros: the first layer gives its bias
        np.testing.assert_allclose(out[r], bias_only, **TOL["float64"])
    empty = sp.csr_matrix((5, D))
    assert empty.nnz == 0
    np.testing.assert_allclose(net.forward(empty), net.forward(np.zeros((5, D))),
                               **TOL["float64"])
    assert net.forward(sp.csr_matrix((0, D))).shape == (0, K)


# --------------------------------------------------------------------------- input forms
FORMS = {
    "csr_array": sp.csr_array,
    "csc_matrix": lambda X: X.tocsc(),
    "csc_array": lambda X: sp.csc_array(X),
    "coo_matrix": lambda X: X.tocoo(),
    "coo_array": lambda X: sp.coo_array(X),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_sparse_form_gives_the_csr_result(form):
    X, y = sparse_problem()
    other = FORMS[form](X)
    assert other.format == form[:3] and sp.issparse(other)
    net = make_net()
    np.testing.assert_array_equal(net.forward(other), net.forward(X))
    a, ha = _fit(other, y, OPTIMIZERS["momentum"], epochs=2)
    b, hb = _fit(X, y, OPTIMIZERS["momentum"], epochs=2)
    assert ha.train_loss == hb.train_loss and np.array_equal(a.params, b.params)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_duplicates_unsorted_indices_and_explicit_zeros(index_dtype):
    """scipy's semantics: duplicate entries of a row add up, order within a row is free, a
    stored zero is a zero.  The user's arrays are left as they were (no in-place
    ``sum_duplicates``/``sort_indices``)."""
    X, y = sparse_problem()
    Xn, dense = non_canonical(X)
    Xn = with_index_dtype(Xn, index_dtype)
    before = [a.copy() for a in (Xn.data, Xn.indices, Xn.indptr)]
    net = make_net()
    np.testing.assert_allclose(net.forward(Xn), net.forward(dense), **TOL["float64"])
    la, ga = net.loss_and_grad(Xn, y, alpha=0.1)
    lb, gb = net.loss_and_grad(dense, y, alpha=0.1)
    assert la == pytest.approx(lb, rel=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)
    for opt in ("sgd", "adam"):
        a, ha = _fit(Xn, y, OPTIMIZERS[opt])
        b, hb = _fit(dense, y, OPTIMIZERS[opt])
        np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=1e-12)
        assert_same_net(a, b)
    for was, now in zip(before, (Xn.data, Xn.indices, Xn.indptr)):
        assert now.dtype == was.dtype and np.array_equal(now, was)


@pytest.mark.parametrize("data_dtype,dtype", [(np.float32, "float64"), (np.float64, "float32"),
                                              (np.int64, "float64")])
def test_data_of_another_dtype_is_converted(data_dtype, dtype):
    """float32 data in a float64 network, float64 in float32, integer counts (CountVectorizer
    gives int64 data): the same as the densified matrix of that dtype."""
    X, y = sparse_problem()
    if data_dtype == np.int64:  # term counts 1..4
        X = sp.csr_matrix((np.ceil(4 * X.data).astype(np.int64), X.indices, X.indptr), X.shape)
    else:
        X = X.astype(data_dtype)
    assert X.dtype == data_dtype and X.nnz > 1000
    net = make_net(dtype)
    np.testing.assert_allclose(net.forward(X), net.forward(X.toarray()), **TOL[dtype])
    a, _ = _fit(X, y, OPTIMIZERS["adam"], dtype)
    b, _ = _fit(X.toarray(), y, OPTIMIZERS["adam"], dtype)
    assert_same_net(a, b, dtype)


# --------------------------------------------------------------------------- errors
NON_FINITE = r"\bX contains (NaN|inf)"


def _with_value(X, value, at=7):
    X = X.copy()
    X.data[at] = value
    return X


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_data_raises_naming_x(value):
    X, y = sparse_problem()
    bad = _with_value(X, value)
    net = make_net()
    before = net.params.copy()
    for call in (lambda: fastnn.fit(net, bad, y, epochs=1, batch_size=16,
                                    optimizer=fastnn.SGD(0.1)),
                 lambda: net.forward(bad), lambda: net.predict(bad), lambda: net.logits(bad),
                 lambda: net.predict_proba(bad), lambda: net.loss_and_grad(bad, y),
                 lambda: net.predict(bad.tocsc())):
        with pytest.raises(ValueError, match=NON_FINITE):
            call()
    with pytest.raises(ValueError, match=r"validation_data\[0\] contains (NaN|inf)"):
        fastnn.fit(net, X, y, epochs=1, batch_size=16, optimizer=fastnn.SGD(0.1),
                   validation_data=(bad, y))
    np.testing.assert_array_equal(net.params, before)


def test_wrong_number_of_features_and_values_too_large_for_float32():
    X, y = sparse_problem()
    net = make_net("float32")
    narrow = X[:, :D - 1]
    assert narrow.shape == (N, D - 1) and sp.issparse(narrow)
    for call in (lambda: net.forward(narrow), lambda: net.loss_and_grad(narrow, y),
                 lambda: fastnn.fit(net, narrow, y, epochs=1, batch_size=16,
                                    optimizer=fastnn.SGD(0.1))):
        with pytest.raises(ValueError, match=rf"\bX\b.* {D - 1} features"):
            call()
    big = _with_value(X, 1e39)  # finite in float64, inf in the float32 network
    with pytest.raises(ValueError, match="X has values too large"):
        net.forward(big)
    for call in (lambda: net.loss_and_grad(big, y),
                 lambda: fastnn.fit(net, big, y, epochs=1, batch_size=16,
                                    optimizer=fastnn.SGD(0.1))):  # (the dense input's message)
        with pytest.raises(ValueError, match=r"X (has values too large|contains NaN or inf)"):
            call()
    make_net("float64").forward(big)  # fine in float64


def test_malformed_csr_raises_instead_of_reading_out_of_bounds():
    """scipy builds a CSR from arrays it does not fully check; an index outside [0, n_features)
    or a decreasing indptr would make the kernels read or write outside W."""
    X, y = sparse_problem()
    net = make_net()
    one_past = X.copy()
    one_past.indices[5] = D
    negative = X.copy()
    negative.indices[5] = -1
    decreasing = X.copy()
    decreasing.indptr[10] = decreasing.indptr[12]
    for bad in (one_past, negative, decreasing):
        with pytest.raises(ValueError, match="X"):
            net.forward(bad)
    for bad in (one_past, decreasing):
        with pytest.raises(ValueError, match="X"):
            fastnn.fit(net, bad, y, epochs=1, batch_size=16, optimizer=fastnn.SGD(0.1))
