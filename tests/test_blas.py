"""The BLAS the kernels call (fastnn.kernels._blas): gemm_flat and gemm vs NumPy, the SciPy
fallback, the binding to NumPy's own OpenBLAS and its thread pool."""
import ctypes
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastnn
from fastnn import _hooks, _jit
from fastnn.kernels import _blas
from fastnn.kernels._blas import SPLIT_MAX, SPLIT_MIN, backend, gemm, gemm_flat

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
TRANS = [(False, False), (False, True), (True, False), (True, True)]
# (m, n, k): empty sides, ones, odd sizes, and two sizes that gemm_flat splits into chunks
SHAPES = [(0, 3, 2), (3, 0, 2), (3, 2, 0), (0, 0, 0), (1, 1, 1), (1, 5, 3), (4, 1, 3), (5, 3, 1),
          (17, 9, 13), (200, 100, 64), (64, 100, 200)]
assert all(SPLIT_MIN < m * n * k <= SPLIT_MAX for m, n, k in SHAPES[-2:])
FILL = 12345.0  # buffer contents outside the blocks: must survive every call


def _operands(m, n, k, transa, transb, beta, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transb else (k, n)).astype(dtype)
    # beta = 0 must ignore the old C entirely, NaN included
    c = np.full((m, n), np.nan, dtype) if beta == 0 else rng.standard_normal((m, n)).astype(dtype)
    return a, b, c


def _expected(alpha, a, b, beta, c, transa, transb):
    """The float64 result and its error scale ``|alpha| |op(a)| |op(b)| + |beta| |c|``."""
    opa, opb = (a.T if transa else a).astype(np.float64), (b.T if transb else b).astype(np.float64)
    old = np.zeros(c.shape) if beta == 0 else c.astype(np.float64)
    return alpha * opa @ opb + beta * old, abs(alpha) * np.abs(opa) @ np.abs(opb) + abs(beta) * np.abs(old)


def _check(got, want, scale, dtype):
    assert got.dtype == dtype and got.shape == want.shape
    assert np.all(np.isfinite(got))
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= RTOL[dtype] * (scale + 1e-30)), err.max()


def _embed(block, offset, ld, dtype):
    """A flat buffer holding ``block`` row-major from ``offset`` with row stride ``ld``, FILL
    everywhere else (before, between the rows and after)."""
    rows, cols = block.shape
    buf = np.full(offset + rows * ld + 5, FILL, dtype)
    for i in range(rows):
        buf[offset + i * ld: offset + i * ld + cols] = block[i]
    return buf


def _block(buf, offset, ld, rows, cols):
    index = offset + np.arange(rows)[:, None] * ld + np.arange(cols)[None, :]
    return buf[index], index


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("transa, transb", TRANS)
@pytest.mark.parametrize("m, n, k", SHAPES, ids=str)
def test_gemm_flat_on_sub_blocks_matches_numpy(m, n, k, transa, transb, beta, dtype):
    a, b, c = _operands(m, n, k, transa, transb, beta, dtype, seed=m * 100 + n * 10 + k)
    want, scale = _expected(-0.5, a, b, beta, c, transa, transb)
    # blocks at odd offsets, row strides wider than the rows: the gaps must not be touched
    (ao, lda), (bo, ldb), (co, ldc) = (3, a.shape[1] + 2), (7, b.shape[1] + 5), (1, n + 3)
    abuf, bbuf, cbuf = _embed(a, ao, lda, dtype), _embed(b, bo, ldb, dtype), _embed(c, co, ldc, dtype)
    a0, b0 = abuf.copy(), bbuf.copy()

    gemm_flat(transa, transb, m, n, k, -0.5, abuf, ao, lda, bbuf, bo, ldb, beta, cbuf, co, ldc)

    got, index = _block(cbuf, co, ldc, m, n)
    _check(got, want, scale, dtype)
    outside = np.ones(cbuf.size, bool)
    outside[index.ravel()] = False
    assert np.all(cbuf[outside] == FILL)
    np.testing.assert_array_equal(abuf, a0)
    np.testing.assert_array_equal(bbuf, b0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("transa, transb", TRANS)
@pytest.mark.parametrize("m, n, k", SHAPES, ids=str)
def test_gemm_matches_numpy(m, n, k, transa, transb, beta, dtype):
    a, b, c = _operands(m, n, k, transa, transb, beta, dtype, seed=m + n + k)
    want, scale = _expected(2.0, a, b, beta, c, transa, transb)
    a0, b0 = a.copy(), b.copy()
    gemm(transa, transb, 2.0, a, b, beta, c)
    _check(c, want, scale, dtype)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# --------------------------------------------------------------------------- which BLAS
def _numpy_bundled_openblas64():
    """threadpoolctl's record of the ILP64 OpenBLAS shipped inside NumPy's wheel, or None."""
    numpy_root = Path(np.__file__).resolve().parent.parent
    for info in threadpool_info():
        path = Path(info["filepath"]).resolve()
        if "scipy_openblas64" in path.name and numpy_root in path.parents \
                and path.parent.name.startswith("numpy"):
            return info
    return None


def _address(path, symbol):
    return ctypes.cast(getattr(ctypes.CDLL(path), symbol), ctypes.c_void_p).value


def _numpy_info_or_skip():
    info = _numpy_bundled_openblas64()
    if info is None or os.environ.get(_hooks.ENV_BLAS):
        pytest.skip("NumPy does not bundle scipy_openblas64, or FASTNN_BLAS is set")
    return info


def test_backend_is_numpys_own_openblas():
    info = _numpy_info_or_skip()
    assert backend() == "numpy-openblas64"
    lib = _hooks.blas_library()
    # the very functions of the library NumPy links and threadpoolctl controls
    assert lib.sgemm == _address(info["filepath"], "scipy_cblas_sgemm64_")
    assert lib.dgemm == _address(info["filepath"], "scipy_cblas_dgemm64_")
    assert lib.set_threads == _address(info["filepath"], "scipy_openblas_set_num_threads64_")
    # compiled code is cached per backend
    assert _jit._SOURCES_STAMP[1] == backend()


@numba.njit
def _set_and_read(n):
    old = _blas.blas_threads()
    _blas.set_blas_threads(n)
    return old, _blas.blas_threads()


def test_kernels_and_set_num_threads_drive_numpys_pool():
    info = _numpy_info_or_skip()
    path = info["filepath"]

    def numpy_pool():
        return next(i["num_threads"] for i in threadpool_info() if i["filepath"] == path)

    before, numba_before = numpy_pool(), fastnn.get_num_threads()
    try:
        old, now = _set_and_read(1)  # from compiled code ...
        assert (old, now, numpy_pool()) == (before, 1, 1)  # ... NumPy's pool
        _set_and_read(before)
        assert numpy_pool() == before
        assert fastnn.set_num_threads(1) == 1
        assert numpy_pool() == 1 and _set_and_read(1)[0] == 1
        if numba.config.NUMBA_NUM_THREADS >= 2 and before >= 2:
            # threadpoolctl ignores a second Python thread once one has set an OpenBLAS limit;
            # fastnn.set_num_threads still sets the pool the kernels use
            with threadpool_limits(limits=1, user_api="blas"):
                worker = threading.Thread(target=fastnn.set_num_threads, args=(2,))
                worker.start()
                worker.join()
                assert numpy_pool() == 2
    finally:
        fastnn.set_num_threads(numba_before)
        _set_and_read(before)
    assert numpy_pool() == before


# --------------------------------------------------------------------------- SciPy fallback
_SCRIPT = r"""
import json, sys
import numpy as np
from fastnn.kernels._blas import backend, gemm, gemm_flat
cases = json.loads(sys.argv[1])
out = []
for m, n, k, transa, transb, beta, dt in cases:
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = rng.standard_normal(((k, m) if transa else (m, k))).astype(dt)
    b = rng.standard_normal(((n, k) if transb else (k, n))).astype(dt)
    c = np.full(2 + m * (n + 1), np.nan if beta == 0 else 0.25, dt)
    gemm_flat(transa, transb, m, n, k, 1.5, a.ravel(), 0, a.shape[1], b.ravel(), 0, b.shape[1],
              beta, c, 2, n + 1)
    c2 = np.full((m, n), 0.25, dt)
    gemm(transa, transb, 1.5, a, b, beta, c2)
    out.append([c.astype(float).tolist(), c2.astype(float).ravel().tolist()])
print(json.dumps({"backend": backend(), "out": out,
                  "hits": sum(sum(f.stats.cache_hits.values()) for f in (gemm_flat, gemm)),
                  "misses": sum(sum(f.stats.cache_misses.values()) for f in (gemm_flat, gemm))}))
"""
_CASES = [[m, n, k, ta, tb, beta, dt] for (m, n, k) in [(3, 4, 5), (1, 1, 1), (2, 3, 0)]
          for ta, tb in TRANS for beta in (0.0, 1.0) for dt in ("float32", "float64")]


def _run(blas, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join([str(Path(fastnn.__file__).parent.parent),
                                           os.environ.get("PYTHONPATH", "")]))
    env.pop(_hooks.ENV_BLAS, None)
    if blas:
        env[_hooks.ENV_BLAS] = blas
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(_CASES)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_scipy_fallback_gives_the_same_numbers_and_has_its_own_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    scipy_run = _run("scipy", cache)
    assert scipy_run["backend"] == "scipy" and scipy_run["hits"] == 0
    default_run = _run(None, cache)
    if _numpy_bundled_openblas64() is not None:
        assert default_run["backend"] == "numpy-openblas64"
        # the SciPy-convention machine code cached just before must not be loaded
        assert default_run["hits"] == 0 and default_run["misses"] > 0
    for case, got_scipy, got_default in zip(_CASES, scipy_run["out"], default_run["out"]):
        m, n, k, transa, transb, beta, dt = case
        dtype = np.dtype(dt).type
        rng = np.random.default_rng(m * 7 + n * 3 + k)
        a = rng.standard_normal(((k, m) if transa else (m, k))).astype(dt)
        b = rng.standard_normal(((n, k) if transb else (k, n))).astype(dt)
        c = np.full((m, n), 0.25, dt)
        want, scale = _expected(1.5, a, b, beta, c, transa, transb)
        for flat, two_d in (got_scipy, got_default):
            flat = np.array(flat, dtype)
            block, index = _block(flat, 2, n + 1, m, n)
            _check(block, want, scale, dtype)
            _check(np.array(two_d, dtype).reshape(m, n), want, scale, dtype)
            outside = np.ones(flat.size, bool)
            outside[index.ravel()] = False
            assert np.all(np.isnan(flat[outside]) if beta == 0 else flat[outside] == 0.25)


def test_bad_fastnn_blas_value_is_refused(tmp_path):
    env = dict(os.environ, FASTNN_BLAS="mkl", NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(Path(fastnn.__file__).parent.parent))
    proc = subprocess.run([sys.executable, "-c", "import fastnn.kernels._blas"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "ValueError: FASTNN_BLAS must be 'numpy', 'scipy' or unset, got 'mkl'" in proc.stderr


# --------------------------------------------------------------------------- two threads at once
@numba.njit(nogil=True)
def _count_wrong_products(transa, transb, shapes, a, b, want, tol, reps, c):
    """Each product of ``shapes`` ``reps`` times into a NaN-filled ``c``; how many differ from
    ``want`` (float64 results, 81 values per shape) by more than ``tol`` (same layout)."""
    wrong = 0
    for r in range(reps):
        for i in range(shapes.shape[0]):
            m, n, k = shapes[i, 0], shapes[i, 1], shapes[i, 2]
            c[:] = np.nan
            gemm_flat(transa, transb, m, n, k, 1.0, a, 0, m if transa else k, b, 0,
                      k if transb else n, 0.0, c, 0, n)
            for j in range(m * n):
                if not abs(c[j] - want[i, j]) <= tol[i, j]:
                    wrong += 1
                    break
    return wrong


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa, transb", TRANS)
def test_products_from_two_threads_at_once(transa, transb, dtype):
    # NumPy's OpenBLAS left elements of Aᵀ Bᵀ unwritten now and then when two threads called it
    # at once (gemm_flat computes that case by columns): two threads, many small products each
    rng = np.random.default_rng(7)
    shapes = rng.integers(1, 10, size=(40, 3))
    a, b = rng.standard_normal(81).astype(dtype), rng.standard_normal(81).astype(dtype)
    want, tol = np.zeros((40, 81)), np.zeros((40, 81))
    for i, (m, n, k) in enumerate(shapes):
        opa = a[:m * k].reshape((k, m) if transa else (m, k)).astype(np.float64)
        opb = b[:k * n].reshape((n, k) if transb else (k, n)).astype(np.float64)
        opa, opb = (opa.T if transa else opa), (opb.T if transb else opb)
        want[i, :m * n] = (opa @ opb).ravel()
        tol[i, :m * n] = (RTOL[dtype] * np.abs(opa) @ np.abs(opb)).ravel()
    args = (transa, transb, shapes, a, b, want, tol)
    assert _count_wrong_products(*args, 1, np.empty(81, dtype)) == 0  # compiled, correct alone
    counts = [None, None]

    def work(t):
        counts[t] = _count_wrong_products(*args, 15000, np.empty(81, dtype))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert counts == [0, 0]
