"""The first layer's gradient on a sparse batch (central finite differences in float64), and
which rows of W[0] an optimizer moves when features are absent: plain SGD leaves them
bit-identical, momentum and Adam keep moving rows that have state, L2 and weight decay move all."""
import numpy as np
import pytest
from test_sparse import (D, K, OPTIMIZERS, UNUSED,  # (tests/ is on sys.path)
                         assert_same_net, make_net, non_canonical, sparse_problem)

import fastnn


# --------------------------------------------------------------------------- gradients
def _central_differences(net, X, y, entries, eps=1e-6, **kw):
    p = net.params
    out = np.empty(len(entries))
    for j, i in enumerate(entries):
        old = p[i]
        p[i] = old + eps
        up = net.loss_and_grad(X, y, **kw)[0]
        p[i] = old - eps
        down = net.loss_and_grad(X, y, **kw)[0]
        p[i] = old
        out[j] = (up - down) / (2 * eps)
    return out


@pytest.mark.parametrize("canonical", [True, False])
@pytest.mark.parametrize("alpha,weighted", [(0.0, False), (0.1, True)])
def test_first_layer_gradient_matches_finite_differences(canonical, alpha, weighted):
    X, y = sparse_problem()
    rows = np.array([0, 3, 7, 11, 50, 64, 90, 119])  # includes the empty rows 3 and 50
    Xb, yb = X[rows], y[rows]
    if not canonical:
        Xb, _ = non_canonical(Xb, seed=2)
    net = make_net(sizes=(D, 8, K), seed=1)
    kw = dict(alpha=alpha, sample_weight=np.linspace(0.5, 2, len(rows)) if weighted else None)
    loss, grad = net.loss_and_grad(Xb, yb, **kw)
    present = np.unique(Xb.indices[Xb.data != 0])
    absent = np.setdiff1d(np.arange(D), present)[[0, 5, -1]]  # incl. a never-used column
    w0 = net.weights[0]
    W_entries = [r * 8 + c for r in list(present[:12]) + list(absent) for c in (0, 3, 7)]
    b_entries = list(net.tables[2][0] + np.arange(8))
    entries = np.array(W_entries + b_entries)
    fd = _central_differences(net, Xb, yb, entries, **kw)
    np.testing.assert_allclose(grad[entries], fd, rtol=1e-6, atol=1e-9)
    g0 = grad[:w0.size].reshape(w0.shape)
    if alpha == 0:  # a feature absent from the batch has exactly zero gradient
        assert not g0[absent].any()
        assert np.abs(g0[present[:12]]).min() > 0
    else:
        np.testing.assert_allclose(g0[absent], alpha * w0[absent] / kw["sample_weight"].sum(),
                                   rtol=1e-12)


# --------------------------------------------------------------------------- touched rows
@pytest.mark.parametrize("opt,alpha,all_move", [
    ("sgd", 0.0, False), ("momentum", 0.0, False), ("adam", 0.0, False),
    ("sgd", 0.01, True), ("nesterov", 0.01, True), ("adam", 0.01, True), ("adamw", 0.0, True),
])
def test_rows_of_features_never_seen(opt, alpha, all_move):
    """Without L2 a feature that never occurs has zero gradient, so its row of W[0] stays
    bit-identical under any optimizer (no gradient, no velocity, no moments); L2 and AdamW's
    weight decay move every row, as for the dense matrix."""
    X, y = sparse_problem()
    net = make_net()
    start = net.weights[0].copy()
    fastnn.fit(net, X, y, epochs=3, batch_size=16, optimizer=OPTIMIZERS[opt](), seed=3,
               alpha=alpha)
    W = net.weights[0]
    used = np.unique(X.indices)
    never = np.setdiff1d(np.arange(D), used)
    assert set(UNUSED) <= set(never)
    assert (W[used] != start[used]).any(axis=1).all()
    if all_move:
        assert (W[never] != start[never]).all()
    else:
        assert np.array_equal(W[never], start[never])


@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
def test_rows_keep_moving_with_momentum_after_their_feature_stops_occurring(opt):
    """A lazy sparse update (only the rows in the batch) is right for plain SGD only: with
    momentum or Adam a row keeps moving on its velocity / moments in steps where its feature
    is absent.  Train on the first half, then on the second half with the same optimizer
    (its state persists across fit calls)."""
    X, y = sparse_problem()
    first, second = X[:60], X[60:]
    only_first = np.setdiff1d(np.unique(first.indices), np.unique(second.indices))
    assert len(only_first) >= 3
    results = []
    for A, B in ((first, second), (first.toarray(), second.toarray())):
        net, optimizer = make_net(), OPTIMIZERS[opt]()
        fastnn.fit(net, A, y[:60], epochs=2, batch_size=16, optimizer=optimizer, seed=1)
        middle = net.weights[0][only_first].copy()
        fastnn.fit(net, B, y[60:], epochs=2, batch_size=16, optimizer=optimizer, seed=2)
        after = net.weights[0][only_first]
        if opt == "sgd":
            assert np.array_equal(after, middle)
        else:
            assert (after != middle).all()
        results.append(net)
    assert_same_net(*results)
