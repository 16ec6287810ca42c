"""Malformed sparse matrices of every format are refused with a ValueError naming the argument,
before anything reads or writes by their index arrays.

scipy's constructors check little (an index array can be replaced after construction), and its
compiled conversions to CSR (from CSC, COO and BSR) index their output by the input's indices
without bounds checks: a malformed matrix handed to them writes outside the arrays and crashes
the process.  Each case therefore runs in a child process, so that a crash is a failed test
rather than the end of the test run.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

import fastnn
from fastnn._sparse import as_csr

from test_sparse import make_net, sparse_problem

#: statements that make ``M`` from ``X`` (a valid 6 x 10 CSR matrix): each is malformed
MALFORMED = {
    "csc_row_index_out_of_range": "M = X.tocsc(); M.indices = M.indices.copy(); "
                                  "M.indices[0] = 10**7",
    "csc_negative_row_index": "M = X.tocsc(); M.indices = M.indices.copy(); M.indices[0] = -5",
    "csc_indptr_past_the_arrays": "M = X.tocsc(); M.indptr = M.indptr.copy(); "
                                  "M.indptr[-1] = 10**7",
    "csc_indptr_decreasing": "M = X.tocsc(); M.indptr = M.indptr.copy(); M.indptr[3] = 10**6",
    "csc_indptr_too_short": "M = X.tocsc(); M.indptr = M.indptr[:-2].copy()",
    "csc_indptr_not_from_zero": "M = X.tocsc(); M.indptr = M.indptr.copy(); M.indptr[0] = 1",
    "coo_row_out_of_range": "M = X.tocoo(); M.row = M.row.copy(); M.row[0] = 10**7",
    "coo_negative_row": "M = X.tocoo(); M.row = M.row.copy(); M.row[0] = -10**7",
    "coo_col_out_of_range": "M = X.tocoo(); M.col = M.col.copy(); M.col[0] = 10**7",
    "coo_index_arrays_shorter_than_data": "M = X.tocoo(); M.row = M.row[:-1].copy(); "
                                          "M.col = M.col[:-1].copy()",
    "bsr_indptr_past_the_arrays": "M = X.tobsr(blocksize=(2, 2)); M.indptr = M.indptr.copy(); "
                                  "M.indptr[-1] = 10**7",
    "bsr_block_index_out_of_range": "M = X.tobsr(blocksize=(2, 2)); "
                                    "M.indices = M.indices.copy(); M.indices[0] = 10**7",
}

CHILD = """
import numpy as np, scipy.sparse as sp
from fastnn._sparse import as_csr
X = sp.random(6, 10, density=0.4, format="csr", random_state=0)
{make}
try:
    as_csr(M, 10, np.float64, name="X_train")
    print("ACCEPTED")
except ValueError as exc:
    print("ValueError:", exc)
"""


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_matrix_of_another_format_raises_before_scipy_converts_it(case):
    code = textwrap.dedent(CHILD).format(make=MALFORMED[case])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, f"the child process failed ({run.returncode}): {run.stderr}"
    assert run.stdout.startswith("ValueError: X_train"), run.stdout + run.stderr


def test_the_checked_conversions_still_give_scipys_csr():
    """Valid CSC, COO (with duplicates) and BSR/DIA/LIL/DOK matrices give scipy's own CSR."""
    X, _ = sparse_problem(n=30, d=40, density=0.2)
    coo = X.tocoo()
    dup = sp.coo_matrix((np.r_[coo.data, coo.data[:5]], (np.r_[coo.row, coo.row[:5]],
                                                         np.r_[coo.col, coo.col[:5]])),
                        shape=X.shape)
    for M in (X.tocsc(), coo, dup, X.tobsr(blocksize=(2, 2)), X.todia(), X.tolil(),
              X.todok()):
        got = as_csr(M, 40, np.float64).to_scipy()
        np.testing.assert_array_equal(got.toarray(), M.toarray())


@pytest.mark.parametrize("shape", [(-1, 1), (1, -1)])
def test_two_dimensional_data_raises_naming_x(shape):
    """A CSR whose ``data`` is 2-D (e.g. a column vector) was accepted and failed inside the
    compiled kernels with a numba typing error."""
    X, y = sparse_problem(n=20, d=30)
    bad = X.copy()
    bad.data = bad.data.reshape(shape)
    net = make_net(sizes=(30, 4, 3))
    for call in (lambda: net.forward(bad), lambda: net.loss_and_grad(bad, y),
                 lambda: fastnn.fit(net, bad, y, epochs=1, batch_size=4,
                                    optimizer=fastnn.SGD(0.1))):
        with pytest.raises(ValueError, match=r"^X: its values \(data\) must be a 1-D array"):
            call()


def test_run_epoch_takes_the_prepared_sparse_input_and_refuses_a_scipy_matrix():
    """run_epoch documents a TypeError for an input not in the engine's form; a scipy.sparse
    matrix raised AttributeError ('csr_matrix' object has no attribute 'flags')."""
    from fastnn.train import prepare_inputs, run_epoch

    X, y = sparse_problem(n=40, d=30)
    net = make_net(sizes=(30, 4, 3))
    with pytest.raises(TypeError, match=r"^X must be .*prepare_inputs.*csr_matrix"):
        run_epoch(net, X, y, fastnn.SGD(0.1), batch_size=8, order=np.arange(40))
    dense = net.copy()
    order = np.random.default_rng(0).permutation(40)
    Xp, t, _ = prepare_inputs(net, X, y, None, 0.0)
    Xd, td, _ = prepare_inputs(dense, X.toarray(), y, None, 0.0)
    a = run_epoch(net, Xp, t, fastnn.Adam(0.01), batch_size=8, order=order)
    b = run_epoch(dense, Xd, td, fastnn.Adam(0.01), batch_size=8, order=order)
    assert a == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(net.params, dense.params, rtol=1e-10, atol=1e-12)


MUTATE_IN_CALLBACK = """
import numpy as np, scipy.sparse as sp, fastnn
X = sp.random(200, 50, density=0.2, format="csr", random_state=0)
y = np.random.default_rng(0).integers(0, 3, 200)
def train(callbacks):
    net = fastnn.Network([50, 8, 3], output="softmax", seed=0)
    fastnn.fit(net, X, y, epochs=3, batch_size=16, optimizer=fastnn.SGD(0.1), seed=0,
               callbacks=callbacks)
    return net.params
indptr = X.indptr.copy()
def mutate(epoch, history):  # row pointers far outside the arrays, from the second epoch on
    X.indptr[1:] = 2**31 - 1
changed = train([mutate])
X.indptr[:] = indptr
print("SAME" if np.array_equal(changed, train([])) else "DIFFERENT")
"""


def test_changing_indptr_during_fit_cannot_move_the_rows_outside_the_arrays():
    """The kernels read the row bounds of the validated matrix; when they were views of the
    user's ``X.indptr``, a callback (or another thread) that changed it made the next epoch
    read far outside ``data`` and ``indices`` (a crash).  They are fastnn's own copy: the fit
    goes on with the rows it validated."""
    run = subprocess.run([sys.executable, "-c", MUTATE_IN_CALLBACK], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"the child process failed ({run.returncode}): {run.stderr}"
    assert run.stdout.strip() == "SAME", run.stdout + run.stderr


ESTIMATOR_CHILD = """
import warnings
import numpy as np, scipy.sparse as sp, fastnn
warnings.simplefilter("ignore")
X = sp.random(30, 10, density=0.4, format="csr", random_state=0)
y = np.arange(30) % 2
est = fastnn.{cls}(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
M = X.{to}()
{mutate}
for name, call in (("fit", lambda: fastnn.{cls}(hidden_layer_sizes=(4,), max_iter=2).fit(M, y)),
                   ("partial_fit", lambda: est.partial_fit(M, y)),
                   ("predict", lambda: est.predict(M)), ("score", lambda: est.score(M, y))):
    try:
        call()
        print(name, "ACCEPTED")
    except ValueError as exc:
        print(name, "ValueError:", str(exc)[:60])
"""
BAD_FOR_ESTIMATORS = {
    "coo_row": ("tocoo", "M.row = M.row.copy(); M.row[0] = 10**7"),
    "coo_col": ("tocoo", "M.col = M.col.copy(); M.col[0] = -3"),
    "bsr_indptr": ("tobsr", "M.indptr = M.indptr.copy(); M.indptr[-1] = 10**7"),
}


@pytest.mark.parametrize("cls", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("case", list(BAD_FOR_ESTIMATORS))
def test_estimators_check_other_formats_before_scikit_learn_converts_them(cls, case):
    """validate_data(accept_sparse=["csr", "csc"]) converts a COO or BSR matrix with scipy's
    unchecked compiled conversion: the estimators check it first."""
    to, mutate = BAD_FOR_ESTIMATORS[case]
    code = ESTIMATOR_CHILD.format(cls=cls, to=to, mutate=mutate)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"the child process failed ({run.returncode}): {run.stderr}"
    lines = run.stdout.splitlines()
    assert len(lines) == 4 and all(" ValueError: X: " in line for line in lines), run.stdout


@pytest.mark.parametrize("form", ["tocoo", "tobsr", "todok", "tolil"])
def test_estimators_on_other_sparse_formats_equal_csr(form):
    X, y = sparse_problem(n=60, d=40, density=0.2)
    a = fastnn.MLPClassifier((6,), max_iter=3, random_state=0).fit(X, y)
    b = fastnn.MLPClassifier((6,), max_iter=3, random_state=0).fit(getattr(X, form)(), y)
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(getattr(X, form)()))
    np.testing.assert_array_equal(a.predict_log_proba(X),
                                  b.predict_log_proba(getattr(X, form)()))


def test_block_bytes_is_checked_for_sparse_input_too():
    """``block_bytes`` does not apply to a sparse X (its rows are read in place), but a value
    that is not a byte count is refused as it is for dense input."""
    X = sp.random(20, 6, density=0.5, format="csr", random_state=0)
    y = np.arange(20) % 2
    net = fastnn.Network([6, 4, 2], seed=0)
    with pytest.raises(ValueError, match="block_bytes must be an int >= 1"):
        fastnn.fit(net, X, y, epochs=1, batch_size=4, optimizer=fastnn.SGD(0.1), block_bytes=-5)
    fastnn.fit(net, X, y, epochs=1, batch_size=4, optimizer=fastnn.SGD(0.1), block_bytes=1 << 20)


def test_sparse_targets_or_weights_are_refused_by_name():
    """Only X may be sparse: a sparse y or sample_weight is refused with a TypeError that
    names it (not a message about an 'object' dtype)."""
    X = sp.random(12, 5, density=0.5, format="csr", random_state=0)
    y = np.arange(12) % 2
    net = fastnn.Network([5, 3, 2], seed=0)
    fit = dict(epochs=1, batch_size=4, optimizer=fastnn.SGD(0.1))
    with pytest.raises(TypeError, match=r"^y must be a dense array, got a scipy.sparse"):
        fastnn.fit(net, X, sp.csr_matrix(np.eye(2)[y]), **fit)
    with pytest.raises(TypeError, match=r"^sample_weight must be a dense array"):
        fastnn.fit(net, X, y, sample_weight=sp.csr_matrix(np.ones((1, 12))), **fit)
    with pytest.raises(TypeError, match=r"^y must be a dense array"):
        net.loss_and_grad(X, sp.csr_matrix(np.eye(2)[y]))
