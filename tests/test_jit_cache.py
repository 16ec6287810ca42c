"""Kernel caching: a warm cache is loaded, not recompiled; a read-only install still works.

Each test runs a fresh Python process so the import-time cache decisions of fastnn._jit are
exercised for real.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

# Import and call two kernels (float64 only: one compiled signature each).
_SCRIPT = r"""
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastnn
    from fastnn._jit import CacheFallbackWarning
    from fastnn.kernels.activations import LOGISTIC, activation_forward
    from fastnn.kernels._blas import gemm
    errors = []
    for n, d_in, d_out in [(3, 4, 2), (8, 16, 5)]:  # BLAS (a registered symbol)
        x = np.linspace(-2.0, 2.0, n * d_in).reshape(n, d_in)
        w = np.linspace(-1.0, 1.0, d_in * d_out).reshape(d_in, d_out)
        b = np.linspace(0.5, -0.25, d_out)
        out = np.empty((n, d_out))
        gemm(False, False, 1.0, x, w, 0.0, out)
        errors.append(np.max(np.abs(out - x @ w)))
        a = x.copy()
        activation_forward(a, LOGISTIC)
        errors.append(np.max(np.abs(a - 1 / (1 + np.exp(-x)))))
stats = [f.stats for f in (gemm, activation_forward)]
print(json.dumps({
    "file": fastnn.__file__,
    "err": float(max(errors)),
    "fallback_warnings": [str(w.message) for w in caught
                          if issubclass(w.category, CacheFallbackWarning)],
    "other_warnings": [f"{w.category.__name__}: {w.message}" for w in caught
                       if not issubclass(w.category, CacheFallbackWarning)],
    "hits": sum(sum(s.cache_hits.values()) for s in stats),
    "misses": sum(sum(s.cache_misses.values()) for s in stats),
}))
"""


def _run(env, cwd):
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_read_only_install_compiles_in_memory_with_one_warning(tmp_path):
    # A copy of the package in which no cache location is writable.  We may run as root, so
    # permissions would not stop writes: make every __pycache__ a regular *file*, and point
    # NUMBA_CACHE_DIR and the user-wide cache (XDG_CACHE_HOME) below a regular file.
    site = tmp_path / "site"
    shutil.copytree(Path(fastnn.__file__).parent, site / "fastnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for package_dir in [site / "fastnn", *(p for p in (site / "fastnn").rglob("*") if p.is_dir())]:
        (package_dir / "__pycache__").write_text("a file, so nothing can be cached here\n")
    blocker = tmp_path / "afile"
    blocker.write_text("")
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1",
               NUMBA_CACHE_DIR=str(blocker / "numba"), XDG_CACHE_HOME=str(blocker / "cache"))

    result = _run(env, cwd=tmp_path)

    assert Path(result["file"]).resolve() == (site / "fastnn" / "__init__.py").resolve()
    assert result["err"] < 1e-12
    assert len(result["fallback_warnings"]) == 1, result
    assert "NUMBA_CACHE_DIR" in result["fallback_warnings"][0]
    assert result["other_warnings"] == []
    assert result["hits"] == 0
    assert not list(site.rglob("*.nbi")) and not list(site.rglob("*.nbc"))


@pytest.mark.slow
def test_warm_cache_is_loaded_and_invalidated_by_any_kernel_source(tmp_path):
    cache = tmp_path / "numba-cache"
    site = tmp_path / "site"  # a writable copy, so that a kernel source can be edited
    shutil.copytree(Path(fastnn.__file__).parent, site / "fastnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = dict(os.environ, PYTHONPATH=str(site), NUMBA_CACHE_DIR=str(cache))

    cold = _run(env, cwd=tmp_path)
    assert cold["err"] < 1e-12 and cold["fallback_warnings"] == []
    assert cold["misses"] == 2 and cold["hits"] == 0
    for kernel in ("_blas.gemm", "activations.activation_forward"):
        assert list(cache.rglob(f"{kernel}-*.nbi")), kernel  # index ...
        assert list(cache.rglob(f"{kernel}-*.nbc")), kernel  # ... and machine code

    warm = _run(env, cwd=tmp_path)
    assert warm["err"] < 1e-12
    assert warm["hits"] == 2 and warm["misses"] == 0

    # activation_forward inlines the exp of _math.py: editing only that file must recompile it
    # (numba alone checks a kernel's own file; fastnn._jit stamps caches with all sources).
    with open(site / "fastnn" / "kernels" / "_math.py", "a") as f:
        f.write("\n# edited\n")
    edited = _run(env, cwd=tmp_path)
    assert edited["err"] < 1e-12
    assert edited["hits"] == 0 and edited["misses"] == 2
