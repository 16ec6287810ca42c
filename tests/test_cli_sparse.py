"""`fastnn train/predict/diagnose --data X.npz` with a matrix saved by scipy.sparse.save_npz:
read without pickle into a CSR matrix (never densified by the reader), trained to a stated
accuracy, and every malformed file refused in one line that names it."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from fastnn import _data, cli
from fastnn._data import read_data

pytest.importorskip("sklearn")


def run(*args, cwd=None):
    """``python -m fastnn ARGS`` in a subprocess (the real command, start-up included)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "fastnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def main(capsys, *args):
    """``fastnn ARGS`` in this process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's digits (1,797 x 64, about half the pixels zero) as a saved CSR matrix
    with its labels beside it (X_digits.npz -> y_digits.npy), and as a dense .npy pair."""
    from sklearn.datasets import load_digits

    d = tmp_path_factory.mktemp("sparse")
    X, y = load_digits(return_X_y=True)
    sp.save_npz(d / "X_digits.npz", sp.csr_matrix(X))
    np.save(d / "y_digits.npy", y)
    np.save(d / "X_dense.npy", X)
    np.save(d / "y_dense.npy", y)
    return d, X, y


def predictions(path):
    rows = list(csv.reader(open(path)))
    return rows[0], [r[0] for r in rows[1:]]


def held_out_accuracy(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("held-out accuracy:"))
    return float(line.split()[2])


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("make", [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array,
                                  sp.coo_array])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, bool])
def test_read_data_builds_the_same_csr_matrix(tmp_path, make, dtype):
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 50)) < 0.1) * rng.integers(1, 9, (30, 50))
    dense[4] = 0  # an empty row
    sp.save_npz(tmp_path / "X_m.npz", make(dense.astype(dtype)))
    np.save(tmp_path / "y_m.npy", np.arange(30) % 3)
    X, y, names = read_data(str(tmp_path / "X_m.npz"))
    assert sp.issparse(X) and X.format == "csr" and X.dtype == np.float64
    np.testing.assert_array_equal(X.toarray(), dense.astype(dtype).astype(np.float64))
    np.testing.assert_array_equal(y, np.arange(30) % 3)
    assert names is None


def test_read_data_labels_from_the_option_or_beside(tmp_path):
    sp.save_npz(tmp_path / "docs.npz", sp.csr_matrix(np.eye(4)))
    np.save(tmp_path / "y.npy", np.array([1, 2, 3, 4]))  # "docs.npz": y.npy in the folder
    np.save(tmp_path / "other.npy", np.array([5, 6, 7, 8]))
    assert read_data(str(tmp_path / "docs.npz"))[1].tolist() == [1, 2, 3, 4]
    assert read_data(str(tmp_path / "docs.npz"),
                     labels=str(tmp_path / "other.npy"))[1].tolist() == [5, 6, 7, 8]
    assert read_data(str(tmp_path / "docs.npz"), need_y=False)[1] is None  # predict


def test_duplicate_and_unsorted_indices_are_kept_as_scipy_reads_them(tmp_path):
    # row 0: column 2 twice (values add up), columns out of order
    data, indices = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2, 0, 2, 1])
    indptr = np.array([0, 3, 4])
    np.savez(tmp_path / "X_dup.npz", format=np.array(b"csr"), shape=np.array([2, 3]), data=data,
             indices=indices, indptr=indptr)
    np.save(tmp_path / "y_dup.npy", np.array([0, 1]))
    X, _, _ = read_data(str(tmp_path / "X_dup.npz"))
    np.testing.assert_array_equal(X.toarray(), [[2.0, 0.0, 4.0], [0.0, 4.0, 0.0]])


# --------------------------------------------------------------------------- training
def test_train_on_sparse_digits_then_predict(digits, tmp_path):
    d, X, y = digits
    model, preds = tmp_path / "m.npz", tmp_path / "p.csv"
    proc = run("train", "--data", d / "X_digits.npz", "--epochs", "20", "--seed", "0",
               "--save", model, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert held_out_accuracy(proc.stdout) >= 0.95  # raw pixel counts 0..16, not standardised

    from fastnn import io

    net, info = io.load_model(model)
    assert net.layer_sizes == (64, 64, 10)
    assert "x_mean" not in info["arrays"] and "x_scale" not in info["arrays"]
    proc = run("predict", "--model", model, "--data", d / "X_digits.npz", "--output", preds)
    assert proc.returncode == 0, proc.stderr
    header, pred = predictions(preds)
    assert header == ["prediction"] and len(pred) == y.size
    assert np.mean(np.array(pred, dtype=int) == y) >= 0.95  # mostly rows it trained on
    proc = run("predict", "--model", model, "--data", d / "X_dense.npy", "--output",
               tmp_path / "dense.csv")
    assert predictions(tmp_path / "dense.csv")[1] == pred  # the same model on the dense file


def test_train_on_a_wide_text_like_matrix(tmp_path, capsys):
    """600 'documents' over 5,000 'terms', 20 terms each: 8 of them from their class's own 50
    terms, the rest from the whole vocabulary."""
    rng = np.random.default_rng(1)
    n, d, k = 600, 5000, 3
    y = rng.integers(0, k, n)
    rows = np.repeat(np.arange(n), 20)
    own = y[:, None] * 50 + rng.integers(0, 50, (n, 8))
    cols = np.concatenate([own, rng.integers(0, d, (n, 12))], axis=1).ravel()
    X = sp.csr_matrix((rng.random(rows.size) + 0.5, (rows, cols)), shape=(n, d))
    X = sp.csr_matrix(X.multiply(1 / np.sqrt(X.multiply(X).sum(axis=1))))  # l2 rows, as TF-IDF
    sp.save_npz(tmp_path / "X_text.npz", X, compressed=True)
    np.save(tmp_path / "y_text.npy", np.array(["news", "sport", "tech"])[y])
    status, out, err = main(capsys, "train", "--data", tmp_path / "X_text.npz", "--epochs", "15",
                            "--lr", "0.01", "--hidden", "32", "--quiet")
    assert status == 0, err
    assert held_out_accuracy(out) >= 0.9


def test_fit_receives_the_matrix_sparse(digits, capsys, monkeypatch):
    import fastnn

    seen = []
    real_fit = fastnn.fit

    def spy(net, X, y, **kw):
        seen.append((X, kw.get("validation_data")))
        return real_fit(net, X, y, **kw)

    monkeypatch.setattr(fastnn, "fit", spy)
    d, _, _ = digits
    status, _, err = main(capsys, "train", "--data", d / "X_digits.npz", "--epochs", "1",
                          "--quiet")
    assert status == 0, err
    X, (Xv, _) = seen[0]
    assert sp.issparse(X) and sp.issparse(Xv)
    assert X.dtype == np.float32 and X.shape[1] == 64  # cast to the model's dtype, still CSR


# --------------------------------------------------------------------------- scaled models
def test_dense_trained_model_predicts_sparse_rows_in_bounded_dense_blocks(digits, tmp_path,
                                                                          capsys, monkeypatch):
    d, X, _ = digits
    model = tmp_path / "scaled.npz"
    status, _, err = main(capsys, "train", "--data", d / "X_dense.npy", "--epochs", "2",
                          "--save", model, "--quiet")
    assert status == 0, err
    status, _, err = main(capsys, "predict", "--model", model, "--data", d / "X_dense.npy",
                          "--output", tmp_path / "dense.csv", "--proba")
    assert status == 0, err
    blocks = []
    real = _data.row_blocks

    def recording(*args):
        for offset, rows in real(*args):
            blocks.append((offset, rows.shape, sp.issparse(rows)))
            yield offset, rows

    monkeypatch.setattr(_data, "BLOCK_BYTES", 8 * 64 * 500)  # 500 dense rows per block
    monkeypatch.setattr(cli, "row_blocks", recording)
    status, _, err = main(capsys, "predict", "--model", model, "--data", d / "X_digits.npz",
                          "--output", tmp_path / "sparse.csv", "--proba")
    assert status == 0, err
    assert blocks == [(0, (500, 64), False), (500, (500, 64), False),
                      (1000, (500, 64), False), (1500, (297, 64), False)]
    assert list(csv.reader(open(tmp_path / "sparse.csv"))) == \
        list(csv.reader(open(tmp_path / "dense.csv")))


def test_overflow_in_a_later_block_names_its_row(digits, tmp_path, capsys, monkeypatch):
    d, X, _ = digits
    model = tmp_path / "scaled.npz"
    status, _, err = main(capsys, "train", "--data", d / "X_dense.npy", "--epochs", "1",
                          "--save", model, "--quiet")
    assert status == 0, err
    big = X.copy()
    big[1234, 5] = 1e300  # finite in float64, not after scaling in float32
    sp.save_npz(tmp_path / "X_big.npz", sp.csr_matrix(big))
    monkeypatch.setattr(_data, "BLOCK_BYTES", 8 * 64 * 500)
    status, _, err = main(capsys, "predict", "--model", model, "--data", tmp_path / "X_big.npz")
    assert status == 1
    assert "features too large for the model's float32" in err and "first in row 1234" in err


# --------------------------------------------------------------------------- diagnose
def test_diagnose_takes_the_sparse_matrix(digits, tmp_path, capsys, monkeypatch):
    d, _, _ = digits
    model = tmp_path / "m.npz"
    status, _, err = main(capsys, "train", "--data", d / "X_digits.npz", "--epochs", "2",
                          "--save", model, "--quiet")
    assert status == 0, err
    seen = []
    real = cli.model_inputs

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(cli, "model_inputs", spy)
    status, out, err = main(capsys, "diagnose", "--model", model, "--data", d / "X_digits.npz")
    assert status == 0, err
    assert sp.issparse(seen[0]) and seen[0].shape == (1797, 64)  # passed on as it is
    assert "on 1797 rows" in out.replace("\n  ", " ") and err == ""
    assert "fastnn.diagnose" in out and "Loss" in out


def test_diagnose_of_a_scaled_model_densifies_a_bounded_sample(digits, tmp_path, capsys,
                                                               monkeypatch):
    d, _, _ = digits
    model = tmp_path / "scaled.npz"
    status, _, err = main(capsys, "train", "--data", d / "X_dense.npy", "--epochs", "2",
                          "--save", model, "--quiet")
    assert status == 0, err
    status, dense_out, err = main(capsys, "diagnose", "--model", model, "--data",
                                  d / "X_dense.npy")
    assert status == 0, err
    status, out, err = main(capsys, "diagnose", "--model", model, "--data", d / "X_digits.npz",
                            "--labels", d / "y_dense.npy")
    assert status == 0, err
    assert out == dense_out and err == ""  # under the byte bound: every row, the same result
    monkeypatch.setattr(cli, "DIAGNOSE_BYTES", 8 * 64 * 300)
    status, out, err = main(capsys, "diagnose", "--model", model, "--data", d / "X_digits.npz")
    assert status == 0, err
    assert "on 300 rows" in out.replace("\n  ", " ")
    assert "a random sample of 300 of the 1797 rows" in err
    monkeypatch.setattr(cli, "DIAGNOSE_BYTES", 8 * 64 * 10)  # fewer rows than it measures
    status, out, err = main(capsys, "diagnose", "--model", model, "--data", d / "X_digits.npz")
    assert status == 1 and "64 features are too many to diagnose with a feature scaler" in err


# --------------------------------------------------------------------------- bad files
def _csr_arrays():
    """The arrays save_npz writes for a 3 x 4 CSR matrix."""
    m = sp.csr_matrix(np.array([[1.0, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 4]]))
    return dict(format=np.array(b"csr"), shape=np.array(m.shape), data=m.data,
                indices=m.indices, indptr=m.indptr)


def _with(**changes):
    arrays = _csr_arrays()
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


BAD = {
    "bsr": (_with(format=np.array(b"bsr")), ["sparse format 'bsr' is not supported"]),
    "numformat": (_with(format=np.array(7)), ["sparse format '7' is not supported"]),
    "noindptr": (_with(indptr=None), ["a csr matrix needs", "missing: indptr"]),
    "outside": (_with(indices=np.array([0, 2, 1, 4])), ["'indices' holds indices outside [0, 4)"]),
    "negative": (_with(indices=np.array([0, -1, 1, 3])), ["outside [0, 4)"]),
    "shortidx": (_with(indices=np.array([0, 2, 1])),
                 ["'indices' must have one entry per value (4)"]),
    "floatidx": (_with(indices=np.array([0.0, 2, 1, 3])), ["'indices' must hold integers"]),
    "falling": (_with(indptr=np.array([0, 2, 1, 4])),
                ["'indptr' must rise from 0 to 4 (the number of values) in 4 entries"]),
    "shortptr": (_with(indptr=np.array([0, 2, 4])), ["'indptr' must rise"]),
    "endptr": (_with(indptr=np.array([0, 2, 2, 3])), ["'indptr' must rise from 0 to 4"]),
    "shape3": (_with(shape=np.array([3, 4, 1])), ["'shape' must hold two integers >= 0"]),
    "empty": (dict(format=np.array(b"csr"), shape=np.array([0, 4]), data=np.zeros(0),
                   indices=np.zeros(0, np.int32), indptr=np.zeros(1, np.int32)),
              ["features must be a non-empty 2-D array, got shape (0, 4)"]),
    "text": (_with(data=np.array(["a", "b", "c", "d"])), ["features must be numeric"]),
    "nan": (_with(data=np.array([1.0, 2.0, np.nan, 4.0])),
            ["features contain NaN or infinity (first in row 2)"]),
    "inf": (_with(data=np.array([np.inf, 2.0, 3.0, 4.0])), ["first in row 0"]),
    "pickled": (_with(data=np.array([1.0, "x", None, 2], dtype=object)),
                ["cannot read array 'data'", "allow_pickle"]),
    "coorow": (dict(format=np.array(b"coo"), shape=np.array([3, 4]), data=np.ones(2),
                    row=np.array([0, 3]), col=np.array([1, 1])),
               ["'row' holds indices outside [0, 3)"]),
    "coords": (dict(format=np.array(b"coo"), shape=np.array([3, 4]), data=np.ones(2),
                    coords=np.array([0, 1])), ["'coords' must have shape (2, nnz)"]),
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_sparse")
    for name, (arrays, _) in BAD.items():
        np.savez(d / f"X_{name}.npz", **arrays)
        np.save(d / f"y_{name}.npy", np.array([0, 1, 0]))
    sp.save_npz(d / "X_nolabels.npz", sp.csr_matrix(np.eye(3)))
    sp.save_npz(d / "X_short.npz", sp.csr_matrix(np.eye(3)))
    np.save(d / "y_short.npy", np.array([0, 1]))
    sp.save_npz(d / "X_huge.npz", sp.csr_matrix(np.array([[1e300, 0], [0, 1.0], [1, 1]])))
    np.save(d / "y_huge.npy", np.array([0, 1, 0]))
    return d


@pytest.mark.parametrize("args, fragments", [
    *[(["--data", f"X_{name}.npz"], [f"X_{name}.npz: ", *fragments])
      for name, (_, fragments) in BAD.items()],
    (["--data", "X_nolabels.npz"], ["no labels: pass --labels y.npy or put", "y_nolabels.npy"]),
    (["--data", "X_nolabels.npz", "--labels", "nope.npy"], ["nope.npy: no such file"]),
    (["--data", "X_short.npz"], ["labels must be 1-D with one per row of X (X has 3 rows"]),
    (["--data", "X_huge.npz"], ["features too large for the model's float32", "first in row 0"]),
])
def test_bad_sparse_files_are_one_line_errors(bad, capsys, monkeypatch, args, fragments):
    monkeypatch.chdir(bad)
    before = sorted(os.listdir(bad))
    status, out, err = main(capsys, "train", *args, "--epochs", "1", "--quiet")
    assert status == 1, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("fastnn train: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "held-out accuracy" not in out and sorted(os.listdir(bad)) == before


def test_bad_sparse_file_in_a_subprocess_has_no_traceback(bad):
    proc = run("train", "--data", "X_outside.npz", "--epochs", "1", cwd=bad)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "fastnn train: error: X_outside.npz: 'indices' holds indices outside [0, 4) (the "
        "matrix's shape)"]
